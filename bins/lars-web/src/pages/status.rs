//! Call status: per route and host, successes, failures and the overload state, with an SVG
//! chart per route. The page works without JavaScript (reload it); with it, `/refresh.js`
//! replaces the status fragment every 500 ms without reloading, as the original console did,
//! from the console's shared status cache (one store read per 500 ms, however many pages).

use std::fmt::Write as _;

use lars_std::store::RouteKey;

use super::{parse_id, route_link, store_error};
use crate::Console;
use crate::auth::Session;
use crate::chart::calls_chart;
use crate::html::{esc, page};
use crate::http::{Request, Response};
use crate::model::{CallTable, HostCalls, HostState, PAGE_SIZE};

/// How often the fragment is fetched again.
const REFRESH_MS: u32 = 500;
/// The longest wait between fetches after failures (each failure doubles the wait).
const REFRESH_MAX_MS: u32 = 16_000;

/// The script: fetch the fragment named by `data-fragment` and swap it in, [`REFRESH_MS`]
/// after the last fetch ended, so that a slow console never has requests piling up. A failed
/// fetch leaves the last good fragment in place, marks it stale and doubles the wait (up to
/// [`REFRESH_MAX_MS`]), so that pages left open through an outage do not hammer the console
/// when it comes back; a tab in the background fetches nothing. A redirect (the session has
/// ended, and the answer is the way to the sign-in page) is a failure too, not a fragment.
pub(super) fn script() -> Response {
    let js = format!(
        "document.querySelectorAll('[data-fragment]').forEach(function(el){{\
         var wait={REFRESH_MS};\
         function next(){{setTimeout(tick,wait);}}\
         function tick(){{if(document.hidden){{next();return;}}\
         fetch(el.dataset.fragment,{{credentials:'same-origin',redirect:'error'}})\
         .then(function(r){{if(!r.ok)throw r.status;return r.text();}})\
         .then(function(t){{el.innerHTML=t;el.classList.remove('stale');wait={REFRESH_MS};}})\
         .catch(function(){{el.classList.add('stale');wait=Math.min(wait*2,{REFRESH_MAX_MS});}})\
         .then(next);}}\
         next();}});"
    );
    Response {
        status: 200,
        headers: vec![("Content-Type".into(), "text/javascript; charset=utf-8".into())],
        body: js.into_bytes(),
    }
}

/// The live part of a page: the fragment as it is now (so the page works without
/// JavaScript), and the script that refreshes it.
pub(super) fn live(console: &Console, key: Option<RouteKey>) -> String {
    let query = match key {
        Some((modid, cmdid)) => format!("?modid={modid}&amp;cmdid={cmdid}"),
        None => String::new(),
    };
    let inner = render(console, key, 0).unwrap_or_else(|e| {
        format!("<p class=\"flash error\">Store unavailable: {}</p>", esc(&e.to_string()))
    });
    format!(
        "<div id=status data-fragment=\"/status/fragment{query}\">{inner}</div><script src=\"/refresh.js\" defer></script>"
    )
}

fn key_of(request: &Request) -> Result<Option<RouteKey>, String> {
    match (request.param("modid"), request.param("cmdid")) {
        (None, None) => Ok(None),
        (modid, cmdid) => Ok(Some((parse_id("modid", modid)?, parse_id("cmdid", cmdid)?))),
    }
}

/// `/status[?modid=&cmdid=]`: the page, with the fragment rendered in (so it works without
/// JavaScript).
pub(super) fn get(console: &Console, request: &Request, session: &Session) -> Response {
    let key = match key_of(request) {
        Ok(key) => key,
        Err(e) => return super::error_page(Some(session), 400, "Call status", &e),
    };
    let inner = match render(console, key, page_of(request)) {
        Ok(inner) => inner,
        Err(e) => return store_error(session, &e),
    };
    let query = match key {
        Some((modid, cmdid)) => format!("?modid={modid}&amp;cmdid={cmdid}"),
        None => format!("?page={}", page_of(request)),
    };
    let body = format!(
        "<p>Refreshed every {REFRESH_MS} ms from what lars-reporter stores.</p>\
         <div id=status data-fragment=\"/status/fragment{query}\">{inner}</div><script src=\"/refresh.js\" defer></script>"
    );
    let title = match key {
        Some((modid, cmdid)) => format!("Call status of route {modid} {cmdid}"),
        None => "Call status".into(),
    };
    Response::html(200, page(&title, Some(session), None, &body))
}

fn page_of(request: &Request) -> usize {
    request.param("page").and_then(|p| p.parse().ok()).unwrap_or(0)
}

/// `/status/fragment`: only the fragment.
pub(super) fn fragment(console: &Console, request: &Request, session: &Session) -> Response {
    let key = match key_of(request) {
        Ok(key) => key,
        Err(e) => return super::error_page(Some(session), 400, "Call status", &e),
    };
    match render(console, key, page_of(request)) {
        Ok(inner) => Response::html(200, inner),
        Err(e) => Response::html(
            503,
            format!("<p class=\"flash error\">Store unavailable: {}</p>", esc(&e.to_string())),
        ),
    }
}

fn render(
    console: &Console,
    key: Option<RouteKey>,
    page: usize,
) -> Result<String, lars_std::store::StoreError> {
    let mut out = String::new();
    match key {
        Some(key) => {
            // One route: its own rows, read through the primary key, fresh on every refresh.
            let (hosts, rows) = {
                let mut store = console.store();
                (store.route(key)?, store.status(Some(key))?)
            };
            route_box(&mut out, key, &hosts, &crate::model::call_table(&rows));
        }
        None => {
            // From the cached overview: a refresh costs the store nothing more.
            let calls = console.calls()?;
            let overview = console.overview()?;
            let with_calls: Vec<RouteKey> = calls.keys().copied().collect();
            let _ = write!(out, "<p>{} routes have call statistics.</p>", with_calls.len());
            for key in with_calls.iter().skip(page * PAGE_SIZE).take(PAGE_SIZE) {
                let hosts = overview.routes.get(key).map_or(&[][..], Vec::as_slice);
                route_box(&mut out, *key, hosts, &calls);
            }
            let pages = with_calls.len().div_ceil(PAGE_SIZE);
            if pages > 1 {
                out.push_str("<nav class=pages>");
                for p in 0..pages.min(100) {
                    let _ = write!(out, "<a href=\"/status?page={p}\">{}</a>", p + 1);
                }
                out.push_str("</nav>");
            }
        }
    }
    Ok(out)
}

/// One route's chart and table: every host of the route, and hosts that report calls but are
/// no longer in the route.
fn route_box(
    out: &mut String,
    key: RouteKey,
    hosts: &[lars_std::store::console::HostEntry],
    calls: &CallTable,
) {
    let route_calls = calls.get(&key);
    let mut rows: Vec<(String, HostCalls, HostState)> = hosts
        .iter()
        .map(|h| {
            let c = route_calls.and_then(|c| c.get(&h.addr)).copied().unwrap_or_default();
            (h.addr.to_string(), c, crate::model::host_state(h, Some(&c)))
        })
        .collect();
    if let Some(route_calls) = route_calls {
        for (addr, c) in route_calls {
            if !hosts.iter().any(|h| h.addr == *addr) {
                let state = if c.overloaded { HostState::Overloaded } else { HostState::Healthy };
                rows.push((format!("{addr} (not in the route)"), *c, state));
            }
        }
    }
    let _ = write!(
        out,
        "<div class=box data-route=\"{} {}\"><h3><a href=\"{}\">Route {} {}</a></h3>",
        key.0,
        key.1,
        route_link(key),
        key.0,
        key.1
    );
    if rows.is_empty() {
        out.push_str("<p>No hosts and no calls.</p></div>");
        return;
    }
    out.push_str(&calls_chart(&format!("calls of route {} {}", key.0, key.1), &rows));
    out.push_str("<table><thead><tr><th>host</th><th>ok</th><th>failed</th><th>state</th><th>agents</th><th>last report (UTC)</th></tr></thead><tbody>");
    for (label, c, state) in &rows {
        let (class, tag) = match state {
            HostState::Healthy => ("", "<span class=\"tag ok\">healthy</span>"),
            HostState::Overloaded => (" class=bad", "<span class=\"tag over\">overloaded</span>"),
            HostState::OutOfRotation => (" class=off", "<span class=\"tag out\">out of rotation</span>"),
        };
        let when = if c.ts == 0 { "–".to_string() } else { super::audit::utc(c.ts) };
        let _ = write!(
            out,
            "<tr{class}><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{tag}</td><td class=n>{}</td><td>{when}</td></tr>",
            esc(label),
            c.succ,
            c.err,
            c.callers
        );
    }
    out.push_str("</tbody></table></div>");
}
