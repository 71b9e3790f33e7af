//! One row per drill, printed as an aligned table on the terminal and as Markdown for the docs.

use std::fmt::Write;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed(String),
    /// Could not run here, and why.
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub drill: &'static str,
    pub fault: String,
    pub messages: usize,
    /// Published readings not stored.
    pub missing: u64,
    /// Rows stored more than once before ReplacingMergeTree merged them.
    pub duplicates: u64,
    pub recovery: Option<Duration>,
    pub bridge_mib: f64,
    pub decoder_mib: f64,
    pub status: Status,
    pub note: String,
}

impl Row {
    pub fn new(drill: &'static str, fault: String, messages: usize) -> Row {
        Row {
            drill,
            fault,
            messages,
            missing: 0,
            duplicates: 0,
            recovery: None,
            bridge_mib: 0.0,
            decoder_mib: 0.0,
            status: Status::Passed,
            note: String::new(),
        }
    }

    fn cells(&self) -> [String; 8] {
        let skipped = matches!(self.status, Status::Skipped(_));
        let num = |n: u64| if skipped { "-".into() } else { n.to_string() };
        [
            self.drill.to_string(),
            match &self.status {
                Status::Passed => "ok".into(),
                Status::Failed(_) => "FAILED".into(),
                Status::Skipped(_) => "skipped".into(),
            },
            if skipped {
                "-".into()
            } else {
                self.messages.to_string()
            },
            num(self.missing),
            num(self.duplicates),
            match self.recovery {
                Some(d) => format!("{:.1} s", d.as_secs_f64()),
                None if skipped => "-".into(),
                None => "never".into(),
            },
            if skipped {
                "-".into()
            } else {
                format!("{:.0} / {:.0}", self.bridge_mib, self.decoder_mib)
            },
            self.fault.clone(),
        ]
    }

    /// The failure or skip reason, then the note.
    fn detail(&self) -> String {
        let why = match &self.status {
            Status::Failed(why) | Status::Skipped(why) => why.as_str(),
            Status::Passed => "",
        };
        [why, self.note.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

const HEADER: [&str; 8] = [
    "drill",
    "result",
    "messages",
    "missing",
    "duplicates before merge",
    "recovery",
    "peak RSS MiB (bridge / decoder)",
    "fault",
];

/// An aligned table with the notes below it.
pub fn text(rows: &[Row]) -> String {
    let mut widths = HEADER.map(str::len);
    let cells: Vec<[String; 8]> = rows.iter().map(Row::cells).collect();
    for c in &cells {
        for (w, cell) in widths.iter_mut().zip(c) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, c: &[&str]| {
        let padded: Vec<String> = c
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&mut out, &HEADER);
    for c in &cells {
        line(&mut out, &c.each_ref().map(String::as_str));
    }
    for r in rows.iter().filter(|r| !r.detail().is_empty()) {
        let _ = writeln!(out, "  {}: {}", r.drill, r.detail());
    }
    out
}

/// A Markdown table with a notes column.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = format!("| {} | note |\n", HEADER.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADER.len() + 1));
    for r in rows {
        let mut cells = r.cells().to_vec();
        cells.push(r.detail().replace('|', "\\|").replace('\n', " "));
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        let mut ok = Row::new("bridge-sigkill", "bridge SIGKILLed".into(), 1_500);
        ok.duplicates = 42;
        ok.recovery = Some(Duration::from_millis(2_340));
        ok.bridge_mib = 21.4;
        ok.decoder_mib = 17.6;
        ok.note = "300 in flight".into();
        let mut failed = Row::new("clickhouse-down", "stopped".into(), 1_500);
        failed.missing = 12;
        failed.status = Status::Failed("8988 of 9000 readings stored".into());
        let mut skipped = Row::new("clickhouse-disk-full", "disk full".into(), 1_500);
        skipped.status = Status::Skipped("mount: permission denied".into());
        vec![ok, failed, skipped]
    }

    #[test]
    fn the_table_shows_each_outcome_and_why() {
        let t = text(&rows());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("drill"));
        assert!(
            lines[1].contains("ok") && lines[1].contains("2.3 s") && lines[1].contains("21 / 18")
        );
        assert!(
            lines[2].contains("FAILED") && lines[2].contains(" 12 ") && lines[2].contains("never")
        );
        assert!(lines[3].contains("skipped") && !lines[3].contains("1500"));
        assert!(t.contains("clickhouse-down: 8988 of 9000 readings stored"));
        assert!(t.contains("clickhouse-disk-full: mount: permission denied"));
        assert!(t.contains("bridge-sigkill: 300 in flight"));
    }

    #[test]
    fn markdown_has_one_line_per_drill_with_as_many_cells_as_the_header() {
        let md = markdown(&rows());
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 2 + 3);
        let cells = |l: &str| l.matches('|').count();
        assert!(lines.iter().all(|l| cells(l) == cells(lines[0])), "{md}");
    }
}
