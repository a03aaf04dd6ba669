//! Small HTTP peers of our own for the cases a real service cannot be made to show: a server that answers
//! what a test says (a Backup Manager of any response shape, a 401, a 404, silence), and a recording proxy
//! that forwards to a real server (moto) and keeps each request's head, to see what a client sent.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as received: the request line and headers (the body, if any, is not kept).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
pub enum Reply {
    /// Send these bytes (a whole HTTP response) and close.
    Bytes(Vec<u8>),
    /// Read the request and then say nothing, holding the connection open until the server is dropped.
    Silent,
}

/// An HTTP/1.1 response with a body and `Connection: close`.
pub fn response(status: u16, reason: &str, content_type: &str, body: &[u8]) -> Reply {
    let mut r = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    Reply::Bytes(r)
}

/// A JSON response, sent chunked as Rails behind a proxy may send it.
pub fn json_chunked(body: &str) -> Reply {
    let mut r =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for c in body.as_bytes().chunks(100) {
        r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        r.extend_from_slice(c);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    Reply::Bytes(r)
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A server on 127.0.0.1 and a free port, one thread per connection, stopped on drop.
pub struct Server {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let (handler, reqs, stopped) = (handler.clone(), reqs.clone(), stopped.clone());
                std::thread::spawn(move || {
                    let Ok(head) = read_head(&mut conn) else { return };
                    let Some(req) = parse_head(&head) else { return };
                    reqs.lock().unwrap().push(req.clone());
                    match handler(&req) {
                        Reply::Bytes(b) => {
                            let _ = conn.write_all(&b);
                            let _ = conn.shutdown(Shutdown::Write);
                            // Let the client read everything before the socket goes.
                            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                            let _ = conn.read(&mut [0u8; 1]);
                        }
                        Reply::Silent => {
                            while !stopped.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                });
            }
        });
        Server { port, requests, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Forwards every connection to `127.0.0.1:upstream`, one request per connection (it asks both sides for
/// `Connection: close`), and records each request head.
pub struct RecordingProxy {
    server: Server,
}

impl RecordingProxy {
    pub fn start(upstream: u16) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut client) = conn else { continue };
                let reqs = reqs.clone();
                std::thread::spawn(move || {
                    let Ok(head) = read_head(&mut client) else { return };
                    let Some(req) = parse_head(&head) else { return };
                    reqs.lock().unwrap().push(req);
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else { return };
                    if up.write_all(&with_connection_close(&head)).is_err() {
                        return;
                    }
                    let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
                    let t = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut u2);
                        let _ = u2.shutdown(Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut up, &mut client);
                    let _ = client.shutdown(Shutdown::Both);
                    let _ = t.join();
                });
            }
        });
        RecordingProxy { server: Server { port, requests, stop } }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }
}

/// The request head, bounded in time so a client that goes quiet cannot hold a test server thread.
fn read_head(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    crate::proxy::read_head(s)
}

fn parse_head(head: &[u8]) -> Option<Request> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Some(Request { method, path, headers })
}

fn with_connection_close(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for l in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !l.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}
