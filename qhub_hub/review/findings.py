"""What `qhub-hub audit` found: one `Finding` per difference between the machine and the plans.

`kind` values (stable, the JSON output's contract):
group_missing, group_gid, account_missing, account_ids, account_home, account_groups,
account_unexplained, folder_missing, folder_not_directory, folder_owner, folder_mode,
folder_default_acl, folder_acl_missing, folder_acl_extra, process_ids, process_unexplained,
pod_unexplained, pod_security_context, pod_mounts
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str  # the account, group, folder, process or pod
    message: str  # what is wrong
    action: str  # what to do about it
    fixable: bool = False  # `--fix` repairs it
    fixed: str = ""  # what `--fix` did ("" : not fixed)

    def done(self, what: str) -> Finding:
        return replace(self, fixed=what)


@dataclass
class AuditReport:
    target: str  # "this machine" or "pods in namespace X"
    checked: dict[str, int] = field(default_factory=dict)  # e.g. {"accounts": 6, "folders": 12}
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not checked, and why

    @property
    def remaining(self) -> list[Finding]:
        return [f for f in self.findings if not f.fixed]

    @property
    def fixed(self) -> list[Finding]:
        return [f for f in self.findings if f.fixed]


def render_findings(report: AuditReport) -> str:
    checked = ", ".join(f"{n} {what}" for what, n in report.checked.items())
    lines = [f"audit of {report.target}: {checked} checked"]
    lines += [f"note: {n}" for n in report.notes]
    for f in report.fixed:
        lines.append(f"fixed: {f.subject}: {f.fixed}")
    for f in report.remaining:
        lines.append(f"{f.kind}: {f.subject}: {f.message}")
        lines.append(f"  what to do: {f.action}")
    if report.remaining:
        fixable = sum(f.fixable for f in report.remaining)
        lines.append(f"{len(report.remaining)} problem(s)"
                     + (f"; {fixable} can be repaired with --fix" if fixable else "")
                     + (f"; {len(report.fixed)} fixed" if report.fixed else ""))
    else:
        lines.append("everything matches the plans" + (f" ({len(report.fixed)} fixed)" if report.fixed else ""))
    return "\n".join(lines) + "\n"


def render_findings_json(report: AuditReport) -> str:
    return json.dumps({"target": report.target, "checked": report.checked, "notes": report.notes,
                       "findings": [asdict(f) for f in report.findings]}, indent=2) + "\n"
