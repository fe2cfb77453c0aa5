//! Gists from the GitHub REST API: conditional requests, rate limits,
//! retries with jittered backoff, and a total time budget.
//!
//! Facts relied on: a `304` to an authorised `If-None-Match` does not count
//! against the primary limit; primary exhaustion answers 403/429 with
//! `x-ratelimit-remaining: 0` and a reset time; secondary limits answer
//! 403/429, often with `retry-after`; raw file URLs are not API calls.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH, RETRY_AFTER, USER_AGENT,
};

use crate::gist::{
    FetchError, Fetched, Gist, GistFileData, GistSource, MAX_FILE_BYTES, RequestStats,
};
use crate::http::{self, Client, Response};

const USER_AGENT_VALUE: &str = concat!("mlld-registry-indexer/", env!("CARGO_PKG_VERSION"));

/// A gist response larger than this is refused (300 files of 1 MB each, plus slack).
const MAX_GIST_RESPONSE: u64 = 400 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct GithubConfig {
    /// `https://api.github.com`, or a test server.
    pub api: String,
    pub token: Option<String>,
    pub request_timeout: Duration,
    /// No request starts after this instant; waits never run past it.
    pub deadline: Instant,
    /// Tries per request for retryable failures (5xx, timeouts, broken bodies, secondary limits).
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it, with full jitter.
    pub retry_base: Duration,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    primary: AtomicU64,
    not_modified: AtomicU64,
    retries: AtomicU64,
    raw_requests: AtomicU64,
    bytes: AtomicU64,
    waited: AtomicU64,
}

/// What the last response said about the primary limit.
#[derive(Default)]
struct RateState {
    remaining: Option<u64>,
    reset_epoch: Option<u64>,
    /// The last window waited out: answers from it, read late, are ignored.
    waited_out: Option<u64>,
}

pub struct GithubGists {
    client: Client,
    config: GithubConfig,
    /// Every API request's headers, made once (a million requests a night).
    api_headers: HeaderMap,
    /// `{api}/gists`, parsed once: a gist's address is it and the id.
    gists_url: reqwest::Url,
    rate: Mutex<RateState>,
    /// Set once the primary limit is out for longer than the budget allows.
    exhausted: AtomicBool,
    counters: Counters,
}

/// One attempt's outcome.
enum Attempt {
    Done(Result<Fetched, FetchError>),
    Retry {
        reason: String,
        wait: Option<Duration>,
    },
}

impl GithubGists {
    pub fn new(config: GithubConfig) -> anyhow::Result<Self> {
        let client = Client::new(
            config.request_timeout,
            config.request_timeout.min(Duration::from_secs(10)),
        );
        let gists_url = gists_url(&config.api)?;
        Ok(Self {
            client,
            api_headers: api_headers(config.token.as_deref()),
            gists_url,
            config,
            rate: Mutex::default(),
            exhausted: AtomicBool::new(false),
            counters: Counters::default(),
        })
    }

    pub fn stats(&self) -> RequestStats {
        let c = &self.counters;
        RequestStats {
            requests: c.requests.load(Ordering::Relaxed),
            primary: c.primary.load(Ordering::Relaxed),
            not_modified: c.not_modified.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            raw_requests: c.raw_requests.load(Ordering::Relaxed),
            bytes_downloaded: c.bytes.load(Ordering::Relaxed),
            rate_limit_wait_secs: c.waited.load(Ordering::Relaxed),
        }
    }

    fn within_budget(&self, wait: Duration) -> bool {
        Instant::now() + wait <= self.config.deadline
    }

    /// Sleeps `wait` if the budget allows; `false` when it does not.
    fn sleep_within_budget(&self, wait: Duration) -> bool {
        let fits = self.within_budget(wait);
        if fits {
            std::thread::sleep(wait);
        }
        fits
    }

    /// As [`Self::sleep_within_budget`], letting the thread's other requests go on meanwhile.
    async fn pause_within_budget(&self, wait: Duration) -> bool {
        let fits = self.within_budget(wait);
        if fits {
            tokio::time::sleep(wait).await;
        }
        fits
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = Duration::from_secs(60);
        let exp = self
            .config
            .retry_base
            .saturating_mul(1 << attempt.min(16))
            .min(cap);
        exp.mul_f64(fastrand::f64()).max(Duration::from_millis(1))
    }

    /// Before a request: waits out an exhausted primary limit, or gives up
    /// for the rest of the build when its reset lies beyond the budget.
    async fn respect_primary_limit(&self) -> Result<(), FetchError> {
        if self.exhausted.load(Ordering::SeqCst) {
            return Err(FetchError::Deferred(
                "the primary rate limit is exhausted until after the time budget".into(),
            ));
        }
        let reset = {
            let rate = self.rate.lock().expect("rate state lock");
            match (rate.remaining, rate.reset_epoch) {
                (Some(0), Some(reset)) => Some(reset),
                _ => None,
            }
        };
        if let Some(reset) = reset {
            let wait = Duration::from_secs(reset.saturating_sub(epoch_now()) + 1);
            if !self.pause_within_budget(wait).await {
                self.exhausted.store(true, Ordering::SeqCst);
                return Err(FetchError::Deferred(format!(
                    "the primary rate limit is exhausted until {reset} (epoch), after the time budget"
                )));
            }
            self.counters
                .waited
                .fetch_add(wait.as_secs(), Ordering::Relaxed);
            let mut rate = self.rate.lock().expect("rate state lock");
            if rate.reset_epoch == Some(reset) {
                rate.remaining = None;
            }
            rate.waited_out = rate.waited_out.max(Some(reset));
        }
        if Instant::now() >= self.config.deadline {
            return Err(FetchError::Deferred("the time budget ran out".into()));
        }
        Ok(())
    }

    fn record_rate(&self, resp: &Response) {
        let header = |name: &str| {
            resp.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let Some(remaining) = header("x-ratelimit-remaining") {
            let reset = header("x-ratelimit-reset");
            let mut rate = self.rate.lock().expect("rate state lock");
            // Answers are read in any order across connections. One from a
            // window already over says nothing of this one; within one
            // window the count only falls (a late answer must not bring
            // back spent requests).
            let over =
                |r| rate.reset_epoch.is_some_and(|now| r < now) || Some(r) <= rate.waited_out;
            match reset {
                Some(r) if over(r) => {}
                Some(r) if Some(r) == rate.reset_epoch => {
                    rate.remaining =
                        Some(rate.remaining.map_or(remaining, |seen| seen.min(remaining)));
                }
                _ => {
                    rate.remaining = Some(remaining);
                    rate.reset_epoch = reset.or(rate.reset_epoch);
                }
            }
        }
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        gist_id: &str,
        etag: Option<&str>,
    ) -> Attempt {
        if let Err(e) = self.respect_primary_limit().await {
            return Attempt::Done(Err(e));
        }
        let mut url = self.gists_url.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .push(gist_id);
        let mut headers = self.api_headers.clone();
        if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
            headers.insert(IF_NONE_MATCH, etag);
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let resp = match http::send(client, url, headers, MAX_GIST_RESPONSE).await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    reason: describe(&e),
                    wait: None,
                };
            }
        };
        self.record_rate(&resp);
        let status = resp.status;
        if status != StatusCode::NOT_MODIFIED {
            self.counters.primary.fetch_add(1, Ordering::Relaxed);
        }
        match status {
            StatusCode::NOT_MODIFIED => {
                self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
                Attempt::Done(Ok(Fetched::NotModified))
            }
            StatusCode::OK => {
                let new_etag = resp
                    .headers
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match resp.body {
                    Ok(bytes) => {
                        self.counters
                            .bytes
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        match serde_json::from_slice::<Gist>(&bytes) {
                            Ok(gist) => Attempt::Done(Ok(Fetched::Fresh {
                                gist: Box::new(gist),
                                etag: new_etag,
                            })),
                            Err(e) => Attempt::Retry {
                                reason: format!("the response body is not a whole gist ({e})"),
                                wait: None,
                            },
                        }
                    }
                    Err(reason) => Attempt::Retry { reason, wait: None },
                }
            }
            StatusCode::NOT_FOUND => Attempt::Done(Err(FetchError::NotFound)),
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
                let remaining = resp
                    .headers
                    .get("x-ratelimit-remaining")
                    .and_then(|v| v.to_str().ok());
                let retry_after = resp
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if let Some(secs) = retry_after {
                    Attempt::Retry {
                        reason: format!("secondary rate limit ({status}, retry-after {secs}s)"),
                        wait: Some(Duration::from_secs(secs)),
                    }
                } else if remaining == Some("0") {
                    // The next attempt waits for the reset, or gives up past the budget.
                    Attempt::Retry {
                        reason: format!("primary rate limit exhausted ({status})"),
                        wait: Some(Duration::ZERO),
                    }
                } else {
                    Attempt::Retry {
                        reason: format!("{status} without rate-limit headers"),
                        wait: None,
                    }
                }
            }
            s if s.is_server_error() => Attempt::Retry {
                reason: format!("server error {s}"),
                wait: None,
            },
            s => Attempt::Done(Err(FetchError::Failed(format!("GitHub answered {s}")))),
        }
    }
}

/// `{api}/gists`, the base of every gist's address; an error naming the
/// setting unless `api` is an http(s) URL without a query or fragment.
fn gists_url(api: &str) -> anyhow::Result<reqwest::Url> {
    use anyhow::Context as _;
    let gists = format!("{}/gists", api.trim_end_matches('/'));
    let url = reqwest::Url::parse(&gists)
        .with_context(|| format!("the GitHub API address (--github-api) `{api}` is not a URL"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https")
            && url.query().is_none()
            && url.fragment().is_none(),
        "the GitHub API address (--github-api) `{api}` must be an http or https URL without a query or fragment"
    );
    Ok(url)
}

/// The headers of every API request (never of a raw file's: the token
/// stays with the API).
fn api_headers(token: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    headers.insert(
        ACCEPT,
        HeaderValue::from_static("application/vnd.github+json"),
    );
    headers.insert(
        "X-GitHub-Api-Version",
        HeaderValue::from_static("2022-11-28"),
    );
    if let Some(token) = token
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    headers
}

impl GithubGists {
    /// One gist, retried as its failures allow, on `client`.
    async fn fetch_one(
        &self,
        client: &reqwest::Client,
        gist_id: &str,
        etag: Option<&str>,
    ) -> Result<Fetched, FetchError> {
        let mut last = String::new();
        for attempt in 0..self.config.max_attempts {
            if attempt > 0 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            match self.attempt(client, gist_id, etag).await {
                Attempt::Done(result) => return result,
                Attempt::Retry { reason, wait } => {
                    let wait = wait.unwrap_or_else(|| self.backoff(attempt));
                    if !self.pause_within_budget(wait).await {
                        return Err(FetchError::Deferred(format!(
                            "{reason}; waiting {}s more would exceed the time budget",
                            wait.as_secs()
                        )));
                    }
                    if wait >= Duration::from_secs(1) {
                        self.counters
                            .waited
                            .fetch_add(wait.as_secs(), Ordering::Relaxed);
                    }
                    last = reason;
                }
            }
        }
        Err(FetchError::Failed(format!(
            "gave up after {} attempts: {last}",
            self.config.max_attempts
        )))
    }
}

/// A thread's HTTP client could not be made (no request was sent).
fn no_client(e: &reqwest::Error) -> FetchError {
    FetchError::Failed(format!("the HTTP client could not be set up ({e})"))
}

impl GistSource for GithubGists {
    fn fetch(&self, gist_id: &str, etag: Option<&str>) -> Result<Fetched, FetchError> {
        (self
            .client
            .run(async |c| self.fetch_one(c, gist_id, etag).await))
        .unwrap_or_else(|e| Err(no_client(&e)))
    }

    /// All from this thread: a nightly crawl is a million small requests,
    /// nearly all answered `304`, and a thread that waits on each one in
    /// turn sleeps and is woken for every one of them; with several in
    /// flight it mostly finds the next answer already there.
    fn fetch_many(
        &self,
        requests: &[(&str, Option<&str>)],
        in_flight: usize,
        max_bytes: u64,
    ) -> Vec<Result<Fetched, FetchError>> {
        use futures::StreamExt;
        let run = self.client.run(async |c| {
            // Unordered, put back in order at the end: a slow request (a
            // timeout, a backoff) holds up only itself, not the ones after it.
            let mut running = futures::stream::FuturesUnordered::new();
            let mut done: Vec<Option<Result<Fetched, FetchError>>> = Vec::new();
            let mut held = 0;
            loop {
                while running.len() < in_flight.max(1)
                    && done.len() < requests.len()
                    && crate::gist::may_start(held, max_bytes, done.len())
                {
                    let (i, (gist, etag)) = (done.len(), requests[done.len()]);
                    running.push(async move { (i, self.fetch_one(c, gist, etag).await) });
                    done.push(None);
                }
                let Some((i, fetched)) = running.next().await else {
                    break;
                };
                held += crate::gist::content_bytes(&fetched);
                done[i] = Some(fetched);
            }
            let ended = |r: Option<_>| r.expect("every request started has ended");
            done.into_iter().map(ended).collect()
        });
        run.unwrap_or_else(|e| vec![Err(no_client(&e))])
    }

    fn fetch_raw(&self, file: &GistFileData) -> Result<Vec<u8>, FetchError> {
        let url = file.raw_url.as_deref().ok_or_else(|| {
            FetchError::Failed(format!(
                "`{}` is truncated and has no raw_url",
                file.filename
            ))
        })?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(FetchError::Failed(format!(
                "`{}` has a raw_url that is not HTTP(S)",
                file.filename
            )));
        }
        let mut last = String::new();
        for attempt in 0..self.config.max_attempts {
            if Instant::now() >= self.config.deadline {
                return Err(FetchError::Deferred("the time budget ran out".into()));
            }
            // Raw URLs are not API calls and public gists need no token: it never leaves for them.
            let mut headers = HeaderMap::new();
            headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
            self.counters.raw_requests.fetch_add(1, Ordering::Relaxed);
            match self.client.get(url, headers, MAX_FILE_BYTES) {
                Ok(resp) if resp.status.is_success() => match resp.body {
                    Ok(bytes) => {
                        self.counters
                            .bytes
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        return Ok(bytes);
                    }
                    Err(e) => last = e,
                },
                Ok(resp) if resp.status == StatusCode::NOT_FOUND => {
                    return Err(FetchError::Failed(format!(
                        "raw file `{}` is gone (404)",
                        file.filename
                    )));
                }
                Ok(resp) => last = format!("raw file answered {}", resp.status),
                Err(e) => last = describe(&e),
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            if !self.sleep_within_budget(self.backoff(attempt)) {
                break;
            }
        }
        Err(FetchError::Failed(format!(
            "raw file `{}`: {last}",
            file.filename
        )))
    }

    fn request_stats(&self) -> Option<RequestStats> {
        Some(self.stats())
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".into()
    } else if e.is_connect() {
        format!("could not connect ({e})")
    } else {
        format!("the request failed ({e})")
    }
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gists() -> GithubGists {
        GithubGists::new(GithubConfig {
            api: "http://127.0.0.1:9".into(),
            token: None,
            request_timeout: Duration::from_secs(1),
            deadline: Instant::now() + Duration::from_secs(60),
            max_attempts: 1,
            retry_base: Duration::from_millis(1),
        })
        .unwrap()
    }

    fn answer(remaining: u64, reset: u64) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-remaining", remaining.into());
        headers.insert("x-ratelimit-reset", reset.into());
        Response {
            status: StatusCode::OK,
            headers,
            body: Ok(Vec::new()),
        }
    }

    #[test]
    fn a_gist_is_asked_for_below_the_api_address_and_a_bad_address_is_refused() {
        for (api, want) in [
            ("https://api.github.com", "https://api.github.com/gists/abc"),
            (
                "https://api.github.com/",
                "https://api.github.com/gists/abc",
            ),
            (
                "https://ghe.example/api/v3",
                "https://ghe.example/api/v3/gists/abc",
            ),
            ("http://127.0.0.1:9/", "http://127.0.0.1:9/gists/abc"),
        ] {
            let mut url = gists_url(api).unwrap();
            url.path_segments_mut().unwrap().push("abc");
            assert_eq!(url.as_str(), want, "{api}");
        }
        for bad in [
            "api.github.com",
            "ftp://api.github.com",
            "https://h/api?x=1",
            "file:///tmp",
        ] {
            let e = format!("{:#}", gists_url(bad).unwrap_err());
            assert!(e.contains("--github-api") && e.contains(bad), "{e}");
        }
    }

    fn remaining(g: &GithubGists) -> Option<u64> {
        g.rate.lock().unwrap().remaining
    }

    #[test]
    fn an_answer_read_late_does_not_bring_back_spent_requests() {
        let g = gists();
        g.record_rate(&answer(0, 1_000));
        // Sent earlier on another connection, read after the exhausted one.
        g.record_rate(&answer(3, 1_000));
        assert_eq!(remaining(&g), Some(0));
        // A new window starts afresh.
        g.record_rate(&answer(4_999, 4_600));
        assert_eq!(remaining(&g), Some(4_999));
        g.record_rate(&answer(4_990, 4_600));
        assert_eq!(remaining(&g), Some(4_990));
        // The old window's answers, read late, say nothing of this one.
        g.record_rate(&answer(0, 1_000));
        assert_eq!(remaining(&g), Some(4_990));
        assert_eq!(g.rate.lock().unwrap().reset_epoch, Some(4_600));
    }

    #[test]
    fn a_window_waited_out_is_not_brought_back_by_its_late_answers() {
        let g = gists();
        g.record_rate(&answer(0, 1_000));
        {
            // As `respect_primary_limit` leaves it after waiting for the reset.
            let mut rate = g.rate.lock().unwrap();
            rate.remaining = None;
            rate.waited_out = Some(1_000);
        }
        g.record_rate(&answer(0, 1_000));
        assert_eq!(
            remaining(&g),
            None,
            "no second wait for a window already over"
        );
        g.record_rate(&answer(5_000, 4_600));
        assert_eq!(remaining(&g), Some(5_000));
    }
}
