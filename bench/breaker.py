"""A half-broken destination (issue 11 §2): how many of N deliveries arrive, and how fast.

One receiver in this process (the real ingest and admin apps on loopback ports, a
fresh SQLite store, real clocks, the default dispatcher: 16 sends at once, a 1 s poll)
takes N deliveries over HTTP (auth none, one destination, retry `initialBackoff:
200ms, maxBackoff: 2s`, the circuit breaker at its defaults) and forwards them to a
sink on loopback, an aiohttp server that answers

- `half`: 503 to half the requests at random (seeded per round): a backend pool with
  one of two pods down;
- `healthy`, the baseline of the same run: 200 to every request.

The clock starts at the first POST and stops when the sink has answered 2xx once for
every delivery id, or at the budget (default 120 s, the issue's two minutes). Reported
per arm: deliveries that arrived, seconds, requests the sink saw, duplicate 2xx
receipts (must be 0), and the ratio of the half-broken arm's time to the healthy one's.

    .venv/bin/python bench/breaker.py [--deliveries 200] [--rounds 3] [--budget 120]
        [--tree PATH]

`--tree PATH` imports hookline from another checkout first (e.g. the commit before
issue 11 §2, unpacked with `git archive`), to measure its breaker on the same script.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web


@dataclass
class Result:
    arm: str
    delivered: int
    seconds: float
    requests: int
    duplicates: int


class HalfSink:
    """Answers 503 with probability `failure` and 200 otherwise; counts 2xx per id."""

    def __init__(self, failure: float, seed: int) -> None:
        self.failure = failure
        self.rng = random.Random(seed)
        self.ok: Counter[str] = Counter()
        self.requests = 0
        self.done = asyncio.Event()
        self.expect = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests += 1
        if self.rng.random() < self.failure:
            return web.Response(status=503)
        self.ok[request.headers["X-Hookline-Delivery"]] += 1
        if len(self.ok) >= self.expect:
            self.done.set()
        return web.Response(status=200)


def manifests(directory: Path, url: str) -> Path:
    webhook = {
        "apiVersion": "hookline.dev/v1alpha1",
        "kind": "Webhook",
        "metadata": {"name": "half", "namespace": "bench"},
        "spec": {
            "path": "half",
            "auth": {"type": "none"},
            "destinations": [
                {
                    "name": "pool",
                    "url": url,
                    "retry": {"initialBackoff": "200ms", "maxBackoff": "2s"},
                }
            ],
        },
    }
    directory.mkdir(parents=True)
    (directory / "webhooks.yaml").write_text(yaml.safe_dump(webhook))
    return directory


async def start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port: int = runner.addresses[0][1]
    return runner, port


async def measure(arm: str, count: int, seed: int, budget: float, work: Path) -> Result:
    from hookline.receiver import Settings, create_app
    from hookline.receiver.server import manifests_loader

    sink = HalfSink(0.5 if arm == "half" else 0.0, seed)
    sink.expect = count
    sink_app = web.Application()
    sink_app.router.add_post("/pool", sink.handle)
    sink_runner, sink_port = await start(sink_app)
    directory = manifests(work / arm / "manifests", f"http://127.0.0.1:{sink_port}/pool")
    settings = Settings(
        store_url=f"sqlite:///{work / arm / 'hookline.db'}",
        load_config=manifests_loader(directory),
    )
    receiver_runner, port = await start(create_app(settings))
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(count):
                async with session.post(f"http://127.0.0.1:{port}/hooks/half", json={"n": n}) as r:
                    assert r.status == 202, await r.text()
        try:
            await asyncio.wait_for(sink.done.wait(), budget - (time.monotonic() - started))
        except TimeoutError:
            pass
        seconds = time.monotonic() - started
    finally:
        await receiver_runner.cleanup()
        await sink_runner.cleanup()
    duplicates = sum(n - 1 for n in sink.ok.values())
    return Result(arm, len(sink.ok), seconds, sink.requests, duplicates)


async def run(args: argparse.Namespace) -> int:
    import hookline

    print(f"hookline from {Path(hookline.__file__).parent}")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hookline-breaker-") as tmp:
        for round_ in range(args.rounds):
            arms = ("healthy", "half") if round_ % 2 == 0 else ("half", "healthy")
            for arm in arms:
                work = Path(tmp) / f"r{round_}"
                result = await measure(arm, args.deliveries, round_, args.budget, work)
                results.append(result)
                print(
                    f"round {round_ + 1} {arm:8} {result.delivered}/{args.deliveries} delivered"
                    f" in {result.seconds:.1f} s, {result.requests} requests,"
                    f" {result.duplicates} duplicate 2xx"
                )
    print("\nmedians over rounds:")
    medians = {}
    for arm in ("healthy", "half"):
        mine = [r for r in results if r.arm == arm]
        medians[arm] = statistics.median(r.seconds for r in mine)
        delivered = statistics.median(r.delivered for r in mine)
        print(f"  {arm:8} {delivered:.0f}/{args.deliveries} delivered, {medians[arm]:.1f} s")
    print(f"  half / healthy time: {medians['half'] / medians['healthy']:.1f}")
    failed = any(r.duplicates or r.delivered < args.deliveries for r in results)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per arm")
    parser.add_argument("--tree", type=Path, help="import hookline from this checkout")
    args = parser.parse_args(argv)
    if args.tree is not None:
        sys.path.insert(0, str(args.tree.resolve()))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
