"""Type and range checks for the config dataclasses (recipe sections and command options).

`check_fields(obj, ranges)` is called first thing in a dataclass's `__post_init__`: every field
whose annotation is int, float, bool or str (optionally `| None`) must hold that type (an int is
taken for a float; NaN and infinity are never taken), and every field named in `ranges` must lie
in its range. A range is a short text: "> 0", ">= 1", "<= 0", "[0, 1]", "(0, 1]", "[0, 1)";
a range ending in " or inf" also takes infinity (a limit that can be switched off).
The ValueError names the field, what is allowed and what was given, e.g.
`lr must be a number > 0, not -0.1`."""
from __future__ import annotations

import dataclasses
import math
import operator

_TYPES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def check_fields(obj, ranges: dict[str, str] | None = None) -> None:
    """Raise ValueError for the first field of dataclass `obj` of the wrong type or out of range.
    Ints given for float fields become floats (also on frozen dataclasses)."""
    ranges = ranges or {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        kind, optional = _simple_type(f.type)
        if kind is None or (optional and value is None):
            continue
        allowed = _TYPES[kind] + (" or none" if optional else "")
        if f.name in ranges:
            allowed += " " + ranges[f.name]
        if kind == "float" and value == math.inf and ranges.get(f.name, "").endswith(" or inf"):
            continue  # a limit that may be switched off (e.g. beam_threshold = inf)
        if not _is(kind, value):
            raise ValueError(f"{f.name} must be {allowed}, not {value!r}")
        if kind == "float" and isinstance(value, int):
            object.__setattr__(obj, f.name, float(value))
        if f.name in ranges and not in_range(value, ranges[f.name]):
            raise ValueError(f"{f.name} must be {allowed}, not {value!r}")
    unknown = set(ranges) - {f.name for f in dataclasses.fields(obj)}
    if unknown:
        raise TypeError(f"ranges for unknown fields {sorted(unknown)}")


def check_value(name: str, value, kind: str, allowed: str | None = None) -> None:
    """The same check for one loose value (a list element, a command option)."""
    text = _TYPES[kind] + (f" {allowed}" if allowed else "")
    if not _is(kind, value) or (allowed and not in_range(value, allowed)):
        raise ValueError(f"{name} must be {text}, not {value!r}")


def in_range(value, spec: str) -> bool:
    spec = spec.removesuffix(" or inf").strip()
    if spec[0] in "[(" and spec[-1] in "])":
        low, high = (float(x) for x in spec[1:-1].split(","))
        above = value >= low if spec[0] == "[" else value > low
        below = value <= high if spec[-1] == "]" else value < high
        return above and below
    op, _, number = spec.partition(" ")
    return _COMPARE[op](value, float(number))


def _simple_type(annotation) -> tuple[str | None, bool]:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = [p.strip() for p in text.split("|")]
    optional = "None" in parts
    parts = [p for p in parts if p != "None"]
    if len(parts) == 1 and parts[0] in _TYPES:
        return parts[0], optional
    return None, False


def _is(kind: str, value) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    return isinstance(value, (int, float)) and math.isfinite(value)
