"""Fixtures of the GitHub client and hook checks (issue 12): the local GitHub API
(tests/support/github_api.py, every exchange checked against GitHub's description) and a
sink standing where the receiver would be, on fake clocks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from functools import cache

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.clock import FakeClock
from tests.support.github_api import FakeGitHub, Grant
from tests.support.sink import Sink

TOKEN = "ghp_" + "t" * 36
REPO = "acme/builds"


@cache
def app_key() -> tuple[str, str]:
    """(private, public) PEM of a GitHub App's key, made once per run."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


async def _github(clock: FakeClock, prefix: str = "") -> AsyncIterator[FakeGitHub]:
    github = FakeGitHub(clock, prefix=prefix)
    github.repos.add(REPO)
    github.orgs.add("acme")
    github.tokens[TOKEN] = Grant()
    await github.start()
    try:
        yield github
    finally:
        await github.close()
    # Every request the client sent and every answer given is as GitHub documents it.
    assert github.violations == []


@pytest.fixture
async def github(clock: FakeClock) -> AsyncIterator[FakeGitHub]:
    async for server in _github(clock):
        yield server


@pytest.fixture
async def enterprise(clock: FakeClock) -> AsyncIterator[FakeGitHub]:
    async for server in _github(clock, "/api/v3"):
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[Sink]:
    """Where the hook points: answers 202 unless scripted otherwise."""
    sink = await Sink(default=202).start()
    try:
        yield sink
    finally:
        await sink.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
