"""`qhub-hub import`: a QHub 0.3 or Nebari deployment file -> a qhub-hub config, optional Helm
values for helm/qhub, and a report on every key of the input.

detect.py tells the generations apart; qhub03.py and nebari.py map each (profiles.py,
environments.py, images.py and dropped.py hold what both share); helm_values.py builds the chart
values; report.py accounts for every key; ownership.py re-owns files Nebari wrote as uid 1000,
layout.py moves a QHub 0.3 volume to qhub-hub's folder names; cli.py registers the commands.
The output is deterministic: importing the same file twice gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import load_config, read_yaml
from .detect import NotImportable, detect
from .helm_values import conda_store_ids, with_config
from .nebari import NebariOptions, import_nebari
from .qhub03 import import_qhub03
from .report import Report

KIND_NAMES = {"qhub03": "QHub 0.3", "nebari": "Nebari"}


@dataclass(frozen=True)
class ImportResult:
    kind: str
    config: dict[str, Any]
    values: dict[str, Any]  # Helm values, `qhub:` included
    report: Report
    source_data: Mapping[str, Any]

    def config_text(self) -> str:
        return _header(self, "qhub-hub config", "check it: qhub-hub validate FILE") + dump_yaml(self.config)

    def values_text(self) -> str:
        return (_header(self, "Helm values for helm/qhub (qhub: is the imported config)",
                        "helm install qhub helm/qhub -f FILE") + dump_yaml(self.values))

    def report_text(self) -> str:
        return self.report.render(self.source_data)


def _header(result: ImportResult, what: str, use: str) -> str:
    return (f"# {what}, imported by `qhub-hub import` from {result.report.source} "
            f"({KIND_NAMES[result.kind]}).\n# Read the import report before use; {use}.\n")


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def import_data(data: Any, source: str, options: NebariOptions | None = None) -> ImportResult:
    """Map a parsed deployment file; raises NotImportable (unknown file) or ConfigError (the result
    does not validate, listing every problem)."""
    kind = detect(data, source)
    report = Report(source=source, kind=KIND_NAMES[kind])
    if kind == "qhub03":
        config, values = import_qhub03(data, report)
    else:
        config, values = import_nebari(data, report, options or NebariOptions())
    load_config(config)  # what we write must be a valid qhub-hub config
    conda_store_ids(report, values, config)
    return ImportResult(kind, config, with_config(values, config), report, data)


def import_file(path: str | Path, options: NebariOptions | None = None) -> ImportResult:
    path = Path(path)
    try:
        data = read_yaml(path)
    except OSError as e:
        raise NotImportable(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise NotImportable(f"{path} is not valid YAML: {e}") from None
    return import_data(data, path.name, options)


__all__ = ["NotImportable", "ImportResult", "NebariOptions", "import_data", "import_file"]
