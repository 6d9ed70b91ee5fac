//! AWS credentials for SigV4, found where AWS's SDKs look, in their order:
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//!    `~/.aws/credentials`), profile `sigv4.profile`, else `AWS_PROFILE`, else `default`;
//! 3. a web-identity token (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`,
//!    `AWS_ROLE_SESSION_NAME`, as EKS IRSA sets them) exchanged at STS
//!    (`AssumeRoleWithWebIdentity`, at `AWS_ENDPOINT_URL_STS` or `AWS_ENDPOINT_URL` when set,
//!    else `https://sts.REGION.amazonaws.com`) for temporary credentials, kept until five
//!    minutes before they expire; the token file is read again at every exchange (the
//!    kubelet rotates it).
//!
//! The environment and the file are read again at every tick, so rotated keys are picked up.
//! Not supported (said in `docs/metrics-sources.md`): `~/.aws/config` profiles with
//! `role_arn`/`source_profile`, SSO, `credential_process`, ECS and EC2 instance metadata.

use std::path::PathBuf;
use std::time::Duration;

use canary_core::policy::SigV4Spec;
use canary_core::retry::{Backoff, Failure, retry};
use canary_core::secret::{Secret, redacted};
use jiff::Timestamp;
use quick_xml::events::Event;

use super::Environment;
use crate::error::{Error, Result, excerpt};

/// Temporary credentials are exchanged again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// The largest STS answer read.
const MAX_STS_ANSWER: u64 = 1024 * 1024;

/// A set of AWS credentials. (`Debug` shows the key id and where they came from only.)
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id (not secret: it is in every request's `Authorization`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// When temporary credentials expire.
    pub expires: Option<Timestamp>,
    /// Where they came from, in words (`the environment`, `profile ci of FILE`, …).
    pub from: String,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Finds the credentials of a SigV4 policy, keeping temporary ones until they near expiry.
pub struct AwsCredentialProvider {
    spec: SigV4Spec,
    env: Environment,
    exchanged: tokio::sync::Mutex<Option<AwsCredentials>>,
}

impl AwsCredentialProvider {
    /// A provider for `spec`, reading settings from `env`.
    pub fn new(spec: SigV4Spec, env: Environment) -> AwsCredentialProvider {
        AwsCredentialProvider {
            spec,
            env,
            exchanged: tokio::sync::Mutex::new(None),
        }
    }

    /// The region and service the signature is for.
    pub fn spec(&self) -> &SigV4Spec {
        &self.spec
    }

    /// Credentials from the environment or the shared file, if either has them; `Ok(None)`
    /// when neither does (a web identity may). Reads no network: used to fail early.
    pub fn static_credentials(&self) -> Result<Option<AwsCredentials>> {
        if let Some(credentials) = self.environment_credentials()? {
            return Ok(Some(credentials));
        }
        self.profile_credentials()
    }

    /// Fails (a [`Error::Secret`], exit code 2) when no credentials can be found without the
    /// network: none in the environment or the shared file, and no web identity set up.
    pub fn check_available(&self) -> Result<()> {
        if self.static_credentials()?.is_some()
            || (self.env.get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
                && self.env.get("AWS_ROLE_ARN").is_some())
        {
            return Ok(());
        }
        Err(self.none_found())
    }

    /// No credentials anywhere, naming the policy's field that needs them (CloudWatch's
    /// signing service is `monitoring`).
    fn none_found(&self) -> Error {
        let field = if self.spec.service == "monitoring" {
            "metrics.cloudwatch"
        } else {
            "metrics.prometheus.sigv4"
        };
        Error::Secret(format!(
            "no AWS credentials for {field}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             give a profile of the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, \
             ~/.aws/credentials), or a web identity (AWS_WEB_IDENTITY_TOKEN_FILE and \
             AWS_ROLE_ARN, as EKS IRSA sets them)"
        ))
    }

    /// The credentials to sign with now.
    pub async fn credentials(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
        backoff: Backoff,
    ) -> Result<AwsCredentials> {
        if let Some(credentials) = self.static_credentials()? {
            return Ok(credentials);
        }
        let (Some(token_file), Some(role_arn)) = (
            self.env.get("AWS_WEB_IDENTITY_TOKEN_FILE"),
            self.env.get("AWS_ROLE_ARN"),
        ) else {
            return Err(self.none_found());
        };
        let mut exchanged = self.exchanged.lock().await;
        if let Some(credentials) = exchanged.as_ref() {
            let fresh = credentials.expires.is_some_and(|expires| {
                expires
                    .duration_since(Timestamp::now())
                    .try_into()
                    .is_ok_and(|left: Duration| left > REFRESH_BEFORE_EXPIRY)
            });
            if fresh {
                return Ok(credentials.clone());
            }
        }
        let credentials = self
            .assume_role_with_web_identity(http, timeout, backoff, &token_file, &role_arn)
            .await?;
        *exchanged = Some(credentials.clone());
        Ok(credentials)
    }

    fn environment_credentials(&self) -> Result<Option<AwsCredentials>> {
        match (
            self.env.get("AWS_ACCESS_KEY_ID"),
            self.env.get("AWS_SECRET_ACCESS_KEY"),
        ) {
            (None, None) => Ok(None),
            (Some(access_key_id), Some(secret)) => Ok(Some(AwsCredentials {
                access_key_id,
                secret_access_key: checked_secret(secret, "AWS_SECRET_ACCESS_KEY")?,
                session_token: self
                    .env
                    .get("AWS_SESSION_TOKEN")
                    .map(|token| checked_secret(token, "AWS_SESSION_TOKEN"))
                    .transpose()?,
                expires: None,
                from: "the environment (AWS_ACCESS_KEY_ID)".to_owned(),
            })),
            (Some(_), None) => Err(Error::Secret(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".to_owned(),
            )),
            (None, Some(_)) => Err(Error::Secret(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".to_owned(),
            )),
        }
    }

    /// The shared credentials file's profile. A profile named by the policy or by
    /// `AWS_PROFILE` must be there; the `default` one may be missing.
    fn profile_credentials(&self) -> Result<Option<AwsCredentials>> {
        let named = self
            .spec
            .profile
            .clone()
            .or_else(|| self.env.get("AWS_PROFILE"));
        let profile = named.clone().unwrap_or_else(|| "default".to_owned());
        let Some(path) = self
            .env
            .get("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| {
                self.env
                    .get("HOME")
                    .map(|home| PathBuf::from(home).join(".aws").join("credentials"))
            })
        else {
            return Ok(None);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && named.is_none() => {
                return Ok(None);
            }
            Err(e) => {
                return Err(Error::Secret(format!(
                    "cannot read the AWS shared credentials file {} (profile {profile}): {e}",
                    path.display()
                )));
            }
        };
        let Some(section) = profile_section(&text, &profile) else {
            if named.is_none() {
                return Ok(None);
            }
            return Err(Error::Secret(format!(
                "the AWS shared credentials file {} has no profile [{profile}]",
                path.display()
            )));
        };
        let value = |key: &str| {
            section
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        let where_ = format!("profile [{profile}] of {}", path.display());
        let (Some(access_key_id), Some(secret)) =
            (value("aws_access_key_id"), value("aws_secret_access_key"))
        else {
            return Err(Error::Secret(format!(
                "{where_} lacks aws_access_key_id or aws_secret_access_key"
            )));
        };
        Ok(Some(AwsCredentials {
            access_key_id,
            secret_access_key: checked_secret(
                secret,
                &format!("aws_secret_access_key in {where_}"),
            )?,
            session_token: value("aws_session_token")
                .map(|token| checked_secret(token, &format!("aws_session_token in {where_}")))
                .transpose()?,
            expires: None,
            from: where_,
        }))
    }

    /// STS `AssumeRoleWithWebIdentity`: the token file's token for temporary credentials.
    /// The call is not signed (the token is the credential), and is retried as queries are.
    async fn assume_role_with_web_identity(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
        backoff: Backoff,
        token_file: &str,
        role_arn: &str,
    ) -> Result<AwsCredentials> {
        let token = canary_core::policy::SecretSource::File(PathBuf::from(token_file))
            .read()
            .map_err(|e| {
                Error::Secret(format!(
                    "the web-identity token (AWS_WEB_IDENTITY_TOKEN_FILE): {e}"
                ))
            })?;
        let region = self
            .env
            .get("AWS_REGION")
            .unwrap_or_else(|| self.spec.region.clone());
        let endpoint = self
            .env
            .get("AWS_ENDPOINT_URL_STS")
            .or_else(|| self.env.get("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
        let address = crate::prometheus::strip_userinfo(&endpoint);
        let url =
            reqwest::Url::parse(&format!("{}/", endpoint.trim_end_matches('/'))).map_err(|e| {
                Error::Config(format!("the STS endpoint {address:?} is not a URL: {e}"))
            })?;
        let session_name = self
            .env
            .get("AWS_ROLE_SESSION_NAME")
            .unwrap_or_else(|| format!("canary-{}", Timestamp::now().as_second()));
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", role_arn)
            .append_pair("RoleSessionName", &session_name)
            .append_pair("WebIdentityToken", token.expose())
            .finish();
        let body = Secret::new(body);
        let (status, answer) = retry(backoff, tokio::time::sleep, |attempt| {
            let request = http
                .post(url.clone())
                .timeout(timeout)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header(reqwest::header::ACCEPT, "text/xml")
                .body(body.expose().to_owned());
            let address = address.clone();
            async move {
                let transport = |e: reqwest::Error| {
                    Failure::Retryable(Error::Credentials {
                        what: "aws sts",
                        address: address.clone(),
                        message: format!(
                            "AssumeRoleWithWebIdentity failed (attempt {attempt}): {}",
                            redacted(&e.without_url().to_string())
                        ),
                    })
                };
                let mut response = request.send().await.map_err(transport)?;
                let status = response.status().as_u16();
                let body = crate::prometheus::read_bounded(&mut response, MAX_STS_ANSWER)
                    .await
                    .map_err(transport)?
                    .unwrap_or_default();
                if status >= 500 || status == 429 {
                    return Err(Failure::Retryable(Error::Credentials {
                        what: "aws sts",
                        address: address.clone(),
                        message: format!(
                            "AssumeRoleWithWebIdentity: HTTP {status} after {attempt} attempts: {}",
                            excerpt(&body, 200)
                        ),
                    }));
                }
                Ok((status, body))
            }
        })
        .await?;
        let fields = xml_fields(
            &answer,
            &[
                "AccessKeyId",
                "SecretAccessKey",
                "SessionToken",
                "Expiration",
                "Code",
                "Message",
            ],
        );
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        if !(200..300).contains(&status) {
            return Err(Error::Credentials {
                what: "aws sts",
                address,
                message: format!(
                    "AssumeRoleWithWebIdentity for {role_arn} refused: HTTP {status} {}: {}; check \
                     AWS_ROLE_ARN, the role's trust policy and AWS_WEB_IDENTITY_TOKEN_FILE (the \
                     token is not shown)",
                    redacted(&field("Code").unwrap_or_default()),
                    field("Message")
                        .map(|m| redacted(&m))
                        .unwrap_or_else(|| excerpt(&answer, 200)),
                ),
            });
        }
        let (Some(access_key_id), Some(secret), Some(session_token)) = (
            field("AccessKeyId"),
            field("SecretAccessKey"),
            field("SessionToken"),
        ) else {
            return Err(Error::Credentials {
                what: "aws sts",
                address,
                message: format!(
                    "AssumeRoleWithWebIdentity answered HTTP {status} without credentials: {}",
                    excerpt(&answer, 200)
                ),
            });
        };
        // Learnt first: whatever is said about them below is redacted.
        let secret_access_key = Secret::new(secret);
        let session_token = Secret::new(session_token);
        let expires = match field("Expiration") {
            None => None,
            Some(text) => Some(text.trim().parse::<Timestamp>().map_err(|_| {
                Error::Credentials {
                    what: "aws sts",
                    address: address.clone(),
                    message: format!(
                        "AssumeRoleWithWebIdentity answered an Expiration that is not a time: {:?}",
                        redacted(&text)
                    ),
                }
            })?),
        };
        Ok(AwsCredentials {
            access_key_id,
            secret_access_key,
            session_token: Some(session_token),
            expires,
            from: format!("the web identity of {role_arn} (STS at {address})"),
        })
    }
}

/// A secret read from the environment or a file, checked long enough to be redacted.
fn checked_secret(value: String, what: &str) -> Result<Secret> {
    canary_core::secret::check_long_enough(value.trim(), what)
        .map_err(|e| Error::Secret(e.to_string()))?;
    Ok(Secret::new(value.trim()))
}

/// The `key = value` lines of `[profile]` in an INI-style AWS credentials file (comments
/// `#`/`;`, blank lines and other sections skipped; keys and values trimmed); `None` when the
/// file has no such section.
pub fn profile_section(text: &str, profile: &str) -> Option<Vec<(String, String)>> {
    let mut found = None;
    let mut current: Option<&str> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim());
            if current == Some(profile) {
                found.get_or_insert_with(Vec::new);
            }
            continue;
        }
        if current == Some(profile)
            && let Some((key, value)) = line.split_once('=')
            && let Some(section) = found.as_mut()
        {
            section.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    found
}

/// The text of each element named in `names`, in document order, from an XML answer (STS
/// answers `<AssumeRoleWithWebIdentityResponse>…<Credentials><AccessKeyId>…`, errors
/// `<ErrorResponse><Error><Code>…<Message>…`). What is not XML gives what was read before it.
fn xml_fields(xml: &[u8], names: &[&str]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(xml);
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut fields = Vec::new();
    let mut open: Option<(String, String)> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                let local = start.local_name();
                let name: &str = local.as_ref();
                open = names
                    .contains(&name)
                    .then(|| (name.to_owned(), String::new()));
            }
            Ok(Event::Text(content)) => {
                if let Some((_, value)) = open.as_mut() {
                    value.push_str(&content.xml10_content());
                }
            }
            Ok(Event::GeneralRef(reference)) => {
                if let Some((_, value)) = open.as_mut() {
                    match reference.resolve_char_ref() {
                        Ok(Some(c)) => value.push(c),
                        _ => value.push_str(
                            quick_xml::escape::resolve_predefined_entity(&reference)
                                .unwrap_or_default(),
                        ),
                    }
                }
            }
            Ok(Event::End(_)) => {
                if let Some(field) = open.take() {
                    fields.push(field);
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_section_is_found_among_others_and_comments() {
        let text = "# made by aws configure\n[default]\naws_access_key_id = AKIADEFAULT\n\n\
                    [ci]\n; the CI's key\naws_access_key_id=AKIACI\naws_secret_access_key = s e c\n[other]\nx=y\n";
        assert_eq!(
            profile_section(text, "ci").unwrap(),
            vec![
                ("aws_access_key_id".to_owned(), "AKIACI".to_owned()),
                ("aws_secret_access_key".to_owned(), "s e c".to_owned()),
            ]
        );
        assert_eq!(profile_section(text, "default").unwrap().len(), 1);
        assert!(profile_section(text, "missing").is_none());
        assert!(profile_section("not an ini [file", "default").is_none());
    }

    #[test]
    fn sts_answers_and_errors_are_read_by_element() {
        let answer = br#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>secret&amp;key</SecretAccessKey>
      <SessionToken>token</SessionToken>
      <Expiration>2026-11-30T20:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
        let fields = xml_fields(answer, &["AccessKeyId", "SecretAccessKey", "Expiration"]);
        assert_eq!(
            fields,
            vec![
                ("AccessKeyId".to_owned(), "ASIAEXAMPLE".to_owned()),
                ("SecretAccessKey".to_owned(), "secret&key".to_owned()),
                ("Expiration".to_owned(), "2026-11-30T20:00:00Z".to_owned()),
            ]
        );
        assert!(xml_fields(b"<html>not <b>xml", &["Code"]).is_empty());
    }

    fn provider(profile: Option<&str>, env: &[(&str, &str)]) -> AwsCredentialProvider {
        AwsCredentialProvider::new(
            SigV4Spec {
                region: "us-east-1".to_owned(),
                service: "aps".to_owned(),
                profile: profile.map(str::to_owned),
            },
            Environment::of(env.iter().copied()),
        )
    }

    #[test]
    fn the_environment_comes_before_the_shared_file_and_a_named_profile_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = file-secret-key\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let both = provider(
            None,
            &[
                ("AWS_ACCESS_KEY_ID", "AKIAENV"),
                ("AWS_SECRET_ACCESS_KEY", "env-secret-key"),
                ("AWS_SHARED_CREDENTIALS_FILE", file),
            ],
        );
        let found = both.static_credentials().unwrap().unwrap();
        assert_eq!(found.access_key_id, "AKIAENV");
        let only_file = provider(None, &[("AWS_SHARED_CREDENTIALS_FILE", file)]);
        let found = only_file.static_credentials().unwrap().unwrap();
        assert_eq!(found.access_key_id, "AKIAFILE");
        assert_eq!(found.secret_access_key.expose(), "file-secret-key");
        let missing = provider(Some("prod"), &[("AWS_SHARED_CREDENTIALS_FILE", file)]);
        let err = missing.static_credentials().unwrap_err().to_string();
        assert!(err.contains("has no profile [prod]"), "{err}");
        let half = provider(None, &[("AWS_ACCESS_KEY_ID", "AKIAENV")]);
        let err = half.static_credentials().unwrap_err().to_string();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY is not"), "{err}");
        let none = provider(None, &[]);
        assert!(none.static_credentials().unwrap().is_none());
    }
}
