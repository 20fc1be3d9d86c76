//! The HTTP seam: lars-web's own [`Request`] and [`Response`], and [`serve`], which runs a
//! handler on `tiny_http`. Nothing else in the crate names `tiny_http`, so the server crate can
//! be swapped by rewriting this file.
//!
//! Limits: a request body over [`MAX_BODY`] is refused (413) unread; header values that are not
//! UTF-8 are ignored. tiny_http gives each connection a thread from its pool, which is why the
//! console listens on loopback by default.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The largest request body read (forms are small).
pub const MAX_BODY: usize = 64 * 1024;

/// The request methods the console serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Reads; never changes state.
    Get,
    /// Form posts.
    Post,
    /// Anything else (answered with 405).
    Other,
}

/// A request, already read: path, query, form fields and cookies decoded.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// Query parameters, in order (a name may repeat).
    pub query: Vec<(String, String)>,
    /// Form fields of an `application/x-www-form-urlencoded` body, in order.
    pub form: Vec<(String, String)>,
    /// Cookies by name.
    pub cookies: BTreeMap<String, String>,
    /// Where the request came from.
    pub remote: IpAddr,
}

impl Request {
    /// A query parameter (the first of that name).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A form field (the first of that name).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a form field (checkboxes).
    pub fn fields<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.form.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A response: status, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers besides `Content-Length`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An HTML page.
    pub fn html(status: u16, body: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
        }
    }

    /// A redirect after a post (303, so the browser follows with a GET).
    pub fn see_other(location: &str) -> Response {
        Response { status: 303, headers: vec![("Location".into(), location.into())], body: Vec::new() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: String) -> Response {
        self.headers.push((name.into(), value));
        self
    }
}

/// Decodes `application/x-www-form-urlencoded` text (also a query string).
pub fn parse_urlencoded(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// Percent-decoding with `+` as a space; invalid escapes are kept as they are, invalid UTF-8
/// becomes U+FFFD.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_cookies(header: &str) -> BTreeMap<String, String> {
    header
        .split(';')
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// The console's request handler.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running server; dropping it stops the workers.
pub struct Running {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Listens on `listen` and runs `handler` for every request on `threads` workers.
pub fn serve(listen: SocketAddr, threads: usize, handler: Arc<Handler>) -> std::io::Result<Running> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let server = tiny_http::Server::from_listener(listener, None).map_err(std::io::Error::other)?;
    let server = Arc::new(server);
    let workers = (0..threads.max(1))
        .map(|_| {
            let (server, handler) = (Arc::clone(&server), Arc::clone(&handler));
            std::thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    answer(request, handler.as_ref());
                }
            })
        })
        .collect();
    Ok(Running { server, addr, workers })
}

fn answer(mut raw: tiny_http::Request, handler: &Handler) {
    let method = match raw.method() {
        tiny_http::Method::Get | tiny_http::Method::Head => Method::Get,
        tiny_http::Method::Post => Method::Post,
        _ => Method::Other,
    };
    let (path, query) = match raw.url().split_once('?') {
        Some((path, query)) => (percent_decode(path), parse_urlencoded(query)),
        None => (percent_decode(raw.url()), Vec::new()),
    };
    let header = |name: &'static str| {
        raw.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str().to_string())
    };
    let cookies = header("Cookie").map(|c| parse_cookies(&c)).unwrap_or_default();
    let is_form = header("Content-Type").is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let remote = raw.remote_addr().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), SocketAddr::ip);
    let mut form = Vec::new();
    if method == Method::Post {
        if raw.body_length().is_some_and(|len| len > MAX_BODY) {
            let _ =
                raw.respond(tiny_http::Response::from_string("request body too large").with_status_code(413));
            return;
        }
        let mut body = Vec::new();
        let read = raw.as_reader().take(MAX_BODY as u64 + 1).read_to_end(&mut body);
        if read.is_err() || body.len() > MAX_BODY {
            let _ =
                raw.respond(tiny_http::Response::from_string("request body too large").with_status_code(413));
            return;
        }
        if is_form {
            form = parse_urlencoded(&String::from_utf8_lossy(&body));
        }
    }
    let request = Request { method, path, query, form, cookies, remote };
    let response = handler(&request);
    let mut reply = tiny_http::Response::from_data(response.body).with_status_code(response.status);
    for (name, value) in response.headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            reply.add_header(header);
        }
    }
    let _ = raw.respond(reply);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_queries_decode() {
        assert_eq!(
            parse_urlencoded("a=1&b=x+y%21&c=%zz&&d"),
            [("a", "1"), ("b", "x y!"), ("c", "%zz"), ("d", "")].map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode(&percent_encode("a b&c=d/é")), "a b&c=d/é");
        let cookies = parse_cookies("a=1; lars_session=x:y ; b");
        assert_eq!(cookies["lars_session"], "x:y");
    }
}
