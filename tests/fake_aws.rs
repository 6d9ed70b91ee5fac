//! Fakes of the AWS services canary talks to, checking what AWS checks: Amazon Managed
//! Service for Prometheus and Amazon CloudWatch verify each request's Signature Version 4 by recomputing it from
//! the request as it arrived (canonical request, string to sign, derived signing key — AWS's
//! published algorithm, written here independently of the signer canary uses), and STS
//! exchanges a web-identity token for temporary credentials only for the token and role it
//! was told.
//!
//! The verifier is itself checked against AWS's published test-suite vector `get-vanilla`
//! (`tests/e2e/providers.rs`), so it cannot agree with a wrong signer by being wrong the same
//! way.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::fake_http::{FakeServer, body_of, header_of, http};

/// The credentials and scope a fake AWS service accepts.
#[derive(Clone, Debug)]
pub struct AwsKey {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token temporary credentials must send (`x-amz-security-token`).
    pub session_token: Option<String>,
    /// The region of the signature's scope.
    pub region: String,
    /// The service of the signature's scope.
    pub service: String,
}

/// Checks the SigV4 signature of a raw HTTP request (as [`FakeServer`] keeps it) against
/// `key`; with `now`, also that `x-amz-date` is within 5 minutes of it (AWS refuses a request
/// whose time is off by more). `Err` says what did not match.
pub fn verify_sigv4(request: &str, key: &AwsKey, now: Option<SystemTime>) -> Result<(), String> {
    let head = request.split("\r\n\r\n").next().unwrap_or_default();
    let mut request_line = head.lines().next().unwrap_or_default().split_whitespace();
    let method = request_line.next().ok_or("no request line")?;
    let target = request_line.next().ok_or("no request target")?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let authorization = header_of(request, "authorization").ok_or("no Authorization header")?;
    let rest = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not an AWS4-HMAC-SHA256 Authorization")?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or("a malformed Authorization")?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => return Err(format!("an unknown Authorization part {name}")),
        }
    }
    let (credential, signed_headers, signature) = (
        credential.ok_or("no Credential")?,
        signed_headers.ok_or("no SignedHeaders")?,
        signature.ok_or("no Signature")?,
    );
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(format!("a malformed credential scope {credential}"));
    };
    if access_key_id != key.access_key_id {
        return Err("the access key id is unknown (InvalidClientTokenId)".to_owned());
    }
    if region != key.region || service != key.service {
        return Err(format!(
            "the credential scope is for {region}/{service}, not {}/{}",
            key.region, key.service
        ));
    }
    let amz_date = header_of(request, "x-amz-date").ok_or("no x-amz-date header")?;
    if !amz_date.starts_with(date) {
        return Err("the scope's date is not the request's".to_owned());
    }
    if let Some(now) = now {
        let sent = amz_date_seconds(amz_date).ok_or("x-amz-date is not a time")?;
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if sent.abs_diff(now) > 300 {
            return Err("the signature has expired (more than 5 minutes off)".to_owned());
        }
    }
    if let Some(token) = &key.session_token {
        if header_of(request, "x-amz-security-token") != Some(token.as_str()) {
            return Err("the security token is missing or wrong".to_owned());
        }
        if !signed_headers
            .split(';')
            .any(|h| h == "x-amz-security-token")
        {
            return Err("the security token is not signed".to_owned());
        }
    }
    if !signed_headers.split(';').any(|h| h == "host") {
        return Err("the host header is not signed".to_owned());
    }
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let values: Vec<String> = head
            .lines()
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(format!("the signed header {name} is not in the request"));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let body = body_of(request);
    let payload_hash = hex(&Sha256::digest(body.as_bytes()));
    let canonical_request = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        canonical_uri(path),
        canonical_query(query)
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut signing_key = hmac(
        format!("AWS4{}", key.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        signing_key = hmac(&signing_key, part.as_bytes());
    }
    let expected = hex(&hmac(&signing_key, string_to_sign.as_bytes()));
    if expected != signature {
        return Err(
            "The request signature we calculated does not match the signature you provided"
                .to_owned(),
        );
    }
    Ok(())
}

/// A fake Amazon Managed Service for Prometheus workspace: each request whose signature
/// verifies is answered by `answer(request)`; any other gets AWS's 403.
pub fn managed_prometheus(
    key: AwsKey,
    answer: impl Fn(&str) -> String + Send + 'static,
) -> FakeServer {
    FakeServer::start(
        move |request| match verify_sigv4(request, &key, Some(SystemTime::now())) {
            Ok(()) => answer(request),
            Err(why) => http(
                "403 Forbidden",
                "application/json",
                &format!("{{\"message\":\"{why}\"}}"),
            ),
        },
    )
}

/// A fake Amazon CloudWatch answering `GetMetricData` and `ListMetrics` in the AWS JSON 1.0
/// protocol: a request whose signature does not verify gets AWS's 403
/// (`SignatureDoesNotMatch`, or `InvalidClientTokenId` for an unknown key), one that is not
/// `POST /` with `X-Amz-Target: GraniteServiceVersion20100801.GetMetricData` (or
/// `.ListMetrics`, [`list_metrics`] answers it as CloudWatch does) and
/// `Content-Type: application/x-amz-json-1.0` a 400 (`UnknownOperationException`); a good
/// one is answered with `answer(request)` (a whole HTTP response, see [`http`]; the request
/// as it came, [`body_of`] gives its JSON body).
pub fn cloudwatch(key: AwsKey, answer: impl Fn(&str) -> String + Send + 'static) -> FakeServer {
    FakeServer::start(move |request| {
        let error = |status: &str, kind: &str, message: &str| {
            http(
                status,
                CLOUDWATCH_CONTENT_TYPE,
                &format!("{{\"__type\":\"{kind}\",\"message\":{message:?}}}"),
            )
        };
        if let Err(why) = verify_sigv4(request, &key, Some(SystemTime::now())) {
            let kind = if why.contains("InvalidClientTokenId") {
                "InvalidClientTokenId"
            } else {
                "SignatureDoesNotMatch"
            };
            return error("403 Forbidden", kind, &why);
        }
        let head = request.lines().next().unwrap_or_default();
        let target = header_of(request, "x-amz-target");
        if !head.starts_with("POST / ")
            || (target != Some("GraniteServiceVersion20100801.GetMetricData")
                && target != Some(LIST_METRICS_TARGET))
            || header_of(request, "content-type") != Some(CLOUDWATCH_CONTENT_TYPE)
        {
            return error(
                "400 Bad Request",
                "UnknownOperationException",
                "no such operation",
            );
        }
        answer(request)
    })
}

/// The `X-Amz-Target` of `ListMetrics`.
pub const LIST_METRICS_TARGET: &str = "GraniteServiceVersion20100801.ListMetrics";

/// A metric CloudWatch lists: its namespace, name and dimensions.
#[derive(Clone, Debug)]
pub struct ListedMetric {
    /// The namespace, e.g. `AWS/ApplicationELB`.
    pub namespace: &'static str,
    /// The metric's name.
    pub name: &'static str,
    /// Its dimensions, name and value.
    pub dimensions: Vec<(&'static str, &'static str)>,
}

/// The answer of CloudWatch's `ListMetrics` to `request` when it is one (`None` otherwise):
/// the metrics of `listed` whose namespace and name match the request's exactly and that have
/// every dimension it filters on (with its value when it gives one; a metric with more
/// dimensions is listed too), as `{"Metrics": [{"Namespace", "MetricName", "Dimensions"}]}`.
pub fn list_metrics(request: &str, listed: &[ListedMetric]) -> Option<String> {
    if header_of(request, "x-amz-target") != Some(LIST_METRICS_TARGET) {
        return None;
    }
    let body: serde_json::Value = serde_json::from_str(body_of(request)).ok()?;
    let filters: Vec<(String, Option<String>)> = body["Dimensions"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|f| {
                    (
                        f["Name"].as_str().unwrap_or_default().to_owned(),
                        f["Value"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let metrics: Vec<serde_json::Value> = listed
        .iter()
        .filter(|m| {
            body["Namespace"].as_str().is_none_or(|n| n == m.namespace)
                && body["MetricName"].as_str().is_none_or(|n| n == m.name)
                && filters.iter().all(|(name, value)| {
                    m.dimensions.iter().any(|(n, v)| {
                        n == name && value.as_deref().is_none_or(|value| value == *v)
                    })
                })
        })
        .map(|m| {
            let dimensions: Vec<serde_json::Value> = m
                .dimensions
                .iter()
                .map(|(n, v)| serde_json::json!({"Name": n, "Value": v}))
                .collect();
            serde_json::json!({"Namespace": m.namespace, "MetricName": m.name, "Dimensions": dimensions})
        })
        .collect();
    Some(http(
        "200 OK",
        CLOUDWATCH_CONTENT_TYPE,
        &serde_json::json!({"Metrics": metrics}).to_string(),
    ))
}

/// The content type of the AWS JSON 1.0 protocol.
pub const CLOUDWATCH_CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// A fake STS that answers `AssumeRoleWithWebIdentity` for `role_arn` and `token` with
/// `issued` (its session token included) valid for `lifetime`, and anything else with STS's
/// `InvalidIdentityToken` or `AccessDenied` error.
pub fn sts(role_arn: &str, token: &str, issued: AwsKey, lifetime: Duration) -> FakeServer {
    let (role_arn, token) = (role_arn.to_owned(), token.to_owned());
    FakeServer::start(move |request| {
        let form: Vec<(String, String)> = form_pairs(body_of(request));
        let get = |name: &str| {
            form.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let error = |code: &str, message: &str| {
            http(
                "400 Bad Request",
                "text/xml",
                &format!(
                    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
                     <Code>{code}</Code><Message>{message}</Message></Error><RequestId>1</RequestId></ErrorResponse>"
                ),
            )
        };
        if get("Action") != Some("AssumeRoleWithWebIdentity")
            || get("Version") != Some("2011-06-15")
        {
            return error("InvalidAction", "Could not find operation");
        }
        if get("WebIdentityToken") != Some(token.as_str()) {
            return error(
                "InvalidIdentityToken",
                "Couldn't retrieve verification key from your identity provider",
            );
        }
        if get("RoleArn") != Some(role_arn.as_str()) {
            return error(
                "AccessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            );
        }
        let expires = SystemTime::now() + lifetime;
        let expires = rfc3339(expires);
        http(
            "200 OK",
            "text/xml",
            &format!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <AssumeRoleWithWebIdentityResult><Credentials>\
                 <SessionToken>{}</SessionToken><SecretAccessKey>{}</SecretAccessKey>\
                 <Expiration>{expires}</Expiration><AccessKeyId>{}</AccessKeyId>\
                 </Credentials><Audience>sts.amazonaws.com</Audience></AssumeRoleWithWebIdentityResult>\
                 </AssumeRoleWithWebIdentityResponse>",
                issued.session_token.as_deref().unwrap_or_default(),
                issued.secret_access_key,
                issued.access_key_id,
            ),
        )
    })
}

/// `application/x-www-form-urlencoded` pairs, decoded.
pub fn form_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match text.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                    Some(Ok(byte)) => {
                        out.push(byte);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `URI-encode` of AWS's algorithm: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX`.
fn uri_encode(text: &str, keep_slash: bool) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The canonical URI of a service other than S3: the path as sent, encoded once more.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        uri_encode(path, true)
    }
}

/// The canonical query: each name and value encoded, sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_pairs(query)
        .into_iter()
        .map(|(n, v)| (uri_encode(&n, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYYMMDDTHHMMSSZ` as unix seconds.
fn amz_date_seconds(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(n(0..4)?, n(4..6)?, n(6..8)?);
    let seconds = days * 86_400 + n(9..11)? * 3600 + n(11..13)? * 60 + n(13..15)?;
    u64::try_from(seconds).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A time as RFC 3339 UTC (`2026-11-30T20:00:00Z`), as STS writes `Expiration`.
fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let days = seconds.div_euclid(86_400);
    let rem = seconds.rem_euclid(86_400);
    // Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        assert_eq!(rfc3339(t), "2015-08-30T12:36:00Z");
        assert_eq!(amz_date_seconds("20150830T123600Z"), Some(1_440_938_160));
    }
}
