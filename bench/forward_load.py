"""Forwarding under ingest load (issue 11 §4): `bench/forward.py under-load`.

One receiver process (dispatcher on, pinned to CPU 0 by default) serves the benchmark
Webhook with one destination (format raw, Standard Webhooks signing) whose sink,
bench/sink.py, answers 200 at once. A load client (Python, aiohttp: wrk is not needed)
pinned to the other core with the sink posts ~10 KB workflow_run deliveries over C
keep-alive connections, as fast as they are answered, for S seconds: ingest at the
receiver's capacity. Each refused delivery is dropped by the client and a new one sent
(a real sender would retry it after Retry-After; here the point is the pressure).

Each measurement runs twice, alternating, on a fresh store: without a bound
(`--max-outbox-backlog 0`, the receiver before issue 11) and with one (`--bound`,
2000 by default). The admin API is sampled every half second during the load:

- forwarded / accepted: deliveries delivered to the sink over deliveries accepted
  (202), during the load — 1.00 means dispatch kept up with what was accepted;
- the same over the second half of the load only (steady state: with a bound, the
  first seconds fill the backlog up to it);
- the largest backlog (pending outbox rows) seen, and how many requests were answered
  503 outbox_backlog (with Retry-After) — and anything else, which fails the run.

After the load the outbox is drained, and the run fails unless the sink received every
accepted delivery exactly once with a valid signature.

    .venv/bin/python bench/forward.py under-load [--seconds S] [--bound N]
        [--connections C] [--rounds R] [--store sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from ingest import (
    DEFAULT_DSN,
    HOOK_PATH,
    Server,
    Sink,
    filesystem_of,
    free_port,
    github_signature,
    median,
    postgres_database,
    receiver_command,
    run_in_workdir,
    standard_webhooks_secret,
    workflow_run_payload,
    write_manifests,
)

SAMPLE = 0.5  # seconds between looks at the admin API during the load
GITHUB_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "GitHub-Hookshot/bench",
    "X-GitHub-Event": "workflow_run",
}


# --- the load client (a subprocess, pinned to the sink's core) ---


async def post_for(
    url: str, body: bytes, signature: str, prefix: str, seconds: float, connections: int
) -> dict[str, Any]:
    """POST new deliveries over `connections` keep-alive connections until `seconds`
    have passed; the answers by status, and by error code for the refusals."""
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    retry_after: Counter[str] = Counter()
    waits: list[float] = []  # seconds from request to answer
    numbers = iter(range(1 << 62))
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=60)
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        timeout=timeout,
    ) as session:

        async def worker() -> None:
            while time.monotonic() < deadline:
                headers = {
                    **GITHUB_HEADERS,
                    "X-Hub-Signature-256": signature,
                    "X-GitHub-Delivery": f"{prefix}-{next(numbers)}",
                }
                sent = time.monotonic()
                try:
                    async with session.post(url, data=body, headers=headers) as answer:
                        text = await answer.read()
                        waits.append(time.monotonic() - sent)
                        statuses[answer.status] += 1
                        if answer.status >= 400:
                            codes[json.loads(text).get("error", "?")] += 1
                            retry_after[answer.headers.get("Retry-After", "none")] += 1
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    statuses[0] += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return {
        "statuses": {str(k): v for k, v in statuses.items()},
        "codes": dict(codes),
        "retryAfter": dict(retry_after),
        "p50": percentile(waits, 0.50),
        "p99": percentile(waits, 0.99),
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def client_main(argv: Sequence[str]) -> int:
    """`forward.py load-client ...`"""
    parser = argparse.ArgumentParser(prog="forward.py load-client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--signature", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(
        post_for(
            args.url,
            args.body.read_bytes(),
            args.signature,
            args.prefix,
            args.seconds,
            args.connections,
        )
    )
    print(json.dumps(result))
    return 0


# --- one measurement ---


@dataclass
class Sample:
    at: float  # seconds since the load started
    accepted: int
    delivered: int
    pending: int


@dataclass
class Run:
    bound: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    retry_after: dict[str, int] = field(default_factory=dict)
    drain_seconds: float = 0.0
    p50: float = 0.0  # seconds the senders waited for an answer
    p99: float = 0.0

    def _delta(self, start: Sample) -> tuple[int, int]:
        end = self.samples[-1]
        return end.accepted - start.accepted, end.delivered - start.delivered

    @property
    def accepted(self) -> int:
        return self._delta(self.samples[0])[0]

    @property
    def forwarded(self) -> int:
        return self._delta(self.samples[0])[1]

    @property
    def ratio(self) -> float:
        return self.forwarded / max(1, self.accepted)

    @property
    def steady_ratio(self) -> float:
        half = self.samples[-1].at / 2
        start = next(s for s in self.samples if s.at >= half)
        accepted, forwarded = self._delta(start)
        return forwarded / max(1, accepted)

    @property
    def load_seconds(self) -> float:
        """From the look before the load to the last look under it."""
        return self.samples[-1].at - self.samples[0].at

    @property
    def max_backlog(self) -> int:
        return max(s.pending for s in self.samples)

    @property
    def refused(self) -> int:
        return self.statuses.get("503", 0)


def _sample(server: Server, started: float) -> Sample:
    stats = server.webhook_stats()
    return Sample(
        time.monotonic() - started,
        int(stats.get("accepted", 0)),
        int(stats.get("delivered", 0)),
        int(stats.get("pending", 0)),
    )


def measure(
    args: argparse.Namespace,
    work: Path,
    label: str,
    bound: int,
    store_url: str,
    manifests: Path,
    sink: Sink,
    body_file: Path,
    signature: str,
) -> Run:
    port, admin_port = free_port(), free_port()
    command = [
        *receiver_command(
            manifests, store_url, port, admin_port, dispatch_concurrency=args.concurrency
        ),
        "--max-outbox-backlog",
        str(bound),
    ]
    server = Server(
        name=label,
        url=f"http://127.0.0.1:{port}/hooks/{HOOK_PATH}",
        admin=f"http://127.0.0.1:{admin_port}",
        command=command,
        cpu=args.server_cpu,
        log=work / f"{label}.log",
    )
    body = body_file.read_bytes()
    sink.reset()
    server.start()
    try:
        server.wait_ready(body, {**GITHUB_HEADERS, "X-Hub-Signature-256": signature})
        server.drain()
        run = Run(bound=bound, seconds=args.seconds)
        cpu = args.client_cpu
        started = time.monotonic()
        run.samples.append(_sample(server, started))
        client = subprocess.Popen(
            [
                sys.executable, str(Path(__file__).resolve().parent / "forward.py"),
                "load-client",
                "--url", server.url,
                "--body", str(body_file),
                "--signature", signature,
                "--prefix", f"{label}-{secrets.token_hex(4)}",
                "--seconds", str(args.seconds),
                "--connections", str(args.connections),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )  # fmt: skip
        while client.poll() is None:
            time.sleep(SAMPLE)
            sample = _sample(server, started)
            # Only samples taken under load: once the client stops, the dispatcher
            # drains without competition and would flatter the ratio.
            if client.poll() is None:
                run.samples.append(sample)
        out, err = client.communicate()
        if client.returncode != 0:
            raise RuntimeError(f"the load client failed:\n{out}\n{err}")
        if len(run.samples) < 4:
            raise RuntimeError(f"{label}: too few samples under load: {run.samples}")
        answers = json.loads(out.strip().splitlines()[-1])
        run.statuses, run.codes = answers["statuses"], answers["codes"]
        run.retry_after = answers["retryAfter"]
        run.p50, run.p99 = answers["p50"], answers["p99"]
        drained = time.monotonic()
        server.drain()
        run.drain_seconds = time.monotonic() - drained
        check(server, sink, run)
    finally:
        server.stop()
    return run


def check(server: Server, sink: Sink, run: Run) -> None:
    """Every accepted delivery forwarded once, signed; nothing but 202 and 503
    outbox_backlog (with Retry-After) answered."""
    others = {k: v for k, v in run.statuses.items() if k not in ("202", "503")}
    if others or set(run.codes) - {"outbox_backlog"}:
        raise RuntimeError(f"{server.name}: unexpected answers {run.statuses} {run.codes}")
    if run.refused and run.retry_after != {"5": run.refused}:
        raise RuntimeError(f"{server.name}: 503s without Retry-After: 5: {run.retry_after}")
    if run.bound == 0 and run.refused:
        raise RuntimeError(f"{server.name}: refused without a bound: {run.statuses}")
    stats = server.webhook_stats()
    accepted = int(stats["accepted"])
    got = sink.stats()
    if stats.get("delivered") != accepted or got["unique"] != accepted:
        raise RuntimeError(f"{server.name}: accepted {accepted}, store {stats}, sink {got}")
    if got["duplicates"] or got["badSignatures"] or got["unsigned"]:
        raise RuntimeError(f"{server.name}: the sink counts {got}")


# --- the run ---


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="forward.py under-load",
        description="forwarded / accepted while ingest saturates the receiver (issue 11 §4)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="of load per measurement")
    parser.add_argument("--bound", type=int, default=2000, help="--max-outbox-backlog")
    parser.add_argument("--connections", type=int, default=64, help="of the load client")
    parser.add_argument("--concurrency", type=int, default=16, help="--dispatch-concurrency")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (median)")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--postgres-dsn", default=os.environ.get("HOOKLINE_TEST_POSTGRES_DSN", DEFAULT_DSN)
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU of the receiver")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU of client and sink")
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--commit", help="the commit to report as measured")
    args = parser.parse_args(argv)
    if args.seconds < 4 or args.bound < 1 or args.rounds < 1 or args.connections < 1:
        parser.error("--seconds >= 4, --bound >= 1, --rounds >= 1, --connections >= 1")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    return run_in_workdir(args, run, prefix="hookline-under-load-", name="forward.py under-load")


def run(
    args: argparse.Namespace, info: dict[str, str], work: Path, stack: contextlib.ExitStack
) -> int:
    secret = secrets.token_hex(32)
    body = json.dumps(workflow_run_payload(), separators=(",", ":")).encode()
    body_file = work / "workflow_run.json"
    body_file.write_bytes(body)
    signature = github_signature(secret, body)
    sink = Sink(free_port(), standard_webhooks_secret(), args.client_cpu, work / "sink.log")
    stack.callback(sink.stop)
    sink.start()
    manifests = work / "manifests"
    write_manifests(
        manifests, secret, "forwarding", sink_url=f"{sink.url}/events", signing_secret=sink.secret
    )
    print(f"hookline forwarding under ingest load, {info['date']}, HEAD {info['commit']}")
    print(
        f"machine: nproc {info['nproc']}, {info['cpu']}, Linux {info['kernel']}, "
        f"Python {info['python']}, aiohttp {info['aiohttp']}; store {args.store}"
        + (f" on {filesystem_of(work)}" if args.store == "sqlite" else "")
    )
    print(
        f"{len(body)}-byte deliveries for {args.seconds:g} s over {args.connections} "
        f"connections; --dispatch-concurrency {args.concurrency}; receiver on CPU "
        f"{args.server_cpu}, load client and sink on CPU {args.client_cpu}",
        flush=True,
    )
    bounds = [0, args.bound]
    results: dict[int, list[Run]] = {b: [] for b in bounds}
    for round_number in range(args.rounds):
        for bound in bounds if round_number % 2 == 0 else bounds[::-1]:
            label = f"r{round_number + 1}-bound{bound}"
            if args.store == "sqlite":
                url = f"sqlite:///{work / f'{label}.db'}"
                m = measure(args, work, label, bound, url, manifests, sink, body_file, signature)
            else:
                with postgres_database(args.postgres_dsn) as url:
                    m = measure(
                        args, work, label, bound, url, manifests, sink, body_file, signature
                    )
            results[bound].append(m)
            print(
                f"round {round_number + 1}: bound {bound or 'none':>6}: accepted "
                f"{m.accepted / m.load_seconds:5.0f}/s "
                f"forwarded {m.forwarded / m.load_seconds:5.0f}/s "
                f"ratio {m.ratio:.2f} (2nd half {m.steady_ratio:.2f}) max backlog "
                f"{m.max_backlog} 503s {m.refused} drain {m.drain_seconds:.1f} s "
                f"answers p50 {m.p50 * 1000:.0f} ms p99 {m.p99 * 1000:.0f} ms",
                flush=True,
            )
    print()
    print(f"{args.rounds} alternating rounds of {args.seconds:g} s; medians over rounds")
    print()
    print(
        "| --max-outbox-backlog | accepted/s | forwarded/s | forwarded / accepted "
        "| 2nd half | max backlog | 503 outbox_backlog/s | answer p50 / p99 ms | drain s "
        "| ratio per round |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for bound in bounds:
        runs = results[bound]
        print(
            f"| {bound or '0 (none)'} | {median([r.accepted / r.load_seconds for r in runs]):.0f} "
            f"| {median([r.forwarded / r.load_seconds for r in runs]):.0f} "
            f"| **{median([r.ratio for r in runs]):.2f}** "
            f"| {median([r.steady_ratio for r in runs]):.2f} "
            f"| {median([r.max_backlog for r in runs]):.0f} "
            f"| {median([r.refused / r.seconds for r in runs]):.0f} "
            f"| {median([r.p50 for r in runs]) * 1000:.0f} / "
            f"{median([r.p99 for r in runs]) * 1000:.0f} "
            f"| {median([r.drain_seconds for r in runs]):.1f} "
            f"| {', '.join(f'{r.ratio:.2f}' for r in runs)} |"
        )
    return 0
