"""Put the config's declared environments into conda-store's global namespace.

`config.declared_environments` holds the `environments` section and the files of
`conda_store.environments_folder`. For each one:

- not in conda-store yet: submitted (``created``);
- its latest build was made from a different spec: submitted (``updated``);
- otherwise left alone (``unchanged``): no new build, so restarting the hub rebuilds nothing.

Specs go to conda-store as written (pins and build strings included). "The same spec" allows for
what conda-store itself adds to a spec (its default channels and its included packages), so a spec
is not resubmitted just because the server filled in defaults.

A refused spec or a failed build is reported (`SyncReport.failures`) and never stops the other
environments or raises: the hub starts whatever conda-store says. With ``wait`` the sync also
waits for the builds it started and reports their outcome with the end of the build log.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..config import EnvironmentSpec, QHubConfig
from .client import AsyncCondaStoreClient, BuildInfo, CondaStoreError

Action = Literal["created", "updated", "unchanged", "failed"]


@dataclass(frozen=True)
class SyncResult:
    name: str
    action: Action
    build_id: int | None = None
    build_status: str | None = None  # of `build_id`: QUEUED ... COMPLETED, FAILED, CANCELED
    message: str = ""
    retryable: bool = False  # conda-store was unreachable or failed (5xx): try again later

    @property
    def failed(self) -> bool:
        return self.action == "failed" or self.build_status in ("FAILED", "CANCELED")


@dataclass
class SyncReport:
    namespace: str
    results: list[SyncResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # not about one environment
    retry_advised: bool = False  # something failed that may work later (conda-store starting)

    @property
    def failures(self) -> list[SyncResult]:
        return [r for r in self.results if r.failed]

    def by_name(self) -> dict[str, SyncResult]:
        return {r.name: r for r in self.results}

    def lines(self) -> list[str]:
        """One line per environment, for the hub log and the CLI."""
        out = [f"conda-store: {p}" for p in self.problems]
        for r in self.results:
            build = f" (build {r.build_id}: {r.build_status})" if r.build_id else ""
            note = f": {r.message}" if r.message else ""
            out.append(f"conda-store {self.namespace}/{r.name}: {r.action}{build}{note}")
        return out


def specification_document(spec: EnvironmentSpec) -> dict[str, Any]:
    """The environment.yaml document submitted for a declared environment, as written."""
    doc: dict[str, Any] = {"name": spec.name}
    if spec.description:
        doc["description"] = spec.description
    doc["channels"] = list(spec.channels)
    doc["dependencies"] = [d if isinstance(d, str) else {"pip": list(d.pip)}
                           for d in spec.dependencies]
    if spec.variables:
        doc["variables"] = dict(spec.variables)
    return doc


def _package_name(dep: str) -> str:
    name = re.split(r"[\s=<>!~\[;@]", dep.split("::")[-1].strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-")


def _parts(spec: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    conda: list[str] = []
    pip: list[str] = []
    for dep in spec.get("dependencies") or []:
        if isinstance(dep, Mapping):
            pip += [str(p) for p in dep.get("pip") or []]
        else:
            conda.append(str(dep))
    return conda, pip


def _without_added(stored: list[str], declared: list[str], added: list[str]) -> list[str]:
    """`stored` less what the server appended: packages named in `added` we did not declare."""
    declared_names = {_package_name(d) for d in declared}
    added_names = {_package_name(a) for a in added}
    return [s for s in stored
            if _package_name(s) in declared_names or _package_name(s) not in added_names]


def same_specification(declared: Mapping[str, Any], stored: Mapping[str, Any],
                       settings: Mapping[str, Any] | None = None) -> bool:
    """Whether `stored` (as conda-store keeps it) was made from `declared`.

    `settings` are conda-store's settings for the environment: what it adds to a spec (default
    channels when none are given, default and included packages) is not a difference.
    """
    settings = settings or {}
    if declared.get("name") != stored.get("name"):
        return False
    if (declared.get("description") or "") != (stored.get("description") or ""):
        return False
    declared_vars = {k: str(v) for k, v in (declared.get("variables") or {}).items()}
    if declared_vars != {k: str(v) for k, v in (stored.get("variables") or {}).items()}:
        return False
    channels = list(declared.get("channels") or [])
    stored_channels = list(stored.get("channels") or [])
    if channels != stored_channels and not (
            not channels and stored_channels == list(settings.get("conda_default_channels") or [])):
        return False
    conda, pip = _parts(declared)
    stored_conda, stored_pip = _parts(stored)
    conda_added = list(settings.get("conda_included_packages") or [])
    if not conda:
        conda_added += settings.get("conda_default_packages") or []
    pip_added = list(settings.get("pypi_included_packages") or [])
    if not pip:
        pip_added += settings.get("pypi_default_packages") or []
    return (_without_added(stored_conda, conda, conda_added) == conda
            and _without_added(stored_pip, pip, pip_added) == pip)


def failure_summary(log: str, limit: int = 300) -> str:
    """The line of a build log that says why it failed (the last error line, else the last line)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"error|exception|not found|failed", line, re.IGNORECASE):
            return line[:limit]
    return lines[-1][:limit] if lines else "no build log"


async def _result_for(client: AsyncCondaStoreClient, namespace: str, spec: EnvironmentSpec
                      ) -> SyncResult:
    doc = specification_document(spec)
    existing = await client.environment(namespace, spec.name)
    latest: BuildInfo | None = None
    if existing is not None:
        latest = await client.latest_build(namespace, spec.name)
    if latest is not None and latest.specification is not None:
        settings = await client.settings(namespace, spec.name)
        if same_specification(doc, latest.specification, settings):
            message = ""
            if latest.status in ("FAILED", "CANCELED"):
                message = (f"the latest build of this spec {latest.status.lower()}; change the "
                           f"spec to try again ({await _why(client, latest)})")
            return SyncResult(spec.name, "unchanged", latest.id, latest.status, message)
    build_id = await client.submit_specification(namespace, doc)
    return SyncResult(spec.name, "created" if existing is None else "updated", build_id, "QUEUED")


async def _why(client: AsyncCondaStoreClient, build: BuildInfo) -> str:
    if build.status_info:
        return build.status_info
    try:
        return failure_summary(await client.build_log(build.id))
    except CondaStoreError as e:
        return f"no build log: {e}"


async def sync_declared_environments(client: AsyncCondaStoreClient, config: QHubConfig, *,
                                     wait: float = 0, poll_interval: float = 1.0) -> SyncReport:
    """Submit new and changed declared environments; never raises for conda-store's answers.

    `wait`: seconds to wait for the builds started here to finish (0: return at once).
    """
    namespace = config.conda_store.global_namespace
    report = SyncReport(namespace)
    specs = list(config.declared_environments.values())
    try:
        for ns in [namespace, *config.security.groups]:
            await client.ensure_namespace(ns)
    except CondaStoreError as e:
        report.problems.append(f"cannot create namespace: {e}")
        report.retry_advised = _retryable(e)
        if e.status is None:  # unreachable: nothing else will work either
            report.results = [SyncResult(s.name, "failed", message=str(e), retryable=True)
                              for s in specs]
            return report
    for spec in specs:
        try:
            report.results.append(await _result_for(client, namespace, spec))
        except CondaStoreError as e:
            report.results.append(SyncResult(spec.name, "failed", message=_refusal(e),
                                             retryable=_retryable(e)))
            report.retry_advised |= _retryable(e)
    if wait > 0:
        await _wait_for_builds(client, report, wait, poll_interval)
    return report


def _refusal(error: CondaStoreError) -> str:
    if error.status is None or error.status >= 500:
        return str(error)
    if error.status == 400:
        return f"conda-store refused the spec: {error.message}; fix it in the config"
    return str(error)


def _retryable(error: CondaStoreError) -> bool:
    return error.status is None or error.status >= 500


async def _wait_for_builds(client: AsyncCondaStoreClient, report: SyncReport, wait: float,
                           poll_interval: float) -> None:
    deadline = time.monotonic() + wait
    pending = {i for i, r in enumerate(report.results)
               if r.action in ("created", "updated") and r.build_id is not None}
    while pending:
        for i in sorted(pending):
            result = report.results[i]
            try:
                build = await client.build(result.build_id)  # type: ignore[arg-type]
            except CondaStoreError as e:
                report.results[i] = replace(result, build_status="UNKNOWN", message=str(e))
                pending.discard(i)
                continue
            message = result.message
            if build.status in ("FAILED", "CANCELED"):
                message = f"build {build.status.lower()}: {await _why(client, build)}"
            report.results[i] = replace(result, build_status=build.status, message=message)
            if build.finished:
                pending.discard(i)
        if not pending or time.monotonic() >= deadline:
            break
        await asyncio.sleep(poll_interval)


def sync_declared_environments_blocking(url: str, token: str, config: QHubConfig, *,
                                        wait: float = 0) -> SyncReport:
    """The sync for a command line (not from inside a running event loop)."""

    async def run() -> SyncReport:
        async with AsyncCondaStoreClient(url, token) as client:
            return await sync_declared_environments(client, config, wait=wait)

    return asyncio.run(run())
