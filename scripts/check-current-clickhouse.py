#!/usr/bin/env python3
"""The schema and the decoder's rows on a current ClickHouse, not only the local 18.16.

Runs, in chdb (ClickHouse 26.x in-process), every migration statement rendered for a current
server (LowCardinality, codecs, TTL, the device_latest view), twice (they must be idempotent),
then inserts the RowBinary bodies the sink sends (captured by crates/store/tests/rowbinary.rs
into DIR) with the sink's own INSERT statements, reads every table back under FINAL and compares
with the rows the capture wrote, and checks device_latest was filled by its view.

    check-current-clickhouse.py DIR
"""
import json
import sys
from pathlib import Path

from chdb import session

DB = "sck"


def rows(s, sql):
    out = s.query(sql, "JSONEachRow").bytes().decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def main(capture: Path) -> int:
    s = session.Session()
    failures = []
    version = s.query("SELECT version()", "TSV").bytes().decode().strip()
    s.query(f"CREATE DATABASE IF NOT EXISTS {DB}")
    statements = [x.strip() for x in (capture / "migrations.sql").read_text().split(";\n\n") if x.strip()]
    for attempt in (1, 2):
        for st in statements:
            try:
                s.query(st.replace("{db}", DB))
            except Exception as e:  # noqa: BLE001 - report every refused statement
                failures.append(f"migration (run {attempt}) refused: {st.splitlines()[0]}: {e}")
    print(f"chdb {version}: {len(statements)} migration statements, applied twice")
    for sql_file in sorted(capture.glob("*.sql")):
        table = sql_file.stem
        if table == "migrations":
            continue
        insert = sql_file.read_text().strip()
        body = capture / f"{table}.rowbinary"
        head, fmt = insert.rsplit(" FORMAT ", 1)
        insert = f"{head.replace('INSERT INTO `', f'INSERT INTO {DB}.`', 1)} FROM INFILE '{body}' FORMAT {fmt}"
        try:
            s.query(insert)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{table}: the sink's RowBinary was refused: {e}")
            continue
        want = json.loads((capture / f"{table}.json").read_text())
        cols = [k for k in want[0] if k != "payload_hex"]
        select = ", ".join(
            [f"toUnixTimestamp({c}) AS {c}" if c in ("recorded_at", "received_at", "last_seen") else c for c in cols]
            + (["hex(payload) AS payload_hex"] if "payload_hex" in want[0] else [])
        )
        got = rows(s, f"SELECT {select} FROM {DB}.{table} FINAL ORDER BY tuple(*)")
        norm = lambda r: {k: (str(v) if not isinstance(v, float) else v) for k, v in r.items()}
        if sorted(map(lambda r: json.dumps(norm(r), sort_keys=True), got)) != sorted(
            map(lambda r: json.dumps(norm(r), sort_keys=True), want)
        ):
            failures.append(f"{table}: read back {got}, wrote {want}")
        else:
            print(f"{table}: {len(got)} row(s) inserted as the sink sends them and read back equal")
    latest = rows(s, f"SELECT device_token, sensor_id, device_id, toUnixTimestamp(last_recorded_at) AS t, value FROM {DB}.device_latest FINAL ORDER BY sensor_id")
    want_latest = [
        {"device_token": "tokA", "sensor_id": 55, "device_id": 7, "t": 1700000000, "value": 21.5},
        {"device_token": "tokA", "sensor_id": 56, "device_id": 7, "t": 1700000000, "value": -0.25},
    ]
    if latest != want_latest:
        failures.append(f"device_latest (its view on readings): {latest}, want {want_latest}")
    else:
        print("device_latest: filled by its view from the inserted readings")
    for f in failures:
        print("FAIL", f)
    print(f"{'FAILED' if failures else 'ok'}: current ClickHouse ({version})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
