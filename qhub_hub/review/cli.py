"""The access-review subcommands: `qhub-hub diff`, `qhub-hub audit`, and `explain`'s reverse queries.

`qhub_hub/cli.py` registers them with `add_review_commands` and `add_explain_options`.
Exit codes of `diff` follow `git diff` / `diff(1)`: 0, or with `--exit-code` 1 when access changes;
2 when a config or revision cannot be read. `audit` exits 0 when the machine matches the plans,
1 when findings remain, 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import yaml

from ..config import QHubConfig, load_config
from ..config_errors import ConfigError

FORMATS = ("text", "markdown", "json")


class CommandError(RuntimeError):
    """Printed as `error: ...`; exit 2."""


def add_review_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff", help="what a config change does to each person's access",
        description="Compare the plans of two configs: per user, then per identity-provider group "
        "mapping, what changes (login, ids, groups, folders, profiles, Dask profiles, environment "
        "namespaces, admin), with warnings for changes that damage data or access. Prints nothing "
        "when no one's access changes. Exit 0; with --exit-code, 1 when access changes; 2 when a "
        "config or revision cannot be read.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="OLD NEW, or one FILE with --against REV")
    p.add_argument("--against", metavar="REV",
                   help="compare FILE with its version at this git revision (e.g. origin/main)")
    p.add_argument("--format", choices=FORMATS, default="text", help="output format (default text)")
    p.add_argument("--exit-code", action="store_true",
                   help="exit 1 when access changes, 0 when not (as git diff --exit-code)")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "audit", help="compare this machine (or the cluster's user pods) with the config's plans",
        description="Report accounts whose ids or groups differ from the plans, accounts in the "
        "platform's id ranges no plan explains, folders with the wrong owner, mode or ACL, "
        "symlinks or files where a folder should be, and running processes whose ids no longer "
        "match their user's plan. --fix repairs what is safe and lists the rest. Exit 0 when "
        "everything matches, 1 when problems remain, 2 when the audit cannot run.")
    p.add_argument("--config", required=True, help="the qhub config file")
    p.add_argument("--state-dir", default=None,
                   help="the embedded platform's state dir (its shared folder and the hub's users); "
                        "default: $QHUB_STATE_DIR or /var/lib/qhub-hub when it holds a platform")
    p.add_argument("--fix", action="store_true",
                   help="repair what is safe (create missing accounts and folders, set group "
                        "memberships, owners, modes and ACLs; never deletes data, says so when a "
                        "mode is loosened)")
    p.add_argument("--kubernetes", action="store_true",
                   help="audit running user pods instead (securityContext and mounts vs the plan)")
    p.add_argument("--namespace", default=None,
                   help="with --kubernetes: the namespace of the user pods (default: the current "
                        "context's, else 'default')")
    p.add_argument("--hub-api-url", default=None,
                   help="with --kubernetes: ask this hub (https://<hub>/hub/api) for each pod user's "
                        "plan, with the token in $JUPYTERHUB_API_TOKEN (scope custom:qhub:plans:read); "
                        "default: plans made from the config, without identity-provider groups")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_audit)


def add_explain_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", metavar="SLUG", help="who may start this JupyterLab profile")
    p.add_argument("--folder", metavar="PATH", help="who reads and who writes this folder")
    p.add_argument("--group", metavar="NAME", help="the group's members (rw, ro) and what it grants")


def wants_reverse(args: argparse.Namespace) -> bool:
    return any(getattr(args, key, None) for key in ("profile", "folder", "group"))


# --- loading -----------------------------------------------------------------------------------


def load(path: str, label: str | None = None) -> QHubConfig:
    try:
        return load_config(path)
    except ConfigError as e:
        raise CommandError(_problems(label or path, e)) from None


def _problems(name: str, e: ConfigError) -> str:
    lines = "\n".join(f"  {p}" for p in e.problems)
    return f"{name} is not a valid qhub config ({len(e.problems)} problem(s)):\n{lines}"


def load_at_revision(path: Path, revision: str) -> QHubConfig:
    from .git import GitError, file_at_revision

    try:
        text = file_at_revision(path, revision)
    except GitError as e:
        raise CommandError(str(e)) from None
    if text is None:
        print(f"note: {path} does not exist at {revision}; comparing with an empty config",
              file=sys.stderr)
        return load_config({})
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / f"{path.name}@{re.sub(r'[^A-Za-z0-9._-]', '_', revision)}"
        copy.write_text(text, encoding="utf-8")
        try:
            return load_config(copy, base_dir=path.absolute().parent)
        except ConfigError as e:
            raise CommandError(_problems(f"{path} at {revision}", e)) from None


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


# --- diff --------------------------------------------------------------------------------------


def cmd_diff(args: argparse.Namespace) -> int:
    from .diff import collector_paused

    with collector_paused():  # loading two large configs makes many objects too
        return _diff(args)


def _diff(args: argparse.Namespace) -> int:
    from .diff import diff_configs
    from .render_json import render_json
    from .render_markdown import render_markdown
    from .render_text import render_text

    try:
        if args.against:
            if len(args.files) != 1:
                return _fail("with --against REV give one FILE: qhub-hub diff --against REV FILE")
            path = Path(args.files[0])
            new = load(str(path))
            old = load_at_revision(path, args.against)
            old_name, new_name = f"{path} at {args.against}", str(path)
        else:
            if len(args.files) != 2:
                return _fail("give two files, OLD NEW (or one FILE with --against REV)")
            old_name, new_name = args.files
            old, new = load(old_name), load(new_name)
    except CommandError as e:
        return _fail(str(e))
    diff = diff_configs(old, new, old_name, new_name)
    render = {"text": render_text, "markdown": render_markdown, "json": render_json}[args.format]
    sys.stdout.write(render(diff))
    return 1 if args.exit_code and not diff.empty else 0


# --- explain --profile / --folder / --group --------------------------------------------------------


def cmd_explain_reverse(args: argparse.Namespace, config: QHubConfig) -> int:
    from .reverse import QueryError, group_report, who_may_start, who_reads_and_writes

    chosen = [key for key in ("profile", "folder", "group") if getattr(args, key, None)]
    if len(chosen) > 1 or getattr(args, "user", None):
        print("error: give one of USER, --profile, --folder or --group", file=sys.stderr)
        return 1
    query = {"profile": who_may_start, "folder": who_reads_and_writes, "group": group_report}[chosen[0]]
    try:
        answer = query(config, getattr(args, chosen[0]))
    except QueryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    yaml.safe_dump(answer, sys.stdout, sort_keys=False, allow_unicode=True)
    return 0


# --- audit -------------------------------------------------------------------------------------


def cmd_audit(args: argparse.Namespace) -> int:
    from .findings import render_findings, render_findings_json

    try:
        config = load(args.config)
        if args.kubernetes:
            if args.fix:
                return _fail("--fix is for the embedded mode; a pod gets its plan when its "
                             "server is restarted")
            from ..hub_plans import PlanUnavailable
            from .kube import KubeError, list_user_pods
            from .pod_audit import audit_pods, hub_plan_lookup

            lookup = None
            if args.hub_api_url:
                token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
                if not token:
                    return _fail("--hub-api-url needs a hub API token in $JUPYTERHUB_API_TOKEN "
                                 "(with the scope custom:qhub:plans:read)")
                lookup = hub_plan_lookup(args.hub_api_url, token)
            try:
                report = audit_pods(config, list_user_pods(args.namespace), plan_lookup=lookup)
            except (KubeError, PlanUnavailable) as e:
                return _fail(str(e))
        else:
            from .machine_audit import AuditError, audit_machine

            try:
                report = audit_machine(config, state_dir=args.state_dir, fix=args.fix)
            except AuditError as e:
                return _fail(str(e))
    except CommandError as e:
        return _fail(str(e))
    out = render_findings_json(report) if args.format == "json" else render_findings(report)
    sys.stdout.write(out)
    return 1 if report.remaining else 0
