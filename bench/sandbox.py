"""Sandbox benchmark: what bubblewrap adds to each bash command, and the worker's memory under an output flood.

1. Latency. The bash tool runs ``true`` N times (default 200) unconfined (``JADA_AGENT_SANDBOX=off``, the
   old path: ``bash -c`` with the rlimits) and N times inside the sandbox, interleaved so both see the same
   machine load; median and p95 of each and of the difference. Target: under 50 ms median added per command.
   As root, also N times with ``JADA_AGENT_SANDBOX=uid`` (as a slot uid, every process of it killed after each
   command), interleaved with the others.
2. Memory. A fresh interpreter runs one 200 MB flood (``head -c 200000000 /dev/zero | tr '\\0' a``) through the
   bash tool, once with the default output limit (the command is stopped at 8 MB) and once with a limit
   above the flood (every byte read); peak RSS before and after, side by side.

3. Disk. A command writes zeros as fast as the disk takes them (``head -c 1000M /dev/zero > part$i``, three
   times) into a working directory limited to 100 MB, which is watched while the command runs: how much was
   written before the sandbox was killed (the overshoot), and how long it took.
4. The key proxy under abuse (Claude Code). In one process: the worker's threads and peak RSS before and
   after 1,500 idle connections to the proxy's socket and one request announcing a 1 GiB Content-Length.
5. A Claude Code command (``--claude-code N``): a real session through the bundled CLI against the emulator,
   whose model runs ``true`` N times through the session's bash tool, once with each command in its own
   sandbox (the product) and once unconfined (the tool's ``sandbox="off"``, for the comparison only);
   interleaved, 5 rounds; the added time per command. Target: under 50 ms.

    .venv/bin/python bench/sandbox.py [--commands 200] [--claude-code 20]
"""

from __future__ import annotations

import argparse
import contextlib
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


def bench_disk(scratch: Path) -> None:
    box = Toolbox(scratch / "disk", workdir_max_bytes=100 * 2**20, command_timeout_s=120)
    started = time.perf_counter()
    result = box.bash({"command": "for i in 1 2 3; do head -c 1000M /dev/zero > part$i; done"})
    elapsed = time.perf_counter() - started
    written = sum(p.stat().st_blocks * 512 for p in box.workdir.iterdir()) / 2**20
    print("\na command filling a working directory limited to 100 MB (3 x 1000 MB of zeros)")
    print(f"killed after {elapsed:.2f} s with {written:.0f} MB written (overshoot {written - 100:.0f} MB)")
    print(f"  result: {result.content.splitlines()[-1][:110]}")
    print("(before: checked after the command only, 3,000 MB in 6.5 s, about 55 GB within a 120 s command)")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_proxy(scratch: Path) -> None:
    import os
    import socket
    import threading

    from jada_pipelines.agents.api_gate import ApiGate, GateRules
    from jada_pipelines.agents.claude_code_sandbox import KeyProxy

    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-ant-bench")
    proxy = KeyProxy(
        scratch / "api.sock", gate=ApiGate(GateRules("claude-sonnet-5-5")), upstream="http://127.0.0.1:9"
    )
    proxy.start()
    threads, rss = threading.active_count(), _rss_mb()
    with socket.socket(socket.AF_UNIX) as big:
        big.settimeout(10)
        big.connect(str(scratch / "api.sock"))
        big.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
        answer = big.recv(200).split(b"\r\n", 1)[0].decode()
        sent = 0
        with contextlib.suppress(OSError):
            for _ in range(64):  # and then 64 MB of the body, as fast as the proxy takes it
                big.sendall(b"x" * (1 << 20))
                sent += 1
    threads_big, rss_big = threading.active_count(), _rss_mb()
    idle = []
    for _ in range(1500):
        connection = socket.socket(socket.AF_UNIX)
        connection.connect(str(scratch / "api.sock"))
        idle.append(connection)
    time.sleep(1.0)
    threads_idle, rss_idle = threading.active_count(), _rss_mb()
    for connection in idle:
        connection.close()
    proxy.stop()
    print("\nthe key proxy under 1,500 idle connections and a 1 GiB Content-Length (one worker process)")
    print(f"{'':28}{'threads':>8}{'RSS MB':>8}")
    print(f"{'before':28}{threads:8}{rss:8.1f}")
    print(f"{'a 1 GiB Content-Length':28}{threads_big:8}{rss_big:8.1f}   answer: {answer}")
    print(f"{'+ 1,500 idle connections':28}{threads_idle:8}{rss_idle:8.1f}")
    print(f"refusals: {dict(proxy.gate.refusals)}; MB of the 1 GiB body the client could still push: {sent}")
    print(
        "(before: 1,506 threads for 1,500 connections; the 1 GiB request took the worker from 74 MB to 1.15 GB)"
    )


CLAUDE_CODE_ROUND = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from jada_pipelines.agents import claude_code_backend as claude_code
    from jada_pipelines.agents.session import SessionSpec
    from jada_pipelines.agents.tools import Toolbox
    from jada_pipelines.emulators.anthropic import AnthropicEmulator, end_turn, tool_use
    workdir, mode, commands = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    if mode == "off":  # for the comparison only: the product never runs Claude Code's commands unconfined
        from_env = Toolbox.from_env
        claude_code.Toolbox.from_env = classmethod(lambda cls, w, **kw: from_env(w, **kw, sandbox="off"))
    emulator = AnthropicEmulator()
    os.environ.update(ANTHROPIC_BASE_URL=emulator.start(), ANTHROPIC_API_KEY="sk-ant-bench")
    os.environ.update(JADA_DATA_DIR=str(workdir.parent / "data"), JADA_AGENT_WORKDIR_ROOTS=str(workdir.parent))
    emulator.script(*[tool_use("mcp__jada__bash", {"command": "true"}) for _ in range(commands)], end_turn())
    spec = SessionSpec("bench", 1, "x", workdir, commands + 5, "claude-sonnet-5-5", backend="claude-code")
    started = time.perf_counter()
    result = claude_code.run_claude_code_session(spec)
    assert result.outcome == "done", result.error
    print(time.perf_counter() - started)
    emulator.stop()
    """
)


def bench_claude_code(commands: int, scratch: Path) -> None:
    times: dict[str, list[float]] = {"sandboxed": [], "unconfined": []}
    for round_ in range(5):
        for name, mode in (("sandboxed", "bwrap"), ("unconfined", "off")):
            workdir = scratch / f"cc-{name}-{round_}" / "work"
            workdir.mkdir(parents=True)
            done = subprocess.run(
                [sys.executable, "-c", CLAUDE_CODE_ROUND, str(workdir), mode, str(commands)],
                capture_output=True,
                text=True,
                check=True,
            )
            times[name].append(float(done.stdout.split()[-1]))
    print(f"\na Claude Code session of {commands} `true` commands through the bash tool (s, 5 rounds)")
    for name, values in times.items():
        print(
            f"{name:12}" + "".join(f"{v:8.2f}" for v in values) + f"   median {statistics.median(values):.2f}"
        )
    added = (statistics.median(times["sandboxed"]) - statistics.median(times["unconfined"])) / commands * 1000
    print(f"added per command by its own sandbox: {added:.0f} ms (target: under 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument(
        "--claude-code", type=int, default=0, help="commands of the Claude Code session (0: skip)"
    )
    parser.add_argument("--only", choices=("latency", "memory", "disk", "proxy", "claude-code"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        steps = {
            "latency": lambda: bench_latency(args.commands, Path(scratch)),
            "memory": lambda: bench_memory(Path(scratch)),
            "disk": lambda: bench_disk(Path(scratch)),
            "proxy": lambda: bench_proxy(Path(scratch)),
            "claude-code": lambda: (
                bench_claude_code(args.claude_code, Path(scratch)) if args.claude_code else None
            ),
        }
        for name, step in steps.items():
            if args.only in (None, name):
                step()


if __name__ == "__main__":
    main()
