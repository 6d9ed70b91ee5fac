//! A loopback HTTPS server that requires a client certificate (mutual TLS), and the
//! certificates for it, all made in the test with rcgen: a CA, a server certificate for
//! `127.0.0.1` and `localhost` signed by it, a client certificate signed by it, and a
//! stranger's client certificate (self-signed) the server must refuse.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

/// A CA and the certificates of a mutual-TLS test, as PEM.
pub struct MutualTls {
    /// The CA that signed the server's and the client's certificates.
    pub ca_pem: String,
    /// The client's certificate, signed by the CA.
    pub client_cert_pem: String,
    /// The client's private key (PKCS#8).
    pub client_key_pem: String,
    /// A certificate the CA did not sign.
    pub stranger_cert_pem: String,
    /// Its key.
    pub stranger_key_pem: String,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

/// A running mutual-TLS server.
pub struct TlsServer {
    /// `127.0.0.1:PORT`.
    pub address: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TlsServer {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// The requests that got through the handshake.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("not poisoned").clone()
    }
}

impl MutualTls {
    /// Makes a CA and the certificates.
    pub fn new() -> MutualTls {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a key"))
            .expect("a CA");
        let server_key = KeyPair::generate().expect("a key");
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params")
            .signed_by(&server_key, &ca)
            .expect("a server certificate");
        let client_key = KeyPair::generate().expect("a key");
        let client = CertificateParams::new(vec!["canary-client".to_owned()])
            .expect("client params")
            .signed_by(&client_key, &ca)
            .expect("a client certificate");
        let stranger_key = KeyPair::generate().expect("a key");
        let stranger = CertificateParams::new(vec!["stranger".to_owned()])
            .expect("stranger params")
            .self_signed(&stranger_key)
            .expect("a stranger's certificate");
        MutualTls {
            ca_pem: ca.pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
            stranger_cert_pem: stranger.pem(),
            stranger_key_pem: stranger_key.serialize_pem(),
            ca_der: ca.der().clone(),
            server_der: server.der().clone(),
            server_key_der: server_key.serialize_der(),
        }
    }

    /// Serves each request whose client presented a certificate the CA signed with
    /// `response(request)`; a connection without one fails its handshake.
    pub fn serve(&self, response: impl Fn(&str) -> String + Send + 'static) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("the CA is a root");
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .expect("a client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.server_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone())),
            )
            .expect("the server's certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let address = listener.local_addr().expect("its address").to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let Ok(connection) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                    continue;
                };
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let request = crate::fake_http::read_request(&mut tls);
                if request.is_empty() {
                    // The handshake failed: no certificate, or one the CA did not sign.
                    continue;
                }
                kept.lock().expect("not poisoned").push(request.clone());
                let _ = tls.write_all(response(&request).as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        TlsServer { address, requests }
    }
}

impl Default for MutualTls {
    fn default() -> Self {
        MutualTls::new()
    }
}
