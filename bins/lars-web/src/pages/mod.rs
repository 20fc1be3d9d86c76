//! The router and what every page shares: the session check, the CSRF and role checks on every
//! post, input validation and the error pages.
//!
//! To add a page: write a module here with a `get` (and, for a form, a `post`) taking
//! `(&Console, &Request, &Session)`, and add its paths to `ROUTES`. Reads are GETs and never
//! change anything; every change is a POST that [`handle`] lets through only with the
//! session's CSRF token and, unless the route is marked read-only, an admin role.

mod audit;
pub mod decisions;
pub mod history;
mod login;
pub mod problems;
mod route;
pub mod services;
mod status;

use std::net::SocketAddr;

use lars_std::store::StoreError;
use lars_std::store::console::Actor;

use crate::Console;
use crate::auth::{Session, same_token};
use crate::html::{Flash, esc, page};
use crate::http::{Method, Request, Response};

/// A page's handler.
type PageFn = fn(&Console, &Request, &Session) -> Response;

/// What a path does: its GET page, its POST handler, and whether a viewer may post to it.
struct PageRoute {
    path: &'static str,
    get: Option<PageFn>,
    post: Option<PageFn>,
    /// A post that changes nothing in the store (signing out).
    viewer_may_post: bool,
}

const ROUTES: &[PageRoute] = &[
    PageRoute { path: "/services", get: Some(services::get), post: None, viewer_may_post: false },
    PageRoute { path: "/route", get: Some(route::get), post: None, viewer_may_post: false },
    PageRoute { path: "/route/add-host", get: None, post: Some(route::add_host), viewer_may_post: false },
    PageRoute { path: "/route/hosts", get: None, post: Some(route::change_hosts), viewer_may_post: false },
    PageRoute { path: "/route/delete", get: None, post: Some(route::delete), viewer_may_post: false },
    PageRoute { path: "/describe", get: None, post: Some(route::describe), viewer_may_post: false },
    PageRoute { path: "/status", get: Some(status::get), post: None, viewer_may_post: false },
    PageRoute { path: "/status/fragment", get: Some(status::fragment), post: None, viewer_may_post: false },
    PageRoute { path: "/audit", get: Some(audit::get), post: None, viewer_may_post: false },
    PageRoute { path: "/history", get: Some(history::get), post: None, viewer_may_post: false },
    PageRoute { path: "/decisions", get: Some(decisions::get), post: None, viewer_may_post: false },
    PageRoute { path: "/problems", get: Some(problems::get), post: None, viewer_may_post: false },
    PageRoute { path: "/logout", get: None, post: Some(login::logout), viewer_may_post: true },
];

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "lars_session";

/// Headers on every answer: no framing, no scripts but our own file, forms only to us, and no
/// caching of pages that show the store.
fn secure(response: Response) -> Response {
    response
        .with_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                .into(),
        )
        .with_header("X-Frame-Options", "DENY".into())
        .with_header("X-Content-Type-Options", "nosniff".into())
        .with_header("Referrer-Policy", "same-origin".into())
        .with_header("Cache-Control", "no-store".into())
}

/// Answers one request.
pub fn handle(console: &Console, request: &Request) -> Response {
    secure(route_request(console, request))
}

fn route_request(console: &Console, request: &Request) -> Response {
    match (request.method, request.path.as_str()) {
        (Method::Get, "/") => return Response::see_other("/services"),
        (Method::Get, "/login") => return login::get(console, request, None),
        (Method::Post, "/login") => return login::post(console, request),
        (Method::Get, "/refresh.js") => return status::script(),
        _ => {}
    }
    let Some(found) = ROUTES.iter().find(|r| r.path == request.path) else {
        return error_page(None, 404, "Not found", "There is no such page.");
    };
    let cookie = request.cookies.get(SESSION_COOKIE).filter(|cookie| !cookie.is_empty());
    let session = cookie.and_then(|cookie| console.auth().session(cookie));
    if cookie.is_some() && session.is_none() {
        console.stats().session_refused();
    }
    let Some(session) = session else {
        return match request.method {
            Method::Get => Response::see_other("/login"),
            _ => error_page(
                None,
                403,
                "Signed out",
                "Your session has ended: sign in again. Nothing was changed.",
            ),
        };
    };
    match request.method {
        Method::Get => match found.get {
            Some(get) => get(console, request, &session),
            None => error_page(Some(&session), 405, "Use the form", "This address only takes a form."),
        },
        Method::Post => {
            let Some(post) = found.post else {
                return error_page(Some(&session), 405, "Not a form", "This page takes no form.");
            };
            if !request.field("csrf").is_some_and(|token| same_token(token, &session.csrf)) {
                console.stats().csrf_refused();
                return error_page(
                    Some(&session),
                    403,
                    "Form refused",
                    "The form's CSRF token is missing or wrong, so nothing was changed. Reload the page and try again.",
                );
            }
            if !found.viewer_may_post && !crate::html::can_change(&session) {
                return error_page(
                    Some(&session),
                    403,
                    "Not allowed",
                    "Viewers can look but not change anything. Nothing was changed.",
                );
            }
            post(console, request, &session)
        }
        Method::Other => error_page(Some(&session), 405, "Method not allowed", "Use GET or POST."),
    }
}

/// An error page.
pub(crate) fn error_page(session: Option<&Session>, status: u16, title: &str, text: &str) -> Response {
    let flash = Flash { text: text.to_string(), error: true };
    Response::html(
        status,
        page(title, session, Some(&flash), "<p><a href=\"/services\">Back to the services</a></p>"),
    )
}

/// The page for a store that failed: nothing was changed, and the message says why.
pub(crate) fn store_error(session: &Session, error: &StoreError) -> Response {
    match error {
        StoreError::Unavailable(why) => error_page(
            Some(session),
            503,
            "Store unavailable",
            &format!(
                "The store could not be reached ({why}). Nothing was changed; try again when it is back."
            ),
        ),
        StoreError::Invalid(why) => error_page(Some(session), 409, "Not done", &format!("Not done: {why}.")),
    }
}

/// Who is making a change, for the audit log.
pub(crate) fn actor(session: &Session, request: &Request) -> Actor {
    Actor { user: session.user.clone(), address: request.remote.to_string() }
}

/// A module or command id: a whole number from 0 to 2147483647 (the protocol's int32).
pub(crate) fn parse_id(what: &str, text: Option<&str>) -> Result<i32, String> {
    let text = text.unwrap_or("").trim();
    if text.is_empty() {
        return Err(format!("{what} is missing"));
    }
    text.parse::<i32>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| format!("{what} `{text}` is not a whole number from 0 to 2147483647"))
}

/// A host selected among a route's hosts: any address the store shows, so that a row an older
/// tool wrote (port 0, a multicast address) can still be removed.
pub(crate) fn parse_selected_host(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| format!("host `{}` is not an address with a port", text.trim()))
}

/// A host to add: `IPv4:port` or `[IPv6]:port`, the port from 1 to 65535, an address a caller
/// can reach.
pub(crate) fn parse_host(text: Option<&str>) -> Result<SocketAddr, String> {
    let text = text.unwrap_or("").trim();
    if text.is_empty() {
        return Err("the host is missing".into());
    }
    let addr: SocketAddr = text.parse().map_err(|_| {
        let port_only =
            text.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u64>().is_ok_and(|p| p > 65535));
        if port_only {
            format!("host `{text}`: the port must be from 1 to 65535")
        } else {
            format!(
                "host `{text}` is not an address with a port, such as 10.0.0.7:8080 or [2001:db8::7]:8080"
            )
        }
    })?;
    if addr.port() == 0 {
        return Err(format!("host `{text}`: the port must be from 1 to 65535"));
    }
    // The stores' own rule, so that the console never writes a host that fails lars-dns's load.
    if let Some(why) = lars_std::store::unreachable_host(addr) {
        return Err(format!("host `{text}`: no caller can reach it ({why})"));
    }
    Ok(addr)
}

/// A weight: a whole number from 1 to 65535.
pub(crate) fn parse_weight(text: Option<&str>) -> Result<u32, String> {
    let text = text.unwrap_or("").trim();
    let text = if text.is_empty() { "1" } else { text };
    text.parse::<u32>()
        .ok()
        .filter(|w| (1..=65535).contains(w))
        .ok_or_else(|| format!("weight `{text}` is not a whole number from 1 to 65535"))
}

/// A query-string link to a route's page.
pub(crate) fn route_link(key: (i32, i32)) -> String {
    format!("/route?modid={}&amp;cmdid={}", key.0, key.1)
}

/// A "done" or "failed" message carried by a redirect.
pub(crate) fn flash_of(request: &Request) -> Option<Flash> {
    request
        .param("done")
        .map(|text| Flash { text: text.to_string(), error: false })
        .or_else(|| request.param("failed").map(|text| Flash { text: text.to_string(), error: true }))
}

/// A plain-text cell.
pub(crate) fn cell(text: &str) -> String {
    format!("<td>{}</td>", esc(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked_with_messages() {
        assert_eq!(parse_id("modid", Some(" 42 ")), Ok(42));
        assert!(parse_id("modid", Some("-1")).unwrap_err().contains("0 to 2147483647"));
        assert!(parse_id("modid", Some("2147483648")).is_err());
        assert_eq!(parse_id("cmdid", None), Err("cmdid is missing".into()));
        assert_eq!(parse_host(Some("10.0.0.7:80")), Ok("10.0.0.7:80".parse().unwrap()));
        assert_eq!(parse_host(Some("[2001:db8::7]:80")), Ok("[2001:db8::7]:80".parse().unwrap()));
        assert!(parse_host(Some("10.0.0.7:70000")).unwrap_err().contains("1 to 65535"));
        assert!(parse_host(Some("10.0.0.7:0")).unwrap_err().contains("1 to 65535"));
        assert!(parse_host(Some("10.0.0.300:80")).unwrap_err().contains("not an address"));
        for unreachable in ["0.0.0.0:80", "[::]:80", "255.255.255.255:80", "239.1.1.1:80", "[ff02::1]:80"] {
            let error = parse_host(Some(unreachable)).unwrap_err();
            assert!(error.contains("no caller can reach it"), "{unreachable}: {error}");
        }
        assert!(parse_host(Some("239.1.1.1:80")).unwrap_err().contains("address is multicast"));
        assert_eq!(parse_selected_host(" 239.1.1.1:0 "), Ok("239.1.1.1:0".parse().unwrap()), "to remove it");
        assert!(parse_selected_host("10.0.0.300:80").is_err());
        assert_eq!(parse_weight(Some("")), Ok(1));
        assert!(parse_weight(Some("0")).is_err() && parse_weight(Some("x")).is_err());
    }
}
