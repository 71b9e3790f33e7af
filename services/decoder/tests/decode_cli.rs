//! `sck-decoder decode` as operators run it: the real binary over the committed case file
//! (`decode_cases.tsv`, the "What the decoder accepts" examples), one process per format with
//! `--lines`, plus the single-payload forms and the exit statuses. Needs no servers.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const NOW: &str = "2026-01-01T00:00:00Z";

fn decoder(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sck-decoder"))
        .args(args)
        .env_remove("MAX_FUTURE_SECS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sck-decoder");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("sck-decoder output")
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    out.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(l)))
        })
        .collect()
}

struct Case {
    file_line: usize,
    rows: Vec<(u64, f64)>,
    time: Option<String>,
    problems: Vec<String>,
    payload: String,
}

fn cases() -> BTreeMap<String, Vec<Case>> {
    let text = include_str!("decode_cases.tsv");
    let mut by_format: BTreeMap<String, Vec<Case>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.splitn(4, '\t').collect();
        assert_eq!(cols.len(), 4, "decode_cases.tsv:{}: four columns", i + 1);
        let mut rows = Vec::new();
        let mut time = None;
        for item in cols[1].split(' ').filter(|s| *s != "-" && !s.is_empty()) {
            if let Some(t) = item.strip_prefix('@') {
                time = Some(t.to_string());
            } else {
                let (id, v) = item.split_once('=').expect("sensor=value");
                rows.push((id.parse().expect("id"), v.parse().expect("value")));
            }
        }
        let problems = cols[2]
            .split(',')
            .filter(|s| *s != "-")
            .map(String::from)
            .collect();
        by_format
            .entry(cols[0].to_string())
            .or_default()
            .push(Case {
                file_line: i + 1,
                rows,
                time,
                problems,
                payload: cols[3].to_string(),
            });
    }
    by_format
}

#[test]
fn the_case_file_decodes_as_documented() {
    let by_format = cases();
    assert!(by_format.values().map(Vec::len).sum::<usize>() >= 40);
    for (format, cases) in by_format {
        let topic = match format.as_str() {
            "raw" => "device/sck/tok123/readings/raw",
            "json" => "device/sck/tok123/readings",
            other => panic!("unknown format column {other:?}"),
        };
        let input: String = cases.iter().map(|c| format!("{}\n", c.payload)).collect();
        let out = decoder(
            &["decode", "--topic", topic, "--lines", "--now", NOW],
            input.as_bytes(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines = json_lines(&out.stdout);
        let any_problem = cases.iter().any(|c| !c.problems.is_empty());
        assert_eq!(
            out.status.code(),
            Some(i32::from(any_problem)),
            "{format}: {stderr}"
        );
        let total = lines.last().expect("a total line");
        assert_eq!(total["type"], "total");
        assert_eq!(total["payloads"], cases.len());
        for (n, case) in cases.iter().enumerate() {
            let at = |kind: &str| -> Vec<&Value> {
                lines
                    .iter()
                    .filter(|l| l["line"] == n + 1 && l["type"] == kind)
                    .collect()
            };
            let ctx = format!("decode_cases.tsv:{} {:?}", case.file_line, case.payload);
            let rows: Vec<(u64, f64)> = at("row")
                .iter()
                .map(|r| {
                    assert_eq!(r["device_token"], "tok123", "{ctx}");
                    assert_eq!(r["format"], format.as_str(), "{ctx}");
                    if let Some(t) = &case.time {
                        assert_eq!(r["recorded_at"], t.as_str(), "{ctx}");
                    }
                    (
                        r["sensor_id"].as_u64().expect("sensor_id"),
                        r["value"].as_f64().expect("value"),
                    )
                })
                .collect();
            assert_eq!(rows, case.rows, "{ctx}");
            let problems: Vec<&str> = at("problem")
                .iter()
                .map(|p| p["kind"].as_str().expect("kind"))
                .collect();
            assert_eq!(problems, case.problems, "{ctx}");
            let summary = at("summary");
            assert_eq!(summary.len(), 1, "{ctx}");
            assert_eq!(summary[0]["rows"], case.rows.len(), "{ctx}");
        }
    }
}

#[test]
fn one_payload_as_an_argument_or_on_stdin() {
    let out = decoder(
        &[
            "decode",
            "--topic",
            "device/sck/abc/readings/raw",
            "--now",
            NOW,
            "{t:2017-03-24T13:35:14Z,1:21}",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["sensor_id"], 1);
    assert_eq!(lines[0]["recorded_at"], "2017-03-24T13:35:14Z");
    assert_eq!(lines[1]["type"], "summary");

    // `echo '{...}' | sck-decoder decode --topic … -`: the trailing newline is whitespace.
    let out = decoder(
        &["decode", "--topic", "device/sck/abc/readings", "-"],
        b"{\"data\":[{\"recorded_at\":\"2016-06-08 10:30:00\",\"sensors\":[{\"id\":1,\"value\":2},{\"id\":\"x\",\"value\":1}]}]}\n",
    );
    assert_eq!(out.status.code(), Some(1), "a problem: exit 1");
    let lines = json_lines(&out.stdout);
    assert_eq!(lines[1]["kind"], "unknown_sensor_key");
    assert_eq!(lines[2]["problems"], 1);
}

#[test]
fn the_future_limit_follows_now_and_max_future_secs() {
    let payload = "{t:2026-01-02T00:00:01Z,1:1}";
    let run = |extra: &[(&str, &str)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sck-decoder"));
        c.args([
            "decode",
            "--topic",
            "device/sck/a/readings/raw",
            "--now",
            NOW,
            payload,
        ]);
        c.env_remove("MAX_FUTURE_SECS");
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().expect("run").status.code()
    };
    assert_eq!(run(&[]), Some(1), "one day + 1 s ahead of --now");
    assert_eq!(run(&[("MAX_FUTURE_SECS", "86401")]), Some(0));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["decode", "--topic", "device/sck/a/readings/raw"][..],
        &["decode", "{}"],
        &[
            "decode",
            "--topic",
            "device/sck/a/readings",
            "--now",
            "soon",
            "{}",
        ],
        &[
            "decode",
            "--topic",
            "device/sck/a/readings",
            "--bogus",
            "{}",
        ],
    ] {
        let out = decoder(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let out = decoder(
        &["decode", "--topic", "device/sck/a/readings/raw", "--lines"],
        b"{}\n\\q\n",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
}
