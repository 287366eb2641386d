"""What `run_queue.dequeue_interval_seconds` costs an idle daemon: 1 s (the setting) against 2 s (Dagster's default).

Issue 21 asked for the lowest interval "that costs nothing measurable". Each arm starts the real
`dagster-daemon` with instance/dagster.yaml, changed only in its dequeue interval, on this repository's
workspace, with no runs queued; after a warm-up it measures the CPU time of the daemon and every process under
it (the code server included) over a fixed window. Arms alternate so a drift in the machine's load falls on both.

    .venv/bin/python bench/dequeue_interval.py [--rounds 2] [--window 60]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
INTERVALS = (2, 1)  # Dagster's default first: the baseline
WARM_UP_S = 25


def _tree_cpu_s(root: psutil.Process) -> float:
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measure(interval: int, window_s: float, scratch: Path) -> float:
    """CPU seconds per minute the idle daemon's process tree used."""
    home = scratch / f"home-{interval}-{time.monotonic_ns()}"
    home.mkdir()
    config = (REPO / "instance" / "dagster.yaml").read_text()
    config, found = re.subn(r"dequeue_interval_seconds: \d+", f"dequeue_interval_seconds: {interval}", config)
    assert found == 1, "instance/dagster.yaml has no dequeue_interval_seconds"
    (home / "dagster.yaml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JADA_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), JADA_DATA_DIR=str(home / "data"))
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(WARM_UP_S)
        root = psutil.Process(daemon.pid)
        before = _tree_cpu_s(root)
        time.sleep(window_s)
        used = _tree_cpu_s(root) - before
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    return used * 60 / window_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window", type=float, default=60)
    args = parser.parse_args()
    results: dict[int, list[float]] = {interval: [] for interval in INTERVALS}
    with tempfile.TemporaryDirectory(prefix="jada-bench-dequeue-") as scratch:
        for round_no in range(args.rounds):
            for interval in INTERVALS if round_no % 2 == 0 else INTERVALS[::-1]:
                results[interval].append(measure(interval, args.window, Path(scratch)))
                print(
                    f"  round {round_no + 1}, {interval} s: {results[interval][-1]:.2f} CPU-s per minute",
                    flush=True,
                )
    base = statistics.median(results[INTERVALS[0]])
    print(f"idle daemon, CPU seconds per minute (medians over {args.rounds} rounds of {args.window:g} s):")
    for interval in INTERVALS:
        value = statistics.median(results[interval])
        print(f"  dequeue_interval_seconds: {interval}  {value:6.2f}  ({value / base:.2f}x the 2 s default)")


if __name__ == "__main__":
    main()
