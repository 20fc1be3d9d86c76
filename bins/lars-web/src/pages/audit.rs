//! The audit log: who changed what, when and from where; every route's or one route's.

use std::fmt::Write as _;

use super::{cell, parse_id, route_link, store_error};
use crate::Console;
use crate::auth::Session;
use crate::html::page;
use crate::http::{Request, Response};
use lars_std::store::console::AuditEntry;

/// The most entries a page shows.
pub(super) const LIMIT: usize = 200;

/// `/audit[?modid=&cmdid=]`.
pub(super) fn get(console: &Console, request: &Request, session: &Session) -> Response {
    let key = match (request.param("modid"), request.param("cmdid")) {
        (None, None) => None,
        (modid, cmdid) => match (parse_id("modid", modid), parse_id("cmdid", cmdid)) {
            (Ok(modid), Ok(cmdid)) => Some((modid, cmdid)),
            (Err(e), _) | (_, Err(e)) => return super::error_page(Some(session), 400, "Audit log", &e),
        },
    };
    let entries = match console.store().audit(key, LIMIT) {
        Ok(entries) => entries,
        Err(e) => return store_error(session, &e),
    };
    let title = match key {
        Some((modid, cmdid)) => format!("Audit log of route {modid} {cmdid}"),
        None => "Audit log".to_string(),
    };
    let mut body = String::new();
    if let Some(key) = key {
        let _ = write!(
            body,
            "<p><a href=\"{}\">Back to the route</a> · <a href=\"/audit\">every route</a></p>",
            route_link(key)
        );
    }
    body.push_str(&table(&entries));
    Response::html(200, page(&title, Some(session), None, &body))
}

/// A table of audit entries, newest first.
pub(super) fn table(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "<p>No changes recorded.</p>".into();
    }
    let mut out = String::from(
        "<table class=audit><thead><tr><th>When (UTC)</th><th>User</th><th>From</th><th>Change</th><th>Route</th><th>What</th></tr></thead><tbody>",
    );
    for entry in entries {
        let route = match entry.action.as_str() {
            "describe-module" => format!("<td>module {}</td>", entry.key.0),
            "describe-command" => format!("<td>command {}</td>", entry.key.1),
            _ => {
                format!("<td><a href=\"{}\">{} {}</a></td>", route_link(entry.key), entry.key.0, entry.key.1)
            }
        };
        let _ = write!(
            out,
            "<tr>{}{}{}{}{route}{}</tr>",
            cell(&utc(entry.ts)),
            cell(&entry.user),
            cell(&entry.address),
            cell(&entry.action),
            cell(&entry.detail)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `YYYY-MM-DD hh:mm:ss` of a Unix time (UTC).
pub(crate) fn utc(ts: u64) -> String {
    let utc = lars_std::time::UtcTime::from_unix_micros(ts.saturating_mul(1_000_000));
    format!("{} {}", utc.date(), utc.time())
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(super::utc(1_764_547_200 + 3661), "2025-12-01 01:01:01");
    }
}
