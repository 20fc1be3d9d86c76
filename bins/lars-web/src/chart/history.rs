//! Server-side SVG of calls over time: one column per bucket, successes (green), failures
//! (red) and overloads (orange, the part of the failures the host refused) stacked, and a
//! strip under the columns where a host was held overloaded. Every column carries a
//! `<title>` with its numbers, so hovering shows them without a script.

use std::fmt::Write as _;

use crate::html::esc;
use crate::model::history::{Point, Series};

/// A chart's size and labels.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether to draw the time and count labels (the small per-host charts leave them out).
    pub labels: bool,
}

impl Frame {
    /// The route's chart.
    pub const LARGE: Frame = Frame { width: 760, height: 200, labels: true };
    /// A host's chart in the host table.
    pub const SMALL: Frame = Frame { width: 240, height: 44, labels: false };
}

const GREEN: &str = "#3fa760";
const RED: &str = "#d9534f";
const ORANGE: &str = "#f0a030";
/// The kinds of marks: (class, colour).
const KINDS: [(&str, &str); 4] = [("ok", GREEN), ("failed", RED), ("overload", ORANGE), ("held", ORANGE)];

/// The chart of `series`. `time` names a bucket's start (UTC, as the page prints times).
pub fn history_chart(title: &str, series: &Series, frame: Frame, time: &dyn Fn(u64) -> String) -> String {
    let (left, bottom, top) = if frame.labels { (52, 34, 6) } else { (0, 6, 2) };
    let strip = 4;
    let plot_w = frame.width.saturating_sub(left + 2).max(1);
    let plot_h = frame.height.saturating_sub(bottom + top).max(1);
    let base = top + plot_h;
    let count = series.points.len().max(1) as u32;
    let column = (plot_w / count).max(1);
    let most = series.points.iter().map(Point::calls).max().unwrap_or(0);
    let calls = series.calls();
    let mut svg = String::with_capacity(512 + series.points.len() * 260);
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=img class=\"chart history\" data-calls=\"{calls}\" \
         width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\
         <title>{}</title><rect x=\"{left}\" y=\"{top}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"#fafbfc\" stroke=\"#e1e4e8\"/>",
        esc(title),
        w = frame.width,
        h = frame.height,
    );
    if calls == 0 {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#777\">no calls recorded in this range</text>",
            left + plot_w / 2,
            top + plot_h / 2 + 4
        );
    }
    // In u128: a column's calls (the database's sums) times the height may not fit in u64.
    let scale = |n: u64| {
        (u128::from(n) * u128::from(plot_h))
            .checked_div(u128::from(most))
            .map_or(0, |h| h.min(u128::from(plot_h)) as u32)
    };
    // A small chart draws each kind of column as one path, without a title per column: a
    // page of 100 hosts stays a few hundred KiB.
    let mut paths: [String; 4] = Default::default();
    for (i, point) in series.points.iter().enumerate() {
        let x = left + column * i as u32;
        let bar = column.saturating_sub(u32::from(column > 2)).max(1);
        let at = series.from + series.bucket * i as u64;
        if point.calls() > 0 {
            if frame.labels {
                let _ = write!(
                    svg,
                    "<g><title>{}: {} ok, {} failed ({} overloaded){}</title>",
                    esc(&time(at)),
                    point.succ,
                    point.err,
                    point.overload,
                    if point.overloaded > 0 {
                        format!(", {} host(s) held overloaded", point.overloaded)
                    } else {
                        String::new()
                    }
                );
            }
            // Stacked from the base up: successes, plain failures, overloads.
            let parts = [
                (point.succ, 0),
                (point.err.saturating_sub(point.overload), 1),
                (point.overload.min(point.err), 2),
            ];
            let mut filled = 0u64;
            for (n, kind) in parts {
                let height = scale(filled.saturating_add(n)).saturating_sub(scale(filled));
                filled = filled.saturating_add(n);
                if height == 0 {
                    continue;
                }
                let y = base - scale(filled);
                if frame.labels {
                    let (class, color) = KINDS[kind];
                    let _ = write!(
                        svg,
                        "<rect class={class} x=\"{x}\" y=\"{y}\" width=\"{bar}\" height=\"{height}\" fill=\"{color}\"/>"
                    );
                } else {
                    let _ = write!(paths[kind], "M{x} {y}h{bar}v{height}h-{bar}z");
                }
            }
            if frame.labels {
                svg.push_str("</g>");
            }
        }
        if point.overloaded > 0 {
            if frame.labels {
                let _ = write!(
                    svg,
                    "<rect class=held x=\"{x}\" y=\"{}\" width=\"{column}\" height=\"{strip}\" fill=\"{ORANGE}\"/>",
                    base + 1
                );
            } else {
                let _ = write!(paths[3], "M{x} {}h{column}v{strip}h-{column}z", base + 1);
            }
        }
    }
    for (path, (class, color)) in paths.iter().zip(KINDS) {
        if !path.is_empty() {
            let _ = write!(svg, "<path class={class} d=\"{path}\" fill=\"{color}\"/>");
        }
    }
    if frame.labels {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#555\">{most}</text>\
             <text x=\"{}\" y=\"{base}\" text-anchor=\"end\" fill=\"#555\">0</text>",
            left - 4,
            top + 10,
            left - 4
        );
        let end = series.from + series.bucket * series.points.len() as u64;
        let ticks = [
            (0u32, series.from, "start"),
            (plot_w / 2, (series.from + end) / 2, "middle"),
            (plot_w, end, "end"),
        ];
        for (dx, at, anchor) in ticks {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#555\">{}</text>",
                left + dx,
                base + strip + 13,
                esc(&time(at))
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{left}\" y=\"{}\" fill=\"#555\">calls per {}: green ok, red failed, orange overloaded; \
             the strip: a host held overloaded (UTC)</text>",
            frame.height - 3,
            bucket_name(series.bucket)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn bucket_name(seconds: u64) -> String {
    match seconds {
        60 => "minute".into(),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s => format!("{} min", s / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::history::Series;

    fn time(at: u64) -> String {
        format!("t{at}")
    }

    #[test]
    fn a_golden_small_chart() {
        let series = Series {
            from: 600,
            bucket: 60,
            points: vec![
                Point { succ: 30, err: 10, overload: 5, overloaded: 1 },
                Point::default(),
                Point { succ: 20, err: 0, overload: 0, overloaded: 0 },
            ],
        };
        let frame = Frame { width: 63, height: 48, labels: false };
        let svg = history_chart("host <a>", &series, frame, &time);
        assert_eq!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" role=img class=\"chart history\" data-calls=\"60\" \
             width=\"63\" height=\"48\" viewBox=\"0 0 63 48\" font-family=\"sans-serif\" font-size=\"11\">\
             <title>host &lt;a&gt;</title><rect x=\"0\" y=\"2\" width=\"61\" height=\"40\" fill=\"#fafbfc\" stroke=\"#e1e4e8\"/>\
             <path class=ok d=\"M0 12h19v30h-19zM40 22h19v20h-19z\" fill=\"#3fa760\"/>\
             <path class=failed d=\"M0 7h19v5h-19z\" fill=\"#d9534f\"/>\
             <path class=overload d=\"M0 2h19v5h-19z\" fill=\"#f0a030\"/>\
             <path class=held d=\"M0 43h20v4h-20z\" fill=\"#f0a030\"/></svg>"
        );
        // The large chart: a rect and a title per column.
        let large = history_chart("host", &series, Frame { labels: true, ..frame }, &time);
        assert!(large.contains(
            "<g><title>t600: 30 ok, 10 failed (5 overloaded), 1 host(s) held overloaded</title><rect class=ok"
        ));
        assert!(large.contains("<g><title>t720: 20 ok, 0 failed (0 overloaded)</title><rect class=ok"));
        assert_eq!(large.matches("<rect class=").count(), 5, "3 + 1 columns, 1 strip");
    }

    #[test]
    fn an_empty_range_says_so_and_labels_are_escaped() {
        let series = Series::empty(0, 900, 96);
        let svg = history_chart("route 1 1", &series, Frame::LARGE, &|_| "<t>".into());
        assert!(svg.contains("data-calls=\"0\"") && svg.contains("no calls recorded in this range"));
        assert!(svg.contains("&lt;t&gt;") && !svg.contains("<t>"));
        assert!(svg.contains("calls per 15 min") && !svg.contains("<rect class=ok"));
        assert_eq!(bucket_name(7200), "2 h");
    }
}
