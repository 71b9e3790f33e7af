"""Metric names: those a Prometheus text exposition carries, those a PromQL expression queries,
and the committed samples of the services' /metrics (deploy/charts/sck-ingest/tests/metrics,
captured from running services) that the dashboard, alerts and autoscaler rules are checked
against."""

from __future__ import annotations

import re
from pathlib import Path

from chart import SAMPLE_DIR

SERVICES = ("bridge", "decoder", "forwarder")


def metric_names(text: str) -> set[str]:
    """Sample names of a Prometheus text exposition (histograms give _bucket/_sum/_count)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def sample_files() -> list[Path]:
    return sorted(SAMPLE_DIR.glob("*.prom"))


def sample_names() -> set[str]:
    """Every metric name of the committed samples together."""
    return set().union(*(metric_names(f.read_text()) for f in sample_files()))


def service_sample(service: str) -> set[str]:
    return metric_names((SAMPLE_DIR / f"{service}.prom").read_text())


def queried(expr: str) -> set[str]:
    """The sck_* metrics a PromQL expression (or series query) names."""
    return set(re.findall(r"\bsck_[a-z0-9_]+\b", expr))
