"""Sandbox benchmark: what bubblewrap adds to each bash command, and the worker's memory under an output flood.

1. Latency. The bash tool runs ``true`` N times (default 200) unconfined (``JADA_AGENT_SANDBOX=off``, the
   old path: ``bash -c`` with the rlimits) and N times inside the sandbox, interleaved so both see the same
   machine load; median and p95 of each and of the difference. Target: under 50 ms median added per command.
   As root, also N times with ``JADA_AGENT_SANDBOX=uid`` (as a slot uid, every process of it killed after each
   command), interleaved with the others.
2. Memory. A fresh interpreter runs one 200 MB flood (``head -c 200000000 /dev/zero | tr '\\0' a``) through the
   bash tool, once with the default output limit (the command is stopped at 8 MB) and once with a limit
   above the flood (every byte read); peak RSS before and after, side by side.

    .venv/bin/python bench/sandbox.py [--commands 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from jada_pipelines.agents.tools import Toolbox


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_latency(commands: int, scratch: Path) -> None:
    boxes = {
        "unconfined": Toolbox(scratch / "off", sandbox="off"),
        "sandboxed": Toolbox(scratch / "on", sandbox="bwrap"),
    }
    if os.geteuid() == 0:  # uid mode switches to a slot uid: only a root worker can
        scratch.chmod(0o711)
        os.environ.setdefault("JADA_DATA_DIR", str(scratch / "data"))
        os.environ.setdefault("DAGSTER_HOME", str(scratch / "home"))
        boxes["uid"] = Toolbox(scratch / "uid", sandbox="uid")
    times: dict[str, list[float]] = {name: [] for name in boxes}
    for _ in range(commands):
        for name, box in boxes.items():
            started = time.perf_counter()
            result = box.bash({"command": "true"})
            times[name].append((time.perf_counter() - started) * 1000)
            assert not result.is_error, result.content
    print(f"bash tool, `true`, {commands} commands each (ms)")
    print(f"{'':12}{'median':>9}{'p95':>9}")
    for name, values in times.items():
        print(f"{name:12}{statistics.median(values):9.1f}{percentile(values, 0.95):9.1f}")
    for name in [name for name in ("sandboxed", "uid") if name in times]:
        added = [on - off for on, off in zip(times[name], times["unconfined"], strict=True)]
        median_added = statistics.median(added)
        print(f"{'+' + name:12}{median_added:9.1f}{percentile(added, 0.95):9.1f}   (target: median < 50 ms)")
        ratio = statistics.median(times[name]) / statistics.median(times["unconfined"])
        print(f"{name} / unconfined median: {ratio:.2f}x")
    if "uid" in boxes:
        boxes["uid"].close()


FLOOD = textwrap.dedent(
    """
    import resource, sys
    from jada_pipelines.agents.tools import Toolbox
    limit = int(sys.argv[2]) * 2**20
    box = Toolbox(sys.argv[1], output_max_bytes=limit, command_timeout_s=120)
    box.bash({"command": "true"})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = box.bash({"command": "head -c 200000000 /dev/zero | tr '\\\\0' a"})
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(before, after, len(result.content))
    """
)


def bench_memory(scratch: Path) -> None:
    print("\nworker peak RSS under a 200 MB flood (MB)")
    print(f"{'output limit':>14}{'before':>9}{'after':>9}{'grew':>8}{'result chars':>14}")
    for limit_mb in (8, 300):
        done = subprocess.run(
            [sys.executable, "-c", FLOOD, str(scratch / f"flood-{limit_mb}"), str(limit_mb)],
            capture_output=True,
            text=True,
            check=True,
        )
        before, after, chars = (int(x) for x in done.stdout.split())
        print(
            f"{limit_mb:>11} MB{before / 1024:9.1f}{after / 1024:9.1f}{(after - before) / 1024:8.1f}{chars:14}"
        )
    print("(before the sandbox: the same flood took the worker from 13 MB to 1,160 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        bench_latency(args.commands, Path(scratch))
        bench_memory(Path(scratch))


if __name__ == "__main__":
    main()
