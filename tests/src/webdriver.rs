//! A small W3C WebDriver client for the console's browser tests: starts Debian's
//! `chromedriver` on a free port, opens headless Chromium with a new empty profile and no
//! network of its own, and offers the few commands the tests use. Plain HTTP/1.1 over a
//! `TcpStream`, with [`http`] also usable on its own against the console.
//!
//! A missing `chromium` or `chromedriver` fails the test (`cargo xtask setup` installs both).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The key W3C WebDriver gives element references under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An HTTP answer: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpAnswer {
    /// Every value of header `name`.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request (`Connection: close`), with extra headers and a body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpAnswer> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    // Read the head, then as many bytes as Content-Length says (chromedriver keeps the
    // connection open whatever the request asks), or to the end.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    let split = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the end of the head"));
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let length = String::from_utf8_lossy(&raw[..split]).lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
    });
    match length {
        Some(length) => {
            while raw.len() < split + 4 + length {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&chunk[..n]);
            }
        }
        None => {
            stream.read_to_end(&mut raw)?;
        }
    }
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")) {
        rest = dechunk(&rest);
    }
    Ok(HttpAnswer { status, headers, body: String::from_utf8_lossy(&rest).into_owned() })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[(end + 4 + size).min(data.len())..];
    }
    out
}

/// Chromium under chromedriver; both are stopped on drop.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: PathBuf,
}

fn find(program: &str, candidates: &[&str]) -> PathBuf {
    for candidate in candidates {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("{program} is not installed: `cargo xtask setup` installs Debian's chromium and chromium-driver");
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a fresh profile.
    #[allow(clippy::disallowed_methods)] // waiting for chromedriver to listen: a test's own deadline
    pub fn start() -> Browser {
        let driver_path = find("chromedriver", &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        // The real binary: /usr/bin/chromium is Debian's wrapper script.
        let chromium = find("chromium", &["/usr/lib/chromium/chromium", "/usr/bin/chromium"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver_path.display()));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let profile = std::env::temp_dir().join(format!("lars-chromium-{}-{port}", std::process::id()));
        // From here on, dropping the browser (a failed assertion included) stops chromedriver.
        let mut browser = Browser { driver, addr, session: String::new(), profile };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while http(addr, "GET", "/status", &[], b"").is_err() {
            assert!(std::time::Instant::now() < deadline, "chromedriver did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&browser.profile);
        std::fs::create_dir_all(&browser.profile).unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", browser.profile.display())])
        .collect::<Vec<_>>();
        let answer = browser.command(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args}}}}),
        );
        browser.session =
            answer["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_string();
        browser
    }

    fn command(&mut self, method: &str, path: &str, body: Value) -> Value {
        let body = if method == "GET" { Vec::new() } else { body.to_string().into_bytes() };
        let answer = http(self.addr, method, path, &[("Content-Type", "application/json")], &body)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let value: Value = serde_json::from_str(&answer.body)
            .unwrap_or_else(|e| panic!("chromedriver said {}: {e}", answer.body));
        assert!(answer.status == 200, "chromedriver {method} {path}: {} {}", answer.status, value);
        value["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Loads `url`.
    pub fn go(&mut self, url: &str) {
        let path = self.session_path("/url");
        self.command("POST", &path, json!({ "url": url }));
    }

    /// The element `css` selects (fails the test if there is none).
    pub fn find(&mut self, css: &str) -> String {
        let path = self.session_path("/element");
        let value = self.command("POST", &path, json!({"using": "css selector", "value": css}));
        value[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}")).to_string()
    }

    /// How many elements `css` selects.
    pub fn count(&mut self, css: &str) -> usize {
        let path = self.session_path("/elements");
        let value = self.command("POST", &path, json!({"using": "css selector", "value": css}));
        value.as_array().map_or(0, Vec::len)
    }

    /// Types `text` into the element `css` selects, after clearing it.
    pub fn fill(&mut self, css: &str, text: &str) {
        let element = self.find(css);
        let clear = self.session_path(&format!("/element/{element}/clear"));
        self.command("POST", &clear, json!({}));
        let path = self.session_path(&format!("/element/{element}/value"));
        self.command("POST", &path, json!({ "text": text }));
    }

    /// Clicks the element `css` selects (and waits for a page it loads).
    pub fn click(&mut self, css: &str) {
        let element = self.find(css);
        let path = self.session_path(&format!("/element/{element}/click"));
        self.command("POST", &path, json!({}));
    }

    /// Clicks the element `css` selects and waits until the page it submits to has loaded
    /// (a mark left on the old document is gone and the new one is complete).
    #[allow(clippy::disallowed_methods)] // a test's own deadline
    pub fn submit(&mut self, css: &str) {
        self.run("window.__larsOldPage = true;");
        self.click(css);
        self.wait_for_new_page();
    }

    /// Runs `script` (which navigates) and waits for the next page like [`Browser::submit`].
    pub fn run_and_wait(&mut self, script: &str) {
        self.run("window.__larsOldPage = true;");
        self.run(script);
        self.wait_for_new_page();
    }

    #[allow(clippy::disallowed_methods)] // a test's own deadline
    fn wait_for_new_page(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let loaded =
                self.run("return window.__larsOldPage === undefined && document.readyState === 'complete';");
            if loaded == Value::Bool(true) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the next page did not load");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The page's visible text. (Read by a script: an element reference found first could go
    /// stale if a submitted form loads the next page in between.)
    pub fn text(&mut self) -> String {
        self.run("return document.body ? document.body.innerText : '';")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's source.
    pub fn source(&mut self) -> String {
        let path = self.session_path("/source");
        self.command("GET", &path, json!({})).as_str().unwrap_or_default().to_string()
    }

    /// The page's title.
    pub fn title(&mut self) -> String {
        let path = self.session_path("/title");
        self.command("GET", &path, json!({})).as_str().unwrap_or_default().to_string()
    }

    /// Runs `script` in the page and returns its result.
    pub fn run(&mut self, script: &str) -> Value {
        let path = self.session_path("/execute/sync");
        self.command("POST", &path, json!({"script": script, "args": []}))
    }

    /// Deletes every cookie of the current site (the session with it: the next request is
    /// signed out).
    pub fn delete_cookies(&mut self) {
        let path = self.session_path("/cookie");
        self.command("DELETE", &path, json!({}));
    }

    /// Saves a PNG screenshot to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.session_path("/screenshot");
        let data = self.command("GET", &shot, json!({}));
        let png = base64_decode(data.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = self.session_path("");
            let _ = http(self.addr, "DELETE", &path, &[], b"");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        bits = (bits << 6) | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
