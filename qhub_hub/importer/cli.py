"""`qhub-hub import` and `qhub-hub migrate-ownership`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..config_errors import ConfigError


def _keycloak_profile(text: str) -> tuple[str, list[str]]:
    name, sep, groups = text.partition("=")
    names = [g.strip() for g in groups.split(",") if g.strip()]
    if not sep or not name.strip() or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: write 'Profile Display Name=group,group'")
    return name.strip(), names


def add_import_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import", help="turn a QHub 0.3 or Nebari deployment file into a qhub-hub config (and Helm values)",
        description="Reads a whole qhub-config.yaml (QHub 0.3) or nebari-config.yaml, writes a qhub-hub "
                    "config, optionally Helm values for helm/qhub, and a report on every key of the input.")
    p.add_argument("file", help="the QHub or Nebari deployment file")
    p.add_argument("-o", "--output", default="qhub-hub-config.yaml",
                   help="config to write (default: %(default)s; never the file being imported)")
    p.add_argument("--values", help="also write Helm values for helm/qhub here")
    p.add_argument("--report", help="write the report here (default: print it)")
    p.add_argument("--keycloak-profile", action="append", type=_keycloak_profile, default=[],
                   metavar="'NAME=GROUP,GROUP'",
                   help="Nebari `access: keycloak` profile NAME is for these Keycloak groups (repeat per profile)")
    p.add_argument("--keycloak-group", action="append", default=[], metavar="NAME",
                   help="a group made in Nebari's Keycloak, kept as a config group with its folder "
                        "(repeat per group)")
    p.add_argument("--keycloak-url", help="Nebari's Keycloak base URL (default: https://<domain>/auth)")
    p.add_argument("--realm", default="nebari", help="Keycloak realm (default: %(default)s)")
    p.add_argument("--client-id", default="jupyterhub", help="Keycloak client qhub-hub logs in as "
                   "(default: Nebari's JupyterHub client, %(default)s)")
    p.add_argument("--gid-start", type=int, default=2000,
                   help="first gid given to Nebari's groups (default: %(default)s)")
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser(
        "migrate-ownership", help="re-own homes and group folders that Nebari wrote as one uid",
        description="On the storage volume ROOT (holding home/ and shared/): home/<user> -> the user's "
                    "uid and primary gid, shared/<group> -> root:<gid>, for what the old uid owned. "
                    "Never follows links, never touches anything else. Run with --dry-run first.")
    p.add_argument("config", help="the qhub-hub config (e.g. from `qhub-hub import`)")
    p.add_argument("--root", required=True, help="the volume's root folder (holding home/ and shared/)")
    p.add_argument("--from-uid", type=int, default=1000, help="the uid everything ran as (Nebari: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="list what would change; change nothing")
    p.add_argument("--verbose", action="store_true", help="list every re-owned path")
    p.set_defaults(func=cmd_migrate_ownership)

    p = subparsers.add_parser(
        "migrate-layout", help="move a QHub 0.3 volume to qhub-hub's folders (home/shared -> shared, home names)",
        description="On QHub 0.3's storage volume ROOT: home/shared/<group> -> shared/<group> and "
                    "home/<QHub's escaped name> -> home/<unix name>, by renames only. Never follows "
                    "links; a name already taken is left alone and listed. Run with --dry-run first.")
    p.add_argument("config", help="the qhub-hub config imported from the QHub 0.3 file")
    p.add_argument("--root", required=True, help="the volume's root folder (holding home/)")
    p.add_argument("--dry-run", action="store_true", help="list what would move; move nothing")
    p.set_defaults(func=cmd_migrate_layout)


def _write(path: str, text: str, source: Path) -> None:
    target = Path(path)
    if target.exists() and target.resolve() == source.resolve():
        raise SystemExit(f"error: {path} is the file being imported; write somewhere else (-o)")
    target.write_text(text, encoding="utf-8")


def cmd_import(args: argparse.Namespace) -> int:
    from . import NebariOptions, NotImportable, import_file

    options = NebariOptions(keycloak_url=args.keycloak_url, realm=args.realm, client_id=args.client_id,
                            keycloak_profiles=dict(args.keycloak_profile),
                            keycloak_groups=tuple(args.keycloak_group), gid_start=args.gid_start)
    try:
        result = import_file(args.file, options)
    except NotImportable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{args.file}: the imported config would not be valid ({len(e.problems)} problem(s) above); "
              "fix them in the input and import again", file=sys.stderr)
        return 1
    source = Path(args.file)
    _write(args.output, result.config_text(), source)
    if args.values:
        _write(args.values, result.values_text(), source)
    report = result.report_text()
    if args.report:
        _write(args.report, report, source)
    else:
        sys.stdout.write(report)
    counts = result.report.counts(result.source_data)
    print(f"{args.file} ({result.report.kind}) -> {args.output}" + (f", {args.values}" if args.values else "")
          + f": {counts['mapped']} keys mapped, {counts['dropped']} dropped, "
          f"{counts['needs decision']} need a decision" + (f" (see {args.report})" if args.report else ""),
          file=sys.stderr)
    return 0


def _config_or_none(path: str):
    from ..config import load_config

    try:
        return load_config(path)
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{path}: fix it first (`qhub-hub validate {path}`)", file=sys.stderr)
        return None


def cmd_migrate_layout(args: argparse.Namespace) -> int:
    from .layout import migrate_qhub03_layout
    from .ownership import MigrationError

    config = _config_or_none(args.config)
    if config is None:
        return 1
    try:
        summary = migrate_qhub03_layout(config, args.root, dry_run=args.dry_run)
    except MigrationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{'would move' if args.dry_run else 'moved'} {summary.renamed} folders; "
          f"{len(summary.problems)} left alone (listed above)")
    return 0


def cmd_migrate_ownership(args: argparse.Namespace) -> int:
    from .ownership import MigrationError, migrate_ownership

    config = _config_or_none(args.config)
    if config is None:
        return 1
    if not args.dry_run and os.geteuid() != 0:
        print("error: changing owners needs root; run as root, or with --dry-run to see the list",
              file=sys.stderr)
        return 1
    try:
        summary = migrate_ownership(config, args.root, args.from_uid, dry_run=args.dry_run,
                                    verbose=args.verbose)
    except MigrationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    verb = "would change" if args.dry_run else "changed"
    print(f"{verb} {summary.changed} entries, {'would rename' if args.dry_run else 'renamed'} "
          f"{summary.renamed} homes; {len(summary.problems)} left alone (listed above)")
    return 0
