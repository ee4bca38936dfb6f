//! The smallest W3C WebDriver client that drives the page: Debian's
//! `chromedriver` over HTTP (ureq, already a dev-dependency), headless
//! Chromium behind it. A client crate (fantoccini, chromiumoxide) would
//! have brought a second HTTP stack or the whole DevTools protocol to
//! compile for the dozen commands used here.
//!
//! The browser is required, not optional: when it is missing the test
//! fails with what to install (`just browser-setup`), it never skips.

#![allow(dead_code)]

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key WebDriver element references are stored under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's flags for a machine that reaches nothing outside itself:
/// without the last five it waits on the network at start-up.
const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

fn find_program(env: &str, candidates: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no {} (looked for {env}, then {}): the page test needs Debian's chromium and \
                 chromium-driver packages; `just browser-setup` installs them",
                candidates[0],
                candidates.join(", ")
            )
        })
}

/// One chromedriver process and one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    url: String,
    session: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Start chromedriver on a free loopback port and a headless Chromium
    /// session with a fresh profile, `width`×`height` pixels.
    pub fn start(width: u32, height: u32) -> Browser {
        // Debian's /usr/bin/chromium is a shell wrapper; the binary is
        // what chromedriver should run.
        let chromium = find_program(
            "SIFT_CHROMIUM",
            &["/usr/lib/chromium/chromium", "/usr/bin/chromium"],
        );
        let chromedriver = find_program("SIFT_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let mut driver = Command::new(&chromedriver)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}; the page test needs Debian's chromium and chromium-driver \
                     (`just browser-setup`), or SIFT_CHROMEDRIVER naming a chromedriver",
                    chromedriver.display()
                )
            });
        // "ChromeDriver was started successfully on port 41235."
        let stdout = driver.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut sent = false;
            while let Some(Ok(line)) = lines.next() {
                if !sent {
                    if let Some(port) = line
                        .split("started successfully on port ")
                        .nth(1)
                        .and_then(|r| r.trim_end_matches('.').trim().parse::<u16>().ok())
                    {
                        let _ = tx.send(port);
                        sent = true;
                    }
                }
                // Keep draining so chromedriver never blocks on a full pipe.
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => port,
            Err(_) => {
                let _ = driver.kill();
                panic!(
                    "{} did not say which port it listens on within 30 s",
                    chromedriver.display()
                );
            }
        };
        let url = format!("http://127.0.0.1:{port}");
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(120))
            .build();
        let profile = tempfile::tempdir().expect("a temporary profile folder");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        // Containers often have a small /dev/shm; Chromium's renderer
        // crashes on it rather than saying so.
        args.push("--disable-dev-shm-usage".to_string());
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
        }}});
        let mut browser = Browser {
            driver,
            url,
            session: String::new(),
            agent,
            _profile: profile,
        };
        let started = Instant::now();
        let created = loop {
            match browser.raw("POST", "/session", Some(&capabilities)) {
                Ok(v) => break v,
                Err(e) if started.elapsed() < Duration::from_secs(20) && e.contains("connect") => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!(
                    "cannot start a Chromium session ({}): {e}",
                    chromium.display()
                ),
            }
        };
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        browser
    }

    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let request = self.agent.request(method, &format!("{}{path}", self.url));
        let result = match body {
            Some(b) => request
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => request.call(),
        };
        let text = match result {
            Ok(r) => r.into_string().map_err(|e| e.to_string())?,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Err(format!("{method} {path}: {code} {text}"));
            }
            Err(e) => return Err(format!("{method} {path}: {e}")),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        Ok(v["value"].clone())
    }

    /// A command of this session; a WebDriver error panics with its message.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.raw(method, &path, body.as_ref())
            .unwrap_or_else(|e| panic!("webdriver: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    pub fn find(&self, css: &str) -> Element {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let reference = v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"));
        Element(reference.to_string())
    }

    /// Type into an element as a user would (key events, one by one).
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        );
    }

    pub fn clear(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{}/clear", e.0), Some(json!({})));
    }

    /// Clear a field, then type into it.
    pub fn fill(&self, css: &str, text: &str) {
        self.clear(css);
        if !text.is_empty() {
            self.type_into(css, text);
        }
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    /// Run a script in the page (`arguments[0]`… are `args`); its return value.
    pub fn exec(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Poll `script` until it returns something other than null/false, or
    /// panic after `timeout` naming `what` and the page's error box.
    pub fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let v = self.exec(script, json!([]));
            if !(v.is_null() || v == Value::Bool(false)) {
                return v;
            }
            if start.elapsed() > timeout {
                let error = self.exec(
                    "const e = document.querySelector('#error'); return e && !e.hidden ? e.textContent : null;",
                    json!([]),
                );
                panic!(
                    "timed out after {timeout:?} waiting for {what}; the page's error box: {error}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The viewport as a PNG file.
    pub fn screenshot(&self, path: &Path) {
        let v = self.cmd("GET", "/screenshot", None);
        write_png(&v, path);
    }

    /// One element (scrolled into view) as a PNG file.
    pub fn screenshot_of(&self, css: &str, path: &Path) {
        let e = self.find(css);
        let v = self.cmd("GET", &format!("/element/{}/screenshot", e.0), None);
        write_png(&v, path);
    }
}

fn write_png(v: &Value, path: &Path) {
    let png = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 PNG"))
        .expect("valid base64");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, png).unwrap();
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
