"""The two deployment commands that are not checks (run through deploy/checks/run.sh):

  run.sh k8s-render          regenerate deploy/k8s/overlays/dev/sck-ingest/chart.yaml
  run.sh live-metrics DIR    the metric names served by running services (DIR/bridge.prom,
                             DIR/decoder.prom, DIR/forwarder.prom) equal those of the committed samples
                             (scripts/test-integration.sh, after the integration tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

import chart
import metrics


def k8s_render() -> int:
    (chart.DEV / "chart.yaml").write_text(chart.dev_chart_manifest())
    print(f"wrote {(chart.DEV / 'chart.yaml').relative_to(chart.ROOT)}")
    return 0


def live_metrics(directory: Path) -> int:
    print(f"== live /metrics in {directory} vs the committed samples", flush=True)
    failed = 0
    for service in metrics.SERVICES:
        live = metrics.metric_names((directory / f"{service}.prom").read_text())
        sample = metrics.service_sample(service)
        if live == sample:
            print(f"ok   {service}: live metric names equal the sample")
        else:
            failed += 1
            print(f"FAIL {service}: live metric names differ from the sample "
                  f"(only live: {sorted(live - sample)}, only sample: {sorted(sample - live)})")
    print(f"{len(metrics.SERVICES) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main(args: list[str]) -> int:
    if args == ["k8s-render"]:
        return k8s_render()
    if len(args) == 2 and args[0] == "live-metrics":
        return live_metrics(Path(args[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
