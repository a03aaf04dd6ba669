//! A misbehaving peer for tests: an HTTP proxy on 127.0.0.1 in front of moto or Azurite that forwards each
//! request (one per connection, `Connection: close`) and, for ranged GETs while its budget lasts, lies in the
//! response the way a broken or hostile store or middlebox would. Requests are never altered (they are
//! signed); the lies are in the response head. A silent server (accepts, never answers) is here too.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a ranged GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    None,
    /// 206 with Content-Range moved one byte up (same length): another range than the one asked for.
    OtherRange,
    /// 200 OK without Content-Range: a store that ignored the Range header.
    Whole200,
    /// Another ETag than the object's: a changed object from a store that ignores If-Match.
    OtherEtag,
    /// Accept the request and never answer.
    Silent,
    /// Send the head and half the body, then close: an interrupted download.
    Cut,
}

pub struct Proxy {
    pub port: u16,
    fault: Arc<Mutex<Fault>>,
    /// How many ranged GETs still get the fault.
    pub budget: Arc<AtomicUsize>,
    /// Ranged GETs seen.
    pub ranged: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let budget = Arc::new(AtomicUsize::new(0));
        let ranged = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, b, r, s) = (fault.clone(), budget.clone(), ranged.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (f, b, r) = (f.clone(), b.clone(), r.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &f, &b, &r);
                });
            }
        });
        Proxy { port, fault, budget, ranged, stop }
    }

    /// Injects `fault` into the next `times` ranged GETs (`usize::MAX`: all of them).
    pub fn set(&self, fault: Fault, times: usize) {
        *self.fault.lock().expect("lock") = fault;
        self.budget.store(times, Ordering::SeqCst);
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A server that accepts connections and never sends a byte, until dropped.
pub struct Silent {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Silent {
    pub fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    held.push(c);
                }
            }
        });
        Silent { port, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// An HTTP message head, up to and with its blank line, read a byte at a time so nothing of the body is
/// taken (the test servers and proxies here pass the body on untouched).
pub fn read_head(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
    }
    Ok(head)
}

/// The head's lines (without the blank line), and a header's value.
fn lines(head: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(head).split("\r\n").filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn join(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn take(budget: &AtomicUsize) -> bool {
    budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

fn serve(
    mut client: TcpStream,
    upstream: u16,
    fault: &Mutex<Fault>,
    budget: &AtomicUsize,
    ranged: &AtomicUsize,
) -> std::io::Result<()> {
    let head = read_head(&mut client)?;
    let req = lines(&head);
    let is_ranged_get =
        req[0].starts_with("GET ") && (header(&req, "range").is_some() || header(&req, "x-ms-range").is_some());
    let mut body_in = Vec::new();
    if let Some(n) = header(&req, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        body_in.resize(n, 0);
        client.read_exact(&mut body_in)?;
    }
    let f = if is_ranged_get {
        ranged.fetch_add(1, Ordering::SeqCst);
        let f = *fault.lock().expect("lock");
        if f != Fault::None && take(budget) {
            f
        } else {
            Fault::None
        }
    } else {
        Fault::None
    };
    if f == Fault::Silent {
        std::thread::sleep(Duration::from_secs(3600));
        return Ok(());
    }
    let mut fwd: Vec<String> = req.into_iter().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    fwd.push("Connection: close".into());
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(&join(&fwd))?;
    up.write_all(&body_in)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(resp.len());
    let (rhead, body) = resp.split_at(split);
    let mut out: Vec<String> =
        lines(rhead).into_iter().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    out.push("Connection: close".into());
    match f {
        Fault::OtherRange => {
            for l in out.iter_mut() {
                if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-range:").map(str::trim) {
                    // bytes a-b/t → bytes a+1-b+1/t
                    if let Some((range, total)) = v.strip_prefix("bytes ").and_then(|r| r.split_once('/')) {
                        if let Some((a, b)) = range.split_once('-') {
                            let (a, b): (u64, u64) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
                            *l = format!("Content-Range: bytes {}-{}/{total}", a + 1, b + 1);
                        }
                    }
                }
            }
        }
        Fault::Whole200 => {
            out[0] = "HTTP/1.1 200 OK".into();
            out.retain(|l| !l.to_ascii_lowercase().starts_with("content-range:"));
        }
        Fault::OtherEtag => {
            for l in out.iter_mut() {
                if l.to_ascii_lowercase().starts_with("etag:") {
                    *l = "ETag: \"0123456789abcdef0123456789abcdef\"".into();
                }
            }
        }
        Fault::None | Fault::Silent | Fault::Cut => {}
    }
    client.write_all(&join(&out))?;
    if f == Fault::Cut {
        client.write_all(&body[..body.len() / 2])?;
        client.shutdown(Shutdown::Both)?;
        return Ok(());
    }
    client.write_all(body)?;
    client.shutdown(Shutdown::Write)?;
    Ok(())
}
