#!/usr/bin/env python3
"""`modelyard-agent pull` against `curl -o` of the same blob, like for like, in one run.

    .venv/bin/python scripts/bench/pull.py [--size-mib 500] [--runs 5] [--profile] [--other-src DIR]

A real `modelyard serve` (SQLite, local store, a temporary data dir, a free loopback port) gets
one version holding one file of random bytes, pushed with `modelyard push`. Then, alternating,
after one untimed warm-up of each (the server's file is in the page cache for both):

    curl     `curl -sS -o FILE URL/api/blobs/<digest>` with the token: one GET, bytes to a file,
             no hashing, no fsync
    agent    `modelyard-agent pull REF` into a fresh MODELYARD_AGENT_HOME: process start, one
             GraphQL query, the GET, sha256 of every byte, fsync, rename, manifest written

Each timing is the whole process, wall clock; `sync` runs between runs (untimed) so one run's
dirty pages are not written back during the next. MiB/s is the blob's size over that time; the
ratio is agent MiB/s over curl MiB/s (medians). `--other-src DIR` adds a third command to the
rotation, the agent run from another source tree (`git archive HEAD desktop/src | tar -x -C
/tmp/head` then `--other-src /tmp/head/desktop/src`), for before/after in one run. `--profile`
then runs one more pull under cProfile, every thread of it, and prints where the time went.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from machine import command_line, free_port, git_state, machine, process

MiB = 1 << 20
ADMIN = "myd_" + "p" * 43
MODEL = "bench/pull"


@contextlib.contextmanager
def registry(data_dir: Path) -> Iterator[str]:
    """A real `modelyard serve` on a free loopback port; yields its URL."""
    port = free_port()
    env = {"MODELYARD_DATA_DIR": str(data_dir), "MODELYARD_PORT": str(port),
           "MODELYARD_ADMIN_TOKEN": ADMIN, "MODELYARD_LOG_LEVEL": "warning"}
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "modelyard.cli", "serve"], env, f"{url}/healthz", "modelyard serve"):
        yield url


def publish(url: str, folder: Path, size: int) -> tuple[str, str]:
    """Push one file of `size` random bytes as a version; its ref and blob digest."""
    folder.mkdir()
    h = hashlib.sha256()
    with (folder / "weights.bin").open("wb") as f:
        for _ in range(size // MiB):
            chunk = os.urandom(MiB)
            h.update(chunk)
            f.write(chunk)
    create = "mutation($i: CreateModelInput!) { createModel(input: $i) { name } }"
    answer = httpx.post(f"{url}/graphql", json={"query": create, "variables": {"i": {"name": MODEL}}},
                        headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30).json()
    if answer.get("errors"):
        raise SystemExit(f"createModel: {answer['errors']}")
    modelyard = Path(sys.executable).with_name("modelyard")
    subprocess.run([str(modelyard), "push", str(folder), "--model", MODEL, "--server", url,
                    "--token", ADMIN, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return f"{MODEL}:1", f"sha256:{h.hexdigest()}"


def agent_command() -> list[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).with_name("modelyard-agent")
    return [str(script)] if script.exists() else [sys.executable, "-m", "modelyard_agent"]


# Runs the agent's CLI with every thread under its own cProfile (the download runs in worker
# threads), and writes the merged stats to argv[1].
PROFILED = """
import cProfile, pstats, sys, threading
profiles = [cProfile.Profile()]
run = threading.Thread.run
def profiled(self):
    profiles.append(cProfile.Profile())
    profiles[-1].runcall(run, self)
threading.Thread.run = profiled
out = sys.argv.pop(1)
profiles[0].enable()
from modelyard_agent.cli import main
code = main(sys.argv[1:])
profiles[0].disable()
stats = pstats.Stats(profiles[0])
for p in profiles[1:]:
    stats.add(p)
stats.dump_stats(out)
sys.exit(code)
"""


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=500, help="size of the version's one file")
    p.add_argument("--runs", type=int, default=5, help="timed runs of each, alternating")
    p.add_argument("--profile", action="store_true", help="then one pull under cProfile")
    p.add_argument("--dir", type=Path, help="scratch folder (default: a new temp dir)")
    p.add_argument("--other-src", type=Path, help="also time the agent from this source tree")
    args = p.parse_args(argv)
    if shutil.which("curl") is None:
        raise SystemExit("curl is not installed")
    size = args.size_mib * MiB
    print(f"$ {command_line()}\ncommit {git_state()}; {machine()}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-pull-", dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        with registry(tmp / "registry") as url:
            ref, digest = publish(url, tmp / "src", size)
            home = tmp / "agent-home"
            env = {**os.environ, "MODELYARD_AGENT_HOME": str(home), "MODELYARD_SERVER": url,
                   "MODELYARD_TOKEN": ADMIN}
            blob = home / "blobs" / "sha256" / digest.removeprefix("sha256:")
            # label, argv, environment, the file it writes
            commands = [
                ("`curl -o`", ["curl", "-sS", "--fail", "-H", f"Authorization: Bearer {ADMIN}", "-o",
                               str(tmp / "curl.bin"), f"{url}/api/blobs/{digest}"], None, tmp / "curl.bin"),
                ("`modelyard-agent pull`", [*agent_command(), "pull", ref], env, blob),
            ]
            if args.other_src:
                other = {**env, "PYTHONPATH": str(args.other_src.resolve())}
                commands.append((f"`modelyard-agent pull` from {args.other_src}",
                                 [sys.executable, "-m", "modelyard_agent", "pull", ref], other, blob))

            def fresh() -> None:
                (tmp / "curl.bin").unlink(missing_ok=True)
                shutil.rmtree(home, ignore_errors=True)
                os.sync()

            times: dict[str, list[float]] = {label: [] for label, *_ in commands}
            for run in range(args.runs + 1):
                for label, cmd, cmd_env, wrote in commands:
                    fresh()
                    took = timed(cmd, cmd_env)
                    if wrote.stat().st_size != size:
                        raise SystemExit(f"{label} wrote {wrote.stat().st_size} bytes, not {size}")
                    if run:  # the first round warms the page cache and the interpreter's files
                        times[label].append(took)
            load = os.getloadavg()
            print(f"\n{args.size_mib} MiB, one file; {args.runs} alternating runs after a warm-up; "
                  f"wall clock of the whole process\n")
            print("| command | runs s | median s | median MiB/s | best MiB/s | × curl |\n"
                  "|---|---|---:|---:|---:|---:|")
            curl = statistics.median(times[commands[0][0]])
            for label, ts in times.items():
                median = statistics.median(ts)
                print(f"| {label} | {' '.join(f'{t:.2f}' for t in ts)} | {median:.2f} | "
                      f"{args.size_mib / median:.0f} | {args.size_mib / min(ts):.0f} | {curl / median:.2f} |")
            print(f"\n× curl: median MiB/s over curl's median MiB/s. Load average after: "
                  f"{' '.join(f'{x:.2f}' for x in load)}")
            if args.profile:
                fresh()
                out = tmp / "pull.prof"
                subprocess.run([sys.executable, "-c", PROFILED, str(out), "pull", ref], env=env, check=True,
                               stdout=subprocess.DEVNULL)
                print("\ncProfile of one pull, all threads (tottime, top 20):")
                pstats.Stats(str(out)).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
