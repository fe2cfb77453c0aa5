//! A real S3-compatible server on loopback for the publishing tests: moto in
//! server mode (`pip install 'moto[server]'`, which `.ci/run` does), and a
//! recording proxy in front of it that logs every request in order and can
//! fail chosen ones.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{HttpServer, Request, Response};

pub mod bucket;

/// A moto server process; killed when dropped.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts `python3 -m moto.server` on a free loopback port and waits
    /// until it answers. `log` receives its output.
    pub fn start(log: &Path) -> Self {
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let out = std::fs::File::create(log).expect("moto's log file");
            let mut child = Command::new("python3")
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("python3 runs");
            if wait_until_answering(&mut child, port) {
                return Self { child, port };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "moto did not start; is it installed? pip install 'moto[server]' (.ci/run installs it). Its output:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }

    /// `http://127.0.0.1:PORT`: the S3 endpoint, and with path-style
    /// addressing the public URL of `BUCKET/KEY`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` with a policy that lets anyone read its objects, as
    /// a bucket behind a CDN or serving a site directly would have.
    pub fn create_public_bucket(&self, bucket: &str) {
        let client = client();
        let url = format!("{}/{bucket}", self.url());
        let resp = client.put(&url).send().expect("moto answers");
        assert!(
            resp.status().is_success(),
            "creating {bucket}: {}",
            resp.status()
        );
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::{bucket}/*"),
            }]
        });
        let resp = client
            .put(format!("{url}?policy"))
            .header("content-type", "application/json")
            .body(policy.to_string())
            .send()
            .expect("moto answers");
        assert!(
            resp.status().is_success(),
            "bucket policy: {}",
            resp.status()
        );
    }

    /// Every object under `prefix` in `bucket`, with its ETag
    /// (ListObjectsV2; the test sites are far below one page of 1,000).
    pub fn list(&self, bucket: &str, prefix: &str) -> BTreeMap<String, String> {
        let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", self.url());
        let xml = client().get(url).send().unwrap().text().unwrap();
        assert!(
            !xml.contains("<IsTruncated>true"),
            "more than one page: {xml}"
        );
        xml.split("<Contents>")
            .skip(1)
            .map(|entry| {
                let e_tag = between(entry, "<ETag>", "</ETag>")
                    .replace("&quot;", "")
                    .replace("&#34;", "")
                    .replace('"', "");
                (between(entry, "<Key>", "</Key>").to_string(), e_tag)
            })
            .collect()
    }

    /// Stops the server now (a publish in progress then fails).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).map(|i| i + open.len()).unwrap_or(0);
    let end = text[start..].find(close).map_or(text.len(), |i| start + i);
    &text[start..end]
}

fn wait_until_answering(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = client();
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .is_ok()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A client that never goes through a proxy.
pub fn client() -> reqwest::blocking::Client {
    mlld_indexer::install_crypto_provider();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One request the proxy passed on: method and path (without the query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
}

/// Answers requests matching a method and a path condition with a status
/// instead of passing them on.
pub struct Failure {
    pub method: &'static str,
    pub path_matches: Box<dyn Fn(&str) -> bool + Send + Sync>,
    pub status: u16,
}

/// A proxy in front of moto that records requests in the order it got them.
pub struct RecordingProxy {
    server: HttpServer,
    log: Arc<Mutex<Vec<Logged>>>,
    failure: Arc<Mutex<Option<Failure>>>,
}

impl RecordingProxy {
    pub fn start(upstream: String) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let failure: Arc<Mutex<Option<Failure>>> = Arc::new(Mutex::new(None));
        let (logging, failing) = (log.clone(), failure.clone());
        let client = client();
        let server = HttpServer::start(Arc::new(move |req: &Request| {
            logging.lock().unwrap().extend(logged(req));
            if let Some(f) = failing.lock().unwrap().as_ref()
                && f.method == req.method
                && (f.path_matches)(req.path())
            {
                return Response::new(f.status, "<Error><Code>AccessDenied</Code></Error>");
            }
            forward(&client, &upstream, req)
        }));
        Self {
            server,
            log,
            failure,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The requests so far; the log is emptied.
    pub fn take_log(&self) -> Vec<Logged> {
        std::mem::take(&mut self.log.lock().unwrap())
    }

    pub fn fail(&self, failure: Option<Failure>) {
        *self.failure.lock().unwrap() = failure;
    }
}

/// A request as logged; a batch delete (`POST /BUCKET?delete`) is logged
/// as one `DELETE` per key, in the order the batch lists them.
fn logged(req: &Request) -> Vec<Logged> {
    if req.method == "POST" && req.target.contains("?delete") {
        let body = String::from_utf8_lossy(&req.body);
        let bucket = req.path().trim_end_matches('/');
        return body
            .split("<Key>")
            .skip(1)
            .map(|rest| Logged {
                method: "DELETE".into(),
                path: format!("{bucket}/{}", between(rest, "", "</Key>")),
            })
            .collect();
    }
    vec![Logged {
        method: req.method.clone(),
        path: req.path().to_string(),
    }]
}

fn forward(client: &reqwest::blocking::Client, upstream: &str, req: &Request) -> Response {
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
    let mut out = client.request(method, format!("{upstream}{}", req.target));
    for (name, value) in &req.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            out = out.header(name, value);
        }
    }
    let resp = match out.body(req.body.clone()).send() {
        Ok(resp) => resp,
        Err(e) => return Response::new(502, e.to_string()),
    };
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "content-length" | "connection" | "transfer-encoding"
            )
        })
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let mut response = Response::new(status, resp.bytes().unwrap_or_default().to_vec());
    for (k, v) in headers {
        response = response.header(&k, v);
    }
    response
}
