"""The `qhub-hub` command: validate, explain and export the config; run the embedded platform."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence

import yaml

from .config import config_schema, load_config
from .config_errors import ConfigError
from .passwords import password_bytes, password_problem
from .policy import PlanError, plan_for
from .review.cli import add_explain_options, add_review_commands, cmd_explain_reverse, wants_reverse


def _load_or_exit(path: str):
    try:
        return load_config(path)
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{path}: {len(e.problems)} problem(s); fix them and run `qhub-hub validate {path}` again",
              file=sys.stderr)
        raise SystemExit(1) from None


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load_or_exit(args.file)
    sec = config.security
    print(f"{args.file}: valid ({len(sec.users)} users, {len(sec.groups)} groups, "
          f"{len(config.profiles.jupyterlab)} jupyterlab profiles, "
          f"{len(config.profiles.dask_worker)} dask worker profiles, "
          f"{len(config.declared_environments)} environments)")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    config = _load_or_exit(args.file)
    if wants_reverse(args):
        return cmd_explain_reverse(args, config)
    if not args.user:
        print("error: give a USER, or one of --profile SLUG, --folder PATH, --group NAME", file=sys.stderr)
        return 1
    groups = [g for g in (args.groups or "").split(",") if g]
    try:
        plan = plan_for(config, args.user, groups)
    except PlanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    yaml.safe_dump(plan.to_dict(), sys.stdout, sort_keys=False)
    if not plan.may_log_in:
        print(f"# note: {args.user!r} may not log in: not in security.users, no mapped identity-provider "
              "group, and security.allow_unlisted_users is false", file=sys.stderr)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    json.dump(config_schema(), sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    import bcrypt

    password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass()
    if not password:
        print("error: empty password", file=sys.stderr)
        return 1
    problem = password_problem(password)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    print(bcrypt.hashpw(password_bytes(password), bcrypt.gensalt()).decode())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qhub-hub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a config; exit 1 listing every problem")
    p.add_argument("file")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("explain", help="print what the config gives one user (or who gets a profile, "
                       "folder or group), as YAML")
    p.add_argument("file")
    p.add_argument("user", nargs="?", help="hub username")
    p.add_argument("--groups", help="comma-separated groups from the identity provider")
    add_explain_options(p)
    p.set_defaults(func=cmd_explain)
    add_review_commands(sub)

    p = sub.add_parser("schema", help="print the config's JSON schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("hash-password", help="read a password (prompt or stdin), print its bcrypt hash")
    p.set_defaults(func=cmd_hash_password)

    from .importer.cli import add_import_commands

    add_import_commands(sub)  # import, migrate-ownership (QHub 0.3 / Nebari deployments)

    from .usage.report import add_usage_command

    add_usage_command(sub)  # usage and cost per user, group or profile

    try:
        from .local.cli import add_local_commands
    except ImportError:  # the embedded mode is optional for the config tools
        pass
    else:
        add_local_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
