//! A small HTTP/1.1 GET over `std::net::TcpStream`, for the Backup Manager's API (plain http on port 3000 in
//! the runbook). One request per connection (`Connection: close`), every read and write under one deadline so
//! a silent server cannot hang the program, and the body bounded in memory.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The largest answer we keep: a listing of backups is kilobytes; anything near this is not one.
pub const MAX_BODY: usize = 16 << 20;

/// `http://[USER@]HOST[:PORT][/BASE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing `/` (empty for none).
    pub base: String,
}

impl Url {
    /// Parses a base URL. A password in it is refused: it would sit in `ps` and the shell history.
    pub fn parse(text: &str) -> Result<Url, String> {
        let rest = match text.split_once("://") {
            Some(("http", r)) => r,
            Some((scheme, _)) => {
                return Err(format!("{scheme}:// is not supported: the Backup Manager's API is http://HOST:3000"))
            }
            None => return Err("expected http://[USER@]HOST[:PORT], e.g. http://admin@10.0.0.5:3000".into()),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err("a query or fragment has no place in the base URL".into());
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => {
                if u.contains(':') {
                    return Err("the password does not go in the URL (other users see it in ps): set \
                                A9S_BACKUP_MANAGER_PASSWORD or type it when asked"
                        .into());
                }
                (Some(percent_decode(u)?), h)
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err("no host in the URL".into());
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
        };
        Ok(Url { user: user.filter(|u| !u.is_empty()), host, port, base: path.trim_end_matches('/').to_string() })
    }

    /// `http://user@host:port/base` without anything secret, for messages.
    pub fn display(&self) -> String {
        let user = self.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("http://{user}{host}:{}{}", self.port, self.base)
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("bad %-escape in the user name")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad %-escape in the user name")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the user name is not UTF-8".into())
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a request failed, in words for the operator (never containing the credentials).
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    Connect(String),
    Timeout,
    Protocol(String),
}

/// GETs `path` (starting with `/`) with the given `Authorization` value; everything within `timeout`.
pub fn get(url: &Url, path: &str, authorization: Option<&str>, timeout: Duration) -> Result<Response, Failure> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()).ok_or(Failure::Timeout);
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| Failure::Connect(a9s_core::error::io_message(format_args!("cannot resolve {}", url.host), &e)))?
        .collect();
    let mut last = Failure::Connect(format!("{} has no address", url.host));
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => last = Failure::Timeout,
            Err(e) => last = Failure::Connect(a9s_core::error::io_message(format_args!("connecting to {a}"), &e)),
        }
    }
    let mut s = stream.ok_or(last)?;
    let host = if url.host.contains(':') { format!("[{}]", url.host) } else { url.host.clone() };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{}\r\nAccept: application/json\r\nUser-Agent: a9s-ls/{}\r\nConnection: close\r\n",
        url.port,
        env!("CARGO_PKG_VERSION")
    );
    if let Some(a) = authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.set_write_timeout(Some(left()?)).map_err(io)?;
    s.write_all(req.as_bytes()).map_err(io)?;
    drop(req);

    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(r) = complete(&buf)? {
            return Ok(r);
        }
        s.set_read_timeout(Some(left()?)).map_err(io)?;
        let n = s.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return finish_at_eof(&buf);
        }
        if buf.len() + n > MAX_BODY + 64 * 1024 {
            return Err(Failure::Protocol(format!("the answer is larger than {} MiB", MAX_BODY >> 20)));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn io(e: std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Failure::Timeout,
        _ => Failure::Connect(a9s_core::error::io_message("the connection", &e)),
    }
}

struct Head {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body_at: usize,
}

fn head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err(Failure::Protocol("the response head is larger than 64 KiB".into()));
        }
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut words = status_line.splitn(3, ' ');
    let (version, code, reason) = (words.next().unwrap_or(""), words.next().unwrap_or(""), words.next().unwrap_or(""));
    let status = match (version.starts_with("HTTP/1."), code.parse::<u16>()) {
        (true, Ok(c)) if (100..600).contains(&c) => c,
        _ => {
            return Err(Failure::Protocol(format!(
                "not an HTTP/1 answer: it starts \"{}\"",
                a9s_core::sanitize::one_line(status_line, 60)
            )))
        }
    };
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(Some(Head { status, reason: reason.to_string(), headers, body_at: end + 4 }))
}

/// The response once the bytes so far hold all of it (by Content-Length or the last chunk).
fn complete(buf: &[u8]) -> Result<Option<Response>, Failure> {
    let Some(h) = head(buf)? else { return Ok(None) };
    let get = |n: &str| h.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_str());
    let body = &buf[h.body_at..];
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Ok(dechunk(body)?.map(|b| respond(h, b)));
    }
    if let Some(len) = get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| Failure::Protocol(format!("bad Content-Length {}", a9s_core::sanitize::one_line(len, 40))))?;
        if len > MAX_BODY {
            return Err(Failure::Protocol(format!("the answer is larger than {} MiB", MAX_BODY >> 20)));
        }
        if body.len() >= len {
            return Ok(Some(respond(h, body[..len].to_vec())));
        }
        return Ok(None);
    }
    if h.status == 204 || h.status == 304 {
        return Ok(Some(respond(h, Vec::new())));
    }
    Ok(None)
}

/// At end of stream: a response delimited by the close is complete; one with a length or chunks is cut short.
fn finish_at_eof(buf: &[u8]) -> Result<Response, Failure> {
    let Some(h) = head(buf)? else {
        return Err(Failure::Protocol(if buf.is_empty() {
            "the connection was closed without an answer".into()
        } else {
            "the connection was closed in the middle of the response head".into()
        }));
    };
    let framed = h
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding"));
    if framed {
        return Err(Failure::Protocol("the connection was closed before the whole answer arrived".into()));
    }
    let body = buf[h.body_at..].to_vec();
    Ok(respond(h, body))
}

fn respond(h: Head, body: Vec<u8>) -> Response {
    Response { status: h.status, reason: h.reason, headers: h.headers, body }
}

/// A chunked body, or `None` while the last chunk has not arrived.
fn dechunk(mut b: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| Failure::Protocol(format!("bad chunk size {size_text:?}")))?;
        if size > MAX_BODY || out.len() + size > MAX_BODY {
            return Err(Failure::Protocol(format!("the answer is larger than {} MiB", MAX_BODY >> 20)));
        }
        b = &b[eol + 2..];
        if size == 0 {
            // Trailers, if any, end with an empty line; we need none of them.
            return Ok(b.windows(2).any(|w| w == b"\r\n").then_some(out));
        }
        if b.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://admin@10.0.0.5:3000").unwrap();
        assert_eq!(u, Url { user: Some("admin".into()), host: "10.0.0.5".into(), port: 3000, base: String::new() });
        let u = Url::parse("http://bm.example/api/").unwrap();
        assert_eq!((u.user, u.port, u.base.as_str()), (None, 80, "/api"));
        let u = Url::parse("http://a%40b@[::1]:3000").unwrap();
        assert_eq!((u.user.as_deref(), u.host.as_str()), (Some("a@b"), "::1"));
        assert_eq!(u.display(), "http://a@b@[::1]:3000");
        let e = Url::parse("http://admin:hunter2@h:3000").unwrap_err();
        assert!(e.contains("A9S_BACKUP_MANAGER_PASSWORD") && !e.contains("hunter2"), "{e}");
        assert!(Url::parse("h:3000").is_err());
        assert!(Url::parse("ftp://h").is_err());
        assert!(Url::parse("http://h:x").is_err());
    }

    #[test]
    fn framing() {
        let r = complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        assert!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}").unwrap().is_none());
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[1\r\n1;x=y\r\n]\r\n0\r\n\r\n";
        assert_eq!(complete(chunked).unwrap().unwrap().body, b"[1]");
        assert!(complete(&chunked[..chunked.len() - 2]).unwrap().is_none());
        assert_eq!(finish_at_eof(b"HTTP/1.0 200 OK\r\n\r\n[]").unwrap().body, b"[]");
        assert!(finish_at_eof(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n[]").is_err());
        assert!(matches!(complete(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(Failure::Protocol(_))));
    }
}
