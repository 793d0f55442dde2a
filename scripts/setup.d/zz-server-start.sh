#!/usr/bin/env bash
# What a user server of this environment ($prefix) does not need to do at every start (issue 15:
# fifty servers starting at once on two cores). Named zz- to run after the other steps: their pip
# installs could bring a removed module back. Gets $prefix, $repo, $extras; idempotent, quick.
#
# 1. rfc3987-syntax (and lark, which only it needs) is removed. jupyter-events asks for
#    jsonschema[format-nongpl], whose optional "iri"/"iri-reference" format checker it is: its Lark
#    grammar is compiled at import, about 1.6 of a server's 2.9 CPU seconds. jsonschema skips a
#    format whose checker library is missing, so only those two formats are no longer checked; no
#    event schema of Jupyter Server, JupyterLab or jupyter-events uses them ("uri" and
#    "uri-reference" are still checked, by rfc3986-validator). `pip check` reports it missing.
# 2. Jupyter Server config ($prefix/etc/jupyter/jupyter_server_config.json, merged):
#    - LabApp.extension_manager = "readonly": the extension manager lists extensions but does not
#      offer installs from PyPI (users cannot install into this root-owned environment anyway; it
#      also skips an HTTPS client and PyPI queries per server);
#    - jupyter_lsp off: it searches for language servers after every start (about 0.3 CPU s) and
#      none is installed here; JupyterLab's LSP features are off by default.
# 3. JupyterLab page config ($prefix/etc/jupyter/labconfig/page_config.json, merged): no build
#    check and no build UI (each check runs node and scans the extensions; a user cannot build here).
set -euo pipefail
: "${prefix:?}"
py="$prefix/bin/python"

installed() { "$py" -c "import importlib.metadata as m, sys; m.distribution(sys.argv[1])" "$1" 2>/dev/null; }
lark_users() {  # distributions other than rfc3987-syntax that require lark (optional extras aside)
  "$py" - <<'PY'
import importlib.metadata as m, re
for d in m.distributions():
    name = d.metadata["Name"].lower().replace("_", "-")
    if name != "rfc3987-syntax" and any(
            re.split(r"[<>=!~\[; (]", r, maxsplit=1)[0].lower() == "lark" and "extra ==" not in r
            for r in d.requires or []):
        print(name)
PY
}
remove=()
installed rfc3987-syntax && remove+=(rfc3987-syntax)
if installed lark && [[ -z "$(lark_users)" ]]; then remove+=(lark); fi
if (( ${#remove[@]} )); then
  echo "setup.d/zz-server-start: pip uninstall ${remove[*]} (an optional format checker; see this script)"
  "$prefix/bin/pip" uninstall -y -q "${remove[@]}" >/dev/null
fi

"$py" - "$prefix" <<'PY'
import json, pathlib, sys
etc = pathlib.Path(sys.argv[1]) / "etc" / "jupyter"

def update(data, changes):
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            update(data[key], value)
        else:
            data[key] = value

def merge(path, changes):  # other settings in the file stay; written only when something changes
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        data = {}
    before = json.dumps(data, sort_keys=True)
    update(data, changes)
    if json.dumps(data, sort_keys=True) != before:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".json.new").write_text(json.dumps(data, indent=2) + "\n")
        path.with_suffix(".json.new").replace(path)

merge(etc / "jupyter_server_config.json", {
    "LabApp": {"extension_manager": "readonly"},
    "ServerApp": {"jpserver_extensions": {"jupyter_lsp": False}},
})
merge(etc / "labconfig" / "page_config.json", {"buildAvailable": False, "buildCheck": False})
PY
