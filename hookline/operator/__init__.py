"""The hookline operator (issue 6): `kopf run -m hookline.operator`.

Importing the package registers every handler into kopf's default registry, with a
context that reads its settings from HOOKLINE_* variables when the operator starts (not
at import: importing stays free of side effects beyond the registration). Tests use
`register_all` with a registry and context of their own.
"""

from __future__ import annotations

import kopf

from .context import OperatorContext
from .main import register_all

__all__ = ["OperatorContext", "register_all"]

register_all(kopf.get_default_registry(), OperatorContext())
