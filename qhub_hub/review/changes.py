"""The diff model: what changes for whom, and the warnings a reviewer must not miss.

Plain frozen data; the renderers (text, markdown, JSON) only format it. `kind` values are stable
names (the JSON output's contract):

login, uid, gid, primary_group, supplemental_gids, readonly_gids, admin,
membership_added, membership_removed, membership_access,
folder_gained, folder_lost, folder_access,
profile_gained, profile_lost, profile_resources,
dask_profile_gained, dask_profile_lost, dask_profile_resources,
namespace_gained, namespace_lost
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .subjects import Subject


@dataclass(frozen=True)
class Change:
    kind: str
    item: str | None  # the group, folder, profile or namespace; None for a field of the person
    before: Any
    after: Any
    text: str  # one line for a reader, e.g. "profile gained: gpu"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "item": self.item, "before": self.before, "after": self.after,
                "text": self.text}


@dataclass(frozen=True)
class SubjectDiff:
    subject: Subject
    status: str  # "added" (no access before), "removed" (no access after), "changed"
    changes: tuple[Change, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.subject.kind, "name": self.subject.name, "label": self.subject.label,
                "status": self.status, "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class ReviewWarning:
    code: str  # uid_renumbered, gid_renumbered, group_removed, gid_reused, last_admin_removed,
    #            default_profile_narrowed, dynamic_ids_moved
    subject: str  # the user, group or profile it is about
    message: str  # what happens
    action: str  # what to do

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "subject": self.subject, "message": self.message,
                "action": self.action}


@dataclass(frozen=True)
class ConfigDiff:
    old_name: str
    new_name: str
    subjects: tuple[SubjectDiff, ...] = ()
    warnings: tuple[ReviewWarning, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.subjects and not self.warnings

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old_name, "new": self.new_name,
                "warnings": [w.to_dict() for w in self.warnings],
                "subjects": [s.to_dict() for s in self.subjects]}
