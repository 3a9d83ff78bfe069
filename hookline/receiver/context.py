"""What event types and filters see of one delivery (issue 4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EventContext:
    """One delivery as the rules see it.

    `payload` is the parsed JSON body (None when the body is not JSON); `headers` match
    names case-insensitively (the receiver passes aiohttp's CIMultiDictProxy);
    `event_type` is the recognised EventType's spec.type (meta:eventType), None before
    recognition or when none matched; `source_ip` is the caller's address
    (meta:sourceIP).
    """

    payload: Any
    headers: Mapping[str, str]
    event_type: str | None = None
    source_ip: str = ""
