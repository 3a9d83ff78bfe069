"""EventFilter benchmark: microseconds per evaluation beside hand-written Python.

A realistic five-rule filter (equals, in, a nested any group with starts_with, a
regex_match, and greater_than on an RFC 3339 time) and the same checks as one CEL
expression, each evaluated on the ~10 KB GitHub `workflow_run` payload of
bench/ingest.py. The baseline is a Python function doing the same checks directly
(RE2 regex and time prepared in advance), so the ratio is what the generality of the
engine costs. Single process, no I/O; each figure is the best of several timeit rounds.

    .venv/bin/python bench/filters.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import timeit
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import cel
from multidict import CIMultiDict

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent), str(BENCH_DIR)]

from ingest import workflow_run_payload  # noqa: E402 - the payload bench/ingest.py posts

from hookline.api.eventfilter import EventFilter  # noqa: E402
from hookline.receiver.context import EventContext  # noqa: E402
from hookline.receiver.fieldpath import cel_body_paths, prune_body  # noqa: E402
from hookline.receiver.filters import compile_filter, regex_tester  # noqa: E402

AFTER = "2025-01-01T00:00:00Z"
CONCLUSIONS = ["failure", "timed_out", "startup_failure"]
REPOSITORY = r"^acme/[a-z0-9_.-]+$"

RULES: list[dict[str, Any]] = [
    {"field": "$.action", "operator": "equals", "value": "completed"},
    {"field": "$.workflow_run.conclusion", "operator": "in", "value": CONCLUSIONS},
    {
        "any": [
            {"field": "$.workflow_run.head_branch", "operator": "equals", "value": "main"},
            {"field": "$.workflow_run.head_branch", "operator": "starts_with", "value": "feature/"},
        ]
    },
    {"field": "$.repository.full_name", "operator": "regex_match", "value": REPOSITORY},
    {"field": "$.workflow_run.updated_at", "operator": "greater_than", "value": AFTER},
]
EXPRESSION = (
    'body.action == "completed"'
    f" && body.workflow_run.conclusion in {json.dumps(CONCLUSIONS)}"
    ' && (body.workflow_run.head_branch == "main"'
    ' || body.workflow_run.head_branch.startsWith("feature/"))'
    f" && body.repository.full_name.matches({json.dumps(REPOSITORY)})"
    f' && timestamp(body.workflow_run.updated_at) > timestamp("{AFTER}")'
)


def event_filter(spec: dict[str, Any]) -> EventFilter:
    return EventFilter.model_validate(
        {
            "apiVersion": "hookline.dev/v1alpha1",
            "kind": "EventFilter",
            "metadata": {"name": "bench", "namespace": "bench"},
            "spec": spec,
        }
    )


# The engine's own RE2 call: the regex costs the same on both sides, so the ratio is
# what the engine's generality costs. (The google-re2 wrapper's search() alone takes
# ~6 µs, as long as the rest of the baseline.)
_REPOSITORY = regex_tester(REPOSITORY)
_AFTER = datetime.fromisoformat(AFTER.replace("Z", "+00:00"))
_CONCLUSIONS = frozenset(CONCLUSIONS)


def baseline(payload: dict[str, Any]) -> bool:
    """The same five checks written directly, with the type checks the engine makes."""
    run = payload.get("workflow_run")
    repository = payload.get("repository")
    if payload.get("action") != "completed" or not isinstance(run, dict):
        return False
    if run.get("conclusion") not in _CONCLUSIONS:
        return False
    branch = run.get("head_branch")
    if not isinstance(branch, str) or not (branch == "main" or branch.startswith("feature/")):
        return False
    name = repository.get("full_name") if isinstance(repository, dict) else None
    if not isinstance(name, str) or not _REPOSITORY(name):
        return False
    updated = run.get("updated_at")
    if not isinstance(updated, str):
        return False
    return datetime.fromisoformat(updated.replace("Z", "+00:00")) > _AFTER


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def best_us(action: Callable[[], object], rounds: int) -> float:
    timer = timeit.Timer(action)
    number, _ = timer.autorange()
    number = max(number, 1000)
    return min(timer.repeat(repeat=rounds, number=number)) / number * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timeit rounds (best is kept)")
    args = parser.parse_args(argv)

    payload = workflow_run_payload()
    payload["workflow_run"]["head_branch"] = "feature/retry-budget"
    size = len(json.dumps(payload, separators=(",", ":")))
    headers = CIMultiDict({"X-GitHub-Event": "workflow_run", "Content-Type": "application/json"})
    matching = EventContext(payload, headers, "github.workflow_run", "140.82.115.1")
    dropped_payload = json.loads(json.dumps(payload))
    dropped_payload["workflow_run"]["conclusion"] = "success"
    dropped = EventContext(dropped_payload, headers, "github.workflow_run", "140.82.115.1")

    rules = compile_filter(event_filter({"match": "all", "rules": RULES}))
    expression = compile_filter(event_filter({"expression": EXPRESSION}))
    assert rules.evaluate(matching).matched and expression.evaluate(matching).matched
    assert baseline(payload) and not baseline(dropped_payload)
    dropped_result = rules.evaluate(dropped)
    assert not dropped_result.matched and not expression.evaluate(dropped).matched

    program = cel.compile(EXPRESSION)
    paths = cel_body_paths(EXPRESSION)
    assert paths is not None
    cases: list[tuple[str, Callable[[], object]]] = [
        ("baseline: hand-written Python, same checks", lambda: baseline(payload)),
        ("five rules, match (all evaluated)", lambda: rules.evaluate(matching)),
        ("five rules, dropped at rules[1] (+ detail)", lambda: rules.evaluate(dropped)),
        ("CEL expression, match", lambda: expression.evaluate(matching)),
        ("CEL expression, dropped", lambda: expression.evaluate(dropped)),
        ("CEL program on the whole body (no pruning)", lambda: program.execute({"body": payload})),
        ("  pruning the body for that expression", lambda: prune_body(payload, paths)),
    ]
    rows = [(label, best_us(action, args.rounds)) for label, action in cases]
    base = rows[0][1]
    print(f"python {platform.python_version()} on {cpu_model()}")
    print(f"payload: workflow_run, {size} bytes; best of {args.rounds} timeit rounds")
    print(f"dropped result: {dropped_result.decided_by}: {dropped_result.detail}")
    print(f"{'evaluation':<46} {'µs':>9} {'x baseline':>11}")
    for label, micros in rows:
        print(f"{label:<46} {micros:>9.2f} {micros / base:>11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
