//! What the console's browser and HTTP tests share: users, signing in (in the browser and
//! over plain HTTP), the screenshots' folder and a deadline for conditions met eventually.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::webdriver::{Browser, HttpAnswer, http};

/// The admin's password in the tests.
pub const ADMIN_PASSWORD: &str = "admin password 1";
/// The viewer's password.
pub const VIEWER_PASSWORD: &str = "viewer password 1";

/// Where screenshots go: `target/console-screenshots/`.
pub fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots")
}

/// Waits up to `secs` for `condition`.
#[allow(clippy::disallowed_methods)] // a test's own deadline
pub fn within(secs: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Signs in in the browser; the service list is shown.
pub fn sign_in(browser: &mut Browser, base: &str, user: &str, password: &str) {
    browser.go(&format!("{base}/login"));
    browser.fill("input[name=user]", user);
    browser.fill("input[name=password]", password);
    browser.submit("form[action='/login'] button");
    assert_eq!(browser.title(), "Services · lars", "signed in as {user}: {}", browser.text());
}

/// Signs in over plain HTTP and returns the session cookie and its CSRF token.
pub fn http_sign_in(addr: SocketAddr, user: &str, password: &str) -> (String, String) {
    let form = http(addr, "GET", "/login", &[], b"").unwrap();
    let nonce = form.header_values("set-cookie").next().unwrap().split(';').next().unwrap().to_string();
    let token = form.body.split("name=token value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let body = format!("token={token}&user={user}&password={}", password.replace(' ', "+"));
    let answer = http(
        addr,
        "POST",
        "/login",
        &[("Cookie", &nonce), ("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(answer.status, 303, "signed in: {}", answer.body);
    let cookie = answer.header_values("set-cookie").next().unwrap().split(';').next().unwrap().to_string();
    let page = http(addr, "GET", "/services", &[("Cookie", &cookie)], b"").unwrap();
    let csrf = page.body.split("name=csrf value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    (cookie, csrf)
}

/// A GET with the session cookie.
pub fn get(addr: SocketAddr, cookie: &str, path: &str) -> HttpAnswer {
    http(addr, "GET", path, &[("Cookie", cookie)], b"").unwrap()
}

/// A form POST with the session cookie.
pub fn post(addr: SocketAddr, cookie: &str, path: &str, body: &str) -> HttpAnswer {
    http(
        addr,
        "POST",
        path,
        &[("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .unwrap()
}
