"""Which EventType version is the newest.

Used for `{type}` references without a version and for the "allows any" order. Stable
versions outrank pre-releases, as Kubernetes ranks API versions (v2 > v1 > v2beta1 >
v1alpha1), so a reference without a version never moves to an alpha by itself. Within
each group a version is split into runs of digits and runs of letters (`.`, `-` and `_`
only separate); digit runs compare as numbers, letter runs case-insensitively, and where
one version ends while the other goes on with letters the shorter one is newer (a
release outranks its pre-release). So v10 > v9, 1.10 > 1.9, 2024-05-01 > 2023-01-01,
v1beta2 > v1beta1 > v1alpha1, v1.1 > v1. Versions that compare equal (v1 and V1) fall
back to plain string order.
"""

from __future__ import annotations

import re

_VERSION_TOKEN = re.compile(r"\d+|[^\W\d_]+")
_TEXT, _END, _NUMBER = 0, 1, 2

VersionKey = tuple[bool, tuple[tuple[int, int, str], ...], str]


def is_prerelease(version: str) -> bool:
    """Letters anywhere but a leading "v" mark a pre-release (beta, alpha, rc, ...)."""
    tokens = _VERSION_TOKEN.findall(version)
    if tokens and tokens[0].lower() == "v":
        tokens = tokens[1:]
    return any(not t.isdigit() for t in tokens)


def version_key(version: str) -> VersionKey:
    """Sort key for spec.version: larger is newer."""
    tokens = [
        (_NUMBER, int(t), "") if t.isdigit() else (_TEXT, 0, t.lower())
        for t in _VERSION_TOKEN.findall(version)
    ]
    # END ranks between letters and digits: v1 < v1.1 (digits go on) but
    # v1 > v1beta1 (letters go on: a pre-release of v1).
    tokens.append((_END, 0, ""))
    return not is_prerelease(version), tuple(tokens), version
