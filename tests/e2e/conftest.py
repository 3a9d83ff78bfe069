"""Fixtures of the tests that run hookline's operator against the KMock emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.kmock_harness import StrictEmulator
from tests.support.operator_env import emulator


@pytest.fixture
async def k8s() -> AsyncIterator[StrictEmulator]:
    """The strict emulator with hookline's CRDs and the receivers' admin-token Secret."""
    async with emulator() as k:
        yield k
