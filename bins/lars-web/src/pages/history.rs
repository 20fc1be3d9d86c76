//! A route's call history, or one host's: successes, failures and overloads over the last
//! hour, 6 hours, day or week, as server-side SVG from `CallHistory` (summed into the range's
//! buckets by the store), with a small chart per host. Read-only; a store without history (the
//! route file, a database before `lars db-init`) gets a page that says what history needs.

use std::fmt::Write as _;
use std::net::SocketAddr;

use lars_std::store::RouteKey;
use lars_std::store::StoreError;
use lars_std::store::history::NoHistory;

use super::{parse_host, parse_id, route_link, store_error};
use crate::Console;
use crate::auth::Session;
use crate::chart::history::{Frame, history_chart};
use crate::html::{esc, page};
use crate::http::{Request, Response, percent_encode};
use crate::model::history::{Range, RouteHistory, cut_to_whole_hosts};
use lars_std::time::Clock;

/// The most host buckets one page reads (hosts × columns): 100 hosts over any range is 9,600.
/// The route's own chart is read apart (a row per column), so it is whole whatever the hosts.
pub const MAX_ROWS: usize = 50_000;

/// The most hosts a route's page lists with a chart each (about 3.7 KiB of page apiece); the
/// rest are counted, each a link away.
pub const MAX_HOSTS_SHOWN: usize = 200;

/// What a history page is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    /// The route.
    pub key: RouteKey,
    /// One host of it, or all.
    pub host: Option<SocketAddr>,
}

impl Subject {
    /// The subject a request names (`modid`, `cmdid`, optionally `host`).
    pub fn of(request: &Request) -> Result<Subject, String> {
        let key = (parse_id("modid", request.param("modid"))?, parse_id("cmdid", request.param("cmdid"))?);
        let host =
            request.param("host").filter(|h| !h.is_empty()).map(|h| parse_host(Some(h))).transpose()?;
        Ok(Subject { key, host })
    }

    /// Its query string (escaped for an attribute), e.g. `modid=1&amp;cmdid=2&amp;host=…`.
    pub fn query(&self) -> String {
        let mut query = format!("modid={}&amp;cmdid={}", self.key.0, self.key.1);
        if let Some(host) = self.host {
            let _ = write!(query, "&amp;host={}", percent_encode(&host.to_string()));
        }
        query
    }

    /// Its name in titles.
    pub fn name(&self) -> String {
        match self.host {
            Some(host) => format!("host {host} of route {} {}", self.key.0, self.key.1),
            None => format!("route {} {}", self.key.0, self.key.1),
        }
    }
}

/// A link to a host's (or, with `None`, a route's) history.
pub(crate) fn history_link(key: RouteKey, host: Option<SocketAddr>) -> String {
    format!("/history?{}", Subject { key, host }.query())
}

/// `YYYY-MM-DD hh:mm` (UTC) of a Unix time, as charts label their columns.
fn minute_label(ts: u64) -> String {
    let full = super::audit::utc(ts);
    full[..16].to_string()
}

/// `/history?modid=&cmdid=[&host=][&range=1h|6h|1d|7d]`.
pub(super) fn get(console: &Console, request: &Request, session: &Session) -> Response {
    let subject = match Subject::of(request) {
        Ok(subject) => subject,
        Err(e) => return super::error_page(Some(session), 400, "History", &e),
    };
    let range = Range::parse(request.param("range"));
    let (from, to) = range.window(Clock::unix_secs());
    let read = || -> Result<Result<_, NoHistory>, StoreError> {
        // The store is let go before the history is read: the history has a lock of its own.
        let hosts = console.store().route(subject.key)?;
        let mut history = console.history();
        let (route, rows) = match history.open() {
            Ok(history) => {
                let route = match subject.host {
                    None => history.route_buckets(subject.key, (from, to), range.bucket())?,
                    Some(_) => Vec::new(),
                };
                // One more than a page reads: whether there were more.
                let rows = history.history_buckets(
                    subject.key,
                    subject.host,
                    (from, to),
                    range.bucket(),
                    MAX_ROWS + 1,
                )?;
                (route, rows)
            }
            Err(NoHistory::Unavailable(why)) => return Err(StoreError::Unavailable(why)),
            Err(why) => return Ok(Err(why)),
        };
        Ok(Ok((hosts, route, rows)))
    };
    let title = format!("History of {}", subject.name());
    let mut body = header(subject, range);
    match read() {
        Err(e) => return store_error(session, &e),
        Ok(Err(why)) => {
            let _ = write!(
                body,
                "<p class=\"flash\" role=status>No call history here: {}.</p>",
                esc(&why.to_string())
            );
        }
        Ok(Ok((hosts, route, mut rows))) => {
            let cut = cut_to_whole_hosts(&mut rows, MAX_ROWS);
            let history = RouteHistory::build(&route, &rows, range, from);
            let addrs = match subject.host {
                Some(host) => vec![host],
                None => history.hosts_to_list(&hosts),
            };
            body.push_str(&render(subject, range, &history, &addrs, cut.as_deref()));
        }
    }
    Response::html(200, page(&title, Some(session), None, &body))
}

/// The links above the chart: the ranges, the route, the decision log.
fn header(subject: Subject, range: Range) -> String {
    let mut out = String::from("<p>Range: ");
    for other in Range::ALL {
        if other == range {
            let _ = write!(out, "<strong>{}</strong> ", other.label());
        } else {
            let _ = write!(
                out,
                "<a href=\"/history?{}&amp;range={}\">{}</a> ",
                subject.query(),
                other.param(),
                other.label()
            );
        }
    }
    let _ = write!(
        out,
        "· <a href=\"{}\">the route</a> · <a href=\"/decisions?{}\">decision log</a>",
        route_link(subject.key),
        subject.query()
    );
    if subject.host.is_some() {
        let _ = write!(out, " · <a href=\"{}\">every host</a>", history_link(subject.key, None));
    }
    out.push_str(" · <a href=\"/problems\">problems</a></p>");
    out
}

/// The chart of the subject and, for a route, a row per host (`addrs`, the first
/// [`MAX_HOSTS_SHOWN`]) with a small chart. `cut`: the host rows were cut at this host (by
/// text), so it and the hosts after it were not read.
pub fn render(
    subject: Subject,
    range: Range,
    history: &RouteHistory,
    addrs: &[SocketAddr],
    cut: Option<&str>,
) -> String {
    let shown = &addrs[..addrs.len().min(MAX_HOSTS_SHOWN)];
    let mut out = String::with_capacity(16_384 + shown.len() * 4_096);
    let series = match subject.host {
        Some(host) => history.host(host),
        None => history.route.clone(),
    };
    let totals = series.totals();
    if series.calls() == 0 {
        let _ = write!(
            out,
            "<p class=empty>No calls recorded for {} in the {}.</p>",
            esc(&subject.name()),
            range.label()
        );
    } else {
        let _ = write!(
            out,
            "<p>In the {}: {} calls ok, {} failed ({} refused as overloaded); overloaded in {} of {} periods.</p>",
            range.label(),
            totals.succ,
            totals.err,
            totals.overload,
            totals.overloaded,
            series.points.len()
        );
    }
    if let Some(cut) = cut {
        let _ = write!(
            out,
            "<p class=\"flash error\">This route has more host periods than a page reads ({MAX_ROWS}): \
             the route's chart counts every host, but hosts from {} on (in the order of their text) \
             are not charted; open one on its own page.</p>",
            esc(cut)
        );
    }
    let _ = write!(
        out,
        "<div class=box id=history-chart>{}</div>",
        history_chart(
            &format!("calls of {}, {}", subject.name(), range.label()),
            &series,
            Frame::LARGE,
            &minute_label
        )
    );
    if subject.host.is_some() {
        return out;
    }
    out.push_str(
        "<h2>Hosts</h2><table class=history-hosts><thead><tr><th>host</th><th>ok</th><th>failed</th>\
         <th>overloaded</th><th>periods overloaded</th><th>calls over time</th><th></th></tr></thead><tbody>",
    );
    for addr in shown {
        if cut.is_some_and(|cut| addr.to_string().as_str() >= cut) {
            let _ = write!(
                out,
                "<tr data-host=\"{addr}\"><td><a href=\"{}&amp;range={}\">{addr}</a></td>\
                 <td colspan=6>not read here: open the host's own page</td></tr>",
                history_link(subject.key, Some(*addr)),
                range.param(),
            );
            continue;
        }
        let host_series = history.host(*addr);
        let t = host_series.totals();
        let class = if t.overloaded > 0 { " class=bad" } else { "" };
        let _ = write!(
            out,
            "<tr{class} data-host=\"{addr}\"><td><a href=\"{}&amp;range={}\">{addr}</a></td><td class=n>{}</td>\
             <td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td>\
             <td><a href=\"/decisions?{}\">decisions</a></td></tr>",
            history_link(subject.key, Some(*addr)),
            range.param(),
            t.succ,
            t.err,
            t.overload,
            t.overloaded,
            history_chart(&format!("calls of {addr}"), &host_series, Frame::SMALL, &minute_label),
            Subject { key: subject.key, host: Some(*addr) }.query(),
        );
    }
    if addrs.is_empty() {
        out.push_str("<tr><td colspan=7>This route has no hosts.</td></tr>");
    }
    out.push_str("</tbody></table>");
    if addrs.len() > shown.len() {
        let _ = write!(
            out,
            "<p class=more-hosts>… and {} more hosts, not charted here: each has its own page, linked \
             from <a href=\"{}\">the route</a>.</p>",
            addrs.len() - shown.len(),
            route_link(subject.key)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::history::testutil::{history, row};
    use lars_std::store::history::{HistoryRow, route_sums};

    #[test]
    fn a_route_page_has_its_chart_and_a_row_per_host() {
        let (from, _) = Range::Hour.window(7_200);
        let rows = [row(from, 80, 50, 0, false), row(from + 60, 81, 1, 20, true)];
        let history = history(&rows, Range::Hour, from);
        let subject = Subject { key: (7, 1), host: None };
        let hosts = [
            SocketAddr::from(([10, 0, 0, 1], 80)),
            SocketAddr::from(([10, 0, 0, 1], 81)),
            "[2001:db8::1]:80".parse().unwrap(),
        ];
        let html = render(subject, Range::Hour, &history, &hosts, None);
        assert!(html.contains("51 calls ok, 20 failed"), "{html}");
        assert_eq!(html.matches("<svg").count(), 4, "the route's chart and one per host");
        assert!(html.contains("data-calls=\"71\""));
        assert!(html.contains("<tr class=bad data-host=\"10.0.0.1:81\">"));
        assert!(html.contains("host=%5B2001%3Adb8%3A%3A1%5D%3A80"), "hosts are encoded in links");
        assert!(html.contains("no calls recorded in this range"), "the IPv6 host has none");
    }

    #[test]
    fn a_large_route_lists_its_first_hosts_and_counts_the_rest() {
        let (from, _) = Range::Hour.window(7_200);
        let hosts: Vec<SocketAddr> =
            (1..=MAX_HOSTS_SHOWN as u16 + 5).map(|port| SocketAddr::from(([10, 0, 0, 1], port))).collect();
        let rows: Vec<HistoryRow> =
            hosts.iter().map(|h| HistoryRow { host: *h, ..row(from, 1, 1, 0, false) }).collect();
        let history = history(&rows, Range::Hour, from);
        let html = render(Subject { key: (7, 1), host: None }, Range::Hour, &history, &hosts, None);
        assert_eq!(
            html.matches("<svg").count(),
            1 + MAX_HOSTS_SHOWN,
            "the route's chart and the first hosts'"
        );
        assert!(html.contains("… and 5 more hosts"), "{html}");
        assert!(html.contains(&format!("{} calls ok", MAX_HOSTS_SHOWN + 5)), "the route counts every host");
    }

    #[test]
    fn hosts_past_a_cut_are_said_not_read() {
        let (from, _) = Range::Hour.window(7_200);
        let hosts = [SocketAddr::from(([10, 0, 0, 10], 80)), SocketAddr::from(([10, 0, 0, 2], 80))];
        let rows = [HistoryRow { host: hosts[0], ..row(from, 1, 5, 0, false) }];
        let all = [rows[0], HistoryRow { host: hosts[1], ..rows[0] }];
        let history = RouteHistory::build(&route_sums(&all), &rows, Range::Hour, from);
        let html =
            render(Subject { key: (7, 1), host: None }, Range::Hour, &history, &hosts, Some("10.0.0.2:80"));
        assert!(html.contains("hosts from 10.0.0.2:80 on"), "{html}");
        assert!(html.contains("10 calls ok"), "the route's chart is whole: {html}");
        assert_eq!(html.matches("<svg").count(), 2, "the route's and 10.0.0.10's");
        assert!(html.contains("not read here"));
    }

    #[test]
    fn empty_history_is_shown_as_such() {
        let (from, _) = Range::Week.window(1_000_000);
        let history = RouteHistory::build(&[], &[], Range::Week, from);
        let subject = Subject { key: (7, 1), host: Some(SocketAddr::from(([10, 0, 0, 1], 80))) };
        let html = render(subject, Range::Week, &history, &[], None);
        assert!(html.contains("No calls recorded for host 10.0.0.1:80 of route 7 1 in the last week."));
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("data-calls=\"0\""));
    }

    #[test]
    fn header_links_every_range() {
        let html = header(Subject { key: (7, 1), host: None }, Range::Day);
        assert!(html.contains("<strong>last day</strong>"));
        for range in ["1h", "6h", "7d"] {
            assert!(html.contains(&format!("range={range}")), "{html}");
        }
        assert!(html.contains("/decisions?modid=7&amp;cmdid=1"));
        assert_eq!(minute_label(1_764_547_200 + 3661), "2025-12-01 01:01");
    }
}
