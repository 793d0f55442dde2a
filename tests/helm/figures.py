"""Figures of the chart checks: scenarios, objects, validations, render time.

    /opt/qhub-hub/bin/python -m tests.helm.figures [--repeat N]
    QHUB_UPSTREAM_CHARTS=DIR ... -m tests.helm.figures     # also the full render with the sub-charts

Render time is the median of N fresh `Chart.load` + render, next to an anchor measured in the same
run: Helm's own starter chart (`helm create`), so the numbers compare across machines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import helm_python

from . import chart


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        helm_python.Chart.create("anchor", scratch).close()
        anchor_dir = Path(scratch) / "anchor"
        anchor = median_seconds(lambda: chart.render({}, chart_dir=anchor_dir), args.repeat)
        print(f"anchor (helm create starter chart): {anchor * 1000:.1f} ms per load+render")
        charts = [("our templates (sub-charts absent)", chart.CHART)]
        upstream = os.environ.get("QHUB_UPSTREAM_CHARTS")
        if upstream:
            full = Path(scratch) / "full" / "qhub"
            shutil.copytree(chart.CHART, full, ignore=shutil.ignore_patterns("charts"))
            for name in ("jupyterhub", "dask-gateway"):
                shutil.copytree(Path(upstream) / name, full / "charts" / name)
            charts.append(("with zero-to-jupyterhub 4.4.0 + dask-gateway 2026.3.0", full))
        for label, chart_dir in charts:
            crds = []
            if chart_dir != chart.CHART:
                import yaml

                with helm_python.Chart.load(str(chart_dir)) as c:
                    crds = [d for crd in c.crds for d in yaml.safe_load_all(crd["data"]) if d]
            print(f"\n{label}:")
            total_objects = total_validations = 0
            for name in chart.scenarios():
                values = chart.scenario_values(name)
                seconds = median_seconds(lambda v=values, d=chart_dir: chart.render(v, chart_dir=d), args.repeat)
                objs = chart.objects(chart.render(values, chart_dir=chart_dir))
                start = time.perf_counter()
                validations = chart.validate_all(objs, crds)
                validate_seconds = time.perf_counter() - start
                total_objects += len(objs)
                total_validations += validations
                print(f"  {name:22s} {len(objs):3d} objects  render {seconds * 1000:7.1f} ms "
                      f"({seconds / anchor:5.1f}x anchor)  {validations:4d} validations in "
                      f"{validate_seconds:.2f} s")
            print(f"  {len(chart.scenarios())} scenarios, {total_objects} objects, {total_validations} "
                  f"validations (Kubernetes {' and '.join(chart.KUBE_VERSIONS)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
