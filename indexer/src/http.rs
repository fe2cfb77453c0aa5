//! The indexer's HTTP client: reqwest (rustls), driven on the calling thread.
//!
//! reqwest's blocking client hands every request to one background runtime
//! thread and waits for it: two extra thread switches per request, and one
//! thread that all crawl workers queue behind. A nightly crawl makes one
//! request per gist (mostly `304`s), so those switches were a large part of
//! its time. Here each worker thread owns a small current-thread runtime and
//! its own async client (so its connections are driven by the thread that
//! uses them), and a request runs to its last body byte inside `block_on`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// The process's one crypto provider for rustls, chosen by the site contract.
pub use mlld_site_contract::reader::install_crypto_provider;

/// A response read in full (up to a cap).
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body, or why it could not be read whole (cut off, over the cap).
    pub body: Result<Vec<u8>, String>,
}

/// Settings for every thread's client; `id` tells one configuration from another.
pub struct Client {
    id: u64,
    timeout: Duration,
    connect_timeout: Duration,
    /// Longest silence while reading a response (a stalled transfer fails
    /// before the whole-request timeout); none by default.
    read_timeout: Option<Duration>,
}

thread_local! {
    static LOCAL: RefCell<Option<(u64, tokio::runtime::Runtime, reqwest::Client)>> =
        const { RefCell::new(None) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// No byte for this long ends a crawl request (it is then retried).
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);

impl Client {
    pub fn new(timeout: Duration, connect_timeout: Duration) -> Self {
        install_crypto_provider();
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            timeout,
            connect_timeout,
            read_timeout: None,
        }
    }

    /// Fails a response that sends nothing for `idle`.
    pub fn with_read_timeout(mut self, idle: Duration) -> Self {
        self.read_timeout = Some(idle);
        self
    }

    /// The one reqwest configuration of the indexer: rustls with the
    /// process's ring provider; `timeout` is each request's deadline
    /// (responses are capped, so it bounds the slowest acceptable rate),
    /// and the read timeout ends a stalled response sooner.
    fn build(&self) -> Result<reqwest::Client, reqwest::Error> {
        let idle = self.read_timeout.unwrap_or(IDLE_TIMEOUT).min(self.timeout);
        reqwest::Client::builder()
            .timeout(self.timeout)
            .read_timeout(idle)
            .connect_timeout(self.connect_timeout)
            .build()
    }

    /// Runs `f` on this thread's runtime with this thread's client for
    /// this configuration (made on first use). Within `f`, several requests
    /// may be in flight at once: they are all driven by this thread, which
    /// sleeps only when none of them can go on. `f` must not call this
    /// client's blocking methods (a runtime does not run inside itself).
    pub fn run<T>(&self, f: impl AsyncFnOnce(&reqwest::Client) -> T) -> Result<T, reqwest::Error> {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            if local.as_ref().is_none_or(|(id, _, _)| *id != self.id) {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime starts");
                *local = Some((self.id, runtime, self.build()?));
            }
            let (_, runtime, client) = local.as_ref().expect("set above");
            Ok(runtime.block_on(f(client)))
        })
    }

    /// Sends a GET with `headers` and reads the body, refusing more than `cap` bytes.
    pub fn get(&self, url: &str, headers: HeaderMap, cap: u64) -> Result<Response, reqwest::Error> {
        self.run(async |client| send(client, url, headers, cap).await)?
    }
}

/// Sends a GET with `headers` on `client` (one that [`Client::run`] handed
/// out) and reads the body, refusing more than `cap` bytes.
pub async fn send(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    headers: HeaderMap,
    cap: u64,
) -> Result<Response, reqwest::Error> {
    let mut resp = client.get(url).headers(headers).send().await?;
    let status = resp.status();
    let headers = std::mem::take(resp.headers_mut());
    let body = if resp.content_length().is_some_and(|n| n > cap) {
        Err(format!("the response is over {cap} bytes"))
    } else {
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) if body.len() as u64 + chunk.len() as u64 > cap => {
                    break Err(format!("the response is over {cap} bytes"));
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break Ok(body),
                Err(e) => break Err(format!("the response body broke off ({e})")),
            }
        }
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}
