//! The problems page: the conditions of the shipped alert rules (`dist/prometheus/
//! lars-alerts.yml`) that the console can see in the store, from the latest call status
//! (`ServerCallStatus`) and the call history (`CallHistory`), and, for the conditions only
//! the daemons know (their links, their stores, what they dropped), the metric and alert to
//! look at instead: the console does not guess them.

use std::fmt::Write as _;

use lars_std::store::history::Problem;

use super::history::history_link;
use super::{route_link, store_error};
use crate::Console;
use crate::auth::Session;
use crate::html::{esc, page};
use crate::http::{Request, Response, percent_encode};
use crate::model::history::ProblemReport;

/// Conditions the store cannot show: (what, alert, metrics).
const ELSEWHERE: [(&str, &str, &str); 6] = [
    (
        "an agent or lars-reporter dropped call statistics",
        "LarsStatisticsDropped",
        "lars_agent_stats_dropped_calls_total, lars_reporter_rows_dropped_total",
    ),
    ("an agent's link to lars-dns or lars-reporter is down", "LarsAgentLinkDown", "lars_agent_link_up"),
    ("lars-dns cannot reach its route store", "LarsDnsStoreDown", "lars_dns_store_up"),
    ("lars-dns has not loaded its store since it started", "LarsDnsNotReady", "lars_dns_ready"),
    ("lars-reporter cannot write to its store", "LarsReporterStoreDown", "lars_reporter_store_up"),
    (
        "a route with no healthy host in one agent's balancer",
        "LarsRouteNoHealthyHost",
        "lars_agent_route_hosts{state}",
    ),
];

/// `/problems`.
pub(super) fn get(console: &Console, _: &Request, session: &Session) -> Response {
    match console.problems() {
        Ok(report) => Response::html(200, page("Problems", Some(session), None, &render(&report))),
        Err(e) => store_error(session, &e),
    }
}

fn host_link(key: lars_std::store::RouteKey, host: std::net::SocketAddr) -> String {
    format!(
        "<a href=\"{}\">{host}</a> (<a href=\"/decisions?modid={}&amp;cmdid={}&amp;host={}\">decisions</a>)",
        history_link(key, Some(host)),
        key.0,
        key.1,
        percent_encode(&host.to_string())
    )
}

fn route_cell(key: lars_std::store::RouteKey) -> String {
    format!("<a href=\"{}\">{} {}</a>", route_link(key), key.0, key.1)
}

/// The page's body.
pub fn render(report: &ProblemReport) -> String {
    let mut out = String::with_capacity(8192);
    let _ = write!(
        out,
        "<p>The conditions of the shipped alert rules that the store shows, as of {} UTC (made at most every {} s). {}</p>",
        super::audit::utc(report.at),
        crate::PROBLEMS_TTL_NANOS / 1_000_000_000,
        if report.is_empty() { "<strong class=\"tag ok\">Nothing wrong found.</strong>" } else { "" }
    );

    let _ = write!(
        out,
        "<h2 id=no-healthy-host>Routes with no healthy host <small>(alert LarsRouteNoHealthyHost)</small></h2>\
         <p>By the latest call status: every host of the route overloaded by some agent, or out of rotation. {} route(s).</p>",
        report.unhealthy_count
    );
    if !report.unhealthy.is_empty() {
        out.push_str("<table class=problems-routes><thead><tr><th>route</th><th>hosts</th><th>overloaded</th><th>out of rotation</th><th></th></tr></thead><tbody>");
        for route in &report.unhealthy {
            let _ = write!(
                out,
                "<tr class=bad data-route=\"{} {}\"><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>\
                 <td><a href=\"{}\">history</a> · <a href=\"/decisions?modid={}&amp;cmdid={}\">decisions</a></td></tr>",
                route.key.0,
                route.key.1,
                route_cell(route.key),
                route.hosts,
                route.overloaded,
                route.out_of_rotation,
                history_link(route.key, None),
                route.key.0,
                route.key.1
            );
        }
        out.push_str("</tbody></table>");
        more(&mut out, report.unhealthy.len(), report.unhealthy_count);
    }

    let _ = write!(
        out,
        "<h2 id=overloaded>Hosts overloaded now</h2><p>Hosts that some agent reported overloaded in its latest statistics: {} host(s).</p>",
        report.overloaded_count
    );
    if !report.overloaded.is_empty() {
        out.push_str("<table class=problems-hosts><thead><tr><th>route</th><th>host</th><th>ok</th><th>failed</th><th>agents</th></tr></thead><tbody>");
        for (key, host, calls) in &report.overloaded {
            let _ = write!(
                out,
                "<tr class=bad data-host=\"{host}\"><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
                route_cell(*key),
                host_link(*key, *host),
                calls.succ,
                calls.err,
                calls.callers
            );
        }
        out.push_str("</tbody></table>");
        more(&mut out, report.overloaded.len(), report.overloaded_count);
    }

    let rules = report.rules;
    let _ = write!(
        out,
        "<h2 id=history>From the call history</h2><p>Hosts overloaded in each of the last {} minutes \
         (alert LarsHostOverloadedLong); routes whose calls failed more than {:.0}% over the last {} minutes, \
         with at least {} calls (alert LarsHighErrorRate); routes whose hosts were all overloaded in the last \
         complete minute. Only complete minutes count.</p>",
        rules.overloaded_minutes,
        rules.error_rate * 100.0,
        rules.error_window_minutes,
        rules.min_calls
    );
    match &report.history {
        Err(why) => {
            let _ = write!(out, "<p class=\"flash\" role=status>Not judged: {}.</p>", esc(why));
        }
        Ok(found) if found.is_empty() => out.push_str("<p class=empty>None.</p>"),
        Ok(found) => {
            out.push_str("<table class=problems-history><thead><tr><th>route</th><th>problem</th><th>numbers</th></tr></thead><tbody>");
            for problem in found {
                let (kind, numbers) = match problem {
                    Problem::NoHealthyHost { hosts, .. } => (
                        "no healthy host".to_string(),
                        format!("all {hosts} host(s) overloaded in the last complete minute"),
                    ),
                    Problem::OverloadedLong { route, host, minutes } => (
                        format!("host {} overloaded for long", host_link(*route, *host)),
                        format!("overloaded in {minutes} of the last {} minutes", rules.overloaded_minutes),
                    ),
                    Problem::HighErrorRate { rate, calls, .. } => (
                        "high error rate".to_string(),
                        format!(
                            "{:.1}% of {calls} calls failed in the last {} minutes (threshold {:.0}%)",
                            rate * 100.0,
                            rules.error_window_minutes,
                            rules.error_rate * 100.0
                        ),
                    ),
                };
                let _ = write!(
                    out,
                    "<tr class=bad><td>{}</td><td>{kind}</td><td>{}</td></tr>",
                    route_cell(problem.route()),
                    esc(&numbers)
                );
            }
            out.push_str("</tbody></table>");
        }
    }

    out.push_str(
        "<h2 id=elsewhere>Not in the store</h2><p>These conditions are known only to the daemons: the console \
         cannot see them. Scrape each daemon's <code>--metrics</code> page with Prometheus and load \
         <code>dist/prometheus/lars-alerts.yml</code>; then look here:</p>\
         <table class=problems-elsewhere><thead><tr><th>condition</th><th>alert</th><th>metric</th></tr></thead><tbody>",
    );
    for (what, alert, metric) in ELSEWHERE {
        let _ = write!(
            out,
            "<tr><td>{what}</td><td><code>{alert}</code></td><td><code>{}</code></td></tr>",
            esc(metric)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn more(out: &mut String, shown: usize, all: usize) {
    if all > shown {
        let _ = write!(out, "<p>… and {} more (the first {shown} are shown).</p>", all - shown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HostCalls;
    use crate::model::history::Unhealthy;
    use lars_std::store::history::ProblemRules;
    use std::net::SocketAddr;

    fn report(history: Result<Vec<Problem>, String>) -> ProblemReport {
        let host = SocketAddr::from(([10, 0, 0, 2], 8002));
        ProblemReport {
            at: 1_764_547_200,
            rules: ProblemRules::default(),
            unhealthy: vec![Unhealthy { key: (78, 1), hosts: 1, overloaded: 1, out_of_rotation: 0 }],
            unhealthy_count: 1,
            overloaded: vec![(
                (77, 1),
                host,
                HostCalls { succ: 0, err: 30, overloaded: true, callers: 1, ts: 9 },
            )],
            overloaded_count: 1,
            history,
        }
    }

    #[test]
    fn every_kind_of_problem_is_listed_with_its_numbers() {
        let host = SocketAddr::from(([10, 0, 0, 2], 8002));
        let html = render(&report(Ok(vec![
            Problem::NoHealthyHost { route: (78, 1), hosts: 1 },
            Problem::OverloadedLong { route: (77, 1), host, minutes: 10 },
            Problem::HighErrorRate { route: (77, 1), rate: 0.45, calls: 1000 },
        ])));
        assert!(html.contains("<tr class=bad data-route=\"78 1\">"), "{html}");
        assert!(html.contains("<tr class=bad data-host=\"10.0.0.2:8002\">"));
        assert!(html.contains("all 1 host(s) overloaded in the last complete minute"));
        assert!(html.contains("overloaded in 10 of the last 10 minutes"));
        assert!(html.contains("45.0% of 1000 calls failed in the last 5 minutes (threshold 10%)"));
        for (_, alert, _) in ELSEWHERE {
            assert!(html.contains(alert), "{alert} named");
        }
        assert!(!html.contains("Nothing wrong found"));
    }

    #[test]
    fn no_history_is_said_not_hidden() {
        let html = render(&report(Err("this console runs on the route file <x>".into())));
        assert!(html.contains("Not judged: this console runs on the route file &lt;x&gt;."));
        let quiet = ProblemReport {
            unhealthy: vec![],
            unhealthy_count: 0,
            overloaded: vec![],
            overloaded_count: 0,
            ..report(Ok(vec![]))
        };
        assert!(render(&quiet).contains("Nothing wrong found"));
    }

    /// The page names only alerts and metrics that the shipped rules have.
    #[test]
    fn the_alerts_and_metrics_named_are_the_shipped_rules() {
        let rules = include_str!("../../../../dist/prometheus/lars-alerts.yml");
        let html = render(&report(Ok(vec![])));
        let in_text: Vec<&str> =
            html.split("alert ").skip(1).filter(|text| text.starts_with("Lars")).collect();
        assert_eq!(in_text.len(), 3, "the three conditions judged here name their alerts");
        for alert in in_text.into_iter().chain(ELSEWHERE.iter().map(|(_, alert, _)| *alert)) {
            let name: String = alert.chars().take_while(char::is_ascii_alphanumeric).collect();
            assert!(rules.contains(&format!("alert: {name}\n")), "{name} is a shipped alert");
        }
        for (_, _, metrics) in ELSEWHERE {
            for metric in metrics.split(", ") {
                let name = metric.split('{').next().unwrap();
                assert!(rules.contains(name), "{name} is in the rules");
            }
        }
    }
}
