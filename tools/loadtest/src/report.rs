//! The run's figures: the RESULT line, the JSON report, and an SVG chart (latency histogram and
//! throughput over time) written by hand — two simple charts do not need a plotting library,
//! and plain SVG text needs no fonts on the machine.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub run_id: String,
    pub sent_messages: u64,
    pub sent_readings: u64,
    pub acked_messages: u64,
    pub stored_readings: u64,
    pub missing_readings: u64,
    pub duplicate_readings: u64,
    /// Rows stored more than once that merges have not collapsed yet (at-least-once at work).
    pub redelivered_rows: u64,
    /// Messages published per second after the ramp (the sustained rate).
    pub msgs_per_s: f64,
    /// Readings published per second over the whole publishing time, ramp included.
    pub readings_per_s: f64,
    /// Readings stored per second while they were arriving (the pipeline's insert rate).
    pub stored_readings_per_s: f64,
    pub latency_ms: Latency,
    pub latency_samples: usize,
    pub duration_s: f64,
    /// Seconds from the end of publishing until the last reading was stored (≤ 0: kept up).
    pub catch_up_s: f64,
    /// Messages published per second of the run.
    pub sent_per_second: Vec<u64>,
    /// (seconds since start, rows stored) as polled.
    pub stored_over_time: Vec<(f64, u64)>,
    /// With registered devices: stored readings whose `device_id` is not their device's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrong_device_ids: Option<u64>,
}

impl Report {
    /// The last line of the output, parsed by scripts and tests.
    pub fn result_line(&self) -> String {
        format!(
            "RESULT sent_messages={} sent_readings={} stored_readings={} missing_readings={} duplicate_readings={} msgs_per_s={:.1} p50_ms={} p99_ms={}",
            self.sent_messages,
            self.sent_readings,
            self.stored_readings,
            self.missing_readings,
            self.duplicate_readings,
            self.msgs_per_s,
            self.latency_ms.p50,
            self.latency_ms.p99
        ) + &self
            .wrong_device_ids
            .map(|n| format!(" wrong_device_ids={n}"))
            .unwrap_or_default()
    }

    /// Writes the JSON report and `<report>.svg` next to it; returns the chart's path.
    pub fn write(&self, path: &Path, latencies_ms: &[u64]) -> anyhow::Result<PathBuf> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        let svg = path.with_extension("svg");
        std::fs::write(&svg, chart(self, latencies_ms))?;
        Ok(svg)
    }
}

const W: f64 = 900.0;
const H: f64 = 300.0;
const PAD: f64 = 50.0;

/// Two panels: end-to-end latency histogram, and sent vs stored per second.
pub fn chart(r: &Report, latencies_ms: &[u64]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" font-family="sans-serif" font-size="12">"#,
        2.0 * H + 40.0
    );
    let _ = write!(
        s,
        r#"<text x="{PAD}" y="20" font-size="14">sck-loadtest {}: {} readings sent, {} stored, {} missing; {:.0} msg/s; latency p50 {} ms, p99 {} ms</text>"#,
        r.run_id,
        r.sent_readings,
        r.stored_readings,
        r.missing_readings,
        r.msgs_per_s,
        r.latency_ms.p50,
        r.latency_ms.p99
    );
    histogram(&mut s, latencies_ms, 30.0);
    throughput(&mut s, r, 30.0 + H + 10.0);
    s.push_str("</svg>\n");
    s
}

fn axes(s: &mut String, top: f64, title: &str, x_label: &str, y_max: f64, x_max: f64) {
    let (x0, y0, x1, y1) = (PAD, top + H - PAD, W - 20.0, top + 20.0);
    let _ = write!(
        s,
        r#"<text x="{PAD}" y="{}" font-weight="bold">{title}</text><line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/><text x="{}" y="{}" text-anchor="end">{x_label}</text><text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">0</text><text x="{x1}" y="{}" text-anchor="end">{}</text>"#,
        top + 14.0,
        x1,
        y0 + 30.0,
        x0 - 4.0,
        y1 + 4.0,
        y_max.round(),
        x0 - 4.0,
        y0 + 4.0,
        y0 + 16.0,
        x_max.round()
    );
}

fn histogram(s: &mut String, latencies_ms: &[u64], top: f64) {
    let max = latencies_ms.iter().copied().max().unwrap_or(0).max(1) as f64;
    let buckets = 40usize;
    let mut counts = vec![0u64; buckets];
    for &l in latencies_ms {
        let b = ((l as f64 / max) * (buckets as f64 - 1.0)).round() as usize;
        counts[b.min(buckets - 1)] += 1;
    }
    let peak = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    axes(
        s,
        top,
        "End-to-end latency (publish → visible in ClickHouse)",
        "ms",
        peak,
        max,
    );
    let plot_w = W - 20.0 - PAD;
    let plot_h = H - PAD - 20.0;
    let bw = plot_w / buckets as f64;
    for (i, c) in counts.iter().enumerate() {
        let h = *c as f64 / peak * plot_h;
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#4c78a8"/>"##,
            PAD + i as f64 * bw + 1.0,
            top + H - PAD - h,
            (bw - 2.0).max(1.0),
            h
        );
    }
}

fn throughput(s: &mut String, r: &Report, top: f64) {
    // Stored rows per second from the polled cumulative counts, in readings → messages units
    // are not comparable, so both lines are readings per second.
    let readings_per_msg = if r.sent_messages > 0 {
        r.sent_readings as f64 / r.sent_messages as f64
    } else {
        0.0
    };
    let sent: Vec<(f64, f64)> = r
        .sent_per_second
        .iter()
        .enumerate()
        .map(|(i, n)| (i as f64 + 0.5, *n as f64 * readings_per_msg))
        .collect();
    let mut stored = Vec::new();
    for w in r.stored_over_time.windows(2) {
        let dt = w[1].0 - w[0].0;
        if dt > 0.0 {
            stored.push((
                (w[0].0 + w[1].0) / 2.0,
                w[1].1.saturating_sub(w[0].1) as f64 / dt,
            ));
        }
    }
    let x_max = sent
        .iter()
        .chain(&stored)
        .map(|p| p.0)
        .fold(1.0f64, f64::max);
    let y_max = sent
        .iter()
        .chain(&stored)
        .map(|p| p.1)
        .fold(1.0f64, f64::max);
    axes(
        s,
        top,
        "Throughput: readings/s sent (blue) and stored (orange)",
        "s",
        y_max,
        x_max,
    );
    for (points, colour) in [(&sent, "#4c78a8"), (&stored, "#f58518")] {
        let plot_w = W - 20.0 - PAD;
        let plot_h = H - PAD - 20.0;
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    PAD + x / x_max * plot_w,
                    top + H - PAD - y / y_max * plot_h
                )
            })
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_has_the_contract_shape() {
        let r = Report {
            sent_messages: 10,
            sent_readings: 120,
            stored_readings: 120,
            msgs_per_s: 5.0,
            latency_ms: Latency {
                p50: 300,
                p90: 400,
                p99: 900,
                max: 1000,
            },
            ..Report::default()
        };
        assert_eq!(
            r.result_line(),
            "RESULT sent_messages=10 sent_readings=120 stored_readings=120 missing_readings=0 duplicate_readings=0 msgs_per_s=5.0 p50_ms=300 p99_ms=900"
        );
        let json: serde_json::Value = serde_json::to_value(&r).expect("json");
        for key in [
            "sent_messages",
            "sent_readings",
            "stored_readings",
            "missing_readings",
            "duplicate_readings",
            "msgs_per_s",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["latency_ms"]["p99"], 900);
    }

    #[test]
    fn chart_is_svg_with_both_panels() {
        let r = Report {
            sent_messages: 4,
            sent_readings: 48,
            sent_per_second: vec![2, 2],
            stored_over_time: vec![(0.0, 0), (1.0, 24), (2.0, 48)],
            ..Report::default()
        };
        let svg = chart(&r, &[100, 200, 200, 900]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<rect").count(), 40);
        assert!(svg.contains("End-to-end latency"));
    }
}
