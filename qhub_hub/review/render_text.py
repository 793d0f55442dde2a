"""`qhub-hub diff` for a terminal: warnings first, then one block per person, one line per change."""

from __future__ import annotations

from .changes import ConfigDiff

_STATUS = {"added": " (new access)", "removed": " (loses all access)", "changed": ""}


def render_text(diff: ConfigDiff) -> str:
    """Empty when nothing changes."""
    if diff.empty:
        return ""
    lines = [f"--- {diff.old_name}", f"+++ {diff.new_name}"]
    if diff.warnings:
        lines.append("")
        for w in diff.warnings:
            lines.append(f"warning: {w.message}")
            lines.append(f"  what to do: {w.action}")
    for subject_diff in diff.subjects:
        lines.append("")
        lines.append(f"{subject_diff.subject.label}{_STATUS[subject_diff.status]}:")
        lines.extend(f"  {change.text}" for change in subject_diff.changes)
    return "\n".join(lines) + "\n"
