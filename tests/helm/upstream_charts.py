"""Assemble the two sub-charts from their git repositories, to render the whole chart locally.

    python -m tests.helm.upstream_charts Z2JH_GIT_DIR DASK_GATEWAY_GIT_DIR OUT_DIR
    QHUB_UPSTREAM_CHARTS=OUT_DIR python -m pytest tests/helm -q

Released charts come from chart repositories CI cannot reach, and are never committed. This
takes the chart folders at the release tags (jupyterhub/ at 4.4.0, resources/helm/dask-gateway/ at
2026.3.0) and does what their release tooling (chartpress) does: sets the chart version and image
tags, and writes values.schema.json from values.schema.yaml. OUT_DIR gets jupyterhub/ and
dask-gateway/; nothing is written into this repository.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from .upstream import DASK_GATEWAY_VERSION, JUPYTERHUB_VERSION

SOURCES = {
    "jupyterhub": ("jupyterhub", JUPYTERHUB_VERSION),
    "dask-gateway": ("resources/helm/dask-gateway", DASK_GATEWAY_VERSION),
}


def extract(git_dir: Path, tag: str, folder: str, out: Path) -> Path:
    archive = subprocess.run(["git", "--git-dir", str(git_dir), "archive", "--format=tar", tag, folder],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():  # a git archive of one folder: refuse anything odd
            if member.name.startswith(("/", "..")) or ".." in Path(member.name).parts or member.issym():
                raise ValueError(f"unexpected archive member {member.name}")
        tar.extractall(out)
    return out / folder


def finish(chart_dir: Path, version: str) -> None:
    chart_yaml = chart_dir / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("0.0.1-set.by.chartpress", version))
    for values in (chart_dir / "values.yaml",):
        values.write_text(values.read_text().replace('"set-by-chartpress"', f'"{version}"'))
    schema_yaml = chart_dir / "values.schema.yaml"
    if schema_yaml.exists():
        schema = yaml.safe_load(schema_yaml.read_text())
        (chart_dir / "values.schema.json").write_text(json.dumps(schema, indent=1))


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    z2jh_git, gateway_git, out = Path(argv[1]), Path(argv[2]), Path(argv[3])
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / ".sources"
    for name, git_dir in (("jupyterhub", z2jh_git), ("dask-gateway", gateway_git)):
        folder, version = SOURCES[name]
        source = extract(git_dir, version, folder, scratch / name)
        finish(source, version)
        target = out / name
        if target.exists():
            subprocess.run(["rm", "-rf", str(target)], check=True)
        source.rename(target)
    subprocess.run(["rm", "-rf", str(scratch)], check=True)
    print(f"{out}: jupyterhub {JUPYTERHUB_VERSION}, dask-gateway {DASK_GATEWAY_VERSION}")
    return 0


PACKAGED_DIRS = (Path(__file__).resolve().parents[3] / "shared" / "upstream-charts",)
PACKAGED_NAMES = {"jupyterhub": f"jupyterhub-{JUPYTERHUB_VERSION}.tgz",
                  "dask-gateway": f"dask-gateway-{DASK_GATEWAY_VERSION}.tgz"}


def unpacked_subcharts() -> Path | None:
    """A folder with jupyterhub/ and dask-gateway/: $QHUB_UPSTREAM_CHARTS, or the packaged charts
    kept beside the repository (../shared/upstream-charts) unpacked once into /tmp; None without
    either (the tests that need them then skip and say so)."""
    import os
    import tempfile

    if os.environ.get("QHUB_UPSTREAM_CHARTS"):
        return Path(os.environ["QHUB_UPSTREAM_CHARTS"])
    packaged = next((d for d in PACKAGED_DIRS if all((d / n).is_file() for n in PACKAGED_NAMES.values())), None)
    if packaged is None:
        return None
    out = Path(tempfile.gettempdir()) / f"qhub-subcharts-{JUPYTERHUB_VERSION}-{DASK_GATEWAY_VERSION}"
    if not all((out / name / "Chart.yaml").is_file() for name in PACKAGED_NAMES):
        staging = Path(tempfile.mkdtemp(prefix="qhub-subcharts-"))
        for name, archive in PACKAGED_NAMES.items():
            with tarfile.open(packaged / archive) as tar:
                for member in tar.getmembers():  # a chart archive: files and folders, nothing odd
                    if (member.name.startswith("/") or ".." in Path(member.name).parts
                            or not (member.isfile() or member.isdir())):
                        raise ValueError(f"unexpected member {member.name} in {packaged / archive}")
                tar.extractall(staging)
            if not (staging / name / "Chart.yaml").is_file():
                raise ValueError(f"{packaged / archive} does not hold the chart folder {name}/")
        out.mkdir(exist_ok=True)
        for name in PACKAGED_NAMES:
            subprocess.run(["rm", "-rf", str(out / name)], check=True)
            (staging / name).rename(out / name)
        subprocess.run(["rm", "-rf", str(staging)], check=True)
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv))
