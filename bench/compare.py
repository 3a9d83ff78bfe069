"""A/B of the ingest path: the receivers of several hookline trees side by side.

    .venv/bin/python bench/compare.py before=/path/to/worktree after=. [--rounds 4]

Each LABEL=TREE runs `python -m hookline.cli receiver` from TREE (its own hookline: the
tree is the working directory, so `-m` imports it first) on the plain route of
bench/ingest.py (github auth, a ~10 KB workflow_run body, SQLite), pinned to CPU 0 beside
the bare aiohttp baseline, with wrk on CPU 1. Rounds alternate the order; each
measurement is a discarded 2 s wrk run and a measured one. Reported per measurement:
req/s, and the receiver's CPU per request split by thread (the event loop, and the
others: the SQLite writer and reader), read from /proc/<pid>/task/*/stat; then medians.
`--floor` adds bench/floor.py (LZ4 bodies), the durable floor, split the same way.

For a change to the ingest path this is the figure to compare: CPU per request moves
much less with the machine's other load than req/s does. bench/ingest.py remains the
benchmark of record (docs/benchmarks.md); this script answers "did this commit help".
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ingest
from ingest import (
    CLK_TCK,
    HOOK_PATH,
    Load,
    Server,
    baseline_server,
    floor_server,
    free_port,
    github_signature,
    receiver_command,
    workflow_run_payload,
    write_manifests,
)


@dataclass
class Sample:
    rps: float
    loop_us: float  # the main thread (the event loop) per request
    threads_us: float  # every other thread per request


def thread_seconds(pid: int) -> tuple[float, float]:
    """(main thread, other threads) CPU seconds of a process."""
    main = others = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a thread that has exited
            continue
        seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK
        if task.name == str(pid):
            main += seconds
        else:
            others += seconds
    return main, others


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("trees", nargs="+", metavar="LABEL=TREE", help="receivers to compare")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--floor", action="store_true", help="also run bench/floor.py --lz4, the durable floor"
    )
    args = parser.parse_args(argv)
    labels = [tree.split("=", 1)[0] for tree in args.trees]
    if any("=" not in tree for tree in args.trees):
        parser.error("each receiver is LABEL=TREE")
    if len(set(labels)) != len(labels) or {"baseline", "floor"} & set(labels):
        parser.error("labels must be distinct, and not 'baseline' or 'floor'")
    return args


def hookline_of(tree: Path) -> Path:
    """The hookline package `python -m hookline.cli` imports when run in `tree`; an
    error unless it is the tree's own (else two labels would measure the same code)."""
    found = subprocess.run(
        [sys.executable, "-c", "import hookline; print(hookline.__file__)"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    package = Path(found).resolve().parent
    if not package.is_relative_to(tree):
        raise SystemExit(f"{tree} runs the hookline at {package}, not its own")
    return package


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hookline-compare-"))
    secret = secrets.token_hex(32)
    body = json.dumps(workflow_run_payload(), separators=(",", ":")).encode()
    body_file = work / "workflow_run.json"
    body_file.write_bytes(body)
    signature = github_signature(secret, body)
    probe = {"Content-Type": "application/json", "X-GitHub-Event": "workflow_run"}
    probe["X-Hub-Signature-256"] = signature

    servers = [baseline_server(work, 0)]
    if args.floor:
        servers.append(floor_server(work, 0, "floor", lz4=True))
    trees: dict[str, Path] = {}
    for item in args.trees:
        label, tree = item.split("=", 1)
        trees[label] = Path(tree).resolve()
        print(f"{label}: {hookline_of(trees[label])}")
        write_manifests(work / f"manifests-{label}", secret, "plain")
        port, admin_port = free_port(), free_port()
        command = receiver_command(
            work / f"manifests-{label}",
            f"sqlite:///{work / label}.db",
            port,
            admin_port,
            dispatch_concurrency=0,
        )
        servers.append(
            Server(
                name=label,
                url=f"http://127.0.0.1:{port}/hooks/{HOOK_PATH}",
                admin=f"http://127.0.0.1:{admin_port}",
                command=command,
                cpu=0,
                log=work / f"{label}.log",
            )
        )
    try:
        for server in servers:
            # Server.start runs in ingest.REPO: the tree whose hookline `-m` imports.
            ingest.REPO = trees.get(server.name, ingest.REPO)
            server.start()
        for server in servers:
            server.wait_ready(body, probe)
        load = Load(
            connections=args.connections,
            duration=args.duration,
            warmup=2,
            client_cpu=1,
            server_cpu=0,
            body_file=body_file,
            signature=signature,
        )
        samples: dict[str, list[Sample]] = {server.name: [] for server in servers}
        width = max(len(server.name) for server in servers)
        for number in range(args.rounds):
            for server in servers if number % 2 == 0 else servers[::-1]:
                load.wrk(server, 2)  # warm-up, discarded
                loop_before, others_before = thread_seconds(server.pid)
                m = load.wrk(server, args.duration)
                loop_after, others_after = thread_seconds(server.pid)
                if not m.requests:
                    raise SystemExit(f"{server.name} answered nothing:\n{server.log_tail()}")
                sample = Sample(
                    m.rps,
                    (loop_after - loop_before) / m.requests * 1e6,
                    (others_after - others_before) / m.requests * 1e6,
                )
                samples[server.name].append(sample)
                print(
                    f"round {number + 1}: {server.name:<{width}} {m.rps:8.0f} req/s  "
                    f"CPU µs/request: loop {sample.loop_us:5.1f}, other threads "
                    f"{sample.threads_us:5.1f}  (other on its core {m.core_other:.0%})",
                    flush=True,
                )
        baseline = statistics.median(s.rps for s in samples["baseline"])
        print()
        print("| server | req/s | / baseline | loop µs | other threads µs | CPU µs / request |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, runs in samples.items():
            rps = statistics.median(s.rps for s in runs)
            loop = statistics.median(s.loop_us for s in runs)
            threads = statistics.median(s.threads_us for s in runs)
            total = statistics.median(s.loop_us + s.threads_us for s in runs)
            print(
                f"| {name} | {rps:.0f} | {rps / baseline:.2f} | {loop:.0f} | {threads:.0f} "
                f"| {total:.0f} |"
            )
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)  # the databases grow by GBs
    return 0


if __name__ == "__main__":
    sys.exit(main())
