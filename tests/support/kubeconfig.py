"""A kubeconfig as a cloud CLI writes one (issue 14): base64 CA data, a token user, and
a current context with a namespace."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.tls import TestCA

TOKEN = "dev-token-not-checked"  # the emulator does not check it; tests find it in requests


def write_kubeconfig(path: Path, server: str, ca: TestCA, *, namespace: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {"server": server, "certificate-authority-data": ca.kubeconfig_data},
            }
        ],
        "users": [{"name": "dev", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": "test", "context": {"cluster": "test", "user": "dev", "namespace": namespace}}
        ],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    return path
