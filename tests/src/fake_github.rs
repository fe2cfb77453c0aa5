//! A fake GitHub REST API on loopback: `GET /gists/{id}` from generated or
//! recorded data, with ETags and conditional requests, rate-limit headers,
//! and scriptable faults. It counts requests by kind.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::http::{Fault, HttpServer, Request, Response};

/// A misbehaviour the server applies to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GistFault {
    /// Answer with this status (500, 502, 503…) and an error body.
    Status(u16),
    /// Answer correctly, after this delay.
    Slow(Duration),
    /// Announce the full body, send part of it, close.
    TruncatedBody,
    /// Close without answering.
    Drop,
    /// A secondary rate limit: this status (403 or 429) with `retry-after`.
    Secondary { status: u16, retry_after: u64 },
}

/// Requests seen, by kind.
#[derive(Debug, Default)]
pub struct Counts {
    pub api: AtomicU64,
    /// API answers that count against the primary limit (everything but 304).
    pub counted: AtomicU64,
    pub not_modified: AtomicU64,
    pub raw: AtomicU64,
    pub faults: AtomicU64,
    pub rate_limited: AtomicU64,
}

impl Counts {
    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }
}

struct Rate {
    limit: u64,
    remaining: u64,
    reset: u64,
}

/// One gist's response as the fake keeps it: the body zstd-compressed
/// (a benchmark serves a million gists, some 5.6 GB of JSON, from the
/// benchmark's own process; held plainly they took the page cache the
/// indexer reads its inputs from, which GitHub's servers never do), and
/// the ETag that answers for it.
#[derive(Clone)]
struct Stored {
    packed: Arc<Vec<u8>>,
    etag: String,
}

impl Stored {
    /// zstd's fastest level: the bodies are compressed once and read back
    /// only for the `200`s the fake serves.
    const LEVEL: i32 = 1;

    fn of(body: &[u8]) -> Self {
        let etag = format!("W/\"{}\"", &crate::sha256_hex(body)[..32]);
        let mut packed = zstd::bulk::compress(body, Self::LEVEL).expect("compressing in memory");
        // The buffer was sized for the worst case: keep only the bytes.
        packed.shrink_to_fit();
        Self {
            packed: Arc::new(packed),
            etag,
        }
    }

    fn body(&self) -> Vec<u8> {
        zstd::decode_all(self.packed.as_slice()).expect("the fake's own compressed body")
    }
}

#[derive(Default)]
struct Data {
    /// Gist id → its response. Hashed: a benchmark looks up a million
    /// ids in a million, and a tree's string comparisons were a sixth of
    /// the fake's CPU (CPU the real GitHub does not take from the indexer).
    gists: HashMap<String, Stored>,
    /// `/raw/{gist}/{file}` → full content, for files served truncated.
    raw: BTreeMap<String, Vec<u8>>,
    /// Faults for one gist, applied in order to its next requests.
    faults: BTreeMap<String, VecDeque<GistFault>>,
    /// Faults applied in order to the next requests for any gist.
    burst: VecDeque<GistFault>,
}

pub struct FakeGithub {
    server: HttpServer,
    /// Every request, API and raw, in arrival order (unless logging is off).
    pub seen: Arc<Mutex<Vec<Request>>>,
    log_requests: Arc<std::sync::atomic::AtomicBool>,
    data: Arc<Mutex<Data>>,
    rate: Arc<Mutex<Rate>>,
    pub counts: Arc<Counts>,
}

fn epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl FakeGithub {
    pub fn start() -> Self {
        let data = Arc::new(Mutex::new(Data::default()));
        let rate = Arc::new(Mutex::new(Rate {
            limit: 5000,
            remaining: 5000,
            reset: epoch() + 3600,
        }));
        let counts = Arc::new(Counts::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log_requests = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (d, r, c, log, on) = (
            data.clone(),
            rate.clone(),
            counts.clone(),
            seen.clone(),
            log_requests.clone(),
        );
        let server = HttpServer::start(Arc::new(move |req: &Request| {
            if on.load(Ordering::Relaxed) {
                log.lock().unwrap().push(req.clone());
            }
            handle(req, &d, &r, &c)
        }));
        Self {
            server,
            seen,
            log_requests,
            data,
            rate,
            counts,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Stops keeping every request (benchmarks send hundreds of thousands).
    pub fn stop_logging(&self) {
        self.log_requests.store(false, Ordering::Relaxed);
    }

    /// Serves `gist` (a `GET /gists/{id}` body) under its `id`.
    pub fn put(&self, gist: &Value) {
        let id = gist["id"].as_str().expect("gists have an id").to_string();
        let stored = Stored::of(&serde_json::to_vec(gist).unwrap());
        self.data.lock().unwrap().gists.insert(id, stored);
    }

    /// A fake GitHub serving the embedded examples' recorded gists.
    pub fn with_examples() -> Self {
        let github = Self::start();
        github.load_dir(&crate::examples().join("gists"));
        github
    }

    /// Serves every `{id}.json` in `dir`.
    pub fn load_dir(&self, dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                self.put(&serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap());
            }
        }
    }

    /// The body served for `id`.
    pub fn gist(&self, id: &str) -> Value {
        let stored = self.data.lock().unwrap().gists[id].clone();
        serde_json::from_slice(&stored.body()).unwrap()
    }

    /// Deletes a gist: it answers 404 from now on.
    pub fn delete(&self, id: &str) {
        self.data.lock().unwrap().gists.remove(id);
    }

    /// Cuts `file`'s inline content to `keep` bytes and marks it truncated;
    /// its `raw_url` then serves the whole content from this server.
    pub fn truncate_file(&self, id: &str, file: &str, keep: usize) {
        let mut gist = self.gist(id);
        let f = &mut gist["files"][file];
        let full = f["content"].as_str().unwrap().to_string();
        f["content"] = Value::String(full[..keep].to_string());
        f["truncated"] = Value::Bool(true);
        f["raw_url"] = Value::String(format!("{}/raw/{id}/{file}", self.url()));
        self.data
            .lock()
            .unwrap()
            .raw
            .insert(format!("/raw/{id}/{file}"), full.into_bytes());
        self.put(&gist);
    }

    /// Queues faults for the next requests of one gist.
    pub fn fault(&self, id: &str, faults: impl IntoIterator<Item = GistFault>) {
        self.data
            .lock()
            .unwrap()
            .faults
            .entry(id.to_string())
            .or_default()
            .extend(faults);
    }

    /// Queues faults for the next requests, whichever gist they ask for.
    pub fn burst(&self, faults: impl IntoIterator<Item = GistFault>) {
        self.data.lock().unwrap().burst.extend(faults);
    }

    /// Sets the primary limit: `remaining` requests left until `reset_in` from now.
    pub fn rate_limit(&self, limit: u64, remaining: u64, reset_in: Duration) {
        *self.rate.lock().unwrap() = Rate {
            limit,
            remaining,
            reset: epoch() + reset_in.as_secs(),
        };
    }
}

fn handle(req: &Request, data: &Mutex<Data>, rate: &Mutex<Rate>, counts: &Counts) -> Response {
    if req.path().starts_with("/raw/") {
        counts.raw.fetch_add(1, Ordering::SeqCst);
        return match data.lock().unwrap().raw.get(req.path()) {
            Some(bytes) => Response::new(200, bytes.clone()),
            None => Response::new(404, "not found"),
        };
    }
    let Some(id) = req.path().strip_prefix("/gists/") else {
        return Response::json(404, &serde_json::json!({ "message": "Not Found" }));
    };
    counts.api.fetch_add(1, Ordering::SeqCst);
    let (body, fault) = {
        let mut d = data.lock().unwrap();
        let fault = d
            .faults
            .get_mut(id)
            .and_then(VecDeque::pop_front)
            .or_else(|| d.burst.pop_front());
        (d.gists.get(id).cloned(), fault)
    };
    // Rate limit first: GitHub answers an exhausted limit before anything else.
    let (limit, remaining, reset) = {
        let mut r = rate.lock().unwrap();
        if r.remaining == 0 && epoch() >= r.reset {
            r.remaining = r.limit;
            r.reset = epoch() + 3600;
        }
        (r.limit, r.remaining, r.reset)
    };
    let with_rate = |resp: Response, remaining: u64| {
        resp.header("x-ratelimit-limit", limit.to_string())
            .header("x-ratelimit-remaining", remaining.to_string())
            .header("x-ratelimit-used", (limit - remaining).to_string())
            .header("x-ratelimit-reset", reset.to_string())
            .header("x-ratelimit-resource", "core")
    };
    if remaining == 0 {
        counts.rate_limited.fetch_add(1, Ordering::SeqCst);
        counts.counted.fetch_add(1, Ordering::SeqCst);
        return with_rate(
            Response::json(
                403,
                &serde_json::json!({ "message": "API rate limit exceeded" }),
            ),
            0,
        );
    }
    let mut delay = None;
    match fault {
        Some(GistFault::Status(s)) => {
            counts.faults.fetch_add(1, Ordering::SeqCst);
            return Response::json(s, &serde_json::json!({ "message": "Server Error" }));
        }
        Some(GistFault::Drop) => {
            counts.faults.fetch_add(1, Ordering::SeqCst);
            return Response::new(200, "").fault(Fault::Drop);
        }
        Some(GistFault::Secondary {
            status,
            retry_after,
        }) => {
            counts.faults.fetch_add(1, Ordering::SeqCst);
            counts.rate_limited.fetch_add(1, Ordering::SeqCst);
            return Response::json(
                status,
                &serde_json::json!({ "message": "You have exceeded a secondary rate limit" }),
            )
            .header("retry-after", retry_after.to_string());
        }
        Some(GistFault::Slow(d)) => {
            counts.faults.fetch_add(1, Ordering::SeqCst);
            delay = Some(d);
        }
        Some(GistFault::TruncatedBody) | None => {}
    }
    let Some(stored) = body else {
        counts.counted.fetch_add(1, Ordering::SeqCst);
        let left = take_one(rate);
        return with_rate(
            Response::json(404, &serde_json::json!({ "message": "Not Found" })),
            left,
        );
    };
    if req.header("if-none-match") == Some(stored.etag.as_str()) {
        counts.not_modified.fetch_add(1, Ordering::SeqCst);
        let mut resp =
            with_rate(Response::new(304, Vec::new()), remaining).header("etag", stored.etag);
        if let Some(d) = delay {
            resp = resp.fault(Fault::Delay(d));
        }
        return resp;
    }
    counts.counted.fetch_add(1, Ordering::SeqCst);
    let left = take_one(rate);
    let body = stored.body();
    let half = body.len() / 2;
    let mut resp = with_rate(Response::new(200, body), left)
        .header("content-type", "application/json; charset=utf-8")
        .header("etag", stored.etag);
    if fault == Some(GistFault::TruncatedBody) {
        counts.faults.fetch_add(1, Ordering::SeqCst);
        resp = resp.fault(Fault::TruncateBody(half));
    } else if let Some(d) = delay {
        resp = resp.fault(Fault::Delay(d));
    }
    resp
}

/// Spends one request of the primary limit; returns what is left.
fn take_one(rate: &Mutex<Rate>) -> u64 {
    let mut r = rate.lock().unwrap();
    r.remaining = r.remaining.saturating_sub(1);
    r.remaining
}
