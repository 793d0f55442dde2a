"""`environments`: QHub's and Nebari's `<file name>: <environment.yaml document>` mapping is
qhub-hub's too; specs are carried over as written, so pinned dependencies stay pinned."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import EnvironmentSpec
from .report import Report

SPEC_KEYS = frozenset(EnvironmentSpec.model_fields)


def environments(report: Report, data: Any) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        report.needs_decision(("environments",), "not a mapping of file name -> environment; not carried over")
        return {}
    out: dict[str, Any] = {}
    for file_name, spec in data.items():
        path = ("environments", str(file_name))
        if not isinstance(spec, Mapping):
            report.needs_decision(path, "not an environment.yaml document; not carried over")
            continue
        kept = {k: v for k, v in spec.items() if k in SPEC_KEYS}
        for key in spec:
            if key in SPEC_KEYS:
                what = "dependencies, pins kept as written" if key == "dependencies" else key
                report.mapped((*path, key), f"environments[{file_name!r}].{what}")
            else:
                report.needs_decision((*path, key), f"{key!r} is not part of an environment.yaml "
                                      "document conda-store reads; not carried over")
        report.mapped(path, f"environments[{file_name!r}] (conda-store, visible to every user)")
        out[str(file_name)] = kept
    return out
