//! The decision log: every host state change the agents' balancers made, newest first, a page
//! of [`PAGE`] at a time, for every route, one route or one host of it. Each row is what the
//! core reported: when, which agent, the host, from which state to which, and the reason with
//! its numbers, printed as stored (escaped, never reworded).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use lars_std::store::history::{DecisionFilter, DecisionRow, NoHistory};
use lars_std::store::{RouteKey, StoreError};

use super::history::{Subject, history_link};
use super::{parse_host, parse_id, route_link, store_error};
use crate::Console;
use crate::auth::Session;
use crate::html::{esc, page};
use crate::http::{Request, Response};

/// Decisions per page.
pub const PAGE: usize = 50;
/// Pages one can go back (the store reads at most `PAGE × MAX_PAGES` rows deep); older
/// decisions are a narrower filter away.
pub const MAX_PAGES: usize = 200;

/// `from → to` of a stored change, as the balancer's states are named.
pub fn transition(change: &str) -> &'static str {
    match change {
        "overloaded" => "idle → overloaded",
        "probed" => "overloaded → probed",
        "readmitted" => "overloaded → idle (re-admitted)",
        "forgiven" => "overloaded → idle (forgiven)",
        "slow_start_done" => "slow start → full weight",
        _ => "",
    }
}

/// `YYYY-MM-DD hh:mm:ss.mmm` (UTC) of a Unix millisecond.
fn when(at_ms: u64) -> String {
    format!("{}.{:03}", super::audit::utc(at_ms / 1000), at_ms % 1000)
}

/// `/decisions[?modid=&cmdid=[&host=]][&page=N]`.
pub(super) fn get(console: &Console, request: &Request, session: &Session) -> Response {
    let route = match (request.param("modid"), request.param("cmdid")) {
        (None, None) => None,
        (modid, cmdid) => match (parse_id("modid", modid), parse_id("cmdid", cmdid)) {
            (Ok(modid), Ok(cmdid)) => Some((modid, cmdid)),
            (Err(e), _) | (_, Err(e)) => return super::error_page(Some(session), 400, "Decision log", &e),
        },
    };
    let host = match request.param("host").filter(|h| !h.is_empty()).map(|h| parse_host(Some(h))).transpose()
    {
        Ok(host) => host,
        Err(e) => return super::error_page(Some(session), 400, "Decision log", &e),
    };
    if host.is_some() && route.is_none() {
        return super::error_page(
            Some(session),
            400,
            "Decision log",
            "a host is looked up within its route: give modid and cmdid too",
        );
    }
    let page_number =
        request.param("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(0).min(MAX_PAGES - 1);
    // One more than a page: whether there is a next one.
    let filter = DecisionFilter { route, host, since_ms: 0, limit: PAGE + 1, offset: page_number * PAGE };
    let read = || -> Result<Result<Vec<DecisionRow>, NoHistory>, StoreError> {
        match console.history().open() {
            Ok(history) => Ok(Ok(history.decisions(filter)?)),
            Err(NoHistory::Unavailable(why)) => Err(StoreError::Unavailable(why)),
            Err(why) => Ok(Err(why)),
        }
    };
    let title = match (route, host) {
        (Some(key), Some(host)) => format!("Decision log of host {host} of route {} {}", key.0, key.1),
        (Some(key), None) => format!("Decision log of route {} {}", key.0, key.1),
        _ => "Decision log".to_string(),
    };
    let mut body = String::from(
        "<p>Each host state change an agent's balancer made, newest first, with the numbers it compared. ",
    );
    if let Some(key) = route {
        let _ = write!(
            body,
            "<a href=\"{}\">the route</a> · <a href=\"{}\">its history</a> · ",
            route_link(key),
            history_link(key, host)
        );
    }
    body.push_str("<a href=\"/decisions\">every route</a></p>");
    match read() {
        Err(e) => return store_error(session, &e),
        Ok(Err(why)) => {
            let _ = write!(
                body,
                "<p class=\"flash\" role=status>No decision log here: {}.</p>",
                esc(&why.to_string())
            );
        }
        Ok(Ok(mut rows)) => {
            rows.reverse(); // newest first
            let more = rows.len() > PAGE;
            rows.truncate(PAGE);
            body.push_str(&table(&rows, route.is_none()));
            body.push_str(&pages(route, host, page_number, more));
        }
    }
    Response::html(200, page(&title, Some(session), None, &body))
}

/// The table of `rows` (newest first); `with_route` adds the route column.
pub fn table(rows: &[DecisionRow], with_route: bool) -> String {
    if rows.is_empty() {
        return "<p class=empty>No decisions recorded.</p>".into();
    }
    let mut out = String::with_capacity(256 + rows.len() * 400);
    let _ = write!(
        out,
        "<table class=decisions><thead><tr><th>When (UTC)</th>{}<th>Host</th><th>Change</th><th>Reason</th><th>Agent</th></tr></thead><tbody>",
        if with_route { "<th>Route</th>" } else { "" }
    );
    for row in rows {
        let key: RouteKey = (row.modid, row.cmdid);
        let route = if with_route {
            format!("<td><a href=\"{}\">{} {}</a></td>", route_link(key), key.0, key.1)
        } else {
            String::new()
        };
        let transition = transition(&row.change);
        let change = if transition.is_empty() {
            esc(&row.change).to_string()
        } else {
            format!("{} <small>({})</small>", transition, esc(&row.change))
        };
        let _ = write!(
            out,
            "<tr data-change=\"{}\"><td>{}</td>{route}<td><a href=\"{}\">{}</a></td><td>{change}</td><td class=reason>{}</td><td>{}</td></tr>",
            esc(&row.change),
            when(row.at_ms),
            history_link(key, Some(row.host)),
            row.host,
            esc(&row.reason),
            Ipv4Addr::from_bits(row.caller)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn pages(route: Option<RouteKey>, host: Option<SocketAddr>, page: usize, more: bool) -> String {
    let base = match route {
        Some(key) => format!("/decisions?{}&amp;", Subject { key, host }.query()),
        None => "/decisions?".to_string(),
    };
    let mut out = String::from("<nav class=pages>");
    if page > 0 {
        let _ =
            write!(out, "<a href=\"{base}page=0\">newest</a><a href=\"{base}page={}\">newer</a>", page - 1);
    }
    let _ = write!(out, "page {}", page + 1);
    if more && page + 1 < MAX_PAGES {
        let _ = write!(out, " <a href=\"{base}page={}\">older</a>", page + 1);
    } else if more {
        out.push_str(" (older decisions: choose a route or a host)");
    }
    out.push_str("</nav>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(at_ms: u64, change: &str, reason: &str) -> DecisionRow {
        DecisionRow {
            at_ms,
            modid: 7,
            cmdid: 1,
            host: SocketAddr::from(([10, 0, 0, 2], 8002)),
            caller: u32::from(Ipv4Addr::new(192, 168, 1, 7)),
            change: change.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn rows_show_the_transition_and_the_reason_as_stored() {
        let rows = [
            decision(1_764_547_200_123, "overloaded", "window error rate 0.76 >= 0.70 (19/25)"),
            decision(1_764_547_201_000, "<odd>", "a <b>reason</b>"),
        ];
        let html = table(&rows, true);
        assert!(html.contains("<td>2025-12-01 00:00:00.123</td>"), "{html}");
        assert!(html.contains("idle → overloaded <small>(overloaded)</small>"));
        assert!(html.contains("<td class=reason>window error rate 0.76 &gt;= 0.70 (19/25)</td>"));
        assert!(
            html.contains("&lt;odd&gt;")
                && html.contains("a &lt;b&gt;reason&lt;/b&gt;")
                && !html.contains("<b>")
        );
        assert!(html.contains("<td>192.168.1.7</td>"));
        assert!(html.contains("/history?modid=7&amp;cmdid=1&amp;host=10.0.0.2%3A8002"));
        assert!(html.contains("<th>Route</th>") && !table(&rows, false).contains("<th>Route</th>"));
        assert_eq!(table(&[], true), "<p class=empty>No decisions recorded.</p>");
    }

    #[test]
    fn pages_go_back_a_bounded_way() {
        let first = pages(Some((7, 1)), None, 0, true);
        assert!(
            first.contains("page 1") && first.contains("/decisions?modid=7&amp;cmdid=1&amp;page=1\">older")
        );
        assert!(!first.contains("newer"));
        let last = pages(None, None, MAX_PAGES - 1, true);
        assert!(last.contains("choose a route or a host") && !last.contains(">older"));
        assert_eq!(transition("slow_start_done"), "slow start → full weight");
    }
}
