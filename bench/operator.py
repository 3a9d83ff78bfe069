"""Operator timings (issue 6): from applying N Webhooks to all Ready, and from a spec
change to the receiver serving it (p50/p99).

Runs hookline's real operator (kopf's own loop, in a thread) against the KMock emulator
with every write validated against the CRDs, and a real receiver in push mode on
loopback, the same parts as tests/operator. The emulator is Python in this process:
its cost is part of every figure, so these are upper bounds of the operator's own time.

    .venv/bin/python bench/operator.py --webhooks 1000 --changes 50
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kmock

from hookline.api.common import API_VERSION
from tests.support.operator_env import (
    WEBHOOKS,
    create,
    emulator,
    eventually,
    is_ready,
    operator,
    operator_settings,
    patch,
    receiver,
    secret,
)

NS = "bench"


def webhook(i: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Webhook",
        "metadata": {"name": f"hook-{i:05d}", "namespace": NS},
        "spec": {
            "path": f"bench/hook-{i:05d}",
            "auth": {"type": "github", "secretRef": {"name": "gh"}},
        },
    }


def ready_count(k: Any) -> int:
    resource = kmock.resource(WEBHOOKS)
    return sum(
        is_ready(obj.raw)
        for (res, _, _), obj in list(k.objects.items())
        if res == resource and not obj.deleted
    )


def serves(running: Any, path: str) -> bool:
    return path in running.state.config.routes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(count: int, changes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with emulator() as k, receiver(Path(tmp)) as running:
            await create(k, secret(NS, "gh", secret=b"bench-secret"))
            settings = operator_settings(
                k, receiver_admin_urls=[running.admin_url], stats_interval=10.0
            )
            async with operator(k, settings):
                start = time.perf_counter()
                for i in range(count):
                    await create(k, webhook(i))
                applied = time.perf_counter() - start
                # Polled, not re-checked after every request: a scan of a thousand
                # objects after each of the operator's writes would be the benchmark.
                await eventually(lambda: ready_count(k) == count, 900, interval=0.05)
                all_ready = time.perf_counter() - start

                latencies = []
                for n in range(changes):
                    i = n % count
                    new_path = f"bench/changed-{n}"
                    t0 = time.perf_counter()
                    await patch(
                        k,
                        f"/apis/{API_VERSION}/namespaces/{NS}/webhooks/hook-{i:05d}",
                        {"spec": {"path": new_path}},
                    )
                    # Served: the receiver's routing table has the new path.
                    await eventually(partial(serves, running, new_path), 60, interval=0.002)
                    latencies.append(time.perf_counter() - t0)
    return {
        "webhooks": count,
        "apply_s": applied,
        "all_ready_s": all_ready,
        "changes": changes,
        "change_p50_ms": 1000 * statistics.median(latencies),
        "change_p99_ms": 1000 * percentile(latencies, 0.99),
        "change_max_ms": 1000 * max(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    result = asyncio.run(run(args.webhooks, args.changes))
    print(
        f"{result['webhooks']} Webhooks applied in {result['apply_s']:.1f} s; "
        f"all Ready {result['all_ready_s']:.1f} s after the first was applied"
    )
    print(
        f"spec change -> served by the receiver, {result['changes']} changes: "
        f"p50 {result['change_p50_ms']:.0f} ms, p99 {result['change_p99_ms']:.0f} ms, "
        f"max {result['change_max_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main()
