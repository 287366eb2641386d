"""Agent-task benchmark: how close the real daemon gets to perfect use of the 5 session slots, and how long
one agent_task_sensor tick takes with a backlog of 10,000 queued tasks.

1. Makespan. N tasks (default 20) are queued and run against the local Anthropic emulator, whose every
   call takes a fixed delay. Ideal = the sum of the session durations / 5; the ratio makespan / ideal is
   measured twice: through the queue and the session runner alone (threads, no Dagster: the floor), and
   through the real ``dagster-daemon`` (durations from the run records, start to end), which adds the
   sensor interval, Dagster's run queue and run-worker start-up.
2. Sensor tick. 10,000 queued tasks in the SQLite queue; the tick that claims 5 of them (with reconciling)
   and the tick that finds every slot busy, each timed over several repetitions.
4. Backends (``--backends``, run on its own). The same emulated task (three shell commands, then the end)
   on the Messages backend and on the Claude Code backend, each session in a fresh Python process as a run
   worker would be: start-up (process start to the first model call), the session's duration, peak memory
   (the worker process alone, and the worker with all its descendants, sampled every 20 ms: the sandboxed
   bash commands, or bwrap, the bridge, the Claude Code CLI and its shells) and the number of model calls.
   Sessions alternate between the backends.

3. Daemon workload (``--workload 40``, ``--workload 120``): 12 tasks whose sessions are one 40 s (or 120 s)
   model call each, through the real daemon, the repository's dagster.yaml and the sensor's default interval.
   Slot use = the best possible time (whole waves of 5 sessions) over the measured time from the first
   session's first model call to the last session's last answer (from the transcripts); peak concurrent
   sessions; and the median and p95 of enqueue→claim, claim→run start and run start→first call.

    .venv/bin/python bench/agents.py [--tasks 20] [--delay 0.5] [--backlog 10000]
    .venv/bin/python bench/agents.py --workload 40 [--workload 120]
    .venv/bin/python bench/agents.py --backends [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg

from jada_pipelines.agents.attempt import execute_attempt
from jada_pipelines.agents.latency import dispatch_latencies
from jada_pipelines.agents.queue import Lease, open_queue
from jada_pipelines.agents.resources import ClaudeSessionResource, TaskQueueResource
from jada_pipelines.agents.sensors import agent_task_sensor
from jada_pipelines.emulators.anthropic import AnthropicEmulator, end_turn
from jada_pipelines.settings import MAX_CONCURRENT_SESSIONS

# The real-daemon helper lives with the tests (tests/fixtures/local_daemon.py); run as `python bench/agents.py`,
# the benchmark has bench/ on its path, not the repository.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures.local_daemon import ended_session_run_records, peak_concurrency, running_daemon

TICK_REPEATS = 7


def bench_makespan(tasks: int, delay_s: float, scratch: Path) -> None:
    home, data = scratch / "home", scratch / "data"
    os.environ.update(DAGSTER_HOME=str(home), JADA_DATA_DIR=str(data))
    emulator = AnthropicEmulator(delay_s=delay_s)
    env = {
        "ANTHROPIC_BASE_URL": emulator.start(),
        "ANTHROPIC_API_KEY": "sk-ant-emulator-bench-key",
        "JADA_AGENT_SENSOR_INTERVAL_SECONDS": "2",
    }
    queue = open_queue()
    try:
        with running_daemon(home, scratch, env):
            for i in range(tasks):
                queue.enqueue(f"bench-{i:03}", f"Benchmark task {i}")
            while queue.stats().depth_by_status["done"] < tasks:
                time.sleep(0.5)
            with dg.DagsterInstance.get() as instance:
                records = ended_session_run_records(instance, deadline=time.monotonic() + 60)
    finally:
        emulator.stop()
    first = min(r.create_timestamp.timestamp() for r in records)
    makespan = max(r.end_time for r in records) - first
    durations = [r.end_time - r.start_time for r in records]
    ideal = sum(durations) / MAX_CONCURRENT_SESSIONS
    calls = len(emulator.message_requests)
    print(f"makespan: {tasks} tasks, {calls} model calls of {delay_s:g} s each, real dagster-daemon")
    launches = [r.start_time - r.create_timestamp.timestamp() for r in records]
    print(
        f"  run duration (start→end): median {statistics.median(durations):.1f} s, max {max(durations):.1f} s"
    )
    # Queued in Dagster's run queue, then the run worker starting: the slot is held, no session runs yet.
    print(
        f"  run launch (created→started): median {statistics.median(launches):.1f} s, max {max(launches):.1f} s"
    )
    print(
        f"  makespan {makespan:.1f} s, ideal (sum of run durations / 5) {ideal:.1f} s, ratio {makespan / ideal:.2f}"
    )
    peak = peak_concurrency([(r.start_time, r.end_time) for r in records])
    print(f"  peak concurrent sessions {peak} (limit {MAX_CONCURRENT_SESSIONS})")


def _sessions_from_transcripts(data: Path) -> list[tuple[float, float]]:
    """(first model call, last answer) of every session, from the transcripts' request and reply lines."""
    spans = []
    for path in sorted((data / "transcripts").glob("*/attempt-*.jsonl")):
        entries = [json.loads(line) for line in path.read_text().splitlines()]
        requests = [e["ts"] for e in entries if e["kind"] == "request"]
        replies = [e["ts"] for e in entries if e["kind"] == "reply"]
        if requests and replies:
            spans.append((min(requests), max(replies)))
    return spans


def bench_daemon_workload(tasks: int, call_s: float, scratch: Path) -> None:
    """The issue's workload: ``tasks`` sessions of one ``call_s`` model call each, through the real daemon with
    the repository's dagster.yaml and the sensor's default interval."""
    home, data = scratch / f"wl-home-{call_s:g}", scratch / f"wl-data-{call_s:g}"
    os.environ.update(DAGSTER_HOME=str(home), JADA_DATA_DIR=str(data))
    emulator = AnthropicEmulator(delay_s=call_s)
    emulator.script(*[end_turn(f"Finished task {i}.") for i in range(tasks)])
    env = {"ANTHROPIC_BASE_URL": emulator.start(), "ANTHROPIC_API_KEY": "sk-ant-emulator-bench-key"}
    os.environ.pop("JADA_AGENT_SENSOR_INTERVAL_SECONDS", None)  # the default interval is under test
    queue = open_queue()
    workdir = scratch / f"wl-{call_s:g}"
    workdir.mkdir()
    try:
        with running_daemon(home, workdir, env):
            for i in range(tasks):
                queue.enqueue(f"wl-{i:03}", f"Workload task {i}")
            while queue.stats().depth_by_status["done"] < tasks:
                time.sleep(0.5)
            with dg.DagsterInstance.get() as instance:
                records = ended_session_run_records(instance, deadline=time.monotonic() + 60)
    finally:
        emulator.stop()
    spans = _sessions_from_transcripts(data)
    measured = max(end for _, end in spans) - min(start for start, _ in spans)
    best = math.ceil(tasks / MAX_CONCURRENT_SESSIONS) * call_s
    in_call_peak = peak_concurrency(spans)
    run_peak = peak_concurrency([(r.start_time, r.end_time) for r in records])
    latencies = dispatch_latencies(queue.attempts(since=0))
    print(
        f"daemon workload: {tasks} tasks x one {call_s:g} s model call, real dagster-daemon, default interval"
    )
    print(
        f"  first call to last answer {measured:.1f} s, best possible {best:.0f} s "
        f"(whole waves of {MAX_CONCURRENT_SESSIONS}): slots busy {100 * best / measured:.0f} %, "
        f"hand-over median {latencies['handover']['median_s']} s, p95 {latencies['handover']['p95_s']} s "
        f"(n={latencies['handover']['count']})"
    )
    print(f"  peak concurrent sessions: {in_call_peak} in a model call, {run_peak} runs (limit 5)")
    for name, span in latencies.items():
        print(
            f"  {name.replace('_', ' ')}: median {span['median_s']} s, p95 {span['p95_s']} s (n={span['count']})"
        )


def _worker_start(warm: bool, result) -> None:
    """What a spawned run worker does before its first model call, in miniature: import the code location,
    set a run up in Dagster (an instance, the job, its execution plan), then need ``anthropic``."""
    started = time.perf_counter()
    from jada_pipelines.agents import warmup

    if not warm:
        warmup._started = True  # as if already warmed: no background import
    import dagster as dg
    from dagster._core.execution.api import create_execution_plan

    from jada_pipelines.definitions import defs

    with dg.instance_for_test():
        job = defs.resolve_job_def("agent_session_job")
        create_execution_plan(
            job, run_config={"ops": {"agent_session": {"config": {"task_id": "t", "attempt": 1}}}}
        )
    setup = time.perf_counter() - started
    import anthropic  # noqa: F401

    result.put((setup, time.perf_counter() - started))


def bench_worker_warmup(pairs: int) -> None:
    """Side by side, interleaved so the machine's load drifts equally on both: a spawned worker that starts
    importing the SDK while the code location loads, against one that imports it when the op needs it."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # how Dagster's code server starts run workers
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(pairs):
        for warm in (False, True):
            queue = context.Queue()
            process = context.Process(target=_worker_start, args=(warm, queue))
            process.start()
            _, total = queue.get(timeout=120)
            process.join()
            times[warm].append(total)
    print(f"run worker start to SDK ready ({pairs} interleaved pairs, spawned like Dagster's run workers)")
    for warm, label in ((False, "import at first call"), (True, "import warmed while loading")):
        print(f"  {label}: median {statistics.median(times[warm]):.2f} s, max {max(times[warm]):.2f} s")


def bench_engine_makespan(tasks: int, delay_s: float, scratch: Path) -> None:
    os.environ["JADA_DATA_DIR"] = str(scratch / "engine-data")
    emulator = AnthropicEmulator(delay_s=delay_s)
    os.environ.update(ANTHROPIC_BASE_URL=emulator.start(), ANTHROPIC_API_KEY="sk-ant-emulator-bench-key")
    queue, claude = open_queue(), ClaudeSessionResource()
    for i in range(tasks):
        queue.enqueue(f"engine-{i:03}", f"Benchmark task {i}")
    durations: list[float] = []

    def work(lease: Lease) -> None:
        outcome = execute_attempt(
            queue,
            lease,
            claude.spec_for(lease.task),
            run_id=f"engine-{lease.task_id}",
            run_session=claude.run,
        )
        durations.append(outcome.result.duration_s)

    started = time.monotonic()
    workers = []
    while len(workers) < tasks:
        lease = queue.claim(worker="bench", lease_seconds=900, max_live=MAX_CONCURRENT_SESSIONS)
        if lease is None:
            time.sleep(0.02)  # every slot busy: wait for a session to end
            continue
        workers.append(threading.Thread(target=work, args=(lease,)))
        workers[-1].start()
    for worker in workers:
        worker.join()
    makespan = time.monotonic() - started
    emulator.stop()
    ideal = sum(durations) / MAX_CONCURRENT_SESSIONS
    print(
        f"makespan: {tasks} tasks, {len(emulator.message_requests)} model calls of {delay_s:g} s each, no Dagster"
    )
    print(
        f"  makespan {makespan:.1f} s, ideal (sum of session durations / 5) {ideal:.1f} s, ratio {makespan / ideal:.2f}"
    )


def _timed_tick(instance: dg.DagsterInstance) -> tuple[float, object]:
    context = dg.build_sensor_context(instance=instance, resources={"task_queue": TaskQueueResource()})
    started = time.perf_counter()
    result = agent_task_sensor(context)
    return time.perf_counter() - started, result


def bench_sensor_tick(backlog: int, scratch: Path) -> None:
    os.environ["JADA_DATA_DIR"] = str(scratch / "tick-data")
    queue = open_queue()
    started = time.perf_counter()
    for i in range(backlog):
        queue.enqueue(f"backlog-{i:05}", "x")
    enqueue_ms = (time.perf_counter() - started) / backlog * 1000
    claiming, busy = [], []
    with dg.instance_for_test() as instance:
        for _ in range(TICK_REPEATS):
            seconds, result = _timed_tick(instance)
            claiming.append(seconds)
            busy.append(_timed_tick(instance)[0])
            for request in result.run_requests:  # finish the claimed tasks so the next tick claims again
                config = request.run_config["ops"]["agent_session"]["config"]
                lease = queue.lease_for(config["task_id"], config["attempt"])
                queue.complete(lease, outcome="done", turns=1, cost_usd=0.0, summary="bench")
    print(f"enqueue: {enqueue_ms:.2f} ms per task (one durable transaction each, synchronous=FULL)")
    print(f"sensor tick with {backlog:,} queued tasks (SQLite, {TICK_REPEATS} repetitions)")
    print(
        f"  claiming 5: median {statistics.median(claiming) * 1000:.1f} ms, max {max(claiming) * 1000:.1f} ms"
    )
    print(f"  all slots busy: median {statistics.median(busy) * 1000:.1f} ms, max {max(busy) * 1000:.1f} ms")


SESSION_CHILD = """
import json, resource, sys, threading, time
from pathlib import Path
from jada_pipelines.agents.messages_backend import run_session
from jada_pipelines.agents.session import SessionSpec
backend, task_id, workdir = sys.argv[1:4]
spec = SessionSpec(task_id, 1, "Benchmark task", Path(workdir), 30, "claude-sonnet-5-5", backend=backend)
if backend == "claude-code":
    from jada_pipelines.agents.claude_code_backend import run_claude_code_session as run
else:
    run = run_session
result = run(spec, stop=threading.Event())
print(json.dumps({
    "outcome": result.outcome,
    "turns": result.turns,
    "self_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def _tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants (the sandbox, the CLI, its shells), right now."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in tree]
        tree.update(children)
        frontier.extend(children)
    total_kb = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def _one_session(emulator: AnthropicEmulator, backend: str, task_id: str, data: Path) -> dict:
    import json
    import subprocess
    import sys

    from jada_pipelines.emulators.anthropic import end_turn, tool_use

    name = "mcp__jada__bash" if backend == "claude-code" else "bash"  # the same sandboxed tool on both
    emulator.script(
        *[tool_use(name, {"command": f"echo step {i}"}) for i in (1, 2, 3)], end_turn("Finished.")
    )
    before = len(emulator.message_requests)
    workdir = data / "workdirs" / task_id
    workdir.mkdir(parents=True)
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", SESSION_CHILD, backend, task_id, str(workdir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    first_call, peak_tree_mb = None, 0.0
    while child.poll() is None:
        if first_call is None and len(emulator.message_requests) > before:
            first_call = time.monotonic()
        peak_tree_mb = max(peak_tree_mb, _tree_rss_mb(child.pid))
        time.sleep(0.02)
    ended = time.monotonic()
    figures = json.loads(child.stdout.read().strip().splitlines()[-1])
    assert figures["outcome"] == "done", figures
    return {
        **figures,
        "startup_s": (first_call or ended) - started,
        "total_s": ended - started,
        "calls": len(emulator.message_requests) - before,
        "tree_rss_mb": peak_tree_mb,
    }


def bench_backends(repeats: int, scratch: Path) -> None:
    data = scratch / "backends-data"
    os.environ.update(JADA_DATA_DIR=str(data), ANTHROPIC_API_KEY="sk-ant-emulator-bench-key")
    emulator = AnthropicEmulator()
    os.environ["ANTHROPIC_BASE_URL"] = emulator.start()
    runs: dict[str, list[dict]] = {"messages": [], "claude-code": []}
    try:
        for i in range(repeats):
            for backend in runs:
                runs[backend].append(_one_session(emulator, backend, f"{backend}-{i}", data))
    finally:
        emulator.stop()
    print(f"backends: the same task (3 shell commands, then the end), {repeats} sessions each, median")
    print(
        f"  {'':<12} {'start-up':>9} {'session':>9} {'worker peak':>12} {'worker+children':>16} {'model calls':>12}"
    )
    for backend, figures in runs.items():

        def median(key: str, figures=figures) -> float:
            return statistics.median(f[key] for f in figures)

        print(
            f"  {backend:<12} {median('startup_s'):>8.2f}s {median('total_s'):>8.2f}s "
            f"{median('self_rss_mb'):>9.0f} MB {median('tree_rss_mb'):>13.0f} MB {median('calls'):>12.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.5, help="seconds per emulated model call")
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument(
        "--workload",
        type=float,
        action="append",
        metavar="CALL_S",
        help="only run the daemon workload of 12 tasks x one CALL_S model call (repeatable: --workload 40 --workload 120)",
    )
    parser.add_argument("--warmup-pairs", type=int, default=0, help="only compare the SDK warm-up, N pairs")
    parser.add_argument("--backends", action="store_true", help="only compare the two session backends")
    parser.add_argument("--repeats", type=int, default=3, help="sessions per backend with --backends")
    args = parser.parse_args()
    if args.warmup_pairs:
        bench_worker_warmup(args.warmup_pairs)
        return
    if args.workload:
        for call_s in args.workload:
            with tempfile.TemporaryDirectory(prefix="jada-bench-workload-") as scratch:
                bench_daemon_workload(12, call_s, Path(scratch))
        return
    with tempfile.TemporaryDirectory(prefix="jada-bench-agents-") as scratch:
        if args.backends:
            bench_backends(args.repeats, Path(scratch))
            return
        bench_sensor_tick(args.backlog, Path(scratch))
        bench_engine_makespan(args.tasks, args.delay, Path(scratch))
        bench_makespan(args.tasks, args.delay, Path(scratch))


if __name__ == "__main__":
    main()
