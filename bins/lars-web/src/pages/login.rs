//! Signing in and out. The login form carries a token tied to a nonce cookie set with it (so
//! another site cannot post it), and failed logins are limited per user and per address.

use std::fmt::Write as _;

use super::SESSION_COOKIE;
use crate::Console;
use crate::auth::{LoginError, SESSION_SECS, Session};
use crate::html::{Flash, esc, page};
use crate::http::{Request, Response};

const NONCE_COOKIE: &str = "lars_login";

/// The login form (with `error` above it after a failed attempt).
pub(super) fn get(console: &Console, _request: &Request, error: Option<(u16, String)>) -> Response {
    let nonce = crate::auth::Auth::nonce();
    let token = console.auth().login_token(&nonce);
    let mut body = String::new();
    if !console.auth().has_users() {
        body.push_str(
            "<p class=\"flash error\">No user exists yet. Create one on the console's machine with \
             <code>lars-web user add NAME --role admin</code> (it asks for the password).</p>",
        );
    }
    let _ = write!(
        body,
        "<form method=post action=\"/login\" class=box><input type=hidden name=token value=\"{}\">\
         <p><label>User <input type=text name=user autocomplete=username required autofocus></label></p>\
         <p><label>Password <input type=password name=password autocomplete=current-password required></label></p>\
         <p><button>Sign in</button></p></form>",
        esc(&token)
    );
    let (status, flash) = match error {
        Some((status, text)) => (status, Some(Flash { text, error: true })),
        None => (200, None),
    };
    Response::html(status, page("Sign in", None, flash.as_ref(), &body)).with_header(
        "Set-Cookie",
        format!("{NONCE_COOKIE}={nonce}; {}; Max-Age=3600", console.cookie_attributes("/login")),
    )
}

/// Checks the form; on success sets the session cookie and goes to the services.
pub(super) fn post(console: &Console, request: &Request) -> Response {
    let nonce = request.cookies.get(NONCE_COOKIE).map_or("", String::as_str);
    if !request.field("token").is_some_and(|token| console.auth().check_login_token(nonce, token)) {
        console.stats().csrf_refused();
        return get(
            console,
            request,
            Some((403, "The sign-in form had expired or was not ours: try again.".into())),
        );
    }
    let user = request.field("user").unwrap_or("").trim();
    let password = request.field("password").unwrap_or("");
    let result = console.auth().login(user, password, &request.remote.to_string());
    console.stats().login(&result);
    match result {
        Ok(cookie) => Response::see_other("/services").with_header(
            "Set-Cookie",
            format!("{SESSION_COOKIE}={cookie}; {}; Max-Age={SESSION_SECS}", console.cookie_attributes("/")),
        ),
        Err(LoginError::Wrong) => get(console, request, Some((401, "Wrong user name or password.".into()))),
        Err(LoginError::Locked(secs)) => get(
            console,
            request,
            Some((
                429,
                format!(
                    "Too many failed sign-ins for this user or address: try again in {} minutes.",
                    secs.div_ceil(60)
                ),
            )),
        ),
        Err(LoginError::Broken(why)) => {
            get(console, request, Some((500, format!("The users file is broken: {why}"))))
        }
    }
}

/// Ends the session in this browser.
pub(super) fn logout(console: &Console, _request: &Request, _session: &Session) -> Response {
    Response::see_other("/login").with_header(
        "Set-Cookie",
        format!("{SESSION_COOKIE}=; {}; Max-Age=0", console.cookie_attributes("/")),
    )
}
