"""`qhub-hub diff --format markdown`: a pull-request comment (GitHub-flavoured Markdown).

Warnings first (a reviewer must not scroll past them), then one section per person. Names come
from the config and the identity provider, so every piece of text is escaped: a username such as
``<img src=x>`` or ``a|b`` stays text. A long review is cut at `MAX_CHARS` (GitHub refuses
comments over 65536 characters) with a note saying how to see the rest.
"""

from __future__ import annotations

import html
import re

from .changes import ConfigDiff, SubjectDiff

MAX_CHARS = 60_000
COLLAPSE_AFTER = 30  # people; more are folded into a <details> block
_STATUS = {"added": "new access", "removed": "loses all access", "changed": "changed"}
_MARK = {"gained": "⊕", "added": "⊕", "lost": "⊖", "removed": "⊖"}  # in common fonts, unlike emoji
# characters that mean something inside a line (list markers and the like never start one here);
# written as numeric character references, which CommonMark (GitHub) and python-markdown both
# show as the character (backslash escapes of '|' and '~' are not understood by every renderer)
_MD_SPECIAL = re.compile(r"[\\`*_\[\]#|~]")


def escape(text: str) -> str:
    """Text shown as written: HTML characters and Markdown punctuation as character references."""
    return _MD_SPECIAL.sub(lambda m: f"&#{ord(m.group())};", html.escape(text, quote=False))


def with_code(text: str) -> str:
    """`escape`, except that `commands` between backticks become code spans."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: all text
        return escape(text)
    return "".join(escape(p) if i % 2 == 0 else f"`{p}`" for i, p in enumerate(parts))


def render_markdown(diff: ConfigDiff) -> str:
    """Empty when nothing changes."""
    if diff.empty:
        return ""
    people = len(diff.subjects)
    head = [f"## Access review: {escape(diff.old_name)} → {escape(diff.new_name)}", "",
            f"**{people} {'person or group' if people == 1 else 'people or groups'}** with changed "
            f"access, **{len(diff.warnings)} warning{'' if len(diff.warnings) == 1 else 's'}**.", ""]
    if diff.warnings:
        head += ["### ⚠️ Warnings", ""]
        for w in diff.warnings:
            head.append(f"- **{escape(w.code.replace('_', ' '))}** ({escape(w.subject)}): "
                        f"{escape(w.message)}  ")
            head.append(f"  *What to do:* {with_code(w.action)}")
        head.append("")
    sections = [_section(s) for s in diff.subjects]
    body: list[str] = []
    if sections:
        body += ["### Who gets what", ""]
        if len(sections) > COLLAPSE_AFTER:
            body += [f"<details><summary>{people} people or groups</summary>", ""]
    text = "\n".join(head + body)
    shown = 0
    for section in sections:
        if len(text) + len(section) > MAX_CHARS:
            break
        text += "\n" + section
        shown += 1
    if shown < len(sections):
        text += (f"\n*… and {len(sections) - shown} more: the review is too long for one comment; "
                 "run `qhub-hub diff` locally for all of it.*\n")
    if len(sections) > COLLAPSE_AFTER:
        text += "\n</details>\n"
    return text


def _section(subject_diff: SubjectDiff) -> str:
    lines = [f"#### {escape(subject_diff.subject.label)} ({_STATUS[subject_diff.status]})", ""]
    for change in subject_diff.changes:
        mark = _MARK.get(change.kind.rsplit("_", 1)[-1], "✏️")
        lines.append(f"- {mark} {escape(change.text)}")
    return "\n".join(lines) + "\n"
