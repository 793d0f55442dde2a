"""Write the `qhub` part of helm/qhub/values.schema.json from the config model.

    python scripts/gen_chart_schema.py           # rewrite the file
    python scripts/gen_chart_schema.py --check   # exit 1 if the file is not what the model says

One source of truth: `qhub_hub.config.config_schema()`. The chart's own sections (storage,
condaStore, ...) are written by hand in values.schema.json; this script replaces only
`properties.qhub` and the model's `$defs` (ours are named `Chart*`), so a config the chart accepts
is a config `qhub-hub validate` accepts, typos included (unknown keys are errors in both).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

from qhub_hub import config as config_module
from qhub_hub import config_model

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "helm" / "qhub" / "values.schema.json"
CHART_DEFS_PREFIX = "Chart"
ROOT_DEF = "QHubConfig"


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


def _auth_type_patterns() -> dict[str, str]:
    """For each authentication type, a pattern of every spelling `load_config` accepts.

    The model normalises `security.authentication.type` (QHub wrote `GitHub`, people write
    `github`, `keycloak` means generic OIDC): a JSON schema `const` would refuse those files.
    """
    aliases: dict[str, list[str]] = {}
    for alias, canonical in config_model._AUTH_TYPES.items():
        aliases.setdefault(canonical, []).append(alias)
    return {canonical: r"^\s*(" + "|".join(_any_case(a) for a in sorted(names)) + r")\s*$"
            for canonical, names in aliases.items()}


def qhub_schema() -> dict[str, Any]:
    """The model's schema, shaped for embedding: (root definition, $defs)."""
    model = copy.deepcopy(config_module.config_schema())
    defs = model.pop("$defs", {})
    for key in ("$schema", "title"):
        model.pop(key, None)
    model["title"] = "qhub config"
    model["description"] = ("The qhub config (the same file as `qhub-hub local up`): "
                            "validate it with `qhub-hub validate FILE`.")
    patterns = _auth_type_patterns()
    for definition in defs.values():
        type_schema = definition.get("properties", {}).get("type")
        if isinstance(type_schema, dict) and type_schema.get("const") in patterns:
            canonical = type_schema.pop("const")
            type_schema["pattern"] = patterns[canonical]
            type_schema["type"] = "string"
    if ROOT_DEF in defs:
        raise RuntimeError(f"the config model has a definition named {ROOT_DEF}; rename ROOT_DEF")
    clash = [name for name in defs if name.startswith(CHART_DEFS_PREFIX)]
    if clash:
        raise RuntimeError(f"config model definitions {clash} clash with the chart's {CHART_DEFS_PREFIX}* names")
    return {ROOT_DEF: model, **defs}


def updated_schema(current: dict[str, Any]) -> dict[str, Any]:
    """`current` (the chart's schema) with its qhub part regenerated from the model."""
    schema = copy.deepcopy(current)
    chart_defs = {k: v for k, v in schema.get("$defs", {}).items() if k.startswith(CHART_DEFS_PREFIX)}
    schema["$defs"] = dict(sorted({**chart_defs, **qhub_schema()}.items()))
    schema.setdefault("properties", {})["qhub"] = {"$ref": f"#/$defs/{ROOT_DEF}"}
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when out of date")
    parser.add_argument("--file", type=Path, default=SCHEMA_FILE)
    args = parser.parse_args(argv)
    current_text = args.file.read_text()
    wanted = render(updated_schema(json.loads(current_text)))
    if current_text == wanted:
        print(f"{args.file}: up to date")
        return 0
    if args.check:
        print(f"{args.file}: out of date with qhub_hub.config; run python scripts/gen_chart_schema.py",
              file=sys.stderr)
        return 1
    args.file.write_text(wanted)
    print(f"{args.file}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
