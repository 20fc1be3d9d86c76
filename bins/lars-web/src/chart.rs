//! Server-side SVG charts: one horizontal bar per host, successes and failures stacked, with
//! the host's state beside it. Inline SVG in the page: no chart library, nothing fetched.

pub mod history;

use std::fmt::Write as _;

use crate::html::esc;
use crate::model::{HostCalls, HostState};

const ROW: u32 = 22;
const LABEL: u32 = 190;
const BAR: u32 = 360;

/// A bar chart of `hosts`' calls: (label, calls, state) each.
pub fn calls_chart(title: &str, hosts: &[(String, HostCalls, HostState)]) -> String {
    let height = ROW * hosts.len() as u32 + 28;
    let width = LABEL + BAR + 150;
    let most = hosts.iter().map(|(_, c, _)| c.succ + c.err).max().unwrap_or(0).max(1);
    let mut svg = String::with_capacity(256 + hosts.len() * 400);
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=img class=chart width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\"><title>{}</title>",
        esc(title)
    );
    for (i, (label, calls, state)) in hosts.iter().enumerate() {
        let y = 4 + ROW * i as u32;
        let scale = |n: u64| (n * u64::from(BAR) / most) as u32;
        let (ok, bad) = (scale(calls.succ), scale(calls.err));
        let (tag, color) = match state {
            HostState::Healthy => ("healthy", "#17692f"),
            HostState::Overloaded => ("overloaded", "#a1261e"),
            HostState::OutOfRotation => ("out of rotation", "#666"),
        };
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{ok}\" height=\"16\" fill=\"#3fa760\"><title>{} ok</title></rect>\
             <rect x=\"{}\" y=\"{y}\" width=\"{bad}\" height=\"16\" fill=\"#d9534f\"><title>{} failed</title></rect>\
             <text x=\"{}\" y=\"{}\" fill=\"{color}\">{} / {} · {tag}</text>",
            y + 12,
            esc(label),
            calls.succ,
            LABEL + ok,
            calls.err,
            LABEL + BAR + 6,
            y + 12,
            calls.succ,
            calls.err,
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{LABEL}\" y=\"{}\" fill=\"#555\">green: successes, red: failures (last period, all agents)</text></svg>",
        height - 6
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_host_and_labels_are_escaped() {
        let calls = |succ, err| HostCalls { succ, err, ..HostCalls::default() };
        let svg = calls_chart(
            "route <1 1>",
            &[
                ("10.0.0.1:80".into(), calls(300, 60), HostState::Healthy),
                ("<b>".into(), calls(0, 180), HostState::Overloaded),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title>route &lt;1 1&gt;</title>"));
        assert!(svg.contains("width=\"300\""), "300 ok of 360 calls at most: 300 px of 360");
        assert!(svg.contains("width=\"180\""), "180 failures: half the bar");
        assert!(svg.contains("&lt;b&gt;") && svg.contains("overloaded"));
    }
}
