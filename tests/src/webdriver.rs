//! Just enough of the W3C WebDriver protocol to drive headless Chromium
//! through chromedriver from tests: navigate, find, type, click, read,
//! run a script, take a screenshot, press keys, emulate a screen size and
//! colour scheme (through chromedriver's DevTools endpoint).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium and chromedriver this machine has, if any.
pub fn find_browser() -> Option<(String, String)> {
    let which = |names: &[&str]| {
        names
            .iter()
            .find(|n| Path::new(n).is_file())
            .map(|n| n.to_string())
    };
    Some((
        which(&[
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ])?,
        which(&["/usr/bin/chromedriver"])?,
    ))
}

/// A started headless Chromium, or `None` (and a note) on a machine
/// without one; CI must have one (see `.ci/run`).
pub fn browser_or_skip() -> Option<Browser> {
    let Some((chromium, driver)) = find_browser() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver (see .ci/run)"
        );
        eprintln!("no chromium/chromedriver here; skipping the browser test");
        return None;
    };
    Some(Browser::start(&chromium, &driver).expect("headless chromium starts"))
}

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn start(chromium: &str, chromedriver: &str) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let base = format!("http://127.0.0.1:{port}");
        // reqwest's TLS (unused here, plain HTTP) still wants one rustls provider in the process.
        mlld_indexer::install_crypto_provider();
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()?;
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,900",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": { "binary": chromium, "args": args } } } });
        let deadline = Instant::now() + Duration::from_secs(20);
        let session = loop {
            match http.post(format!("{base}/session")).json(&caps).send() {
                Ok(resp) => {
                    let v: Value = resp.json()?;
                    match v["value"]["sessionId"].as_str() {
                        Some(id) => break id.to_string(),
                        None => bail!("chromedriver refused the session: {v}"),
                    }
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => bail!("chromedriver did not start: {e}"),
            }
        };
        Ok(Self {
            driver,
            base,
            session,
            http,
            _profile: profile,
        })
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send()?.json()?;
        if v["value"].get("error").is_some() {
            bail!("webdriver {path}: {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    pub fn find(&self, css: &str) -> Result<String> {
        let v = self.call(
            reqwest::Method::POST,
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .context("no element id")
    }

    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let id = self.find(css)?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    pub fn click(&self, css: &str) -> Result<()> {
        let id = self.find(css)?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .map(drop)
    }

    /// Runs `script` (a function body; `return` gives the result).
    pub fn eval(&self, script: &str) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Waits until `script` returns something truthy; returns it.
    pub fn wait_for(&self, script: &str) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.eval(script)?;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for: {script}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn screenshot(&self, dest: &Path) -> Result<()> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().context("no screenshot")?)?;
        std::fs::create_dir_all(dest.parent().context("no parent")?)?;
        std::fs::write(dest, png)?;
        Ok(())
    }
}

impl Browser {
    /// Runs a Chrome DevTools Protocol command through chromedriver.
    pub fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
    }

    /// Lays the page out as on a screen `width` by `height` CSS pixels.
    pub fn set_viewport(&self, width: u32, height: u32) -> Result<()> {
        let mobile = width < 600;
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .map(drop)
    }

    /// Emulates `prefers-color-scheme` (`light` or `dark`).
    pub fn set_color_scheme(&self, scheme: &str) -> Result<()> {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .map(drop)
    }

    /// Presses keys on whatever has the focus (WebDriver key codes, e.g.
    /// `\u{E015}` for the down arrow, `\u{E007}` for Enter).
    pub fn press(&self, keys: &str) -> Result<()> {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.push(json!({ "type": "keyDown", "value": key.to_string() }));
            actions.push(json!({ "type": "keyUp", "value": key.to_string() }));
        }
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] })),
        )
        .map(drop)
    }

    /// Reloads the current page.
    pub fn refresh(&self) -> Result<()> {
        self.call(reqwest::Method::POST, "/refresh", Some(json!({})))
            .map(drop)
    }

    /// Goes back one entry in the history.
    pub fn back(&self) -> Result<()> {
        self.call(reqwest::Method::POST, "/back", Some(json!({})))
            .map(drop)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
