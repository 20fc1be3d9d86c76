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

/// Signs in to the console at `addr` over plain HTTP as a browser does (the sign-in form's
/// token and nonce cookie, then the form posted with them) and returns the answer to the post:
/// a 303 with the session cookie when the password is right.
pub fn console_sign_in(addr: SocketAddr, user: &str, password: &str) -> std::io::Result<HttpAnswer> {
    let form = http(addr, "GET", "/login", &[], b"")?;
    let missing =
        |what: &str| std::io::Error::other(format!("the sign-in form has no {what}: {}", form.body));
    let nonce = form.header_values("set-cookie").next().ok_or_else(|| missing("cookie"))?;
    let nonce = nonce.split(';').next().unwrap_or_default().to_string();
    let token = form.body.split("name=token value=\"").nth(1).ok_or_else(|| missing("token"))?;
    let token = token.split('"').next().unwrap_or_default();
    let body = format!("token={token}&user={user}&password={}", password.replace(' ', "+"));
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    http(addr, "POST", "/login", &[("Cookie", &nonce), form_type], body.as_bytes())
}

/// The `name=value` part of the first `Set-Cookie` header of `answer`.
pub fn first_cookie(answer: &HttpAnswer) -> String {
    let cookie = answer.header_values("set-cookie").next().unwrap_or_default();
    cookie.split(';').next().unwrap_or_default().to_string()
}

/// Signs in over plain HTTP and returns the session cookie (checked to be `HttpOnly`,
/// `SameSite=Strict` and expiring) and its CSRF token.
pub fn http_sign_in(addr: SocketAddr, user: &str, password: &str) -> (String, String) {
    let answer = console_sign_in(addr, user, password).unwrap();
    assert_eq!(answer.status, 303, "signed in: {}", answer.body);
    let set = answer.header_values("set-cookie").next().unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age="), "{set}");
    let cookie = first_cookie(&answer);
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
