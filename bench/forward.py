"""Forwarding-rate benchmark (issue 5): deliveries per second one receiver forwards.

One receiver process (`hookline receiver`, dispatcher on, pinned to one core, CPU 0 by
default) forwards N accepted deliveries (~10 KB GitHub workflow_run events, format
raw, signed with Standard Webhooks) to bench/sink.py, a local sink that answers 200 at
once, pinned to the other core (CPU 1) with this script. The baseline, in the same
run: a bare aiohttp client loop on the receiver's core POSTing the same body with the
same headers (signatures computed beforehand) to the same sink with the same
concurrency: how fast this machine can POST those requests from one core.

How one measurement goes:

1. Once per store: a receiver with `--dispatch-concurrency 0` ingests N deliveries
   over HTTP (github auth, one destination: each accepted delivery gets an outbox row
   in its commit), and stops. Its store is the template of every measurement: SQLite
   files are copied, a PostgreSQL database is cloned (CREATE DATABASE ... TEMPLATE).
2. A receiver with `--dispatch-concurrency C` starts on a fresh copy; the sink stamps
   the first request it receives and counts distinct webhook-ids (checking every
   signature); the clock stops once the sink has all N and the receiver's admin API
   says the destination has delivered == N, pending == 0. The rate is N over that
   time (receiver start-up is not in it: the clock starts at the first request).
3. The baseline client posts N requests with concurrency C; its rate is N over the
   time between the first and the last request at the sink.

Rounds alternate the order of the senders; the table gives medians over rounds and
the ratio hookline / baseline.

    .venv/bin/python bench/forward.py [--deliveries N] [--concurrency 16 64]
        [--rounds R] [--store sqlite|postgres|both] [--postgres-dsn DSN]

    .venv/bin/python bench/forward.py under-load [--seconds S] [--bound N] ...

`under-load` (bench/forward_load.py, issue 11 §4) measures instead how much of what is
accepted gets forwarded while ingest saturates the receiver, without and with
`--max-outbox-backlog`.

Writes only to a temporary directory (and, for PostgreSQL, temporary databases it
creates and drops on the server of the DSN).
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
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR)]

from ingest import (  # noqa: E402  (bench/ is not a package)
    DEFAULT_DSN,
    HOOK_PATH,
    NAMESPACE,
    READY_TIMEOUT,
    REPO,
    WEBHOOK,
    Server,
    Sink,
    _admin_sql,
    backend_pids,
    core_seconds,
    cpu_seconds,
    filesystem_of,
    free_port,
    github_signature,
    median,
    postgres_database,
    receiver_command,
    run_in_workdir,
    standard_webhooks_secret,
    with_database,
    workflow_run_payload,
    write_manifests,
)

FORWARD_TIMEOUT = 900.0  # seconds for one receiver to forward everything
POLL = 0.05  # seconds between looks at the sink while a receiver forwards
PRELOAD_CONCURRENCY = 64

# What a raw destination receives from hookline besides the signature (see
# hookline/receiver/forward.py): the sender's identifying headers and hookline's own.
GITHUB_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "GitHub-Hookshot/bench",
    "X-GitHub-Event": "workflow_run",
    "X-GitHub-Hook-ID": "123456789",
    "X-GitHub-Hook-Installation-Target-Type": "repository",
    "X-GitHub-Hook-Installation-Target-ID": "987654321",
}


# --- the baseline client (a subprocess of its own, pinned to the receivers' core) ---


def standard_webhooks_headers(
    secret: str, webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
    }


async def post_all(
    url: str,
    body: bytes,
    headers: Iterator[dict[str, str]],
    concurrency: int,
    expect: int,
) -> Counter[int]:
    """POST `body` once per headers dict, `concurrency` at a time, on one keep-alive
    pool; returns the answers' status counts (0: no answer)."""
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    ) as session:

        async def worker() -> None:
            for request_headers in headers:  # one iterator shared by all workers
                try:
                    async with session.post(
                        url,
                        data=body,
                        headers=request_headers,
                        allow_redirects=False,
                        timeout=timeout,
                    ) as answer:
                        await answer.read()
                        statuses[answer.status] += 1
                except (aiohttp.ClientError, TimeoutError):
                    statuses[0] += 1
                if statuses[0] > 100:
                    raise RuntimeError(f"more than 100 requests to {url} got no answer")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    if statuses[expect] != sum(statuses.values()):
        raise RuntimeError(f"answers from {url} other than {expect}: {dict(statuses)}")
    return statuses


def client_main(argv: Sequence[str]) -> int:
    """`forward.py client ...`: the baseline, POSTing pre-signed requests to the sink."""
    parser = argparse.ArgumentParser(prog="forward.py client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--prefix", required=True, help="of the webhook-ids, unique per run")
    args = parser.parse_args(argv)
    body = args.body.read_bytes()
    timestamp = int(time.time())
    requests = []
    for i in range(args.count):
        webhook_id = f"{args.prefix}{i:016d}"
        requests.append(
            {
                **GITHUB_HEADERS,
                "User-Agent": "hookline/bench",
                "X-GitHub-Delivery": f"{args.prefix}-{i}",
                "X-Hookline-Delivery": webhook_id,
                "X-Hookline-Webhook": f"{NAMESPACE}/{WEBHOOK}",
                **standard_webhooks_headers(args.secret, webhook_id, timestamp, body),
            }
        )
    before = os.times()
    started = time.monotonic()
    statuses = asyncio.run(post_all(args.url, body, iter(requests), args.concurrency, expect=200))
    after = os.times()
    print(
        json.dumps(
            {
                "statuses": dict(statuses),
                "wall": time.monotonic() - started,
                "cpu": after.user + after.system - before.user - before.system,
                "process_cpu": after.user + after.system,  # start-up and signing included
            }
        )
    )
    return 0


# --- stores: a preloaded template, copied for every measurement ---


@dataclass
class Template:
    """A store holding N accepted deliveries with one pending outbox row each."""

    kind: str  # sqlite | postgres
    url: str
    admin_dsn: str = ""

    @contextlib.contextmanager
    def copy(self, work: Path, label: str) -> Iterator[str]:
        """A fresh copy of the template; yields its store URL, removes it after."""
        if self.kind == "sqlite":
            source = Path(self.url.removeprefix("sqlite:///"))
            target = work / f"{label}.db"
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{source}{suffix}").exists():
                    shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")
            try:
                yield f"sqlite:///{target}"
            finally:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{target}{suffix}").unlink(missing_ok=True)
            return
        template = self.url.rsplit("/", 1)[1]
        name = f"{template}_{label}".replace("-", "_")
        for attempt in range(50):  # the template's last backends may still be exiting
            try:
                asyncio.run(
                    _admin_sql(self.admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                )
                break
            except Exception as exc:
                if "being accessed by other users" not in str(exc) or attempt == 49:
                    raise RuntimeError(f"cannot clone {template}: {exc}") from exc
                time.sleep(0.2)
        try:
            yield with_database(self.admin_dsn, name)
        finally:
            asyncio.run(
                _admin_sql(self.admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            )


def wait_admin_ready(server: Server) -> None:
    """Until the receiver's admin API answers /readyz (no request is posted: every
    accepted delivery would be one more row to forward)."""
    assert server.process is not None and server.admin is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.admin + "/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} not ready after {READY_TIMEOUT:.0f}s")


def receiver(
    name: str, manifests: Path, store_url: str, concurrency: int, cpu: int, work: Path
) -> Server:
    port, admin_port = free_port(), free_port()
    return Server(
        name=name,
        url=f"http://127.0.0.1:{port}/hooks/{HOOK_PATH}",
        admin=f"http://127.0.0.1:{admin_port}",
        command=receiver_command(
            manifests, store_url, port, admin_port, dispatch_concurrency=concurrency
        ),
        cpu=cpu,
        log=work / f"{name}.log",
    )


def preload(server: Server, body: bytes, signature: str, count: int) -> float:
    """Ingest `count` deliveries through the receiver's HTTP API; returns req/s."""
    nonce = secrets.token_hex(6)
    headers = (
        {**GITHUB_HEADERS, "X-Hub-Signature-256": signature, "X-GitHub-Delivery": f"{nonce}-{i}"}
        for i in range(count)
    )
    started = time.monotonic()
    asyncio.run(post_all(server.url, body, headers, PRELOAD_CONCURRENCY, expect=202))
    rate = count / (time.monotonic() - started)
    stats = server.webhook_stats()
    if stats.get("accepted") != count or stats.get("pending") != count:
        raise RuntimeError(f"after the preload {server.name} counts {stats}, not {count}")
    return rate


# --- measurements ---


@dataclass
class Measurement:
    sender: str  # baseline | sqlite | postgres
    concurrency: int
    deliveries: int
    seconds: float  # first request at the sink .. everything delivered (and recorded)
    sender_cpu: float  # CPU seconds per wall second of the sender process
    helpers_cpu: float  # the same for its PostgreSQL backends
    cpu_us: float  # sender (+ backends) CPU µs per delivery
    sink_cpu: float  # the sink's CPU seconds per wall second
    # The sender core's busy time that was not the sender's own, per wall second: the
    # kernel's loopback work, PostgreSQL backends scheduled there, and whatever else
    # the shared machine ran on that core.
    core_other: float = 0.0
    duplicates: int = 0
    store_lag_ms: float = 0.0  # the sink had all .. the store said so

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds


def sink_wait(sink: Sink, count: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + FORWARD_TIMEOUT
    while sink.stats()["unique"] < count:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was done")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: the sink has {sink.stats()} after {FORWARD_TIMEOUT}s")
        time.sleep(POLL)


def cpu_of(pids: Sequence[int]) -> dict[int, float]:
    found: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            found[pid] = cpu_seconds(pid)
    return found


def measure_hookline(
    server: Server,
    sink: Sink,
    count: int,
    concurrency: int,
    helpers: Callable[[], list[int]] | None,
) -> Measurement:
    sink.reset()
    server.start()
    try:
        assert server.process is not None
        # The clock starts at the sink's first request; CPU is counted from the first
        # look that sees one (start-up, store open and configuration load excluded).
        deadline = time.monotonic() + READY_TIMEOUT
        while (first := sink.stats())["requests"] == 0:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} sent nothing:\n{server.log_tail()}")
            time.sleep(0.01)
        helpers_before = cpu_of(helpers() if helpers else [])
        core_before = core_seconds(server.cpu)
        cpu_before, wall_before = cpu_seconds(server.pid), time.monotonic()
        sink_wait(sink, count, server.process, server.name)
        sink_done = time.monotonic()
        while True:
            stats = server.webhook_stats()
            if stats.get("delivered") == count and stats.get("pending") == 0:
                break
            if time.monotonic() - sink_done > 60:
                raise RuntimeError(f"{server.name}: the store says {stats} a minute later")
            time.sleep(0.02)
        done = time.monotonic()
        cpu = cpu_seconds(server.pid) - cpu_before
        core_busy, core_total = (
            a - b for a, b in zip(core_seconds(server.cpu), core_before, strict=True)
        )
        helpers_after = cpu_of(helpers() if helpers else [])
        helpers_cpu = sum(v - helpers_before.get(pid, 0.0) for pid, v in helpers_after.items())
        last = sink.stats()
        if stats.get("failed") or stats.get("deadLettered"):
            raise RuntimeError(f"{server.name}: failed sends: {stats}")
        check_sink(last, count, server.name)
    finally:
        server.stop()
    wall = done - wall_before
    forwarded = count - first["unique"]
    return Measurement(
        sender=server.name.split("-")[0],
        concurrency=concurrency,
        deliveries=count,
        seconds=done - last["first"],
        sender_cpu=cpu / wall,
        helpers_cpu=helpers_cpu / wall,
        cpu_us=(cpu + helpers_cpu) / forwarded * 1e6,
        sink_cpu=(last["cpu"] - first["cpu"]) / wall,
        core_other=max(0.0, (core_busy - cpu) / core_total) if core_total else 0.0,
        duplicates=last["duplicates"],
        store_lag_ms=(done - sink_done) * 1000,
    )


def check_sink(stats: dict[str, Any], count: int, who: str) -> None:
    if stats["unique"] != count or stats["badSignatures"] or stats["unsigned"]:
        raise RuntimeError(f"{who}: the sink counts {stats}, expected {count} signed")
    if not stats["libraryChecked"]:
        raise RuntimeError(f"{who}: the standardwebhooks library did not check a signature")


def measure_baseline(
    sink: Sink, body_file: Path, count: int, concurrency: int, cpu: int, label: str
) -> Measurement:
    sink.reset()
    before = sink.stats()
    core_before = core_seconds(cpu)
    done = subprocess.run(
        [
            sys.executable, str(Path(__file__).resolve()), "client",
            "--url", f"{sink.url}/events",
            "--body", str(body_file),
            "--count", str(count),
            "--concurrency", str(concurrency),
            "--secret", sink.secret,
            "--prefix", label,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=FORWARD_TIMEOUT,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the baseline client failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    core_busy, core_total = (a - b for a, b in zip(core_seconds(cpu), core_before, strict=True))
    last = sink.stats()
    check_sink(last, count, "baseline")
    seconds = last["last"] - last["first"]
    return Measurement(
        sender="baseline",
        concurrency=concurrency,
        deliveries=count,
        seconds=seconds,
        sender_cpu=result["cpu"] / result["wall"],
        helpers_cpu=0.0,
        cpu_us=result["cpu"] / count * 1e6,
        sink_cpu=(last["cpu"] - before["cpu"]) / result["wall"],
        core_other=(
            max(0.0, (core_busy - result["process_cpu"]) / core_total) if core_total else 0.0
        ),
        duplicates=last["duplicates"],
    )


# --- the run ---


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="hookline forwarding rate beside a bare aiohttp client loop (issue 5)"
    )
    parser.add_argument("--deliveries", type=int, default=20_000, help="N, per measurement")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[16, 64],
        help="--dispatch-concurrency values (and the baseline's), default: 16 64",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--postgres-dsn",
        default=os.environ.get("HOOKLINE_TEST_POSTGRES_DSN", DEFAULT_DSN),
        help="server to create the temporary databases on "
        "(default: $HOOKLINE_TEST_POSTGRES_DSN or %(default)s)",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU of receiver and baseline")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU of the sink")
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--commit",
        help="the commit to report as measured, for a tree that is not a git checkout",
    )
    args = parser.parse_args(argv)
    if args.deliveries < 100 or args.rounds < 1 or min(args.concurrency) < 1:
        parser.error("--deliveries >= 100, --rounds >= 1, --concurrency >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["client"]:
        return client_main(argv[1:])
    if argv[:1] in (["under-load"], ["load-client"]):
        # Issue 11 §4: forwarding while ingest saturates the receiver (bench/forward_load.py).
        import forward_load

        run_mode = forward_load.main if argv[0] == "under-load" else forward_load.client_main
        return run_mode(argv[1:])
    args = parse_args(argv)
    return run_in_workdir(args, run, prefix="hookline-forward-", name="bench/forward.py")


def run(
    args: argparse.Namespace, info: dict[str, str], work: Path, stack: contextlib.ExitStack
) -> int:
    secret = secrets.token_hex(32)
    body = json.dumps(workflow_run_payload(), separators=(",", ":")).encode()
    body_file = work / "workflow_run.json"
    body_file.write_bytes(body)
    signature = github_signature(secret, body)
    count = args.deliveries
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]

    sink = Sink(free_port(), standard_webhooks_secret(), args.client_cpu, work / "sink.log")
    stack.callback(sink.stop)
    sink.start()
    manifests = work / "manifests"
    write_manifests(
        manifests, secret, "forwarding", sink_url=f"{sink.url}/events", signing_secret=sink.secret
    )

    print(
        f"hookline forwarding benchmark, {info['date']}, hookline at {REPO} (HEAD {info['commit']})"
    )
    print(
        f"machine: nproc {info['nproc']}, {info['cpu']}, Linux {info['kernel']}, "
        f"Python {info['python']}, aiohttp {info['aiohttp']}"
    )
    print(
        f"{count} deliveries of {len(body)} bytes (workflow_run), format raw, Standard "
        f"Webhooks signing; SQLite on {filesystem_of(work)}"
    )
    print(
        f"receivers and the baseline client pinned to CPU {args.server_cpu}, the sink "
        f"(and this script) to CPU {args.client_cpu}"
        + ("; the PostgreSQL server is not pinned" if "postgres" in stores else "")
    )

    templates: dict[str, Template] = {}
    for store in stores:
        if store == "sqlite":
            template = Template("sqlite", f"sqlite:///{work / 'template.db'}")
        else:
            url = stack.enter_context(postgres_database(args.postgres_dsn))
            template = Template("postgres", url, admin_dsn=args.postgres_dsn)
        loader = receiver(f"preload-{store}", manifests, template.url, 0, args.server_cpu, work)
        loader.start()
        try:
            wait_admin_ready(loader)
            rate = preload(loader, body, signature, count)
        finally:
            loader.stop()
        print(f"preloaded {count} deliveries into {store} ({rate:.0f} req/s of ingest)", flush=True)
        templates[store] = template

    senders = ["baseline", *stores]
    units = [(sender, c) for c in args.concurrency for sender in senders]
    results: dict[tuple[str, int], list[Measurement]] = {unit: [] for unit in units}
    for round_number in range(args.rounds):
        ordered = units if round_number % 2 == 0 else units[::-1]
        for sender, concurrency in ordered:
            label = f"r{round_number + 1}c{concurrency}"
            if sender == "baseline":
                m = measure_baseline(
                    sink, body_file, count, concurrency, args.server_cpu, f"{label}-"
                )
            else:
                template = templates[sender]
                with template.copy(work, f"{sender}-{label}") as url:
                    server = receiver(
                        f"{sender}-{label}", manifests, url, concurrency, args.server_cpu, work
                    )
                    helpers = (
                        functools.partial(backend_pids, args.postgres_dsn, url)
                        if sender == "postgres"
                        else None
                    )
                    m = measure_hookline(server, sink, count, concurrency, helpers)
            results[(sender, concurrency)].append(m)
            print(
                f"round {round_number + 1}: {sender:<8} concurrency {concurrency:>3}: "
                f"{m.rate:7.0f} deliveries/s  sender CPU {m.sender_cpu:.0%}"
                + (f" + backends {m.helpers_cpu:.0%}" if sender == "postgres" else "")
                + f"  {m.cpu_us:.0f} µs/delivery  sink CPU {m.sink_cpu:.0%}"
                + f"  other on its core {m.core_other:.0%}"
                + (f"  duplicates {m.duplicates}" if m.duplicates else ""),
                flush=True,
            )
    print_report(results, senders, args)
    return 0


def print_report(
    results: dict[tuple[str, int], list[Measurement]],
    senders: list[str],
    args: argparse.Namespace,
) -> None:
    print()
    print(
        f"{args.deliveries} deliveries per measurement, {args.rounds} alternating rounds; "
        "medians over rounds"
    )
    print()
    print(
        "| concurrency | sender | deliveries/s | sender CPU | its PostgreSQL backends "
        "| other on its core | CPU µs/delivery | sink CPU | duplicates | deliveries/s per round |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for concurrency in args.concurrency:
        for sender in senders:
            runs = results[(sender, concurrency)]
            helpers = (
                f"{median([m.helpers_cpu for m in runs]):.0%}" if sender == "postgres" else "-"
            )
            name = "baseline (aiohttp client)" if sender == "baseline" else f"hookline, {sender}"
            print(
                f"| {concurrency} | {name} | {median([m.rate for m in runs]):.0f} "
                f"| {median([m.sender_cpu for m in runs]):.0%} | {helpers} "
                f"| {median([m.core_other for m in runs]):.0%} "
                f"| {median([m.cpu_us for m in runs]):.0f} "
                f"| {median([m.sink_cpu for m in runs]):.0%} "
                f"| {sum(m.duplicates for m in runs)} "
                f"| {', '.join(f'{m.rate:.0f}' for m in runs)} |"
            )
    print()
    print(
        "| hookline / baseline | concurrency | deliveries/s, of the medians "
        "| median of the rounds' | CPU per delivery, inverse | per round |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for sender in senders[1:]:
        for concurrency in args.concurrency:
            runs = results[(sender, concurrency)]
            base = results[("baseline", concurrency)]
            ratio = median([m.rate for m in runs]) / median([m.rate for m in base])
            rounds = [m.rate / b.rate for m, b in zip(runs, base, strict=True)]
            cost = median([m.cpu_us for m in base]) / median([m.cpu_us for m in runs])
            print(
                f"| {sender} | {concurrency} | **{ratio:.2f}** | {median(rounds):.2f} "
                f"| {cost:.2f} | {', '.join(f'{r:.2f}' for r in rounds)} |"
            )
    lags = [m.store_lag_ms for key, runs in results.items() if key[0] != "baseline" for m in runs]
    if lags:
        print()
        print(
            "the store confirmed delivered == N "
            f"{min(lags):.0f}-{max(lags):.0f} ms after the sink had all (in the rates)"
        )


if __name__ == "__main__":
    sys.exit(main())
