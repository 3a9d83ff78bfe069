"""GitHub catalog validation benchmark: the tolerant schemas against the strict ones
(issue 11 §1).

The baseline, in the same run, is the catalog as it was before issue 11: GitHub's
description as it stands (`required`, `enum`, bounds; only closed objects opened) and
`anyOf` an event's actions, rendered from the same pinned source with
`generate.bundle(..., tolerant=False)`. Both are compiled exactly as the receiver
compiles an EventType. The payloads are the pinned `@octokit/webhooks-examples`
(installed by scripts/test-data.sh): the 329 github.com ones.

    source scripts/test-data.sh && .venv/bin/python bench/catalog.py [--rounds N]

Cases, each one pass over the payloads, median of N rounds (interleaved):
- `validate`, all: the receiver's call (`CompiledEventType.validate`) on every payload;
  the strict schemas refuse a third of them and build the 422's errors for those;
- `is_valid`, accepted by both: jsonschema-rs alone, on the payloads both accept.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent)]

from hookline.api import EventType  # noqa: E402
from hookline.catalog import generate as gen  # noqa: E402
from hookline.receiver.eventtypes import CompiledEventType, compile_event_type  # noqa: E402
from tests.support.github_corpus import TEST_DATA, catalog, corpus  # noqa: E402


def _compiled(manifest: dict[str, Any]) -> CompiledEventType:
    return compile_event_type(EventType.model_validate(manifest))


def _strict_catalog(events: set[str]) -> dict[str, CompiledEventType]:
    source = json.loads(gzip.decompress((TEST_DATA / "source.json.gz").read_bytes()))
    hooks = gen.events(source)
    out: dict[str, CompiledEventType] = {}
    for event in sorted(events):
        manifest = json.loads(json.dumps(catalog()[event]))
        manifest["spec"]["schema"] = gen.bundle(source, hooks[event], tolerant=False)
        out[event] = _compiled(manifest)
    return out


def _pass_ms(call: Callable[[], object], rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    examples = corpus()
    events = {e.event for e in examples}
    tolerant = {event: _compiled(catalog()[event]) for event in sorted(events)}
    strict = _strict_catalog(events)
    pairs = [(e.event, e.payload) for e in examples]
    strict_ok = [(ev, p) for ev, p in pairs if not strict[ev].validate(p)]
    tolerant_ok = [(ev, p) for ev, p in pairs if not tolerant[ev].validate(p)]
    both = [(ev, p) for ev, p in strict_ok if not tolerant[ev].validate(p)]
    assert len(tolerant_ok) == len(pairs), "the tolerant catalog must accept every payload"

    def validate_all(schemas: dict[str, CompiledEventType]) -> Callable[[], object]:
        return lambda: [schemas[ev].validate(p) for ev, p in pairs]

    def is_valid_both(schemas: dict[str, CompiledEventType]) -> Callable[[], object]:
        validators = {ev: c._validator for ev, c in schemas.items()}
        return lambda: [validators[ev].is_valid(p) for ev, p in both]

    cases: dict[str, Callable[[], object]] = {
        "validate, all: strict (before)": validate_all(strict),
        "validate, all: tolerant": validate_all(tolerant),
        "is_valid, accepted by both: strict (before)": is_valid_both(strict),
        "is_valid, accepted by both: tolerant": is_valid_both(tolerant),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, call in cases.items():
            results[name].append(_pass_ms(call))
    median = {name: statistics.median(values) for name, values in results.items()}

    print(f"payloads: {len(pairs)} github.com examples of {len(events)} events")
    print(
        f"accepted: strict {len(strict_ok)}/{len(pairs)}, tolerant {len(tolerant_ok)}/{len(pairs)}"
    )
    print(f"python {platform.python_version()}, {platform.machine()}; median of {args.rounds}")
    width = max(map(len, median))
    for name, value in median.items():
        n = len(pairs) if name.startswith("validate") else len(both)
        print(f"{name:<{width}}  {value:8.2f} ms/pass  {value * 1000 / n:7.1f} µs/payload")
    for label in ("validate, all", "is_valid, accepted by both"):
        ratio = median[f"{label}: tolerant"] / median[f"{label}: strict (before)"]
        print(f"ratio tolerant/strict, {label}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
