"""Turn pydantic's errors into lines a resource author can act on: the field path in
the manifest's own spelling, then what was wrong."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import ValidationError

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def field_path(loc: Sequence[int | str]) -> str:
    """('spec', 'destinations', 1, 'url') -> 'spec.destinations[1].url'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]" or part.startswith(
            ("function-after[", "function-before[", "function-wrap[")
        ):
            continue  # pydantic's internal validator frames, not a field
        elif not _IDENTIFIER.match(part):
            out += f"[{part!r}]"  # a map key such as a header name
        else:
            out += f".{part}" if out else part
    return out or "(object)"


def format_validation_error(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        message = error["msg"]
        if error["type"] == "value_error":
            message = str(error.get("ctx", {}).get("error", message.removeprefix("Value error, ")))
        elif error["type"] == "extra_forbidden":
            message = "unknown field (check its spelling)"
        elif error["type"] == "missing":
            message = "required"
        elif error["type"] in ("literal_error", "enum"):
            message = (
                f"{error['input']!r} is not allowed: {message.removeprefix('Input should be ')}"
            )
        lines.append(f"{field_path(error['loc'])}: {message}")
    return lines
