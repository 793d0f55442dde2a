"""The import report: every key of the input file, once, with what became of it.

A mapper records explicit decisions (`mapped`, `dropped`, `needs_decision`) at the paths it
handles; `Report.render` then walks the whole input and gives every key a line, inheriting the
decision of its nearest recorded ancestor ("part of ...") when nothing was recorded for it. So
a key the mappers never heard of still appears, under the decision of its section, and a whole
unknown section is flagged by `flag_unrecorded` as needing a decision.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config_errors import format_path

MAPPED = "mapped"
DROPPED = "dropped"
DECIDE = "needs decision"
STATUSES = (MAPPED, DROPPED, DECIDE)
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Entry:
    path: Path
    status: str
    detail: str


def walk_keys(data: Any, path: Path = (), max_depth: int = 6) -> Iterator[Path]:
    """Every key path of `data`: mapping keys, and list indexes of lists of mappings (profiles);
    lists of plain values (dependencies, group names) are leaves."""
    if len(path) >= max_depth:
        return
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield (*path, str(key))
            yield from walk_keys(value, (*path, str(key)), max_depth)
    elif isinstance(data, list) and data and all(isinstance(v, Mapping) for v in data):
        for i, value in enumerate(data):
            yield (*path, i)
            yield from walk_keys(value, (*path, i), max_depth)


@dataclass
class Report:
    source: str
    kind: str  # "QHub 0.3" or "Nebari"
    entries: dict[Path, Entry] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def _add(self, path: Sequence[str | int], status: str, detail: str) -> None:
        key = tuple(path)
        old = self.entries.get(key)
        if old is not None and old.status == DECIDE and status != DECIDE:
            return  # a decision to make is never hidden by a later, milder line for the same key
        if old is not None and old.status == status and detail not in old.detail:
            detail = f"{old.detail}; {detail}"
        self.entries[key] = Entry(key, status, detail)

    def mapped(self, path: Sequence[str | int], to: str) -> None:
        self._add(path, MAPPED, to)

    def dropped(self, path: Sequence[str | int], why: str) -> None:
        self._add(path, DROPPED, why)

    def needs_decision(self, path: Sequence[str | int], what: str) -> None:
        self._add(path, DECIDE, what)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def flag_unrecorded(self, data: Mapping[str, Any], why: str) -> None:
        """Top-level keys no mapper recorded: unknown to both generations and to qhub-hub."""
        for key in data:
            if not any(p[:1] == (str(key),) for p in self.entries):
                self.needs_decision((str(key),), why)

    def decision_for(self, path: Path) -> tuple[Entry | None, bool]:
        """The entry that decides `path` and whether it was recorded for `path` itself."""
        for n in range(len(path), 0, -1):
            entry = self.entries.get(path[:n])
            if entry is not None:
                return entry, n == len(path)
        return None, False

    def lines(self, data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        """(status, path, detail) for every key of `data`, in the order of the input."""
        out = []
        for path in walk_keys(data):
            entry, own = self.decision_for(path)
            if entry is None:  # cannot happen after flag_unrecorded; never hide a key anyway
                out.append((DECIDE, format_path(path), "not handled by the importer; review it"))
            elif own:
                out.append((entry.status, format_path(path), entry.detail))
            else:
                out.append((entry.status, format_path(path), f"part of {format_path(entry.path)}"))
        return out

    def counts(self, data: Mapping[str, Any]) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for status, _, _ in self.lines(data):
            counts[status] += 1
        return counts

    def render(self, data: Mapping[str, Any]) -> str:
        lines = self.lines(data)
        counts = self.counts(data)
        out = [f"# qhub-hub import of {self.source} ({self.kind})",
               f"# {len(lines)} keys: {counts[MAPPED]} mapped, {counts[DROPPED]} dropped, "
               f"{counts[DECIDE]} need a decision",
               "#",
               "# mapped: carried over (to what); dropped: not ours (why);",
               "# needs decision: carried over differently or not at all; decide what you want", ""]
        if self.notes:
            out.append("## Read first")
            out += [f"- {n}" for n in self.notes]
            out.append("")
        decide = [(p, d) for s, p, d in lines if s == DECIDE and not d.startswith("part of ")]
        if decide:
            out.append("## Needs a decision")
            out += [f"- {p}: {d}" for p, d in decide]
            out.append("")
        out.append("## Every key")
        width = max((len(p) for _, p, _ in lines), default=0)
        width = min(width, 60)
        for status, path, detail in lines:
            out.append(f"{status:<15} {path:<{width}}  {detail}")
        return "\n".join(out) + "\n"
