//! Server-side HTML: escaping, the page frame every page shares, and form helpers that always
//! carry the session's CSRF token. No template engine: pages write into a `String` with
//! `write!`, and every value from outside goes through [`esc`].

use std::fmt::{self, Write as _};

use crate::auth::{Role, Session};

/// Text escaped for HTML content and quoted attribute values.
pub struct Esc<'a>(pub &'a str);

/// Escapes `text` when formatted.
pub fn esc(text: &str) -> Esc<'_> {
    Esc(text)
}

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{background:#1f3347;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center}
header a{color:#dfe9f3;text-decoration:none}header a:hover{color:#fff}
header .who{margin-left:auto}header form{display:inline}
main{padding:12px 16px;max-width:1200px}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border-bottom:1px solid #e1e4e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fde8e8}tr.off td{color:#8a9099;background:#f3f3f3}
.tag{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px}
.ok{background:#dcf5e3;color:#17692f}.over{background:#fde2e1;color:#a1261e}.out{background:#e6e6e6;color:#555}
.flash{padding:8px 12px;margin:8px 0;border-radius:4px;background:#e7f1fb}
.error{background:#fde8e8;color:#8b1c14}
.box{background:#fff;border:1px solid #e1e4e8;padding:10px 12px;margin:10px 0}
input,select,button{font:inherit}input[type=text],input[type=password],input[type=search]{padding:3px 6px}
nav.pages a{margin-right:8px}
.stale{opacity:.55}.stale::before{content:'Not refreshed: the console cannot be reached, or the session has ended (reload the page).';display:block;color:#8b1c14;margin:4px 0}
";

/// The frame every page shares: title, navigation, the signed-in user and `body`.
pub fn page(title: &str, session: Option<&Session>, flash: Option<&Flash>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{} · lars</title>\
         <meta name=viewport content=\"width=device-width\"><style>{STYLE}</style></head><body><header>\
         <strong>lars console</strong>",
        esc(title)
    );
    if let Some(session) = session {
        let _ = write!(
            out,
            "<a href=\"/services\">Services</a><a href=\"/status\">Call status</a><a href=\"/audit\">Audit log</a>\
             <a href=\"/decisions\">Decisions</a><a href=\"/problems\">Problems</a>\
             <span class=who>{} ({}) <form method=post action=\"/logout\">{}<button>Sign out</button></form></span>",
            esc(&session.user),
            session.role.name(),
            csrf_field(session)
        );
    }
    out.push_str("</header><main>");
    if let Some(flash) = flash {
        let class = if flash.error { "flash error" } else { "flash" };
        let _ = write!(out, "<p class=\"{class}\" role=status>{}</p>", esc(&flash.text));
    }
    let _ = write!(out, "<h1>{}</h1>", esc(title));
    out.push_str(body);
    out.push_str("</main></body></html>");
    out
}

/// A message shown above a page's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// The message.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(session: &Session) -> String {
    format!("<input type=hidden name=csrf value=\"{}\">", esc(&session.csrf))
}

/// Opens a form that posts to `action` with the CSRF token; close it with `</form>`.
pub fn form(session: &Session, action: &str) -> String {
    format!("<form method=post action=\"{}\">{}", esc(action), csrf_field(session))
}

/// Whether the session may change things.
pub fn can_change(session: &Session) -> bool {
    session.role == Role::Admin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>").to_string(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("plain").to_string(), "plain");
    }
}
