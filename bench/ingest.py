"""Receiver ingest benchmark: hookline's req/s beside a bare aiohttp handler.

One run, one machine, one load generator: a bare aiohttp server (bench/baseline.py, its
handler only reads the body and answers 202) and `hookline receiver` (github auth, a
~10 KB real-shaped workflow_run payload, a unique X-GitHub-Delivery per request, durable
commit to SQLite and/or PostgreSQL) each run pinned to one core (CPU 0 by default) while
wrk runs pinned to the other (CPU 1). Rounds alternate between the servers; each wrk
run is preceded by a warm-up run whose figures are discarded; the table reports the
median of the rounds and the ratio hookline / baseline in req/s (issue 3's target:
>= 0.5 with SQLite).

Route variants (`--route`), each a receiver of its own with a store of its own, all
measured against the same baseline in the same rounds:

- `plain` (issue 3): the Webhook with github auth only;
- `classified` (issue 4): the same Webhook allowing one EventType (github.workflow_run,
  recognised by X-GitHub-Event, with bench/schema.py's JSON Schema; unknown types
  rejected) and one five-rule EventFilter the payload passes (bench/filters.py's
  rules: equals, in, an any-group, regex_match, greater_than on a time);
- `forwarding` (issue 5): the plain Webhook with one destination, signed with Standard
  Webhooks, pointing at bench/sink.py (a local sink that answers 200 at once, pinned
  to wrk's core); the receiver's dispatcher runs in the receiver process, so
  forwarding's CPU is part of what is measured. After every wrk run the script waits
  until the receiver's outbox is empty (that drain time is reported, and a
  "sustained" ratio counts it), so that no backlog spills into another measurement.

    .venv/bin/python bench/ingest.py [--route plain|classified|forwarding|all]
        [--duration S] [--connections N] [--store sqlite|postgres|both]
        [--postgres-dsn DSN]

With SQLite, two reference servers run in the same rounds too (`--no-floor` leaves them
out): bench/floor.py, the baseline plus a durable group commit of the raw body to SQLite
(WAL, synchronous = FULL) and nothing else, with the body as received and LZ4-compressed
as hookline stores it. They are a ceiling for an ingest path built this way (aiohttp,
then a durable SQLite commit, on one core): what a target can ask for on that machine.

Needs wrk (Debian: `apt-get install wrk`). Writes only to a temporary directory (and,
for PostgreSQL, temporary databases it creates and drops on the server of the DSN).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA_SCRIPT = BENCH_DIR / "post.lua"
BASELINE_SCRIPT = BENCH_DIR / "baseline.py"
FLOOR_SCRIPT = BENCH_DIR / "floor.py"
SINK_SCRIPT = BENCH_DIR / "sink.py"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

NAMESPACE = "bench"
WEBHOOK = "ci-runs"
HOOK_PATH = "github/ci-runs"
READY_TIMEOUT = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Above this share of the server's core used by others (loopback networking included,
# about 5% here), a round is flagged as disturbed.
BUSY_CORE = 0.15
# Forwarding: how long to wait for the outbox to empty after a wrk run, and how often
# to ask the receiver's admin API meanwhile.
DRAIN_TIMEOUT = 600.0
DRAIN_POLL = 0.2


# The payload: a GitHub `workflow_run` event shaped like the ones GitHub sends.


def _user(login: str, user_id: int, kind: str = "User") -> dict[str, Any]:
    api = f"https://api.github.com/users/{login}"
    return {
        "login": login,
        "id": user_id,
        "node_id": f"MDQ6VXNlcj{user_id:08d}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def _repository(owner: dict[str, Any], name: str, repo_id: int, *, full: bool) -> dict[str, Any]:
    full_name = f"{owner['login']}/{name}"
    api = f"https://api.github.com/repos/{full_name}"
    short: dict[str, Any] = {
        "id": repo_id,
        "node_id": f"R_kgDOH{repo_id:07d}",
        "name": name,
        "full_name": full_name,
        "private": True,
        "owner": owner,
        "html_url": f"https://github.com/{full_name}",
        "description": "The acme application: API, workers and the web front end.",
        "fork": False,
        "url": api,
    }
    if not full:
        # Inside workflow_run GitHub nests the repository again, owner and ~40 URL
        # templates included; kept short here so that the whole event stays near 10 KB.
        return {k: v for k, v in short.items() if k != "owner"}
    urls = {
        f"{key}_url": f"{api}/{suffix}"
        for key, suffix in [
            ("forks", "forks"),
            ("keys", "keys{/key_id}"),
            ("collaborators", "collaborators{/collaborator}"),
            ("teams", "teams"),
            ("hooks", "hooks"),
            ("issue_events", "issues/events{/number}"),
            ("events", "events"),
            ("assignees", "assignees{/user}"),
            ("branches", "branches{/branch}"),
            ("tags", "tags"),
            ("blobs", "git/blobs{/sha}"),
            ("git_tags", "git/tags{/sha}"),
            ("git_refs", "git/refs{/sha}"),
            ("trees", "git/trees{/sha}"),
            ("statuses", "statuses/{sha}"),
            ("languages", "languages"),
            ("stargazers", "stargazers"),
            ("contributors", "contributors"),
            ("subscribers", "subscribers"),
            ("subscription", "subscription"),
            ("commits", "commits{/sha}"),
            ("git_commits", "git/commits{/sha}"),
            ("comments", "comments{/number}"),
            ("issue_comment", "issues/comments{/number}"),
            ("contents", "contents/{+path}"),
            ("compare", "compare/{base}...{head}"),
            ("merges", "merges"),
            ("archive", "{archive_format}{/ref}"),
            ("downloads", "downloads"),
            ("issues", "issues{/number}"),
            ("pulls", "pulls{/number}"),
            ("milestones", "milestones{/number}"),
            ("notifications", "notifications{?since,all,participating}"),
            ("labels", "labels{/name}"),
            ("releases", "releases{/id}"),
            ("deployments", "deployments"),
        ]
    }
    return {
        **short,
        **urls,
        "created_at": "2022-03-14T09:26:53Z",
        "updated_at": "2025-05-02T17:40:11Z",
        "pushed_at": "2025-05-06T08:12:45Z",
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "clone_url": f"https://github.com/{full_name}.git",
        "homepage": None,
        "size": 48213,
        "stargazers_count": 12,
        "watchers_count": 12,
        "language": "Python",
        "has_issues": True,
        "has_projects": False,
        "has_downloads": True,
        "has_wiki": False,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "archived": False,
        "disabled": False,
        "open_issues_count": 37,
        "license": None,
        "allow_forking": False,
        "is_template": False,
        "topics": ["api", "kubernetes", "python"],
        "visibility": "private",
        "forks": 0,
        "open_issues": 37,
        "watchers": 12,
        "default_branch": "main",
    }


def workflow_run_payload() -> dict[str, Any]:
    """A `workflow_run` / `completed` event as GitHub sends it (values invented)."""
    org = _user("acme", 5_110_447, kind="Organization")
    actor = _user("octocat", 583_231)
    repo = _repository(org, "app", 468_032_112, full=True)
    run_id, sha = 14_813_779_542, "9f3c1a0b6e2d4c5f8a7b1e0d3c6f9a2b5e8d1c4f"
    run_api = f"https://api.github.com/repos/acme/app/actions/runs/{run_id}"
    started = datetime(2025, 5, 6, 8, 12, 51, tzinfo=UTC)

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    head = {"ref": "feature/retry-budget", "sha": sha}
    base = {"ref": "main", "sha": "2b7e4f1c9d8a3e6b0c5f2a1d4e7b8c9f0a3d6e1b"}
    repo_ref = {"id": repo["id"], "url": repo["url"], "name": repo["name"]}
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id,
            "name": "CI",
            "node_id": "WFR_kwLOG-3k8M8AAAADcvQf5g",
            "head_branch": "feature/retry-budget",
            "head_sha": sha,
            "path": ".github/workflows/ci.yaml",
            "display_title": "Retry budget for outbound deliveries (#482)",
            "run_number": 5821,
            "event": "pull_request",
            "status": "completed",
            "conclusion": "failure",
            "workflow_id": 61_244_873,
            "check_suite_id": 38_517_720_934,
            "check_suite_node_id": "CS_kwDOG-3k8M8AAAAI-8vQ5g",
            "url": run_api,
            "html_url": f"https://github.com/acme/app/actions/runs/{run_id}",
            "pull_requests": [
                {
                    "url": "https://api.github.com/repos/acme/app/pulls/482",
                    "id": 2_519_663_204,
                    "number": 482,
                    "head": {**head, "repo": repo_ref},
                    "base": {**base, "repo": repo_ref},
                }
            ],
            "created_at": stamp(started - timedelta(seconds=6)),
            "updated_at": stamp(started + timedelta(minutes=7, seconds=32)),
            "actor": actor,
            "run_attempt": 1,
            "referenced_workflows": [
                {
                    "path": "acme/shared-workflows/.github/workflows/lint.yaml@v3",
                    "sha": "c4d1e8f2a9b3c6d0e7f1a4b8c2d5e9f3a6b0c7d1",
                    "ref": "refs/tags/v3",
                }
            ],
            "run_started_at": stamp(started),
            "triggering_actor": actor,
            "jobs_url": f"{run_api}/jobs",
            "logs_url": f"{run_api}/logs",
            "check_suite_url": "https://api.github.com/repos/acme/app/check-suites/38517720934",
            "artifacts_url": f"{run_api}/artifacts",
            "cancel_url": f"{run_api}/cancel",
            "rerun_url": f"{run_api}/rerun",
            "previous_attempt_url": None,
            "workflow_url": "https://api.github.com/repos/acme/app/actions/workflows/61244873",
            "head_commit": {
                "id": sha,
                "tree_id": "e1d4c7b0a3f6e9d2c5b8a1f4e7d0c3b6a9f2e5d8",
                "message": (
                    "Retry budget for outbound deliveries\n\nCap the retries a destination "
                    "may consume per minute so that one failing endpoint cannot starve the "
                    "others; the budget refills with the successful deliveries.\n\n"
                    "Co-authored-by: Mona Lisa <mona@example.com>"
                ),
                "timestamp": "2025-05-06T08:12:40Z",
                "author": {"name": "Octo Cat", "email": "octocat@example.com"},
                "committer": {"name": "GitHub", "email": "noreply@github.com"},
            },
            "repository": _repository(org, "app", repo["id"], full=False),
            "head_repository": _repository(org, "app", repo["id"], full=False),
        },
        "workflow": {
            "id": 61_244_873,
            "node_id": "W_kwDOG-3k8M4DqnqJ",
            "name": "CI",
            "path": ".github/workflows/ci.yaml",
            "state": "active",
            "created_at": "2022-03-14T10:02:17.000Z",
            "updated_at": "2025-01-09T15:48:02.000Z",
            "url": "https://api.github.com/repos/acme/app/actions/workflows/61244873",
            "html_url": "https://github.com/acme/app/blob/main/.github/workflows/ci.yaml",
            "badge_url": "https://github.com/acme/app/workflows/CI/badge.svg",
        },
        "repository": repo,
        "sender": actor,
    }


ROUTES = ("plain", "classified", "forwarding")
EVENT_TYPE = "github-workflow-run"
EVENT_FILTER = "failed-runs"
DESTINATION = "sink"


def _resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hookline.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def _secret(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {"secret": value},
    }


def write_manifests(
    directory: Path,
    secret: str,
    route: str = "plain",
    *,
    sink_url: str | None = None,
    signing_secret: str | None = None,
) -> None:
    """The manifests of one route variant (see the module docstring)."""
    spec: dict[str, Any] = {
        "path": HOOK_PATH,
        "auth": {"type": "github", "secretRef": {"name": f"{WEBHOOK}-secret", "key": "secret"}},
    }
    docs = [_secret(f"{WEBHOOK}-secret", secret)]
    if route == "classified":
        # Imported here: bench/schema.py and bench/filters.py import this module (and
        # hookline), which the plain benchmark does not need.
        from filters import RULES
        from schema import workflow_run_schema

        spec["eventTypes"] = [{"name": EVENT_TYPE}]
        spec["unknownEventTypes"] = "reject"  # an unrecognised delivery is a 422, not a 202
        spec["filters"] = [{"name": EVENT_FILTER}]
        docs.append(
            _resource(
                "EventType",
                EVENT_TYPE,
                {
                    "type": "github.workflow_run",
                    "version": "v1",
                    "match": {"header": {"name": "X-GitHub-Event", "value": "workflow_run"}},
                    "schema": workflow_run_schema(),
                },
            )
        )
        docs.append(_resource("EventFilter", EVENT_FILTER, {"match": "all", "rules": RULES}))
    elif route == "forwarding":
        if sink_url is None or signing_secret is None:
            raise ValueError("the forwarding route needs sink_url and signing_secret")
        spec["destinations"] = [
            {
                "name": DESTINATION,
                "url": sink_url,
                "format": "raw",
                "signing": {
                    "scheme": "standard-webhooks",
                    "secretRef": {"name": f"{DESTINATION}-signing", "key": "secret"},
                },
            }
        ]
        docs.append(_secret(f"{DESTINATION}-signing", signing_secret))
    elif route != "plain":
        raise ValueError(f"unknown route {route!r}")
    docs.insert(0, _resource("Webhook", WEBHOOK, spec))
    directory.mkdir(parents=True)
    (directory / "manifests.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))


def standard_webhooks_secret() -> str:
    """A fresh Standard Webhooks signing secret: "whsec_" + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# Processes.


def receiver_command(
    manifests: Path, store_url: str, port: int, admin_port: int, *, dispatch_concurrency: int
) -> list[str]:
    """`hookline receiver` from the tree bench/ is in (so it is that hookline that is
    measured), quiet but for warnings."""
    return [
        sys.executable, "-m", "hookline.cli", "receiver",
        "--manifests", str(manifests),
        "--store", store_url,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--admin-port", str(admin_port),
        "--log-level", "warning",
        "--dispatch-concurrency", str(dispatch_concurrency),
    ]  # fmt: skip


def baseline_server(work: Path, cpu: int) -> Server:
    """bench/baseline.py, the bare aiohttp handler every ratio is taken against."""
    port = free_port()
    return Server(
        name="baseline",
        url=f"http://127.0.0.1:{port}/hooks/{HOOK_PATH}",
        command=[sys.executable, str(BASELINE_SCRIPT), "--port", str(port)],
        cpu=cpu,
        log=work / "baseline.log",
    )


def floor_server(work: Path, cpu: int, name: str, *, lz4: bool) -> Server:
    """bench/floor.py, the durable floor, with a database of its own in `work`."""
    port = free_port()
    return Server(
        name=name,
        url=f"http://127.0.0.1:{port}/hooks/{HOOK_PATH}",
        command=[
            *(sys.executable, str(FLOOR_SCRIPT), "--port", str(port)),
            *("--database", str(work / f"{name}.db"), *(["--lz4"] if lz4 else [])),
        ],
        cpu=cpu,
        log=work / f"{name}.log",
        store="sqlite",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def core_seconds(cpu: int) -> tuple[float, float]:
    """(busy, total) seconds of one CPU since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(x) for x in line.split()[1:9]]
            idle = ticks[3] + ticks[4]  # idle, iowait
            return (sum(ticks) - idle) / CLK_TCK, sum(ticks) / CLK_TCK
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


def helpers_cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a backend that has exited
            total += cpu_seconds(pid)
    return total


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Server:
    """A server process pinned to one CPU, with its output in a log file."""

    name: str
    url: str  # the ingest URL wrk posts to
    command: list[str]
    cpu: int
    log: Path
    admin: str | None = None  # the admin API's base URL (hookline only)
    process: subprocess.Popen[bytes] | None = None
    # Processes that work for this server elsewhere: the PostgreSQL backends of its pool.
    helpers: Callable[[], list[int]] | None = None
    route: str = ""  # hookline: plain | classified | forwarding
    store: str = ""  # hookline: sqlite | postgres
    sink: Sink | None = None  # the forwarding route's destination

    def start(self) -> None:
        cpu = self.cpu
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                # Pinned before exec: every thread it starts inherits the mask.
                preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_ready(self, body: bytes, headers: dict[str, str]) -> None:
        """Post one real request until it is answered 202 (or the server dies)."""
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={**headers, "X-GitHub-Delivery": f"ready-{uuid.uuid4()}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    if answer.status == 202:
                        return
                    last = f"HTTP {answer.status}: {answer.read()[:300]!r}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
                raise RuntimeError(f"{self.name} refused the probe request: {last}") from None
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {READY_TIMEOUT:.0f}s ({last})")

    def admin_get(self, path: str) -> Any:
        assert self.admin is not None
        with urllib.request.urlopen(self.admin + path, timeout=30) as answer:
            return json.load(answer)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def webhook_stats(self) -> dict[str, Any]:
        """The benchmark Webhook's counters from the admin API (outbox totals included)."""
        stats: dict[str, Any] = self.admin_get("/api/v1/stats")
        found: dict[str, Any] = stats["webhooks"].get(f"{NAMESPACE}/{WEBHOOK}", {})
        return found

    def drain(self, timeout: float = DRAIN_TIMEOUT) -> tuple[int, float, float]:
        """Wait until the outbox has no pending row. Returns (rows pending at the call,
        seconds until none was, CPU seconds the server and its helpers used meanwhile)."""
        started = time.monotonic()
        helper_pids = self.helpers() if self.helpers is not None else []
        cpu_before = cpu_seconds(self.pid) + helpers_cpu_seconds(helper_pids)
        backlog = -1
        while True:
            pending = int(self.webhook_stats().get("pending", 0))
            if backlog < 0:
                backlog = pending
            elapsed = time.monotonic() - started
            if pending == 0:
                cpu = cpu_seconds(self.pid) + helpers_cpu_seconds(helper_pids) - cpu_before
                return backlog, elapsed, cpu
            if elapsed > timeout:
                raise RuntimeError(
                    f"{self.name}: {pending} outbox rows still pending after {timeout:.0f}s"
                    f"\n{self.log_tail()}"
                )
            time.sleep(DRAIN_POLL)


@dataclass
class Sink:
    """bench/sink.py: a destination answering 200 at once, pinned to one CPU."""

    port: int
    secret: str  # the Standard Webhooks secret whose signatures it checks
    cpu: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cpu = self.cpu
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(SINK_SCRIPT),
                    "--port",
                    str(self.port),
                    "--secret",
                    self.secret,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                self.stats()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the sink did not start: {self.log.read_text()}") from None
                time.sleep(0.1)

    def _call(self, path: str, method: str = "GET") -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            document: dict[str, Any] = json.load(answer)
            return document

    def stats(self) -> dict[str, Any]:
        return self._call("/_sink/stats")

    def reset(self) -> dict[str, Any]:
        return self._call("/_sink/reset", method="POST")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# The load generator.


@dataclass
class Measurement:
    server: str
    requests: int
    seconds: float
    accepted: int  # answered exactly 202
    other: int  # answered anything else (for hookline: an error, or a duplicate's 200)
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    server_cpu: float  # CPU seconds of the server process per wall second
    client_cpu: float  # the same for wrk
    # The server core's busy time that was not the server's own, per wall second: the
    # kernel's loopback work, and whatever else the shared machine ran on that core.
    core_other: float
    helpers_cpu: float  # CPU of the server's PostgreSQL backends per wall second
    # Forwarding route: outbox rows pending when wrk stopped, how long until none was,
    # and the CPU seconds (server + backends) that the drain took.
    backlog: int = 0
    drain_seconds: float = 0.0
    drain_cpu: float = 0.0
    sink_cpu: float = 0.0  # the sink's CPU per wall second of the wrk run

    @property
    def cpu_us_per_request(self) -> float:
        """Server (+ its PostgreSQL backends) CPU time per request: less sensitive than
        req/s to what else the shared machine runs. For the forwarding route it
        includes the drain: forwarding every request is part of its cost."""
        return (self.server_cpu + self.helpers_cpu) / self.rps * 1e6 + (
            self.drain_cpu / self.requests * 1e6
        )

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def sustained_rps(self) -> float:
        """Requests per second counting the time to forward what was left pending."""
        return self.requests / (self.seconds + self.drain_seconds)


@dataclass
class Load:
    connections: int
    duration: float
    warmup: float
    client_cpu: int
    server_cpu: int
    body_file: Path
    signature: str
    verbose: bool = False
    seen_202: dict[str, int] = field(default_factory=dict)  # all wrk runs, warm-ups too

    def wrk(self, server: Server, seconds: float) -> Measurement:
        nonce = secrets.token_hex(6)
        command = [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(self.connections),
            "--duration",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "--script",
            str(LUA_SCRIPT),
            server.url,
            str(self.body_file),
            self.signature,
            nonce,
        ]
        cpu = self.client_cpu
        sink_before = server.sink.stats()["cpu"] if server.sink is not None else 0.0
        server_before, client_before = cpu_seconds(server.pid), children_cpu_seconds()
        helper_pids = server.helpers() if server.helpers is not None else []
        helpers_before = helpers_cpu_seconds(helper_pids)
        core_before = core_seconds(self.server_cpu)
        started = time.monotonic()
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
        wall = time.monotonic() - started
        server_cpu = (cpu_seconds(server.pid) - server_before) / wall
        sink_cpu = (server.sink.stats()["cpu"] - sink_before) / wall if server.sink else 0.0
        client_cpu = (children_cpu_seconds() - client_before) / wall
        helpers_cpu = (helpers_cpu_seconds(helper_pids) - helpers_before) / wall
        core_busy, core_total = (
            after - before
            for after, before in zip(core_seconds(self.server_cpu), core_before, strict=True)
        )
        core_other = max(0.0, core_busy / core_total - server_cpu) if core_total else 0.0
        # (For PostgreSQL, "other" includes the backends that ran on the server's core.)
        if self.verbose:
            sys.stderr.write(done.stdout + done.stderr)
        lines = [line for line in done.stdout.splitlines() if line.startswith("WRK_JSON ")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(
                f"wrk failed ({done.returncode}) against {server.name}:\n"
                f"{done.stdout}\n{done.stderr}\n--- server log ---\n{server.log_tail()}"
            )
        result = json.loads(lines[-1].removeprefix("WRK_JSON "))
        errors = result["errors"]
        latency = result["latency_us"]
        self.seen_202[server.name] = self.seen_202.get(server.name, 0) + result["accepted"]
        return Measurement(
            server=server.name,
            requests=result["requests"],
            seconds=result["duration_us"] / 1e6,
            accepted=result["accepted"],
            other=result["other"],
            socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
            p50_ms=latency["p50"] / 1000,
            p90_ms=latency["p90"] / 1000,
            p99_ms=latency["p99"] / 1000,
            max_ms=latency["max"] / 1000,
            server_cpu=server_cpu,
            client_cpu=client_cpu,
            core_other=core_other,
            helpers_cpu=helpers_cpu,
            sink_cpu=sink_cpu,
        )

    def measure(self, server: Server) -> Measurement:
        if self.warmup > 0:
            self.wrk(server, self.warmup)  # discarded
            if server.sink is not None:
                server.drain()  # so that the measured run starts with an empty outbox
        m = self.wrk(server, self.duration)
        if server.sink is not None:
            m.backlog, m.drain_seconds, m.drain_cpu = server.drain()
        return m

    def profile(self, server: Server, py_spy: str, out: Path) -> Measurement:
        """Sample `server` with py-spy (on the load generator's core) during one wrk run.
        The figures of this run are not reported: sampling slows the server down."""
        if self.warmup > 0:
            self.wrk(server, self.warmup)
        cpu = self.client_cpu
        sampler = subprocess.Popen(
            [
                py_spy, "record", "--pid", str(server.pid), "--rate", "100",
                "--duration", str(max(1, round(self.duration))), "--threads",
                "--format", "raw", "--output", str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )  # fmt: skip
        time.sleep(0.5)  # py-spy attaches
        measurement = self.wrk(server, self.duration)
        _, errors = sampler.communicate(timeout=120)
        if sampler.returncode != 0:
            raise RuntimeError(f"py-spy failed on {server.name}: {errors.decode()}")
        if server.sink is not None:
            server.drain()
        return measurement


def print_profile(collapsed: Path, top: int = 25) -> None:
    """Top functions by own and by inclusive samples, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")[1:]  # the first frame names the thread
        if not frames:
            continue
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    print(f"\n{collapsed}: {total} samples (all threads)")
    for title, table in (("own", own), ("inclusive", inclusive)):
        print(f"  top by {title} time:")
        for frame, count in sorted(table.items(), key=lambda item: -item[1])[:top]:
            print(f"    {count / total:6.1%}  {frame}")


# PostgreSQL: a fresh database per run.


def with_database(dsn: str, database: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


async def _admin_sql(dsn: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def postgres_database(dsn: str) -> Iterator[str]:
    """Create a fresh database on the server of `dsn`; yield its DSN; drop it."""
    name = f"hookline_bench_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin_sql(dsn, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        raise RuntimeError(
            f"cannot create a database on {dsn} ({type(exc).__name__}: {exc}); start "
            "PostgreSQL (scripts/postgres.sh), pass --postgres-dsn, or use --store sqlite"
        ) from exc
    try:
        yield with_database(dsn, name)
    finally:
        # FORCE (PostgreSQL 13+): a backend of a receiver that did not stop cleanly
        # must not leave the database behind.
        asyncio.run(_admin_sql(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _backend_pids(admin_dsn: str, database_dsn: str) -> list[int]:
    import asyncpg

    database = urllib.parse.urlsplit(database_dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()
    return [int(row["pid"]) for row in rows]


def backend_pids(admin_dsn: str, database_dsn: str) -> list[int]:
    """The PostgreSQL backends connected to the bench database whose CPU time this
    machine can read (none when the server is on another machine)."""
    pids = asyncio.run(_backend_pids(admin_dsn, database_dsn))
    return [pid for pid in pids if Path(f"/proc/{pid}/stat").exists()]


# The report.


def machine(commit_label: str | None = None) -> dict[str, str]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    import aiohttp

    # bench/forward.py runs without wrk (it is not installed by default): say so.
    wrk_version = (
        subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        if shutil.which("wrk")
        else subprocess.CompletedProcess([], 0, "not installed", "")
    )
    # Read-only; a tree with uncommitted changes still shows its HEAD.
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "wrk": (wrk_version.stdout + wrk_version.stderr).splitlines()[0].strip(),
        "commit": commit_label or commit.stdout.strip() or "unknown (not a git checkout)",
    }


def filesystem_of(path: Path) -> str:
    """The mount (device, type) holding `path`: fsync on tmpfs would cost nothing."""
    best = ("?", "?", "")
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            if str(path).startswith(mount.rstrip("/") + "/") and len(mount) >= len(best[2]):
                best = (device, kind, mount)
    return f"{best[1]} ({best[0]} on {best[2] or '?'})"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def print_report(
    results: dict[str, list[Measurement]], servers: list[Server], args: argparse.Namespace
) -> list[str]:
    """Print the tables; return the problems found (non-202 answers, socket errors)."""
    print()
    print(
        f"{args.connections} connections, {args.duration:g}s measured after {args.warmup:g}s "
        f"warm-up, {args.rounds} alternating rounds; medians over rounds"
    )
    print()
    print(
        "| server | req/s | p50 ms | p99 ms | server CPU | its PostgreSQL backends "
        "| other on its core | CPU µs/req | non-202 | req/s per round |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    problems: list[str] = []
    for server in servers:
        name = server.name
        runs = results[name]
        per_round = ", ".join(f"{m.rps:.0f}" for m in runs)
        non_202 = sum(m.other for m in runs)
        socket_errors = sum(m.socket_errors for m in runs)
        postgres = server.store == "postgres"
        helpers = f"{median([m.helpers_cpu for m in runs]):.0%}" if postgres else "-"
        print(
            f"| {name} | {median([m.rps for m in runs]):.0f} "
            f"| {median([m.p50_ms for m in runs]):.1f} | {median([m.p99_ms for m in runs]):.1f} "
            f"| {median([m.server_cpu for m in runs]):.0%} | {helpers} "
            f"| {median([m.core_other for m in runs]):.0%} "
            f"| {median([m.cpu_us_per_request for m in runs]):.0f} "
            f"| {non_202} | {per_round} |"
        )
        if non_202:
            problems.append(f"{name}: {non_202} answers were not 202")
        if socket_errors:
            problems.append(f"{name}: {socket_errors} socket errors/timeouts")
        busy = [i + 1 for i, m in enumerate(runs) if m.core_other > BUSY_CORE]
        if busy and not postgres:  # (PostgreSQL's backends run there too)
            print(
                f"NOTE: {name}: something else used more than {BUSY_CORE:.0%} of CPU "
                f"{args.server_cpu} in round(s) {busy}; those figures are low",
                file=sys.stderr,
            )
    baseline = results["baseline"]
    print()
    print(
        "| server / baseline | req/s, of the medians | req/s, median of the rounds' "
        "| CPU per request, inverse | per round |"
    )
    print("|---|---:|---:|---:|---|")
    for server in servers[1:]:
        runs = results[server.name]
        ratio = median([m.rps for m in runs]) / median([m.rps for m in baseline])
        rounds = [m.rps / b.rps for m, b in zip(runs, baseline, strict=True)]
        cost = median([m.cpu_us_per_request for m in baseline]) / median(
            [m.cpu_us_per_request for m in runs]
        )
        # Issues 3 and 4 set the target, with SQLite.
        if server.admin is None:
            target = " (durable floor)"
        elif server.store == "sqlite" and server.route in ("plain", "classified"):
            target = " (target >= 0.5)"
        else:
            target = ""
        print(
            f"| {server.name}{target} | **{ratio:.2f}** | {median(rounds):.2f} | {cost:.2f} "
            f"| {', '.join(f'{r:.2f}' for r in rounds)} |"
        )
    forwarding = [server for server in servers if server.sink is not None]
    if forwarding:
        print()
        print(
            "Forwarding: outbox rows pending when wrk stopped, seconds until none was, "
            "and req/s counting that drain (the rate at which deliveries were both "
            "ingested and forwarded)."
        )
        print()
        print(
            "| server | backlog at wrk's end | drain s | sustained req/s "
            "| sustained / baseline | sink CPU | per round: backlog, drain s |"
        )
        print("|---|---:|---:|---:|---:|---:|---|")
        for server in forwarding:
            runs = results[server.name]
            sustained = median([m.sustained_rps for m in runs])
            print(
                f"| {server.name} | {median([m.backlog for m in runs]):.0f} "
                f"| {median([m.drain_seconds for m in runs]):.1f} | {sustained:.0f} "
                f"| **{sustained / median([m.rps for m in baseline]):.2f}** "
                f"| {median([m.sink_cpu for m in runs]):.0%} "
                f"| {'; '.join(f'{m.backlog}, {m.drain_seconds:.1f}' for m in runs)} |"
            )
    return problems


def check_records(server: Server, seen_202: int) -> list[str]:
    """Every 202 wrk saw must be in the store's accepted counter (the counter may be a
    little higher: requests in flight when wrk stopped were committed unobserved); the
    classified route must have validated and passed every one, and the forwarding
    route must have delivered every one, once, signed."""
    problems: list[str] = []
    stats = server.admin_get("/api/v1/stats")
    counters = stats["webhooks"].get(f"{NAMESPACE}/{WEBHOOK}", {})
    accepted = counters.get("accepted", 0) - 1  # (- 1: the readiness probe)
    print(f"{server.name}: store counts {accepted} accepted, wrk saw {seen_202} answered 202")
    if accepted < seen_202:
        problems.append(f"{server.name}: the store has fewer accepted deliveries than 202s")
    if server.route == "classified":
        types = stats["eventTypes"].get(f"{NAMESPACE}/{EVENT_TYPE}", {})
        checks = stats["eventFilters"].get(f"{NAMESPACE}/{EVENT_FILTER}", {})
        print(
            f"{server.name}: EventType validated {types.get('validated')}, invalid "
            f"{types.get('invalid')}; EventFilter evaluated {checks.get('evaluated')}, "
            f"matched {checks.get('matched')}, dropped {checks.get('dropped')}"
        )
        if types.get("validated", 0) < accepted or checks.get("matched", 0) < accepted:
            problems.append(f"{server.name}: not every delivery was validated and filtered")
        if types.get("invalid") or checks.get("dropped") or counters.get("filtered"):
            problems.append(f"{server.name}: deliveries were found invalid or filtered out")
    if server.sink is not None:
        sink = server.sink.stats()
        delivered = counters.get("delivered", 0)
        print(
            f"{server.name}: store counts {delivered} delivered, "
            f"{counters.get('pending')} pending, {counters.get('failed')} failed, "
            f"{counters.get('deadLettered')} dead-lettered; the sink received "
            f"{sink['requests']} requests, {sink['unique']} distinct webhook-ids, "
            f"{sink['duplicates']} duplicates, {sink['badSignatures']} bad signatures"
        )
        if delivered != accepted + 1 or sink["unique"] != delivered:
            problems.append(f"{server.name}: not every accepted delivery was forwarded once")
        if sink["badSignatures"] or sink["unsigned"] or not sink["libraryChecked"]:
            problems.append(f"{server.name}: the sink found unsigned or badly signed requests")
    return problems


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="hookline receiver ingest rate beside a bare aiohttp handler (issue 3)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="discarded seconds before each")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--route",
        choices=[*ROUTES, "all"],
        default="all",
        help="the Webhook variant(s) to measure, each against the same baseline "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--postgres-dsn",
        default=os.environ.get("HOOKLINE_TEST_POSTGRES_DSN", DEFAULT_DSN),
        help="server to create the temporary database on "
        "(default: $HOOKLINE_TEST_POSTGRES_DSN or %(default)s)",
    )
    parser.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with SQLite, also measure bench/floor.py's durable floor, raw and LZ4 "
        "(default: %(default)s)",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU of the server processes")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU of wrk")
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--verbose", action="store_true", help="show wrk's own output")
    parser.add_argument(
        "--commit",
        help="the commit to report as measured, for a tree that is not a git checkout "
        "(a `git archive` export); default: HEAD of the tree bench/ is in",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="after the rounds, run each server once more under py-spy (not "
        "reported) and write its collapsed stacks to DIR/<server>.txt",
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 0 or args.connections < 1 or args.rounds < 1:
        parser.error("--duration >= 1, --warmup >= 0, --connections >= 1, --rounds >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "bench/ingest.py needs the wrk load generator, which is not installed.\n"
            "  Debian/Ubuntu: sudo apt-get install wrk    macOS: brew install wrk",
            file=sys.stderr,
        )
        return 2
    return run_in_workdir(args, run, prefix="hookline-bench-", name="bench/ingest.py")


RunFn = Callable[[argparse.Namespace, dict[str, str], Path, contextlib.ExitStack], int]


def run_in_workdir(args: argparse.Namespace, run_fn: RunFn, *, prefix: str, name: str) -> int:
    """What every benchmark does around its measurements (bench/forward.py uses it too):
    check the two CPUs, move this process off the servers' core, check that hookline
    imports, then run in a temporary directory removed afterwards (unless --keep)."""
    allowed = os.sched_getaffinity(0)
    if args.server_cpu == args.client_cpu or not {args.server_cpu, args.client_cpu} <= allowed:
        print(
            f"need two distinct usable CPUs for --server-cpu {args.server_cpu} and "
            f"--client-cpu {args.client_cpu}; this process may use {sorted(allowed)}",
            file=sys.stderr,
        )
        return 2
    # This script mostly waits; it stays off the servers' core all the same.
    os.sched_setaffinity(0, {args.client_cpu})
    try:
        # The receiver runs as `python -m hookline.cli` from the repository bench/ is in,
        # so it is that tree's hookline that is measured.
        subprocess.run([sys.executable, "-c", "import aiohttp, hookline.cli"], cwd=REPO, check=True)
    except subprocess.CalledProcessError:
        print("cannot import hookline: run with the project's .venv/bin/python", file=sys.stderr)
        return 2

    info = machine(args.commit)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=args.workdir))
    try:
        with contextlib.ExitStack() as stack:
            return run_fn(args, info, work, stack)
    except RuntimeError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(
    args: argparse.Namespace,
    info: dict[str, str],
    work: Path,
    stack: contextlib.ExitStack,
) -> int:
    secret = secrets.token_hex(32)
    body = json.dumps(workflow_run_payload(), separators=(",", ":")).encode()
    body_file = work / "workflow_run.json"
    body_file.write_bytes(body)
    signature = github_signature(secret, body)
    probe_headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "workflow_run",
        "X-Hub-Signature-256": signature,
    }
    routes = list(ROUTES) if args.route == "all" else [args.route]
    store_names = ["sqlite", "postgres"] if args.store == "both" else [args.store]

    servers: list[Server] = [baseline_server(work, args.server_cpu)]
    if args.floor and "sqlite" in store_names:
        servers.append(floor_server(work, args.server_cpu, "floor-sqlite", lz4=False))
        servers.append(floor_server(work, args.server_cpu, "floor-sqlite-lz4", lz4=True))
    # Every variant has a receiver and a store of its own: SQLite files must not be
    # shared between processes, and each store's counters are checked at the end.
    for route in routes:
        for store in store_names:
            name = f"hookline-{route}-{store}"
            sink: Sink | None = None
            if route == "forwarding":
                # A sink per receiver, on wrk's core, so that its counts are its own.
                sink = Sink(
                    free_port(),
                    standard_webhooks_secret(),
                    args.client_cpu,
                    work / f"sink-{store}.log",
                )
                stack.callback(sink.stop)
                sink.start()
            manifests = work / f"manifests-{name}"
            write_manifests(
                manifests,
                secret,
                route,
                sink_url=f"{sink.url}/events" if sink else None,
                signing_secret=sink.secret if sink else None,
            )
            if store == "sqlite":
                url = f"sqlite:///{work / name}.db"
            else:
                url = stack.enter_context(postgres_database(args.postgres_dsn))
            port, admin_port = free_port(), free_port()
            servers.append(
                Server(
                    name=name,
                    url=f"http://127.0.0.1:{port}/hooks/{HOOK_PATH}",
                    admin=f"http://127.0.0.1:{admin_port}",
                    # Dispatching on only where there is somewhere to send to (it is
                    # the default; an idle dispatcher only polls once a second).
                    command=receiver_command(
                        manifests, url, port, admin_port, dispatch_concurrency=16 if sink else 0
                    ),
                    cpu=args.server_cpu,
                    log=work / f"{name}.log",
                    helpers=(
                        functools.partial(backend_pids, args.postgres_dsn, url)
                        if store == "postgres"
                        else None
                    ),
                    route=route,
                    store=store,
                    sink=sink,
                )
            )
    # Stopped in reverse order, before the PostgreSQL databases are dropped.
    for server in servers:
        stack.callback(server.stop)
        server.start()
    for server in servers:
        server.wait_ready(body, probe_headers)

    print(f"hookline ingest benchmark, {info['date']}, hookline at {REPO} (HEAD {info['commit']})")
    print(
        f"machine: nproc {info['nproc']}, {info['cpu']}, Linux {info['kernel']}, "
        f"Python {info['python']}, aiohttp {info['aiohttp']}, {info['wrk']}"
    )
    print(f"payload: workflow_run, {len(body)} bytes; SQLite on {filesystem_of(work)}")
    print(f"routes: {', '.join(routes)}; stores: {', '.join(store_names)}")
    print(
        f"servers pinned to CPU {args.server_cpu}, wrk (1 thread) and sinks to CPU "
        f"{args.client_cpu}"
        + ("; the PostgreSQL server itself is not pinned" if "postgres" in store_names else "")
    )

    load = Load(
        connections=args.connections,
        duration=args.duration,
        warmup=args.warmup,
        client_cpu=args.client_cpu,
        server_cpu=args.server_cpu,
        body_file=body_file,
        signature=signature,
        verbose=args.verbose,
    )
    width = max(len(s.name) for s in servers)
    results: dict[str, list[Measurement]] = {s.name: [] for s in servers}
    for round_number in range(args.rounds):
        # Alternate the order too, so that no server always runs right after another.
        ordered = servers if round_number % 2 == 0 else servers[::-1]
        for server in ordered:
            m = load.measure(server)
            results[server.name].append(m)
            drained = (
                f"  backlog {m.backlog} drained in {m.drain_seconds:.1f}s"
                if server.sink is not None
                else ""
            )
            print(
                f"round {round_number + 1}: {server.name:<{width}} {m.rps:8.0f} req/s  "
                f"p50 {m.p50_ms:6.1f} ms  p99 {m.p99_ms:6.1f} ms  non-202 {m.other}  "
                f"server CPU {m.server_cpu:.0%}  other on its core {m.core_other:.0%}" + drained,
                flush=True,
            )

    problems = print_report(results, servers, args)
    print()
    time.sleep(1.0)  # let the requests in flight at wrk's stop commit
    for server in servers[1:]:
        if server.admin is not None:  # (the floors keep no counters to check)
            problems += check_records(server, load.seen_202.get(server.name, 0))
    if args.profile is not None:
        py_spy = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )
        if py_spy is None:
            problems.append("--profile needs py-spy (pip install py-spy)")
        else:
            args.profile.mkdir(parents=True, exist_ok=True)
            for server in servers:
                out = args.profile / f"{server.name}.txt"
                m = load.profile(server, py_spy, out)
                print(f"profiled {server.name}: {m.rps:.0f} req/s under py-spy")
                print_profile(out)
    for problem in problems:
        print(f"PROBLEM: {problem} (a benchmark of errors is meaningless)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
