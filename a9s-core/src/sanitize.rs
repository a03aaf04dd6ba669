//! Text from outside (a server's reason phrase, error body or message, an object key) as it may be printed:
//! nothing a peer sends reaches the terminal raw, and nothing secret an error page echoes back is repeated.
//!
//! [`printable`] escapes what a terminal would act on (C0 and C1 controls, DEL, bidirectional overrides);
//! [`one_line`] also folds whitespace and bounds the length, for text quoted inside a message; [`redact`] hides
//! credentials (`Authorization` values, `Basic`/`Bearer` tokens, `password=`, `sig=`, `AccountKey=`, a URL's
//! `user:password@`, and the caller's own secrets verbatim); [`untrusted`] does all three, in the order that
//! leaves no piece of a secret behind.

/// The default bound, in bytes, of a peer's text quoted in a message.
pub const MAX_QUOTED: usize = 400;

/// What replaces a secret.
const HIDDEN: &str = "***";

/// Characters a terminal acts on or that reorder what is shown, besides [`char::is_control`]: the
/// bidirectional marks, embeddings, overrides and isolates, and the Unicode line and paragraph separators.
fn is_deceptive(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `s` with every control character (C0, DEL, C1) and bidirectional control escaped as `\u{1b}` and the
/// like, so a hostile name or message cannot move the cursor, rewrite a line, change colours or reorder text.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || is_deceptive(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` as one line for a message: runs of whitespace (newlines, tabs included) become one space, other
/// controls are escaped ([`printable`]), and the result is cut to at most `max` bytes (then ending in `…`).
pub fn one_line(s: &str, max: usize) -> String {
    let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&printable(&folded), max)
}

/// At most `max` bytes of `s` at a character boundary, with `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A peer's text ready to quote: the caller's `secrets` and every credential-looking value hidden
/// ([`redact`]), on one line of at most `max` bytes with controls escaped ([`one_line`]).
pub fn untrusted(s: &str, secrets: &[&str], max: usize) -> String {
    // Known secrets first, on the raw text, so no folding or escaping can split one; the patterns after
    // folding, so a newline cannot hide a value from them; the cut last, so no part of a secret survives it.
    let raw = hide_literals(s, secrets);
    let line = one_line(&raw, usize::MAX);
    truncate(&redact_patterns(&line), max)
}

/// `s` with the given secrets (each non-empty one, verbatim) and every credential-looking value hidden.
pub fn redact(s: &str, secrets: &[&str]) -> String {
    redact_patterns(&hide_literals(s, secrets))
}

fn hide_literals(s: &str, secrets: &[&str]) -> String {
    let mut out = s.to_string();
    for secret in secrets.iter().filter(|x| !x.is_empty()) {
        if out.contains(secret) {
            out = out.replace(secret, HIDDEN);
        }
    }
    out
}

/// Names whose value is a secret, as a header, a query parameter, a connection string item or a JSON key.
const SECRET_KEYS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-credential",
    "sig",
    "signature",
    "accountkey",
    "sharedaccesssignature",
    "aws_secret_access_key",
    "aws_session_token",
];

/// HTTP authentication schemes: the token after one is a credential wherever it appears.
const SCHEMES: &[&str] = &["basic", "bearer", "digest", "sharedkey", "sharedkeylite", "aws4-hmac-sha256", "negotiate"];

fn redact_patterns(s: &str) -> String {
    let s = redact_userinfo(s);
    let s = redact_keys(&s);
    redact_schemes(&s)
}

/// Ends a value not in quotes.
fn ends_value(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'&' | b';' | b',' | b'"' | b'\'' | b'<' | b'>' | b')' | b']' | b'}')
}

/// Whether a key starts at `i`: not inside a longer name (`continuation-token` is not `token`).
fn starts_word(b: &[u8], i: usize) -> bool {
    i == 0 || !(b[i - 1].is_ascii_alphanumeric() || matches!(b[i - 1], b'-' | b'_'))
}

/// `key=value`, `key: value`, `"key":"value"`, `key="value"`: the value hidden, the key kept.
fn redact_keys(s: &str) -> String {
    let b = s.as_bytes();
    let lower = s.to_ascii_lowercase();
    let lb = lower.as_bytes();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = SECRET_KEYS.iter().filter(|k| lb[i..].starts_with(k.as_bytes())).max_by_key(|k| k.len());
        let Some(key) = key.filter(|_| starts_word(b, i)) else {
            i += 1;
            continue;
        };
        let mut j = i + key.len();
        if j < b.len() && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'-' | b'_')) {
            // A longer name (`tokens`, `signatures_count`).
            i = j;
            continue;
        }
        j += usize::from(matches!(b.get(j), Some(b'"' | b'\'')));
        while b.get(j).is_some_and(|c| *c == b' ') {
            j += 1;
        }
        if !matches!(b.get(j), Some(b'=' | b':')) {
            i = j.max(i + 1);
            continue;
        }
        j += 1;
        while b.get(j).is_some_and(|c| *c == b' ') {
            j += 1;
        }
        let quote = b.get(j).copied().filter(|c| matches!(c, b'"' | b'\''));
        if quote.is_some() {
            j += 1;
        }
        if *key == "authorization" || *key == "proxy-authorization" {
            // Keep the scheme (`Basic`), hide what follows it.
            let word_end = (j..b.len()).find(|&k| ends_value(b[k])).unwrap_or(b.len());
            if SCHEMES.contains(&&lower[j..word_end]) && b.get(word_end) == Some(&b' ') {
                j = word_end + 1;
            }
        }
        let end = match quote {
            Some(q) => (j..b.len()).find(|&k| b[k] == q).unwrap_or(b.len()),
            None => (j..b.len()).find(|&k| ends_value(b[k])).unwrap_or(b.len()),
        };
        if end > j && &s[j..end] != HIDDEN {
            cuts.push((j, end));
        }
        i = end.max(i + 1);
    }
    splice(s, &cuts)
}

/// `Basic <token>`, `Bearer <token>` and the like anywhere: the token hidden.
fn redact_schemes(s: &str) -> String {
    let b = s.as_bytes();
    let lower = s.to_ascii_lowercase();
    let mut cuts = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hit = SCHEMES.iter().find(|k| {
            lower.as_bytes()[i..].starts_with(k.as_bytes()) && starts_word(b, i) && b.get(i + k.len()) == Some(&b' ')
        });
        let Some(k) = hit else {
            i += 1;
            continue;
        };
        let start = i + k.len() + 1;
        let end = (start..b.len()).find(|&x| ends_value(b[x]) && b[x] != b',').unwrap_or(b.len());
        // A credential is one word of some length; "basic auth failed" is prose.
        let token = &s[start..end];
        if token.len() >= 8 && token != HIDDEN {
            cuts.push((start, end));
        }
        i = end.max(i + 1);
    }
    splice(s, &cuts)
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn redact_userinfo(s: &str) -> String {
    let mut cuts = Vec::new();
    let mut from = 0;
    while let Some(k) = s[from..].find("://") {
        let start = from + k + 3;
        let end =
            s[start..].find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace()).map_or(s.len(), |e| start + e);
        let authority = &s[start..end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                if &authority[colon + 1..at] != HIDDEN {
                    cuts.push((start + colon + 1, start + at));
                }
            }
        }
        from = end.max(start);
    }
    splice(s, &cuts)
}

/// `s` with each range (in order, not overlapping) replaced by [`HIDDEN`].
fn splice(s: &str, cuts: &[(usize, usize)]) -> String {
    if cuts.is_empty() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for &(a, b) in cuts {
        out.push_str(&s[at..a]);
        out.push_str(HIDDEN);
        at = b;
    }
    out.push_str(&s[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_never_passed() {
        assert_eq!(printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(printable("x\u{7f}\u{9b}y"), "x\\u{7f}\\u{9b}y");
        assert_eq!(printable("\u{202e}gnp.exe"), "\\u{202e}gnp.exe");
        assert_eq!(printable("tab\there\nnl"), "tab\\there\\nnl");
        assert_eq!(printable("plain ü €"), "plain ü €");
    }

    #[test]
    fn one_line_folds_escapes_and_bounds() {
        assert_eq!(one_line("  a\r\n\tb  \u{1b}]0;title\u{7}c ", 100), "a b \\u{1b}]0;title\\u{7}c");
        assert_eq!(one_line("ééé", 3), "é…");
        assert_eq!(one_line("abc", 3), "abc");
        assert!(!one_line(&"\u{9b}".repeat(1000), 50).contains('\u{9b}'));
        assert!(one_line(&"x".repeat(1000), 50).len() <= 50 + "…".len());
    }

    #[test]
    fn headers_echoed_by_an_error_page_are_hidden() {
        let page = "GET /instances/x HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YWRtaW46aHVudGVyMg==\r\nAccept: */*";
        let got = untrusted(page, &[], 400);
        assert_eq!(got, "GET /instances/x HTTP/1.1 Host: h Authorization: Basic *** Accept: */*");
        assert_eq!(redact("authorization=Bearer abc.def.ghi", &[]), "authorization=Bearer ***");
        assert_eq!(redact(r#"{"Authorization":"Basic YWRtaW46eA=="}"#, &[]), r#"{"Authorization":"Basic ***"}"#);
        assert_eq!(redact("proxy said: Bearer eyJhbGciOiJIUzI1NiJ9.x.y", &[]), "proxy said: Bearer ***");
        assert_eq!(redact("basic auth failed", &[]), "basic auth failed");
        assert_eq!(
            redact("Authorization: AWS4-HMAC-SHA256 Credential=AKID/2026/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abcdef0123", &[]),
            "Authorization: AWS4-HMAC-SHA256 ***, SignedHeaders=host, Signature=***"
        );
    }

    #[test]
    fn passwords_keys_and_signatures_are_hidden() {
        assert_eq!(redact("user=admin&password=hunter2&x=1", &[]), "user=admin&password=***&x=1");
        assert_eq!(redact(r#"{"password": "hunter 2", "user": "a"}"#, &[]), r#"{"password": "***", "user": "a"}"#);
        assert_eq!(
            redact("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc+/def==;EndpointSuffix=x", &[]),
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=***;EndpointSuffix=x"
        );
        assert_eq!(
            redact("https://a.blob.core.windows.net/c?sv=2022&sig=AbC%2Fd%3D&se=1", &[]),
            "https://a.blob.core.windows.net/c?sv=2022&sig=***&se=1"
        );
        assert_eq!(
            redact("postgres://u:s3cret@db:5432/x and http://u@h/", &[]),
            "postgres://u:***@db:5432/x and http://u@h/"
        );
        assert_eq!(redact("continuation-token=abc tokens=5 nosig=1", &[]), "continuation-token=abc tokens=5 nosig=1");
        assert_eq!(redact("X-Amz-Security-Token: FQoG", &[]), "X-Amz-Security-Token: ***");
    }

    #[test]
    fn the_callers_secrets_are_hidden_verbatim_wherever_they_are() {
        let got =
            untrusted("echo: hunter2 and aHVudGVyMg== at the end\u{1b}[0m", &["hunter2", "aHVudGVyMg==", ""], 400);
        assert_eq!(got, "echo: *** and *** at the end\\u{1b}[0m");
        // A secret split by a newline in the text is still whole in the raw text, where it is looked for.
        assert_eq!(untrusted("pass\nword", &["pass\nword"], 400), "***");
        // Cut after hiding: no prefix of a secret is left at the edge.
        assert_eq!(untrusted("xxxx password=abcdefghij", &[], 20), "xxxx password=***");
    }
}
