"""Resource quantities as admins write them: memory '4G' / '512Mi' / bytes, CPU '500m' / 2."""

from __future__ import annotations

import re

# kubespawner's convention: K/M/G/T are 1024-based; the Kubernetes spellings Ki/Mi/Gi/Ti too,
# and lowercase k/m/g/t are read the same way so '4g' does not silently mean 4 bytes.
_BYTE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_bytes(value: str | int | float) -> int:
    """'4G' -> 4294967296. Raises ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("must be a memory size such as '4G', '512M' or a number of bytes")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("must not be negative")
        return int(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*", str(value))
    if not match:
        raise ValueError(f"{value!r} is not a memory size; write e.g. '4G', '512M' or a number of bytes")
    number, unit, _ = match.groups()
    return int(float(number) * _BYTE_UNITS[unit.lower()])


def parse_cpu(value: str | int | float) -> float:
    """'500m' -> 0.5, 2 -> 2.0. Raises ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("must be a number of cores such as 2, 0.5 or '500m'")
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)(m?)\s*", str(value))
    if not match:
        raise ValueError(f"{value!r} is not a CPU amount; write e.g. 2, 0.5 or '500m'")
    number, milli = match.groups()
    return float(number) / (1000 if milli else 1)
