//! A raw file host on loopback in the shape of raw.githubusercontent.com
//! (`/{owner}/{repo}/{commit}/{path}`), serving recorded files (such as
//! `examples/raw`). It counts and logs every request and can fail chosen
//! paths a number of times.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::http::{Fault, HttpServer, Request, Response, static_files};

pub struct RawHost {
    server: HttpServer,
    pub requests: Arc<AtomicU64>,
    /// Every requested path, in arrival order.
    pub seen: Arc<Mutex<Vec<String>>>,
    /// Path → (status, times left) answered instead of the file.
    faults: Arc<Mutex<BTreeMap<String, (u16, u32)>>>,
    /// Path → delay before answering (a stalled host).
    delays: Arc<Mutex<BTreeMap<String, std::time::Duration>>>,
}

impl RawHost {
    pub fn serve(root: PathBuf) -> Self {
        let files = static_files(root);
        let requests = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let faults: Arc<Mutex<BTreeMap<String, (u16, u32)>>> = Arc::default();
        let delays: Arc<Mutex<BTreeMap<String, std::time::Duration>>> = Arc::default();
        let (count, log, fail, slow) = (
            requests.clone(),
            seen.clone(),
            faults.clone(),
            delays.clone(),
        );
        let server = HttpServer::start(Arc::new(move |req: &Request| {
            count.fetch_add(1, Ordering::SeqCst);
            log.lock().unwrap().push(req.path().to_string());
            if let Some((status, left)) = fail.lock().unwrap().get_mut(req.path())
                && *left > 0
            {
                *left -= 1;
                return Response::new(*status, "injected fault");
            }
            match slow.lock().unwrap().get(req.path()) {
                Some(delay) => files(req).fault(Fault::Delay(*delay)),
                None => files(req),
            }
        }));
        Self {
            server,
            requests,
            seen,
            faults,
            delays,
        }
    }

    /// Serves `examples/raw`.
    pub fn examples() -> Self {
        Self::serve(crate::examples().join("raw"))
    }

    /// `http://127.0.0.1:PORT`: the `--raw-base`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn count(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Answers `status` to the next `times` requests for `path`.
    pub fn fail(&self, path: &str, status: u16, times: u32) {
        self.faults
            .lock()
            .unwrap()
            .insert(path.to_string(), (status, times));
    }

    /// Answers requests for `path` only after `delay`.
    pub fn slow(&self, path: &str, delay: std::time::Duration) {
        self.delays.lock().unwrap().insert(path.to_string(), delay);
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}
