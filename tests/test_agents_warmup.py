"""A spawned run worker starts importing the Anthropic SDK while the code location loads; every other
process (the daemon, the code server, `jada`) loads the definitions without it."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys


def _child(result) -> None:
    import threading

    import jada_pipelines.definitions  # noqa: F401

    warming = [t for t in threading.enumerate() if t.name == "warm-anthropic"]
    result.put(bool(warming) or "anthropic" in sys.modules)


def test_a_spawned_run_worker_warms_the_sdk_import():
    context = multiprocessing.get_context("spawn")  # as Dagster's code server starts run workers
    result = context.Queue()
    process = context.Process(target=_child, args=(result,))
    process.start()
    assert result.get(timeout=120) is True
    process.join(timeout=60)


def test_a_main_process_loads_the_definitions_without_the_sdk():
    code = "import sys, jada_pipelines.definitions; print('anthropic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
