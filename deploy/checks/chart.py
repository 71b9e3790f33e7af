"""The sck-ingest Helm chart as the checks see it: where things are, the value toggles every chart
check renders, and renderings cached for the whole run (Helm's Go SDK through helm-python-sdk; no
helm binary). Also used by cli.py (`k8s-render`)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "charts" / "sck-ingest"
SAMPLE_DIR = CHART / "tests" / "metrics"
DEV = ROOT / "deploy" / "k8s" / "overlays" / "dev" / "sck-ingest"
RELEASE, NAMESPACE = "sck", "sck"
# The one value the chart requires; every toggle is merged onto it.
BASE = {"mqtt": {"host": "emqx-listeners"}}
# Value toggles (merged onto BASE) that are linted, rendered and validated one by one.
TOGGLES: dict[str, dict] = {
    "keda-default": {},
    "hpa": {"decoder": {"autoscaling": {"mode": "hpa"}}},
    "servicemonitor-rules": {"monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
                                            "prometheusRule": {"enabled": True}}},
    "no-scrape-annotations": {"monitoring": {"scrapeAnnotations": False}},
    "existing-secret": {"auth": {"existingSecret": "sck-creds"}},
    "autoscaling-off": {"bridge": {"autoscaling": {"enabled": False}, "replicaCount": 3},
                        "decoder": {"autoscaling": {"enabled": False}, "replicaCount": 4}},
    "sasl-ssl-tls": {
        "kafka": {"security": {"protocol": "sasl_ssl", "saslMechanism": "SCRAM-SHA-512", "caSecret": "kafka-ca"}},
        "auth": {"kafka": {"username": "sck", "password": "s3cret"}, "mqtt": {"username": "sck-bridge", "password": "pw"}},
        "mqtt": {"port": 8883, "tls": {"enabled": True, "caSecret": "emqx-ca"}},
        "clickhouse": {"url": "https://clickhouse:8443", "caSecret": "clickhouse-ca"},
    },
    "4-partitions": {"kafka": {"partitions": 4}, "decoder": {"autoscaling": {"maxReplicas": 10}}},
    # The decoders' device registry and the forwarders (CPU HPA, TLS to Kafka and the broker).
    "platform-forwarder": {
        "platform": {"enabled": True},
        "forwarder": {"enabled": True, "autoscaling": {"enabled": True, "maxReplicas": 20}},
        "auth": {"platform": {"registryPostgresUrl": "postgres://sck_registry:pw@platform-db:5432/sck_platform",
                              "redisUrl": "redis://:pw@platform-redis:6379"},
                 "mqtt": {"username": "sck-bridge", "password": "pw"}},
        "kafka": {"security": {"protocol": "ssl", "caSecret": "kafka-ca"}},
        "mqtt": {"port": 8883, "tls": {"enabled": True, "caSecret": "emqx-ca"}},
        "monitoring": {"serviceMonitor": {"enabled": True}},
    },
    "forwarder-existing-secret": {"platform": {"enabled": True}, "forwarder": {"enabled": True},
                                  "auth": {"existingSecret": "sck-creds"}},
}
# The two workloads every rendering has: (kind, app.kubernetes.io/component).
WORKLOADS = {"bridge": "StatefulSet", "decoder": "Deployment"}
# Workloads rendered only when their `<component>.enabled` value is on.
OPTIONAL_WORKLOADS = {"forwarder": "Deployment"}
HelmError = helm.HelmError


def merge(*layers: dict) -> dict:
    """Deep merge, later layers win (Helm's own rule for -f files)."""
    out: dict = {}
    for layer in layers:
        out = _merge(out, layer)
    return out


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def toggle_values(toggle: str) -> dict:
    return merge(BASE, TOGGLES[toggle])


def components(toggle: str) -> list[str]:
    """The workloads a toggle renders: bridge, decoder, and the optional ones it enables."""
    values = toggle_values(toggle)
    return [*WORKLOADS, *(c for c in OPTIONAL_WORKLOADS if values.get(c, {}).get("enabled"))]


@functools.cache
def load() -> helm.Chart:
    return helm.Chart.load(str(CHART))


def default_values() -> dict:
    """The chart's values.yaml as Helm reads it."""
    return load().values


def render_files(values: dict, namespace: str = NAMESPACE) -> dict[str, str]:
    """Renders the chart like `helm template`: template path -> rendered text."""
    return load().render(values, name=RELEASE, namespace=namespace, is_install=True)


def manifests(files: dict[str, str]) -> list[tuple[str, dict]]:
    """(template path, object) of every rendered object, NOTES.txt excluded."""
    return [(path, doc) for path, text in sorted(files.items()) if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


def render(values: dict) -> list[dict]:
    """The chart's objects for these values (raises HelmError when the chart refuses them)."""
    return [doc for _, doc in manifests(render_files(values))]


@functools.cache
def rendered(toggle: str) -> list[dict]:
    """The objects of one toggle, rendered once per run. Callers must not modify them."""
    return render(toggle_values(toggle))


def notes(values: dict) -> str:
    return next(v for k, v in render_files(values).items() if k.endswith("NOTES.txt"))


@functools.cache
def rule_groups() -> dict:
    """The groups of the chart's PrometheusRule (default thresholds), as a promtool rule file."""
    rule = one(render(merge(BASE, {"monitoring": {"prometheusRule": {"enabled": True}}})), "PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


def lint_problems(values: dict) -> list[dict]:
    """What `helm lint --strict` reports as warnings or errors."""
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
    return [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]


def dev_chart_manifest() -> str:
    """deploy/k8s/overlays/dev/sck-ingest/chart.yaml as `make k8s-render` writes it."""
    values = yaml.safe_load((DEV / "values.yaml").read_text())
    files = render_files(values, namespace="sck-dev")
    header = ("# Generated by `make k8s-render` from deploy/charts/sck-ingest and values.yaml in this folder.\n"
              "# Do not edit: `make test` fails when this differs from a fresh render.\n")
    parts = [f"# Source: {path}\n" + yaml.safe_dump(doc, sort_keys=False) for path, doc in manifests(files)]
    return header + "---\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Finding objects in a rendering


def find(docs: list[dict], kind: str, component: str | None = None) -> list[dict]:
    return [
        d for d in docs
        if d["kind"] == kind
        and (component is None or d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component)
    ]


def one(docs: list[dict], kind: str, component: str | None = None) -> dict:
    """The only object of this kind (and component); fails the calling test otherwise."""
    found = find(docs, kind, component)
    assert len(found) == 1, f"exactly one {kind} ({component or 'any component'}), got {len(found)}"
    return found[0]


def workload(docs: list[dict], component: str) -> dict:
    return one(docs, (WORKLOADS | OPTIONAL_WORKLOADS)[component], component)


def workloads(docs: list[dict]) -> list[dict]:
    return find(docs, "StatefulSet") + find(docs, "Deployment")


def pod_spec(w: dict) -> dict:
    return w.get("spec", {}).get("template", {}).get("spec", {})


def pod_annotations(w: dict) -> dict:
    return w["spec"]["template"]["metadata"].get("annotations", {})


def env_of(w: dict) -> dict[str, dict]:
    c = pod_spec(w)["containers"][0]
    return {e["name"]: e for e in c.get("env", [])}


def settings(docs: list[dict], component: str) -> dict[str, str]:
    """The data of the service's settings ConfigMap (named …-bridge / …-decoder / …-forwarder)."""
    cms = [c for c in find(docs, "ConfigMap") if c["metadata"]["name"].endswith(f"-{component}")]
    assert len(cms) == 1, f"exactly one settings ConfigMap for the {component}, got {len(cms)}"
    return cms[0].get("data", {})
