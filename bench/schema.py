"""Schema validation benchmark: microseconds per EventType validation (issue 4).

Validates the ~10 KB GitHub `workflow_run` payload of bench/ingest.py against a
realistic schema for that event (nested objects through $ref, required fields, types,
enums, nullable fields, `format` present but not asserted, as the receiver compiles
it) with jsonschema-rs, the library the receiver uses, and with the pure-Python
`jsonschema` as the same-run baseline, for draft 2020-12 and draft-07. It also times
the receiver's own call, `CompiledEventType.validate`, on a valid payload and on one
with three errors (the 422 path).

    .venv/bin/python bench/schema.py [--seconds S] [--rounds N]

Prints the median of N rounds, each about S seconds per case.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR), str(BENCH_DIR.parent)]

from ingest import workflow_run_payload  # noqa: E402  (bench/ is not a package)

from hookline.api import EventType  # noqa: E402
from hookline.receiver.eventtypes import compile_event_type  # noqa: E402

NULLABLE_STRING = {"type": ["string", "null"]}
URI = {"type": "string", "format": "uri"}
DATE_TIME = {"type": "string", "format": "date-time"}


def _object(required: Sequence[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


def workflow_run_schema() -> dict[str, Any]:
    """Draft 2020-12 schema of a workflow_run event, after GitHub's published one."""
    user = _object(
        ["login", "id", "node_id", "avatar_url", "url", "html_url", "type", "site_admin"],
        login={"type": "string"},
        id={"type": "integer"},
        node_id={"type": "string"},
        avatar_url=URI,
        gravatar_id=NULLABLE_STRING,
        url=URI,
        html_url=URI,
        followers_url=URI,
        following_url={"type": "string", "format": "uri-template"},
        repos_url=URI,
        type={"type": "string", "enum": ["Bot", "User", "Organization"]},
        site_admin={"type": "boolean"},
    )
    repo_ref = _object(["id", "url", "name"], id={"type": "integer"}, url=URI, name={})
    repository_short = _object(
        ["id", "node_id", "name", "full_name", "private", "html_url", "fork", "url"],
        id={"type": "integer"},
        node_id={"type": "string"},
        name={"type": "string"},
        full_name={"type": "string", "pattern": "^[^/]+/[^/]+$"},
        private={"type": "boolean"},
        owner={"$ref": "#/$defs/user"},
        html_url=URI,
        description=NULLABLE_STRING,
        fork={"type": "boolean"},
        url=URI,
    )
    repository = {
        **repository_short,
        "required": [*repository_short["required"], "owner", "default_branch", "visibility"],
        "properties": {
            **repository_short["properties"],
            "created_at": {"oneOf": [{"type": "integer"}, DATE_TIME]},
            "pushed_at": {"oneOf": [{"type": "integer"}, DATE_TIME, {"type": "null"}]},
            "size": {"type": "integer", "minimum": 0},
            "stargazers_count": {"type": "integer", "minimum": 0},
            "language": NULLABLE_STRING,
            "has_issues": {"type": "boolean"},
            "archived": {"type": "boolean"},
            "license": {"type": ["object", "null"]},
            "topics": {"type": "array", "items": {"type": "string"}},
            "visibility": {"type": "string", "enum": ["public", "private", "internal"]},
            "default_branch": {"type": "string"},
        },
    }
    commit_person = _object(["name", "email"], name={"type": "string"}, email=NULLABLE_STRING)
    branch = _object(
        ["ref", "sha", "repo"], ref={"type": "string"}, sha={"type": "string"}, repo=repo_ref
    )
    run = _object(
        [
            "id",
            "name",
            "head_branch",
            "head_sha",
            "run_number",
            "event",
            "status",
            "conclusion",
            "workflow_id",
            "url",
            "html_url",
            "pull_requests",
            "created_at",
            "updated_at",
            "actor",
            "head_commit",
            "repository",
        ],
        id={"type": "integer"},
        name=NULLABLE_STRING,
        node_id={"type": "string"},
        head_branch=NULLABLE_STRING,
        head_sha={"type": "string", "pattern": "^[0-9a-f]{40}$"},
        path={"type": "string"},
        display_title={"type": "string"},
        run_number={"type": "integer", "minimum": 1},
        event={"type": "string"},
        status={
            "type": "string",
            "enum": ["requested", "in_progress", "completed", "queued", "pending", "waiting"],
        },
        conclusion={
            "type": ["string", "null"],
            "enum": [
                "success",
                "failure",
                "neutral",
                "cancelled",
                "timed_out",
                "action_required",
                "stale",
                "skipped",
                "startup_failure",
                None,
            ],
        },
        workflow_id={"type": "integer"},
        check_suite_id={"type": "integer"},
        url=URI,
        html_url=URI,
        pull_requests={
            "type": "array",
            "items": _object(
                ["url", "id", "number", "head", "base"],
                url=URI,
                id={"type": "integer"},
                number={"type": "integer"},
                head=branch,
                base=branch,
            ),
        },
        created_at=DATE_TIME,
        updated_at=DATE_TIME,
        actor={"$ref": "#/$defs/user"},
        triggering_actor={"$ref": "#/$defs/user"},
        run_attempt={"type": "integer", "minimum": 1},
        referenced_workflows={
            "type": ["array", "null"],
            "items": _object(["path", "sha"], path={}, sha={}, ref={"type": "string"}),
        },
        run_started_at=DATE_TIME,
        jobs_url=URI,
        logs_url=URI,
        previous_attempt_url={"type": ["string", "null"], "format": "uri"},
        head_commit=_object(
            ["id", "tree_id", "message", "timestamp", "author", "committer"],
            id={"type": "string"},
            tree_id={"type": "string"},
            message={"type": "string"},
            timestamp=DATE_TIME,
            author=commit_person,
            committer=commit_person,
        ),
        repository={"$ref": "#/$defs/repository_short"},
        head_repository={"$ref": "#/$defs/repository_short"},
    )
    workflow = _object(
        ["id", "node_id", "name", "path", "state", "url", "html_url", "badge_url"],
        id={"type": "integer"},
        node_id={"type": "string"},
        name={"type": "string"},
        path={"type": "string"},
        state={"type": "string", "enum": ["active", "deleted", "disabled_manually"]},
        url=URI,
        html_url=URI,
        badge_url=URI,
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **_object(
            ["action", "workflow_run", "workflow", "repository", "sender"],
            action={"type": "string", "enum": ["requested", "in_progress", "completed"]},
            workflow_run=run,
            workflow=workflow,
            repository={"$ref": "#/$defs/repository"},
            sender={"$ref": "#/$defs/user"},
            organization={"$ref": "#/$defs/user"},
        ),
        "$defs": {"user": user, "repository": repository, "repository_short": repository_short},
    }


def as_draft7(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema in draft-07 spelling ($defs -> definitions)."""
    text = json.dumps(schema).replace('"#/$defs/', '"#/definitions/')
    converted: dict[str, Any] = json.loads(text)
    converted["definitions"] = converted.pop("$defs")
    converted["$schema"] = "http://json-schema.org/draft-07/schema#"
    return converted


def invalid_payload(payload: dict[str, Any]) -> dict[str, Any]:
    # Through JSON, not deepcopy: the payload shares one actor dict in three places.
    broken: dict[str, Any] = json.loads(json.dumps(payload))
    broken["workflow_run"]["status"] = "finished"  # not in the enum
    broken["workflow_run"]["actor"]["id"] = "583231"  # a string, not an integer
    del broken["workflow"]["badge_url"]  # required
    return broken


def _all_errors(validator: Any, instance: Any) -> list[Any]:
    return list(validator.iter_errors(instance))


def per_call_us(call: Callable[[], object], seconds: float) -> float:
    """Microseconds per call, timing batches until about `seconds` have passed."""
    call()
    batch, spent, calls = 1, 0.0, 0
    while spent < seconds:
        start = time.perf_counter()
        for _ in range(batch):
            call()
        spent += time.perf_counter() - start
        calls += batch
        batch = min(batch * 2, 4096)
    return spent / calls * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="per case per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    payload = workflow_run_payload()
    broken = invalid_payload(payload)
    size = len(json.dumps(payload, separators=(",", ":")))
    schemas = {"2020-12": workflow_run_schema()}
    schemas["draft-07"] = as_draft7(schemas["2020-12"])

    cases: dict[str, Callable[[], object]] = {}
    for draft, schema in schemas.items():
        rs = jsonschema_rs.validator_for(schema, validate_formats=False)
        py = jsonschema.validators.validator_for(schema)(schema)  # no format checker
        # Both must agree on both payloads before their speed means anything.
        assert rs.is_valid(payload) and py.is_valid(payload), draft
        rs_errors = sorted(e.message for e in rs.iter_errors(broken))
        py_errors = list(py.iter_errors(broken))
        assert len(rs_errors) == len(py_errors) == 3, (draft, rs_errors, py_errors)
        compiled = compile_event_type(
            EventType.model_validate(
                {
                    "metadata": {"name": "github-workflow-run"},
                    "spec": {
                        "type": "github.workflow_run",
                        "match": {"header": {"name": "X-GitHub-Event", "value": "workflow_run"}},
                        "schema": schema,
                    },
                }
            )
        )
        assert compiled.validate(payload) == [] and len(compiled.validate(broken)) == 3
        cases[f"{draft} jsonschema-rs is_valid"] = partial(rs.is_valid, payload)
        cases[f"{draft} jsonschema (Python) is_valid"] = partial(py.is_valid, payload)
        cases[f"{draft} CompiledEventType.validate, valid"] = partial(compiled.validate, payload)
        cases[f"{draft} CompiledEventType.validate, 3 errors"] = partial(compiled.validate, broken)
        cases[f"{draft} jsonschema (Python) iter_errors, 3 errors"] = partial(
            _all_errors, py, broken
        )

    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):  # rounds interleave the cases, so drift hits all alike
        for name, call in cases.items():
            results[name].append(per_call_us(call, args.seconds))
    median = {name: statistics.median(values) for name, values in results.items()}

    print(f"payload: GitHub workflow_run, {size} bytes of JSON; formats not asserted")
    print(f"python {platform.python_version()}, {platform.machine()}, {_cpu()}")
    print(f"jsonschema-rs {_version('jsonschema_rs')}, jsonschema {_version('jsonschema')}")
    print(f"median of {args.rounds} rounds\n")
    width = max(map(len, median))
    for name, value in median.items():
        print(f"{name:<{width}}  {value:10.1f} µs")
    print()
    for draft in schemas:
        valid = median[f"{draft} jsonschema (Python) is_valid"]
        ratio = valid / median[f"{draft} jsonschema-rs is_valid"]
        invalid = median[f"{draft} jsonschema (Python) iter_errors, 3 errors"]
        ratio_invalid = invalid / median[f"{draft} CompiledEventType.validate, 3 errors"]
        print(
            f"{draft}: jsonschema-rs is {ratio:.1f}x faster on a valid payload, "
            f"{ratio_invalid:.1f}x on an invalid one (with hookline's issue formatting)"
        )
    return 0


def _cpu() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution.replace("_", "-"))


if __name__ == "__main__":
    sys.exit(main())
