//! A small real HTTP/1.1 server on 127.0.0.1 for tests, in the spirit of
//! cargo-test-support's registry server: thread per connection, keep-alive,
//! and responses that can misbehave on purpose (slow, cut short, dropped).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A parsed request.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The path with its query, as sent (`/gists/abc?x=1`).
    pub target: String,
    /// Header names are lowercase.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// How a response misbehaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    /// Wait before sending anything.
    Delay(Duration),
    /// Announce the full length, send only this many body bytes, then close.
    TruncateBody(usize),
    /// Close the connection without answering.
    Drop,
    /// Send the head at once, then the body one byte every interval (a
    /// stalled or trickling server).
    Trickle(Duration),
}

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub fault: Fault,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            fault: Fault::None,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, serde_json::to_vec(value).unwrap())
            .header("content-type", "application/json; charset=utf-8")
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A running server; it stops accepting when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    pub fn start(handler: Handler) -> Self {
        Self::start_on(0, handler).expect("bind loopback")
    }

    /// Listens on 127.0.0.1:`port` (0 for any free port).
    pub fn start_on(port: u16, handler: Handler) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || serve_connection(stream, &handler));
            }
        });
        Ok(Self { addr, stop })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_connection(stream: TcpStream, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    // Small responses must not wait for delayed ACKs.
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let response = handler(&request);
        let keep_alive = !request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        match write_response(&mut writer, &request, &response) {
            Ok(true) if keep_alive => continue,
            _ => return,
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// Writes the response; `Ok(true)` when the connection may be reused.
fn write_response(w: &mut TcpStream, request: &Request, r: &Response) -> std::io::Result<bool> {
    match &r.fault {
        Fault::Drop => return Ok(false),
        Fault::Delay(d) => std::thread::sleep(*d),
        _ => {}
    }
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
        r.status,
        reason(r.status),
        r.body.len()
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if matches!(r.fault, Fault::TruncateBody(_) | Fault::Trickle(_)) {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    if let Fault::Trickle(every) = r.fault {
        w.write_all(head.as_bytes())?;
        w.flush()?;
        for byte in &r.body {
            std::thread::sleep(every);
            w.write_all(std::slice::from_ref(byte))?;
            w.flush()?;
        }
        return Ok(false);
    }
    // One write per response: head and body leave in the same segments.
    let mut out = head.into_bytes();
    let mut reuse = true;
    if request.method != "HEAD" {
        match r.fault {
            Fault::TruncateBody(n) => {
                out.extend_from_slice(&r.body[..n.min(r.body.len())]);
                reuse = false;
            }
            _ => out.extend_from_slice(&r.body),
        }
    }
    w.write_all(&out)?;
    w.flush()?;
    Ok(reuse)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Serves the files under `root` read-only (for a published site); `..` is refused.
pub fn static_files(root: std::path::PathBuf) -> Handler {
    Arc::new(move |req: &Request| {
        let path = req.path().trim_start_matches('/');
        let path = if path.is_empty() { "index.html" } else { path };
        if path.split('/').any(|seg| seg == ".." || seg.is_empty()) {
            return Response::new(400, "bad path");
        }
        match std::fs::read(root.join(path)) {
            Ok(bytes) => Response::new(200, bytes).header("content-type", content_type(path)),
            Err(_) => Response::new(404, "not found"),
        }
    })
}

/// The MIME type browsers need to use a file (stylesheets are ignored without it).
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "minisig" | "pub" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url: &str) -> (u16, Vec<u8>) {
        let addr = url.trim_start_matches("http://");
        let (host, path) = addr
            .split_once('/')
            .map(|(h, p)| (h, format!("/{p}")))
            .unwrap_or((addr, "/".into()));
        let mut s = TcpStream::connect(host).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        let status = text[9..12].parse().unwrap();
        let body = out[text.find("\r\n\r\n").unwrap() + 4..].to_vec();
        (status, body)
    }

    #[test]
    fn serves_and_misbehaves_on_request() {
        let server = HttpServer::start(Arc::new(|req: &Request| match req.path() {
            "/ok" => Response::new(200, "hello"),
            "/cut" => Response::new(200, "0123456789").fault(Fault::TruncateBody(4)),
            _ => Response::new(404, ""),
        }));
        assert_eq!(
            get(&format!("{}/ok", server.url())),
            (200, b"hello".to_vec())
        );
        assert_eq!(
            get(&format!("{}/cut", server.url())),
            (200, b"0123".to_vec())
        );
        assert_eq!(get(&format!("{}/nope", server.url())).0, 404);
    }
}
