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

__all__ = ["DEFAULT_CONTEXT", "OperatorContext", "register_all"]

# The context of `kopf run -m hookline.operator` and `hookline operator`: the CLI reads
# its stop flag and fatal message (issue 14).
DEFAULT_CONTEXT = OperatorContext()
register_all(kopf.get_default_registry(), DEFAULT_CONTEXT)
