//! Just enough of a WebDriver client to drive headless Chromium through
//! `chromedriver` (Debian's `chromium` and `chromium-driver`): open a
//! session, load pages, find elements, type, click, read text, run a
//! script, take screenshots. The protocol is JSON over plain HTTP on
//! loopback, spoken here over a `TcpStream`, one request per connection.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The browser and its driver, or `None` when they are not here and the
/// test may skip (saying so); with TIERWISE_REQUIRE_CHROMIUM set their
/// absence fails the test instead.
pub fn tools_or_skip() -> Option<(String, String)> {
    match tools() {
        Ok(tools) => Some(tools),
        Err(why) if std::env::var_os("TIERWISE_REQUIRE_CHROMIUM").is_none() => {
            eprintln!("the browser part skipped: {why}");
            None
        }
        Err(why) => panic!("TIERWISE_REQUIRE_CHROMIUM is set but {why}"),
    }
}

/// Where screenshots go: `docs/screenshots` with
/// TIERWISE_UPDATE_SCREENSHOTS set, else a directory that is kept for a
/// look after the test.
pub fn screenshot_dir() -> std::path::PathBuf {
    let dir = if std::env::var_os("TIERWISE_UPDATE_SCREENSHOTS").is_some() {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
    } else {
        std::env::temp_dir().join(format!("tierwise-screenshots-{}", std::process::id()))
    };
    std::fs::create_dir_all(&dir).expect("a directory for screenshots");
    dir
}

/// Where the browser and its driver are, or why they are not usable.
pub fn tools() -> std::result::Result<(String, String), String> {
    let find = |names: &[&str]| {
        names
            .iter()
            .find(|name| {
                Command::new(name)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .map(|name| (*name).to_owned())
    };
    let browser = find(&["chromium", "chromium-browser", "google-chrome"])
        .ok_or("no chromium on PATH (scripts/install-test-tools installs it)")?;
    let driver = find(&["chromedriver"])
        .ok_or("no chromedriver on PATH (scripts/install-test-tools installs it)")?;
    Ok((browser, driver))
}

/// A running `chromedriver` and one browser session.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    /// Starts the driver and a headless browser with a laptop's window
    /// size; certificates from the test's own CA are accepted.
    pub fn start(browser: &str, driver: &str) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start chromedriver")?;
        let mut me = Self {
            driver: child,
            port,
            session: String::new(),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("chromedriver did not listen on {port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let binary = which(browser).unwrap_or_else(|| browser.to_owned());
        let answer = me.call(
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "acceptInsecureCerts": true,
                "goog:chromeOptions": {
                    "binary": binary,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1366,900",
                             "--no-first-run", "--disable-extensions"]
                }
            }}})),
        )?;
        me.session = answer["value"]["sessionId"]
            .as_str()
            .context("no session id")?
            .to_owned();
        Ok(me)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        // The driver may keep the connection open: read the head, then
        // as much body as it announces (or, chunked, up to the last chunk).
        let mut raw = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        let complete = |raw: &[u8]| -> Option<usize> {
            let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
            let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
            let body = raw.len() - split - 4;
            if head.contains("transfer-encoding: chunked") {
                raw.ends_with(b"0\r\n\r\n").then_some(split)
            } else {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())?;
                (body >= length).then_some(split)
            }
        };
        let split = loop {
            if let Some(split) = complete(&raw) {
                break split;
            }
            let n = stream.read(&mut buffer)?;
            if n == 0 {
                break raw
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .context("no HTTP header end")?;
            }
            raw.extend_from_slice(&buffer[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
        let mut content = raw[split + 4..].to_vec();
        if head.contains("transfer-encoding: chunked") {
            content = dechunk(&content)?;
        }
        let value: Value = serde_json::from_slice(&content).with_context(|| {
            format!(
                "{method} {path}: not JSON: {}",
                String::from_utf8_lossy(&content)
            )
        })?;
        if value["value"]["error"].is_string() {
            bail!(
                "{method} {path}: {} — {}",
                value["value"]["error"],
                value["value"]["message"]
            );
        }
        Ok(value)
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        Ok(self.call(method, &format!("/session/{}{path}", self.session), body)?["value"].take())
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.session_call("POST", "/url", Some(json!({ "url": url })))
            .map(|_| ())
    }

    pub fn url(&self) -> Result<String> {
        Ok(self
            .session_call("GET", "/url", None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The first element `css` selects.
    pub fn find(&self, css: &str) -> Result<String> {
        let found = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(found[ELEMENT]
            .as_str()
            .with_context(|| format!("no element id for {css}"))?
            .to_owned())
    }

    /// Whether `css` selects anything now.
    pub fn exists(&self, css: &str) -> Result<bool> {
        let found = self.session_call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(found.as_array().is_some_and(|a| !a.is_empty()))
    }

    /// The visible text of the first element `css` selects.
    pub fn text(&self, css: &str) -> Result<String> {
        let element = self.find(css)?;
        Ok(self
            .session_call("GET", &format!("/element/{element}/text"), None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The text of `css` once `ready` accepts it (a click's navigation
    /// may still be loading when the click returns); fails after 20 s with
    /// the last text seen.
    pub fn text_when(&self, css: &str, ready: impl Fn(&str) -> bool) -> Result<String> {
        let started = Instant::now();
        let mut last: String;
        loop {
            match self.text(css) {
                Ok(text) if ready(&text) => return Ok(text),
                Ok(text) => last = text,
                Err(error) => last = error.to_string(),
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("{css} did not show what was awaited; last: {last}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let element = self.find(css)?;
        self.session_call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )?;
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .map(|_| ())
    }

    pub fn click(&self, css: &str) -> Result<()> {
        let element = self.find(css)?;
        self.session_call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .map(|_| ())
    }

    /// The cookie `name` of the current page's site, HttpOnly ones too, as
    /// WebDriver gives it (name, value, path, secure, …).
    pub fn cookie(&self, name: &str) -> Result<Value> {
        self.session_call("GET", &format!("/cookie/{name}"), None)
    }

    /// Sets a cookie (as `cookie` gave it) on the current page's site.
    pub fn add_cookie(&self, cookie: Value) -> Result<()> {
        self.session_call("POST", "/cookie", Some(json!({ "cookie": cookie })))
            .map(|_| ())
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub fn run(&self, script: &str) -> Result<Value> {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// A PNG of the window.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        use base64::Engine;
        let encoded = self.session_call("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().context("no screenshot")?)?;
        std::fs::write(path, png)?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn which(name: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
            .map(|path| path.display().to_string())
    })
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk")?;
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&body[..line_end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).context("short chunk")?);
        body = body.get(size + 2..).unwrap_or_default();
    }
}
