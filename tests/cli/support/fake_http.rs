//! A scripted HTTP/1.1 server on 127.0.0.1 for client tests.
//!
//! - One thread, one request per connection (`Connection: close`), so the client
//!   never parks a request on a pooled connection the server is not reading.
//! - A handler decides each reply (or drops the connection without answering);
//!   [`FakeServer::scripted`] replays a fixed list.
//! - Every request is recorded (method, target, headers, body), up to a bound.
//! - Plain TCP or TLS ([`FakeServer::start_tls`], rustls over std streams).
//! - Stopped and joined on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const MAX_HEAD: usize = 64 << 10;
const MAX_BODY: usize = 64 << 20;
const MAX_RECORDED: usize = 10_000;

/// A request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// A query parameter, percent-decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        let u = reqwest::Url::parse(&format!("http://fake{}", self.target)).ok()?;
        u.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} {}: body is not JSON: {e}", self.method, self.target))
    }
}

/// What the server does with a request.
#[derive(Clone, Debug)]
pub enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Close the connection without answering.
    Drop,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Self {
        Reply::status(status)
            .header("Content-Type", "application/json")
            .body(v.to_string())
    }

    /// A libats error body.
    pub fn error(status: u16, code: &str, description: &str, cause: serde_json::Value) -> Self {
        Reply::json(
            status,
            &serde_json::json!({"code": code, "description": description, "cause": cause, "errorId": "00000000-0000-0000-0000-000000000000"}),
        )
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        if let Reply::Respond { body, .. } = &mut self {
            *body = b.into();
        }
        self
    }
}

type Handler = Box<dyn FnMut(&Request, &str) -> Reply + Send>;

pub struct FakeServer {
    addr: SocketAddr,
    tls: bool,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// `handler(request, base_url)` decides each reply.
    pub fn start(handler: impl FnMut(&Request, &str) -> Reply + Send + 'static) -> Self {
        Self::spawn(None, Box::new(handler))
    }

    /// Replies in order; once the script is used up, 500 `unscripted`.
    pub fn scripted(replies: Vec<Reply>) -> Self {
        let mut script = replies.into_iter();
        Self::start(move |_, _| {
            script.next().unwrap_or_else(|| {
                Reply::error(500, "unscripted", "no reply left", serde_json::Value::Null)
            })
        })
    }

    /// Serves HTTPS with the given rustls configuration.
    pub fn start_tls(
        config: Arc<rustls::ServerConfig>,
        handler: impl FnMut(&Request, &str) -> Reply + Send + 'static,
    ) -> Self {
        Self::spawn(Some(config), Box::new(handler))
    }

    fn spawn(tls: Option<Arc<rustls::ServerConfig>>, mut handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let is_tls = tls.is_some();
        let base = format!("{}://{addr}", if is_tls { "https" } else { "http" });
        let (rec, stop2) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = conn else { continue };
                // Guards against a stuck client; no test depends on it firing.
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
                match &tls {
                    None => serve(tcp, &mut handler, &base, &rec),
                    Some(cfg) => {
                        let Ok(server) = rustls::ServerConnection::new(cfg.clone()) else {
                            continue;
                        };
                        serve(
                            rustls::StreamOwned::new(server, tcp),
                            &mut handler,
                            &base,
                            &rec,
                        )
                    }
                }
            }
        });
        FakeServer {
            addr,
            tls: is_tls,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>` (or https).
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve<S: Read + Write>(
    mut stream: S,
    handler: &mut Handler,
    base: &str,
    rec: &Mutex<Vec<Request>>,
) {
    let Some(req) = read_request(&mut stream) else {
        return;
    };
    let reply = handler(&req, base);
    {
        let mut r = rec.lock().unwrap();
        if r.len() < MAX_RECORDED {
            r.push(req);
        }
    }
    if let Reply::Respond {
        status,
        headers,
        body,
    } = reply
    {
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            reason(status),
            body.len()
        );
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
        let _ = stream.flush();
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        428 => "Precondition Required",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn read_request<S: Read>(stream: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(stream, rest)?
    } else {
        let len: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if len > MAX_BODY {
            return None;
        }
        while rest.len() < len {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    };
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

fn read_chunked<S: Read>(stream: &mut S, mut buf: Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut fill = |buf: &mut Vec<u8>, need: usize| -> Option<()> {
        while buf.len() < need {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            let need = buf.len() + 1;
            fill(&mut buf, need)?;
        };
        let size_hex = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_hex.split(';').next()?.trim(), 16).ok()?;
        if body.len() + size > MAX_BODY {
            return None;
        }
        buf.drain(..line_end + 2);
        if size == 0 {
            return Some(body);
        }
        fill(&mut buf, size + 2)?;
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}
