#!/usr/bin/env python3
"""Each stage's rate over the ceilings it sits between, from one `make ceilings` run.

    ceilings-report.py OUT_DIR LOAD_RATE DEVICES

Reads what scripts/ceilings.sh wrote into OUT_DIR (broker.txt, kafka.txt, backlog.txt,
drain-rate.txt, drain.txt, pipeline.txt, pipeline-rates.txt, database.txt, rss.txt,
backlog-rss.txt, drain-rss.txt, sweep.txt), prints one
table, and writes summary.json and summary.svg (bars: each stage's rate against its ceiling).
Rates are messages per second; the database ceiling (rows/s) is divided by the run's readings per
message so that every stage is in the same unit.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def fields(text: str, prefix: str) -> dict[str, str]:
    """key=value pairs of the last line starting with `prefix` (or containing it)."""
    lines = [l for l in text.splitlines() if prefix in l]
    if not lines:
        return {}
    return dict(re.findall(r"(\w+)=([^\s]+)", lines[-1]))


def num(d: dict[str, str], key: str) -> float:
    try:
        return float(d.get(key, "0"))
    except ValueError:
        return 0.0


def read(out: Path, name: str) -> str:
    p = out / name
    return p.read_text() if p.exists() else ""


def main() -> int:
    out, load, devices = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    broker = num(fields(read(out, "broker.txt"), "kind=broker"), "subscriber_msgs_per_s")
    produce_f = fields(read(out, "kafka.txt"), "kind=kafka_produce")
    produce = num(produce_f, "records_per_s")
    consume = num(fields(read(out, "kafka.txt"), "kind=kafka_consume"), "records_per_s")
    records, readings = num(produce_f, "records"), num(produce_f, "readings")
    per_message = readings / records if records else 12.0
    db_rows = num(fields(read(out, "database.txt"), "kind=database"), "insert_rows_per_s")
    database = db_rows / per_message
    backlog = num(fields(read(out, "backlog.txt"), "BACKLOG"), "records_per_s")
    drain = num(fields(read(out, "drain-rate.txt"), "DRAIN"), "msgs_per_s")
    drain_result = fields(read(out, "drain.txt"), "RESULT")
    rates = read(out, "pipeline-rates.txt").split()
    bridge = float(rates[0]) if rates else 0.0
    decoder_rows = float(rates[1]) if len(rates) > 1 else 0.0
    result = fields(read(out, "pipeline.txt"), "RESULT")
    sustained, sustained_line = 0.0, {}
    for line in read(out, "sweep.txt").splitlines():
        f = dict(re.findall(r"(\w+)=([^\s]+)", line))
        if num(f, "missing_readings") == 0 and num(f, "stored_readings") > 0 \
                and num(f, "catch_up_s") <= 10 and num(f, "rate") > sustained:
            sustained, sustained_line = num(f, "rate"), f
    rss = dict(re.findall(r"(sck-\w+)\D+(\d+)", read(out, "rss.txt")))
    backlog_rss = dict(re.findall(r"(sck-\w+)\D+(\d+)", read(out, "backlog-rss.txt")))
    backlog_rss.update(re.findall(r"(sck-\w+)\D+(\d+)", read(out, "drain-rss.txt")))

    def ratio(rate: float, ceiling: float) -> float:
        return round(rate / ceiling, 3) if ceiling > 0 else 0.0

    bridge_ceiling = min(broker, produce)
    decoder_ceiling = min(consume, database)
    all_ceiling = min(broker, produce, consume, database)
    stages = [
        {"stage": "bridge, draining a backlog", "rate": drain, "ceiling": bridge_ceiling,
         "bound": "min(broker, Kafka produce)", "ratio": ratio(drain, bridge_ceiling)},
        {"stage": "decoder, on a backlog", "rate": backlog, "ceiling": decoder_ceiling,
         "bound": "min(Kafka consume, database)", "ratio": ratio(backlog, decoder_ceiling)},
        {"stage": "end to end, sustained", "rate": sustained, "ceiling": all_ceiling,
         "bound": "min(all)", "ratio": ratio(sustained, all_ceiling)},
    ]
    summary = {
        "load_msgs_per_s": load,
        "devices": devices,
        "readings_per_message": round(per_message, 2),
        "ceilings_msgs_per_s": {
            "broker": broker, "kafka_produce": produce, "kafka_consume": consume,
            "database": round(database, 1), "database_rows_per_s": db_rows,
        },
        "stages": stages,
        "bridge_msgs_per_s_under_load": bridge,
        "decoder_rows_per_s_under_load": decoder_rows,
        "bridge_backlog_result": drain_result,
        "pipeline_result": result,
        "sustained": sustained_line,
        "peak_rss_kib": rss,
        "backlog_peak_rss_kib": backlog_rss,
        "cpu": read(out, "cpu.txt").strip().splitlines(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.svg").write_text(svg(stages, summary["ceilings_msgs_per_s"]))

    print(f"SUMMARY load={load:g} msg/s, devices={devices}, {per_message:.2f} readings/message")
    print(f"{'ceiling':34} {'msg/s':>12}")
    for name, v in [("MQTT broker (bare $share subscriber)", broker),
                    ("Kafka produce (bare, as the bridge)", produce),
                    ("Kafka consume (bare consumer group)", consume),
                    (f"ClickHouse bulk insert ({db_rows:,.0f} rows/s)", database)]:
        print(f"{name:34} {v:12,.0f}")
    print(f"{'stage':24} {'msg/s':>10} {'ceiling':>10}  {'bound':30} ratio")
    for s in stages:
        print(f"{s['stage']:24} {s['rate']:10,.0f} {s['ceiling']:10,.0f}  {s['bound']:30} {s['ratio']:.3f}")
    if result:
        print(f"pipeline at the load: {read(out, 'pipeline.txt').strip().splitlines()[-1]}")
    print(f"bridge under the load: {bridge:,.0f} msg/s; decoder under the load: {decoder_rows:,.0f} rows/s")
    if drain_result:
        print(f"bridge backlog run: {read(out, 'drain.txt').strip().splitlines()[-1]}")
    print(f"peak RSS KiB under the load: {rss}; draining the backlogs: {backlog_rss}")
    for line in summary["cpu"]:
        print(line)
    return 0


def svg(stages: list[dict], ceilings: dict) -> str:
    width, left, bar_h, gap = 760, 230, 16, 14
    top = 40
    rows = [(s["stage"], s["rate"], s["ceiling"], s["ratio"]) for s in stages]
    scale_max = max([r[2] for r in rows] + [r[1] for r in rows] + [1.0])
    h = top + len(rows) * (2 * bar_h + gap + 8) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
             'font-family="sans-serif" font-size="12">',
             '<text x="10" y="20" font-size="14">Stage rate vs its ceiling (msg/s, one run)</text>']
    y = top
    for name, rate, ceiling, r in rows:
        w_rate = (width - left - 90) * rate / scale_max
        w_ceil = (width - left - 90) * ceiling / scale_max
        parts.append(f'<text x="10" y="{y + bar_h}">{name}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w_ceil:.1f}" height="{bar_h}" fill="#c8c8c8"/>')
        parts.append(f'<text x="{left + w_ceil + 4:.1f}" y="{y + 12}">ceiling {ceiling:,.0f}</text>')
        y += bar_h + 2
        parts.append(f'<rect x="{left}" y="{y}" width="{w_rate:.1f}" height="{bar_h}" fill="#3572a5"/>')
        parts.append(f'<text x="{left + w_rate + 4:.1f}" y="{y + 12}">{rate:,.0f} ({r:.2f})</text>')
        y += bar_h + gap + 8
    legend = ", ".join(f"{k} {v:,.0f}" for k, v in ceilings.items() if k != "database_rows_per_s")
    parts.append(f'<text x="10" y="{h - 14}" fill="#555">ceilings: {legend}</text>')
    parts.append("</svg>\n")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
