//! AWS Signature Version 4 for one request, by AWS's own signer (the `aws-sigv4` crate, not a
//! signer of ours): the headers to add — `x-amz-date`, `authorization` and, with temporary
//! credentials, `x-amz-security-token`.
//!
//! What is signed is the method, the URL (path and query), the `host` (taken from the URL, as
//! the HTTP client sends it: no port when it is the scheme's default), the `content-type` and
//! the SHA-256 of the exact body bytes sent. The tests check this signer against AWS's
//! published test-suite vector `get-vanilla`, and the fake of Amazon Managed Service for
//! Prometheus (`canary_tests::fake_aws`) recomputes every signature it receives.

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use canary_core::policy::SigV4Spec;

use super::aws::AwsCredentials;
use crate::error::{Error, Result};

/// One header the signature adds: name, value, and whether it is a credential (the session
/// token), to be sent as a sensitive header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeader {
    /// Lowercase name.
    pub name: String,
    /// Value.
    pub value: String,
    /// Whether the value is a credential.
    pub sensitive: bool,
}

/// A request to sign, as it will be sent.
#[derive(Clone, Copy, Debug)]
pub struct Unsigned<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The whole URL.
    pub url: &'a str,
    /// The request's own headers to sign besides `host` (e.g. `content-type`).
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Signs `request` for the region and service of `spec` at `time`: the headers to add.
pub fn sign_request(
    credentials: &AwsCredentials,
    spec: &SigV4Spec,
    request: Unsigned<'_>,
    time: SystemTime,
) -> Result<Vec<SignedHeader>> {
    let Unsigned {
        method,
        url,
        headers,
        body,
    } = request;
    let (region, service) = (spec.region.as_str(), spec.service.as_str());
    let identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose().to_owned(),
        credentials
            .session_token
            .as_ref()
            .map(|token| token.expose().to_owned()),
        None,
        "canary",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::Config(format!("cannot sign with AWS SigV4: {e}")))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| Error::Config(format!("cannot sign this request with AWS SigV4: {e}")))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| Error::Config(format!("cannot sign with AWS SigV4: {e}")))?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|header| SignedHeader {
            name: header.name().to_ascii_lowercase(),
            value: header.value().to_owned(),
            sensitive: header.sensitive()
                || header.name().eq_ignore_ascii_case("x-amz-security-token"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_core::secret::Secret;

    fn spec(region: &str, service: &str) -> SigV4Spec {
        SigV4Spec {
            region: region.to_owned(),
            service: service.to_owned(),
            profile: None,
        }
    }

    /// AWS's Signature Version 4 test suite, case `get-vanilla` (published by AWS with the
    /// SigV4 documentation; the same values are in the test suites of AWS's SDKs): `GET /`
    /// to `example.amazonaws.com` at 2015-08-30T12:36:00Z, region `us-east-1`, service
    /// `service`, the suite's example credentials.
    #[test]
    fn the_signer_gives_the_signature_of_aws_get_vanilla_vector() {
        let credentials = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
            expires: None,
            from: "the test suite".to_owned(),
        };
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let headers = sign_request(
            &credentials,
            &spec("us-east-1", "service"),
            Unsigned {
                method: "GET",
                url: "https://example.amazonaws.com/",
                headers: &[],
                body: b"",
            },
            time,
        )
        .unwrap();
        let value = |name: &str| {
            headers
                .iter()
                .find(|h| h.name == name)
                .map(|h| h.value.clone())
                .unwrap_or_default()
        };
        assert_eq!(value("x-amz-date"), "20150830T123600Z");
        assert_eq!(
            value("authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert!(headers.iter().all(|h| h.name != "x-amz-security-token"));
    }

    #[test]
    fn temporary_credentials_add_their_session_token_as_a_sensitive_header() {
        let credentials = AwsCredentials {
            access_key_id: "ASIAEXAMPLE".to_owned(),
            secret_access_key: Secret::new("a-secret-access-key-of-forty-characters!"),
            session_token: Some(Secret::new("a-session-token-from-sts")),
            expires: None,
            from: "a test".to_owned(),
        };
        let headers = sign_request(
            &credentials,
            &spec("eu-west-1", "aps"),
            Unsigned {
                method: "POST",
                url: "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/query",
                headers: &[("content-type", "application/x-www-form-urlencoded")],
                body: b"query=up",
            },
            SystemTime::now(),
        )
        .unwrap();
        let token = headers
            .iter()
            .find(|h| h.name == "x-amz-security-token")
            .expect("the session token is sent");
        assert_eq!(token.value, "a-session-token-from-sts");
        assert!(token.sensitive);
        let authorization = &headers
            .iter()
            .find(|h| h.name == "authorization")
            .unwrap()
            .value;
        assert!(
            authorization.contains("/eu-west-1/aps/aws4_request")
                && authorization.contains("content-type;host;x-amz-date;x-amz-security-token"),
            "{authorization}"
        );
    }
}
