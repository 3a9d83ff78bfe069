"""The published GitHub example payloads and the GitHub catalog, for tests (issue 11 §1).

The corpus is `@octokit/webhooks-examples` at the version pinned in
tests/data/github-examples/SOURCE.json, installed into .cache/npm/ by
scripts/test-data.sh (which scripts/test.sh sources and which exports its directory as
HOOKLINE_TEST_GITHUB_EXAMPLES). When it is not there, `examples_dir` raises, at
collection of the tests that use it: a missing corpus fails the run, never skips it.

The catalog side is cached here, for every test module alike: parsing megabytes of YAML
and checking each schema against the 2020-12 meta-schema take seconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hookline.api.eventtype import EventType
from hookline.catalog import github_catalog
from hookline.receiver.eventtypes import CompiledEventType, compile_event_type

REPO = Path(__file__).resolve().parents[2]
TEST_DATA = REPO / "tests" / "data" / "github-examples"
ENV = "HOOKLINE_TEST_GITHUB_EXAMPLES"
GITHUB_COM = "api.github.com"
# The package's GitHub Enterprise Server directories: the same events, recorded from
# older (3.1) to newer (3.5) GHES releases.
GHES = ("ghes-31", "ghes-32", "ghes-33", "ghes-34", "ghes-35")
HOSTS = (GITHUB_COM, *GHES)


class CorpusMissing(RuntimeError):
    """The pinned example payloads are not installed."""


@dataclass(frozen=True)
class Example:
    host: str  # GITHUB_COM or one of GHES
    event: str  # the X-GitHub-Event value
    index: int  # its place among the event's examples in the package
    payload: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.host}/{self.event}[{self.index}]"


@cache
def recorded() -> dict[str, str]:
    """tests/data/github-examples/SOURCE.json: the pinned packages and versions."""
    data: dict[str, str] = json.loads((TEST_DATA / "SOURCE.json").read_text())
    return data


def examples_dir() -> Path:
    version = recorded()["examples_version"]
    default = REPO / ".cache" / "npm" / f"webhooks-examples-{version}"
    directory = Path(os.environ.get(ENV) or default)
    package = directory / "package.json"
    found = json.loads(package.read_text()).get("version") if package.is_file() else None
    if found != version:
        raise CorpusMissing(
            f"@octokit/webhooks-examples@{version} is not installed at {directory} "
            f"(found {found or 'nothing'}): run `source scripts/test-data.sh` "
            "(scripts/test.sh does)"
        )
    return directory


@cache
def corpus(host: str = GITHUB_COM) -> tuple[Example, ...]:
    """Every example payload of one host's index.json, in the package's order."""
    index = json.loads((examples_dir() / host / "index.json").read_text())
    return tuple(
        Example(host, entry["name"], position, payload)
        for entry in index
        for position, payload in enumerate(entry["examples"])
    )


def every_example() -> tuple[Example, ...]:
    return tuple(example for host in HOSTS for example in corpus(host))


# --- the catalog, as the receiver compiles it --------------------------------------------


@cache
def manifests() -> tuple[dict[str, Any], ...]:
    return tuple(github_catalog())


@cache
def catalog() -> dict[str, dict[str, Any]]:
    """Event name (the X-GitHub-Event value) -> manifest."""
    return {m["spec"]["match"]["header"]["value"]: m for m in manifests()}


@cache
def resource(event: str) -> EventType:
    # The costly part: the model checks the schema against the 2020-12 meta-schema with
    # the pure-Python `jsonschema`, a few tenths of a second per manifest.
    return EventType.model_validate(catalog()[event])


@cache
def compiled(event: str) -> CompiledEventType:
    """The EventType exactly as the receiver compiles it."""
    return compile_event_type(resource(event))
