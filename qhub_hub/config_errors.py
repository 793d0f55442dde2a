"""Config problems that name the path of the value and say what to do."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class Problem:
    path: str  # e.g. "profiles.jupyterlab[2].groups[0]"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.path or '(config)'}: {self.message}"


class ConfigError(ValueError):
    """The config is not valid; `problems` says where and why."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} problem(s) in the qhub config:\n"
                         + "\n".join(f"  {p}" for p in self.problems))


def format_path(parts: Sequence[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def problems_from_pydantic(error: Exception, model: type[BaseModel], data: Any) -> list[Problem]:
    """One problem per path; `data` is the raw input, to tell union-branch names from real keys."""
    if not isinstance(error, ValidationError):
        return [Problem("", f"could not be read: {error}")]
    merged: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        path_parts = _data_path(item["loc"], item["type"], data)
        if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path_parts.append(item["ctx"]["discriminator"].strip("'"))
        message = _message(item, path_parts, model)
        key = format_path(path_parts)
        if message not in merged.setdefault(key, []):
            merged[key].append(message)
    return [Problem(path, " or ".join(msgs)) for path, msgs in merged.items()]


def _data_path(loc: Sequence[str | int], error_type: str, data: Any) -> list[str | int]:
    """Keep the parts of a pydantic location that are keys or indexes of the input data."""
    parts: list[str | int] = []
    node = data
    for i, seg in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, Mapping) and seg in node:
            parts.append(seg)
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            parts.append(seg)
            node = node[seg]
        elif last and error_type == "missing" and isinstance(node, Mapping):
            parts.append(seg)
        # otherwise: a union branch or discriminator tag, not part of the user's file
    return parts


def _message(item: dict[str, Any], parts: list[str | int], model: type[BaseModel]) -> str:
    kind = item["type"]
    if kind == "missing":
        return "required: add this key"
    if kind == "extra_forbidden":
        key = str(parts[-1]) if parts else "?"
        allowed = _allowed_keys(model, parts[:-1])
        hint = ""
        if allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = (f"; did you mean {close[0]!r}?" if close else "") + f" (allowed: {', '.join(allowed)})"
        return f"unknown key {key!r}: remove it or fix its spelling{hint}"
    if kind == "union_tag_invalid":
        return (f"{item['ctx']['tag']!r} is not one of {item['ctx']['expected_tags']}; "
                "pick one of those")
    if kind == "union_tag_not_found":
        return "required: add this key"
    msg = item["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind not in ("value_error", "assertion_error") and "input" in item:
        shown = repr(item["input"])
        msg += f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"
    return msg


def _allowed_keys(model: type[BaseModel], parts: Sequence[str | int]) -> list[str]:
    node: Any = model
    for part in parts:
        node = _child_type(node, part)
        if node is None:
            return []
    node = _unwrap_model(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [f.alias or name for name, f in node.model_fields.items()]
    return []


def _unwrap_model(tp: Any) -> Any:
    """Optional[Model] / Annotated[Model | Other, ...] -> the single model class, if any."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap_model(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        models = [a for a in map(_unwrap_model, typing.get_args(tp))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else None
    return tp


def _child_type(tp: Any, part: str | int) -> Any:
    tp = _unwrap_container_or_model(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return field.annotation if field else None
    origin = typing.get_origin(tp)
    if origin in (list, dict, Sequence, Mapping):
        return typing.get_args(tp)[-1]
    return None


def _unwrap_container_or_model(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap_container_or_model(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            arg = _unwrap_container_or_model(arg)
            if arg is not type(None):
                return arg
    return tp
