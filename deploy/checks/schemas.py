"""Validation of rendered Kubernetes objects without a cluster, shared by the chart and the
kustomize checks: built-in kinds against the Kubernetes JSON schemas (kubernetes-validate, strict:
unknown fields fail) for the oldest and newest supported Kubernetes; KEDA and Prometheus-operator
objects against their CRDs' OpenAPI schemas (node + crd-validate/); the other custom resources
(Strimzi, EMQX, Altinity: no schema offline) by structure only.

`cases()` turns renderings into pytest parameters, one per object (and Kubernetes version), so a
failure names the rendering, the kind and the object."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Callable

import kubernetes_validate
import pytest

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the schemas know.
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.utils.latest_version() + ".0"]
# Custom resources with a CRD schema available offline (npm kubernetes-models, crd-validate/).
SCHEMA_CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
# Custom resources the chart and overlays may render (those without a schema: structure only).
KNOWN_CRDS = SCHEMA_CRDS | {
    ("apps.emqx.io/v2beta1", "EMQX"),
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("clickhouse.altinity.com/v1", "ClickHouseInstallation"),
}


def key(doc: dict) -> tuple:
    return doc.get("apiVersion"), doc.get("kind")


def label(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def kubernetes_error(doc: dict, version: str) -> str | None:
    """Why a built-in object is invalid for this Kubernetes version, or None."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        return None
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        return f"invalid for Kubernetes {version}: {path}: {e.message}"
    except kubernetes_validate.SchemaNotFoundError:
        return f"unknown kind {key(doc)} (not a built-in and not a known CRD)"


@dataclass(frozen=True)
class CrdReport:
    """What crd-validate/validate.mjs said about a rendering's KEDA/Prometheus-operator objects."""
    returncode: int
    stderr: str
    results: tuple  # one {"kind", "name", "ok", "error"?} per object, in input order
    count: int  # objects sent


def schema_crds(docs: list[dict]) -> list[dict]:
    return [d for d in docs if key(d) in SCHEMA_CRDS]


def crd_report(docs: list[dict]) -> CrdReport:
    """Runs the node validator once over every KEDA/Prometheus-operator object of a rendering."""
    crs = schema_crds(docs)
    script = os.environ.get("CRD_VALIDATE")
    if not script:
        return CrdReport(-1, "CRD_VALIDATE is not set (run through deploy/checks/run.sh)", (), len(crs))
    r = subprocess.run(["node", script], input=json.dumps(crs), capture_output=True, text=True)
    results = tuple(json.loads(line) for line in r.stdout.splitlines() if line.startswith("{"))
    return CrdReport(r.returncode, r.stderr.strip(), results, len(crs))


@dataclass(frozen=True)
class Cases:
    """pytest parameters for the objects of several renderings."""
    builtin: list  # (where, doc, version): built-in kinds, one per Kubernetes version
    custom: list  # (where, doc): every known custom resource
    with_schema: list  # (where, index among the rendering's schema CRDs, doc)
    crd_renderings: list  # where: renderings that have schema CRDs


def cases(renderings: dict[str, Callable[[], list[dict]]]) -> Cases:
    """Parameters for every object of every rendering that renders (one that does not is the
    render test's failure; it contributes no objects here)."""
    out = Cases([], [], [], [])
    for where, produce in renderings.items():
        try:
            docs = produce()
        except Exception:  # noqa: BLE001 - reported by the rendering's own test
            continue
        crds = 0
        for doc in docs:
            name = f"{where}/{label(doc)}"
            if key(doc) in SCHEMA_CRDS:
                out.with_schema.append(pytest.param(where, crds, doc, id=name))
                crds += 1
            if key(doc) in KNOWN_CRDS:
                out.custom.append(pytest.param(where, doc, id=name))
                continue
            for version in KUBE_VERSIONS:
                out.builtin.append(pytest.param(where, doc, version, id=f"{name}/{version}"))
        if crds:
            out.crd_renderings.append(where)
    return out

