"""Issue 21's targets, measured side by side with an earlier tree in one run on the same machine.

Each arm runs ``bench/agents.py``'s daemon workload (12 tasks, one CALL_S model call each, the real
``dagster-daemon``, the arm's own dagster.yaml and sensor interval) *from its own tree*: the baseline is a
``git worktree`` of ``--against`` (default: main just before issue 21 merged), imported first through
PYTHONPATH, so its code location, run workers and dagster.yaml are the ones that tree shipped. Arms
alternate (baseline, current, ...; the next round starts from the other end) so a drift in the machine's load
falls on both.

Both arms are scored the same way, from their transcripts (the first request and the last reply of each
session), not from either tree's own figures:

- slots busy: the best possible time (whole waves of 5 sessions) over first call → last answer;
- hand-over: the product's own rule (``jada_pipelines.agents.latency.handovers``, what `jada health` reports),
  applied to each session's first call and last answer; every task is enqueued at the start, so each session
  after the first wave waited for its slot. Median, p95 (nearest rank) and max;
- load: the 1-minute load average sampled every 5 s during the arm (mean and max).

An arm whose tree has ``bench/handover_breakdown.py`` also prints, in its own report, where its hand-overs went
step by step (the run ending, Dagster's run queue, a new run worker, the lease, the first call).

``--busy-cores N`` adds N busy-looping processes for the whole run, for the "load 4–6" target.

``--tasks 6`` measures one hand-over on its own: the first wave of 5 starts (and ends) together, so with 12
tasks the hand-overs come in a burst of 5 new run workers starting at once on the machine's cores; with 6 the
one hand-over has the machine to itself, as a session ending at its own time does.

    .venv/bin/python bench/handover_side_by_side.py [--against REV] [--workload 40] [--workload 120]
        [--rounds 1] [--busy-cores 0] [--claim-ahead 5] [--tasks 12]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agents import _sessions_from_transcripts  # bench/agents.py, beside this file

from jada_pipelines.agents.latency import handovers, percentile

REPO = Path(__file__).resolve().parents[1]
BASELINE = "12c5c80^1"  # main just before "Merge issue 21: claim ahead, hand-over as a figure, ..."
SLOTS = 5
TASKS = 12

# Run inside the arm's tree: that tree's bench/agents.py, so its emulator, queue and daemon helper are its own.
RUNNER = """
import sys
from pathlib import Path
tree, call_s, scratch, tasks = Path(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, str(tree / "bench"))
sys.path.insert(0, str(tree))
import jada_pipelines
assert Path(jada_pipelines.__file__).resolve().is_relative_to(tree.resolve()), jada_pipelines.__file__
import agents
agents.bench_daemon_workload(tasks, call_s, scratch)
if (tree / "bench" / "handover_breakdown.py").exists():  # trees from issue 21 on: where each hand-over went
    import handover_breakdown
    handover_breakdown.print_breakdown()
"""


def score(data: Path, call_s: float) -> dict:
    """Slot use and hand-overs of one arm, from its transcripts, by this tree's rules: bench/agents.py's reader
    and the product's own hand-over (``latency.handovers``, as `jada health` reports it)."""
    spans = _sessions_from_transcripts(data)
    measured = max(end for _, end in spans) - min(start for start, _ in spans)
    best = math.ceil(len(spans) / SLOTS) * call_s
    # Every task was enqueued before the first session, so each later session waited for the slot it took.
    sessions = [SimpleNamespace(first_call_at=start, ended_at=end, queued_at=0.0) for start, end in spans]
    waits = sorted(handovers(sessions))
    return {
        "sessions": len(spans),
        "busy_pct": 100 * best / measured,
        "handover_median_s": statistics.median(waits),
        "handover_p95_s": percentile(waits, 0.95),
        "handover_max_s": waits[-1],
    }


class LoadSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(5):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> tuple[float, float]:
        self._done.set()
        self.join()
        return (statistics.mean(self.samples), max(self.samples)) if self.samples else (float("nan"),) * 2


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy_cores(count: int):
    workers = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
            worker.join()


def run_arm(
    name: str, tree: Path, call_s: float, scratch: Path, extra_env: dict[str, str], tasks: int
) -> dict:
    scratch.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JADA_", "DAGSTER_", "ANTHROPIC_"))}
    env.update(PYTHONPATH=str(tree), **extra_env)
    sampler = LoadSampler()
    sampler.start()
    try:
        done = subprocess.run(
            [sys.executable, "-c", RUNNER, str(tree), str(call_s), str(scratch), str(tasks)],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        load_mean, load_max = sampler.stop()
    own = "\n".join("    " + line for line in done.stdout.strip().splitlines())
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}")
    figures = score(scratch / f"wl-data-{call_s:g}", call_s)
    figures.update(load_mean=load_mean, load_max=load_max)
    print(f"  {name}: its own report\n{own}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default=BASELINE, help=f"the baseline revision (default {BASELINE})")
    parser.add_argument("--workload", type=float, action="append", metavar="CALL_S")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--busy-cores", type=int, default=0)
    parser.add_argument(
        "--tasks", type=int, default=TASKS, help=f"tasks per arm (default {TASKS}, at least 6)"
    )
    parser.add_argument(
        "--claim-ahead",
        type=int,
        action="append",
        default=[],
        help="also run the current tree with this claim-ahead",
    )
    args = parser.parse_args()
    if args.tasks <= SLOTS:
        parser.error(
            f"--tasks must be more than {SLOTS}: with {SLOTS} slots, fewer tasks leave no hand-over to measure"
        )
    workloads = args.workload or [40.0]
    revision = subprocess.run(
        ["git", "rev-parse", "--short", args.against], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="jada-bench-sbs-") as scratch_dir:
        scratch = Path(scratch_dir)
        baseline = scratch / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(baseline), revision], cwd=REPO, check=True
        )
        try:
            arms = [(f"baseline {revision}", baseline, {}), ("current", REPO, {})]
            arms += [
                (f"current, claim-ahead {n}", REPO, {"JADA_AGENT_CLAIM_AHEAD": str(n)})
                for n in args.claim_ahead
            ]
            results: dict[tuple[float, str], list[dict]] = {}
            with busy_cores(args.busy_cores):
                for call_s in workloads:
                    for round_no in range(args.rounds):
                        order = arms if round_no % 2 == 0 else arms[::-1]
                        for name, tree, extra in order:
                            print(f"{call_s:g} s calls, round {round_no + 1}: {name}", flush=True)
                            where = scratch / f"{call_s:g}-{round_no}-{len(results)}-{name.split()[0]}"
                            results.setdefault((call_s, name), []).append(
                                run_arm(name, tree, call_s, where, extra, args.tasks)
                            )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=REPO, check=False)
    print(
        f"\nside by side ({args.tasks} tasks, {args.busy_cores} busy cores added; medians over {args.rounds} round(s)):"
    )
    header = f"{'workload':>9} {'arm':<28} {'load mean/max':>14} {'busy':>6} {'hand-over med':>14} {'p95':>6} {'max':>6}"
    print(header)
    for call_s in workloads:
        base = None
        for name, _, _ in arms:
            runs = results[(call_s, name)]

            def med(key: str, runs=runs) -> float:
                return statistics.median(run[key] for run in runs)

            row = {key: med(key) for key in runs[0]}
            base = base or row
            ratio = (
                row["handover_median_s"] / base["handover_median_s"]
                if base["handover_median_s"]
                else float("nan")
            )
            print(
                f"{call_s:>8g}s {name:<28} {row['load_mean']:>6.1f}/{row['load_max']:<6.1f} "
                f"{row['busy_pct']:>5.0f}% {row['handover_median_s']:>9.2f} s ({ratio:.2f}×)"
                f" {row['handover_p95_s']:>5.1f}s {row['handover_max_s']:>5.1f}s"
            )


if __name__ == "__main__":
    main()
