"""`hookline validate`: accepts the examples, refuses bad manifests with one line each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hookline.cli import main
from tests.conftest import EXAMPLES


def test_validate_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "ok  Webhook      default/ci-runs" in out


def test_validate_prints_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--print", str(EXAMPLES / "standard-webhooks")]) == 0
    out = capsys.readouterr().out
    assert "maxBodyBytes: 1048576" in out
    assert "whsec_" not in out  # Secrets are read, never printed


def test_validate_reports_bad_fields_and_missing_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.yaml").write_text(
        """
apiVersion: hookline.dev/v1alpha1
kind: Webhook
metadata: {name: w, namespace: ci}
spec:
  auth: {type: github, secretRef: {name: nope}}
  filters: [{name: missing-filter}]
  destinations: [{name: d, url: "ftp://x"}]
---
apiVersion: hookline.dev/v1alpha1
kind: Webhook
metadata: {name: v, namespace: ci}
spec:
  auth: {type: github, secretRef: {name: nope}}
  filters: [{name: missing-filter}]
"""
    )
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert any("document 1 (Webhook ci/w): spec.destinations[0].url:" in line for line in err), err
    assert "error: Webhook ci/v: FilterNotFound: EventFilter 'missing-filter' not found" in err
    assert any("SecretNotFound: spec.auth.secretRef: Secret 'nope' not found" in e for e in err)


def test_validate_bad_yaml_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    result = subprocess.run(
        [sys.executable, "-m", "hookline.cli", "validate", str(tmp_path), str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "no such file or directory" in result.stderr
