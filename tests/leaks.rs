//! Looking for secrets where none may be: every form an echo of a secret can take (raw,
//! base64 at each alignment in both alphabets, URL-encoded, HTML-escaped), searched for in
//! every output a run leaves (its streams and every file it wrote).

use std::path::Path;

/// Standard base64 (RFC 4648), with or without padding, or with the URL-safe alphabet.
pub fn base64(bytes: &[u8], url_safe: bool, pad: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encoding of every byte outside the URL's unreserved set.
pub fn percent(text: &str, lower: bool) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else if lower {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Every form of `secret` a server could echo and a leak could carry: as is, base64 (both
/// alphabets, padded or not, and at each of the three alignments inside a longer base64
/// text, cut to the characters that depend on the secret alone), URL-encoded, and
/// HTML- and JSON-escaped.
pub fn forms(secret: &str) -> Vec<(String, String)> {
    let mut forms = vec![
        ("raw".to_owned(), secret.to_owned()),
        ("url-encoded".to_owned(), percent(secret, false)),
        ("url-encoded lowercase".to_owned(), percent(secret, true)),
        (
            "html-escaped".to_owned(),
            secret
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;"),
        ),
    ];
    for url_safe in [false, true] {
        for offset in 0..3usize {
            let mut bytes = vec![b'x'; offset];
            bytes.extend_from_slice(secret.as_bytes());
            let encoded = base64(&bytes, url_safe, false);
            // Characters that depend on the padding before, or on what follows after.
            let skip = [0, 2, 3][offset];
            let tail = (offset + secret.len()) % 3;
            let keep_last = [0, 1, 2][tail];
            let full_groups = (offset + secret.len()) / 3 * 4;
            let end = full_groups + keep_last;
            forms.push((
                format!(
                    "base64{} at offset {offset}",
                    if url_safe { "url" } else { "" }
                ),
                encoded[skip..end.min(encoded.len())].to_owned(),
            ));
        }
    }
    forms
}

/// Panics if any output holds any form of any secret.
pub fn assert_no_secret(outputs: &[(String, String)], secrets: &[&str]) {
    let mut leaks = Vec::new();
    for (where_, text) in outputs {
        for secret in secrets {
            for (form, value) in forms(secret) {
                if text.contains(&value) {
                    leaks.push(format!("{where_}: {form} of {secret:?} ({value:?})"));
                }
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets leaked:\n{}\n\nthe outputs:\n{}",
        leaks.join("\n"),
        outputs
            .iter()
            .map(|(w, t)| format!("===== {w}\n{t}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The outputs of a run: its streams and every file under `dir` (reports, step summary,
/// state), but for the secret files themselves (named `token` or `password`) and the inputs
/// (`*.yaml`, `*.sh`).
pub fn outputs_of(stdout: &str, stderr: &str, dir: &Path) -> Vec<(String, String)> {
    let mut outputs = vec![
        ("stdout".to_owned(), stdout.to_owned()),
        ("stderr".to_owned(), stderr.to_owned()),
    ];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && path
                    .file_name()
                    .is_some_and(|n| n != "token" && n != "password")
                && path.extension().is_none_or(|e| e != "yaml" && e != "sh")
            {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                outputs.push((path.display().to_string(), text));
            }
        }
    }
    outputs
}
