//! The service list: every route with its descriptions and host counts, searched and paged
//! from the console's cached list; a route without a healthy host stands out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lars_std::store::RouteKey;

use super::{flash_of, route_link, store_error};
use crate::Console;
use crate::auth::Session;
use crate::html::{can_change, esc, form, page};
use crate::http::{Request, Response, percent_encode};
use crate::model::{PAGE_SIZE, ServiceList, ServiceQuery};

/// `/services?q=&unhealthy=1&page=N`.
pub(super) fn get(console: &Console, request: &Request, session: &Session) -> Response {
    let list = match console.services() {
        Ok(list) => list,
        Err(e) => return store_error(session, &e),
    };
    let query = ServiceQuery {
        search: request.param("q").unwrap_or("").to_string(),
        unhealthy_only: request.param("unhealthy").is_some_and(|v| !v.is_empty()),
        page: request.param("page").and_then(|p| p.parse().ok()).unwrap_or(0),
    };
    // A problems report that cannot be made leaves the list unmarked, not failed.
    let marks = console.problem_marks().unwrap_or_default();
    let mut body = render_marked(&list, &query, &marks);
    if can_change(session) {
        let _ = write!(
            body,
            "<div class=box><h2>Add a route or a host</h2>{}\
             <label>modid <input type=text name=modid size=8 required></label> \
             <label>cmdid <input type=text name=cmdid size=8 required></label> \
             <label>host <input type=text name=host size=22 placeholder=\"10.0.0.7:8080\" required></label> \
             <label>weight <input type=text name=weight size=4 value=1></label> \
             <button>Add</button></form></div>",
            form(session, "/route/add-host")
        );
    }
    Response::html(200, page("Services", Some(session), flash_of(request).as_ref(), &body))
}

/// The list part of the page: the search form, the table and the page links.
pub fn render(list: &ServiceList, query: &ServiceQuery) -> String {
    render_marked(list, query, &BTreeMap::new())
}

/// [`render`], with the routes in `marks` tagged with their problem (a link to the problems
/// page).
pub fn render_marked(list: &ServiceList, query: &ServiceQuery, marks: &BTreeMap<RouteKey, &str>) -> String {
    let found = list.page(query);
    let mut out = String::with_capacity(4096 + found.rows.len() * 400);
    let _ = write!(
        out,
        "<form method=get action=\"/services\" class=box><input type=search name=q value=\"{}\" \
         placeholder=\"modid, cmdid or description\" size=40> <label><input type=checkbox name=unhealthy value=1{}> \
         only routes without a healthy host</label> <button>Search</button></form>\
         <p>{} routes match, {} of them without a healthy host (store version {}).</p>",
        esc(&query.search),
        if query.unhealthy_only { " checked" } else { "" },
        found.matching,
        found.unhealthy,
        list.version
    );
    out.push_str(
        "<table class=services><thead><tr><th>modid</th><th>cmdid</th><th>module</th><th>command</th>\
         <th>hosts</th><th>healthy</th><th>overloaded</th><th>out of rotation</th></tr></thead><tbody>",
    );
    for row in &found.rows {
        let class = if row.healthy == 0 { " class=bad" } else { "" };
        let mark = match marks.get(&row.key) {
            Some(problem) => {
                format!(" <a href=\"/problems\" class=\"tag over\" data-problem>{}</a>", esc(problem))
            }
            None => String::new(),
        };
        let _ = write!(
            out,
            "<tr{class}><td><a href=\"{link}\">{}</a></td><td><a href=\"{link}\">{}</a>{mark}</td><td>{}</td><td>{}</td>\
             <td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            row.key.0,
            row.key.1,
            esc(&row.module),
            esc(&row.command),
            row.hosts,
            row.healthy,
            row.overloaded,
            row.out_of_rotation,
            link = route_link(row.key),
        );
    }
    out.push_str("</tbody></table>");
    let pages = found.matching.div_ceil(PAGE_SIZE);
    if pages > 1 {
        let link = |page: usize, text: &str| {
            format!(
                "<a href=\"/services?q={}&amp;unhealthy={}&amp;page={page}\">{text}</a>",
                percent_encode(&query.search),
                if query.unhealthy_only { "1" } else { "" }
            )
        };
        out.push_str("<nav class=pages>");
        if query.page > 0 {
            out.push_str(&link(0, "first"));
            out.push_str(&link(query.page - 1, "previous"));
        }
        let _ = write!(out, "page {} of {pages} ", query.page + 1);
        if query.page + 1 < pages {
            out.push_str(&link(query.page + 1, "next"));
            out.push_str(&link(pages - 1, "last"));
        }
        out.push_str("</nav>");
    }
    out
}
