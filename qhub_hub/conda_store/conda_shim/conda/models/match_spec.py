"""Enough of conda's MatchSpec for conda-store's spec checks: the package name, or ValueError."""

import re

# [channel[/subdir]::]name[ version[ build]] | name<op>version | name[key=value,...]
_SPEC = re.compile(
    r"^(?:(?P<channel>[A-Za-z0-9_./:-]+)::)?"
    r"(?P<name>[A-Za-z0-9_][A-Za-z0-9_.+-]*|\*)"
    r"(?P<rest>(?:\s*(?:[=<>!~]=?|\s)[^\[\]]*)?(?:\[[^\[\]]*\])?)$"
)


class MatchSpec:
    def __init__(self, spec: str):
        if not isinstance(spec, str):
            raise TypeError(f"MatchSpec wants a string, got {type(spec).__name__}")
        match = _SPEC.match(spec.strip())
        if match is None:
            raise ValueError(f"invalid conda match spec: {spec!r}")
        self.spec = spec
        self.name = match.group("name").lower()
        self.channel = match.group("channel")

    def __str__(self) -> str:
        return self.spec
