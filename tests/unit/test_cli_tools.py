"""`hookline filter test` and `hookline eventtype validate`: 0 match/valid, 1 no
match/invalid, 2 a usage or input error with one line saying what."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hookline.cli import main
from tests.conftest import EXAMPLES

FILTER = EXAMPLES / "github-workflow-runs" / "eventfilter.yaml"
EVENT_TYPE = EXAMPLES / "github-workflow-runs" / "eventtype.yaml"
RUN: dict[str, Any] = {
    "action": "completed",
    "workflow_run": {
        "id": 1,
        "name": "CI",
        "status": "completed",
        "conclusion": "failure",
        "head_branch": "main",
        "html_url": "https://github.com/acme/app/actions/runs/1",
    },
    "repository": {"full_name": "acme/app"},
}


def _payload(tmp_path: Path, body: Any) -> str:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_filter_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", "test", "-f", str(FILTER), _payload(tmp_path, RUN)]) == 0
    assert capsys.readouterr().out.startswith("match")


def test_filter_no_match_names_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = {**RUN, "workflow_run": {**RUN["workflow_run"], "conclusion": "success"}}
    assert main(["filter", "test", "-f", str(FILTER), _payload(tmp_path, run)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("no match (rules[1]): $.workflow_run.conclusion in")
    assert "got 'success'" in out


def test_filter_headers_and_meta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f.yaml").write_text(
        """
apiVersion: hookline.dev/v1alpha1
kind: EventFilter
metadata: {name: f}
spec:
  rules:
    - {field: "header:X-GitHub-Event", operator: equals, value: workflow_run}
    - {field: "meta:eventType", operator: equals, value: github.workflow_run}
"""
    )
    args = ["filter", "test", "-f", str(tmp_path / "f.yaml"), _payload(tmp_path, RUN)]
    assert main([*args, "--header", "x-github-event=workflow_run"]) == 1  # no event type
    assert (
        main(
            [
                *args,
                "--header",
                "X-GitHub-Event=workflow_run",
                "--event-type",
                "github.workflow_run",
            ]
        )
        == 0
    )


def test_eventtype_valid_and_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eventtype", "validate", "-f", str(EVENT_TYPE), _payload(tmp_path, RUN)]) == 0
    assert capsys.readouterr().out == "valid github.workflow_run v1\n"
    bad = {"action": "done", "workflow_run": {"id": "1"}}
    assert main(["eventtype", "validate", "-f", str(EVENT_TYPE), _payload(tmp_path, bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert '$.action: "done" is not one of "requested", "in_progress" or "completed"' in lines
    assert any(line.startswith("$.workflow_run.id:") for line in lines)


def test_eventtype_recognition_with_headers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = _payload(tmp_path, RUN)
    base = ["eventtype", "validate", "-f", str(EVENT_TYPE), payload]
    assert main([*base, "--header", "X-GitHub-Event=workflow_run"]) == 0
    assert main([*base, "--header", "X-GitHub-Event=push"]) == 1
    assert "not recognised" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["filter", "test", "-f", "/nope.yaml", "{payload}"], "/nope.yaml: No such file"),
        (
            ["filter", "test", "-f", str(EVENT_TYPE), "{payload}"],
            "expected exactly one EventFilter",
        ),
        (["filter", "test", "-f", str(FILTER), "{payload}", "--header", "x"], "write NAME=VALUE"),
        (["filter", "test", "-f", str(FILTER), "{broken}"], "not valid JSON"),
        (["filter", "test", "-f", "{bad_filter}", "{payload}"], "spec.rules[0].field"),
        (["eventtype", "validate", "-f", str(FILTER), "{payload}"], "exactly one EventType"),
        (["catalog", "nope"], "nope"),
    ],
)
def test_input_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "bad.yaml").write_text(
        "kind: EventFilter\napiVersion: hookline.dev/v1alpha1\nmetadata: {name: f}\n"
        "spec: {rules: [{field: 'nope', operator: exists}]}\n"
    )
    values = {
        "payload": _payload(tmp_path, RUN),
        "broken": str(tmp_path / "broken.json"),
        "bad_filter": str(tmp_path / "bad.yaml"),
    }
    assert main([a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["filter", "test"])
    assert info.value.code == 2
