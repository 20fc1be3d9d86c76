//! One route: its descriptions, every host (out of rotation and overloaded ones included) with
//! filters, its calls, its audit entries, and the forms that change it. Each change is one
//! store transaction with its version bump, change-log row and audit record.

use std::fmt::Write as _;

use lars_std::store::RouteKey;
use lars_std::store::console::{Edit, HostEntry, Named};

use super::{
    actor, audit, flash_of, parse_host, parse_id, parse_selected_host, parse_weight, route_link, status,
    store_error,
};
use crate::Console;
use crate::auth::Session;
use crate::html::{can_change, esc, form, page};
use crate::http::{Request, Response, percent_encode};
use crate::model::{HostState, host_state};

fn key_of(request: &Request, from_form: bool) -> Result<RouteKey, String> {
    let get = |name| if from_form { request.field(name) } else { request.param(name) };
    Ok((parse_id("modid", get("modid"))?, parse_id("cmdid", get("cmdid"))?))
}

/// Which hosts the route page lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Show {
    All,
    Healthy,
    Overloaded,
    Out,
}

/// `/route?modid=&cmdid=&show=all|healthy|overloaded|out`.
pub(super) fn get(console: &Console, request: &Request, session: &Session) -> Response {
    let key = match key_of(request, false) {
        Ok(key) => key,
        Err(e) => return super::error_page(Some(session), 400, "Route", &e),
    };
    let show = match request.param("show") {
        Some("healthy") => Show::Healthy,
        Some("overloaded") => Show::Overloaded,
        Some("out") => Show::Out,
        _ => Show::All,
    };
    let read = || -> Result<_, lars_std::store::StoreError> {
        let mut store = console.store();
        let caps = store.capabilities()?;
        let hosts = store.route(key)?;
        let entries = store.audit(Some(key), 20)?;
        let names = store.names(key)?;
        let calls = crate::model::call_table(&store.status(Some(key))?);
        Ok((caps, hosts, entries, names, calls))
    };
    let (caps, hosts, entries, (module, command), calls) = match read() {
        Ok(read) => read,
        Err(e) => return store_error(session, &e),
    };
    let route_calls = calls.get(&key);
    let admin = can_change(session);
    let mut body = String::new();
    let _ = write!(
        body,
        "<p>Module: <strong>{}</strong> · Command: <strong>{}</strong> · <a href=\"/status?modid={}&amp;cmdid={}\">call status</a> · \
         <a href=\"/audit?modid={}&amp;cmdid={}\">audit log</a> · <a href=\"{}\">call history</a> · \
         <a href=\"/decisions?modid={}&amp;cmdid={}\">decision log</a></p>",
        if module.is_empty() { "(no description)".into() } else { esc(&module).to_string() },
        if command.is_empty() { "(no description)".into() } else { esc(&command).to_string() },
        key.0,
        key.1,
        key.0,
        key.1,
        super::history::history_link(key, None),
        key.0,
        key.1
    );
    if !caps.rotation {
        body.push_str(
            "<p class=flash>Taking a host out of rotation needs the <code>RouteData.disabled</code> column: \
             run <code>lars db-init</code> on this database.</p>",
        );
    }
    if !caps.audit {
        body.push_str(
            "<p class=\"flash error\">This database has no <code>RouteAudit</code> table, so changes are refused \
             until <code>lars db-init</code> makes it.</p>",
        );
    }
    // Filters.
    body.push_str("<p>Show: ");
    for (value, label) in [
        ("all", "all hosts"),
        ("healthy", "healthy"),
        ("overloaded", "overloaded"),
        ("out", "out of rotation"),
    ] {
        let _ = write!(body, "<a href=\"{}&amp;show={value}\">{label}</a> ", route_link(key));
    }
    body.push_str("</p>");
    let shown: Vec<(&HostEntry, HostState)> = hosts
        .iter()
        .map(|h| (h, host_state(h, route_calls.and_then(|c| c.get(&h.addr)))))
        .filter(|(_, state)| match show {
            Show::All => true,
            Show::Healthy => *state == HostState::Healthy,
            Show::Overloaded => *state == HostState::Overloaded,
            Show::Out => *state == HostState::OutOfRotation,
        })
        .collect();
    if hosts.is_empty() {
        body.push_str("<p>This route has no hosts.</p>");
    }
    if admin {
        body.push_str(&form(session, "/route/hosts"));
        let _ = write!(
            body,
            "<input type=hidden name=modid value={}><input type=hidden name=cmdid value={}>",
            key.0, key.1
        );
    }
    let _ = write!(
        body,
        "<table class=hosts><thead><tr>{}<th>host</th><th>weight</th><th>state</th><th>ok</th><th>failed</th><th>agents</th></tr></thead><tbody>",
        if admin { "<th>select</th>" } else { "" }
    );
    for (host, state) in &shown {
        let calls = route_calls.and_then(|c| c.get(&host.addr)).copied().unwrap_or_default();
        let (class, tag) = match state {
            HostState::Healthy => ("", "<span class=\"tag ok\">healthy</span>"),
            HostState::Overloaded => (" class=bad", "<span class=\"tag over\">overloaded</span>"),
            HostState::OutOfRotation => (" class=off", "<span class=\"tag out\">out of rotation</span>"),
        };
        let select = if admin {
            format!(
                "<td><input type=checkbox name=host value=\"{}\" aria-label=\"select {}\"></td>",
                host.addr, host.addr
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr{class} data-host=\"{}\">{select}<td>{} <small><a href=\"{}\">history</a> · \
             <a href=\"/decisions?modid={}&amp;cmdid={}&amp;host={}\">decisions</a></small></td><td class=n>{}</td><td>{tag}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            host.addr,
            host.addr,
            super::history::history_link(key, Some(host.addr)),
            key.0,
            key.1,
            percent_encode(&host.addr.to_string()),
            host.weight,
            calls.succ,
            calls.err,
            calls.callers
        );
    }
    body.push_str("</tbody></table>");
    if admin {
        let _ = write!(
            body,
            "<p>Selected hosts: <label>weight <input type=text name=weight size=4></label> \
             <button name=action value=weight>Set weight</button> \
             <button name=action value=out{off}>Take out of rotation</button> \
             <button name=action value=in{off}>Put back in rotation</button> \
             <button name=action value=remove>Delete</button></p></form>",
            off = if caps.rotation { "" } else { " disabled" }
        );
        let _ = write!(
            body,
            "<div class=box><h2>Add a host</h2>{}<input type=hidden name=modid value={}><input type=hidden name=cmdid value={}>\
             <label>host <input type=text name=host size=22 placeholder=\"10.0.0.7:8080\" required></label> \
             <label>weight <input type=text name=weight size=4 value=1></label> <button>Add host</button></form></div>",
            form(session, "/route/add-host"),
            key.0,
            key.1
        );
        if caps.descriptions {
            for (kind, id, text, label) in
                [("module", key.0, &module, "Module"), ("command", key.1, &command, "Command")]
            {
                let _ = write!(
                    body,
                    "<div class=box>{}<input type=hidden name=kind value={kind}><input type=hidden name=id value={id}>\
                     <input type=hidden name=back value=\"{}\">\
                     <label>{label} {id} description <input type=text name=text size=50 maxlength=255 value=\"{}\"></label> \
                     <button>Save</button></form></div>",
                    form(session, "/describe"),
                    route_link(key),
                    esc(text)
                );
            }
        }
        let _ = write!(
            body,
            "<div class=box>{}<input type=hidden name=modid value={}><input type=hidden name=cmdid value={}>\
             <label><input type=checkbox name=confirm value=yes required> delete every host of this route</label> \
             <button>Delete the route</button></form></div>",
            form(session, "/route/delete"),
            key.0,
            key.1
        );
    }
    body.push_str("<h2>Calls</h2>");
    body.push_str(&status::live(console, Some(key)));
    body.push_str("<h2>Recent changes</h2>");
    body.push_str(&audit::table(&entries));
    let title = format!("Route {} {}", key.0, key.1);
    Response::html(200, page(&title, Some(session), flash_of(request).as_ref(), &body))
}

/// Where a change goes back to, with its message.
fn back(key: RouteKey, message: Result<String, String>) -> Response {
    let (name, text) = match message {
        Ok(text) => ("done", text),
        Err(text) => ("failed", text),
    };
    Response::see_other(&format!("/route?modid={}&cmdid={}&{name}={}", key.0, key.1, percent_encode(&text)))
}

fn apply(console: &Console, request: &Request, session: &Session, key: RouteKey, edit: Edit) -> Response {
    let result = console.apply(key, &edit, &super::actor(session, request));
    match result {
        Ok(0) => back(key, Err(format!("Nothing changed ({}: {}).", edit.action(), edit.detail()))),
        Ok(n) => back(
            key,
            Ok(format!(
                "Done: {} {} ({n} host{}).",
                edit.action(),
                edit.detail(),
                if n == 1 { "" } else { "s" }
            )),
        ),
        Err(e) => store_error(session, &e),
    }
}

/// Adds a host (and so, for a new `(modid, cmdid)`, the route).
pub(super) fn add_host(console: &Console, request: &Request, session: &Session) -> Response {
    let parsed = key_of(request, true).and_then(|key| {
        Ok((key, parse_host(request.field("host"))?, parse_weight(request.field("weight"))?))
    });
    match parsed {
        Ok((key, addr, weight)) => apply(console, request, session, key, Edit::AddHost { addr, weight }),
        Err(e) => super::error_page(Some(session), 400, "Not added", &format!("{e}. Nothing was changed.")),
    }
}

/// The selection form: weight, out of rotation, back in rotation, delete.
pub(super) fn change_hosts(console: &Console, request: &Request, session: &Session) -> Response {
    let key = match key_of(request, true) {
        Ok(key) => key,
        Err(e) => return super::error_page(Some(session), 400, "Not changed", &e),
    };
    let addrs: Result<Vec<_>, String> = request.fields("host").map(parse_selected_host).collect();
    let addrs = match addrs {
        Ok(addrs) if addrs.is_empty() => return back(key, Err("Select at least one host.".into())),
        Ok(addrs) => addrs,
        Err(e) => return back(key, Err(e)),
    };
    let edit = match request.field("action") {
        Some("weight") => match parse_weight(request.field("weight")) {
            Ok(weight) => Edit::SetWeight { addrs, weight },
            Err(e) => return back(key, Err(format!("{e}. Nothing was changed."))),
        },
        Some("out") => Edit::SetInRotation { addrs, in_rotation: false },
        Some("in") => Edit::SetInRotation { addrs, in_rotation: true },
        Some("remove") => Edit::RemoveHosts(addrs),
        _ => return back(key, Err("Choose what to do with the selected hosts.".into())),
    };
    apply(console, request, session, key, edit)
}

/// Deletes every host of a route.
pub(super) fn delete(console: &Console, request: &Request, session: &Session) -> Response {
    let key = match key_of(request, true) {
        Ok(key) => key,
        Err(e) => return super::error_page(Some(session), 400, "Not deleted", &e),
    };
    if request.field("confirm") != Some("yes") {
        return back(key, Err("Tick the box to confirm deleting the route.".into()));
    }
    let result = console.apply(key, &Edit::RemoveRoute, &actor(session, request));
    match result {
        Ok(n) => Response::see_other(&format!(
            "/services?done={}",
            percent_encode(&format!("Route {} {} deleted ({n} hosts).", key.0, key.1))
        )),
        Err(e) => store_error(session, &e),
    }
}

/// Sets a module's or command's description.
pub(super) fn describe(console: &Console, request: &Request, session: &Session) -> Response {
    let named = match request.field("kind") {
        Some("module") => Named::Module,
        Some("command") => Named::Command,
        _ => {
            return super::error_page(
                Some(session),
                400,
                "Not saved",
                "Say whether a module or a command is described.",
            );
        }
    };
    let id = match parse_id("id", request.field("id")) {
        Ok(id) => id as u32,
        Err(e) => return super::error_page(Some(session), 400, "Not saved", &e),
    };
    let text = request.field("text").unwrap_or("").trim();
    if text.chars().count() > 255 || text.chars().any(char::is_control) {
        return super::error_page(
            Some(session),
            400,
            "Not saved",
            "A description is at most 255 characters on one line.",
        );
    }
    let result = console.describe(named, id, text, &actor(session, request));
    match result {
        Ok(()) => {
            let back = request.field("back").filter(|b| b.starts_with("/route?")).unwrap_or("/services");
            let back = back.replace("&amp;", "&");
            let joint = if back.contains('?') { '&' } else { '?' };
            Response::see_other(&format!("{back}{joint}done={}", percent_encode("Description saved.")))
        }
        Err(e) => store_error(session, &e),
    }
}
