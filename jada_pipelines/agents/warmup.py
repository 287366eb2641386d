"""Start importing the Anthropic SDK early in a run worker, on a second thread.

A session's run worker is a fresh interpreter (the code server spawns one per run) that imports Dagster and
the code location, sets the run up, and only then reaches the op, whose first call needs ``anthropic``
(about 1.8 s to import on an idle 2-core box, over 5 s under load). Started while the code location loads,
that import overlaps with Dagster's own set-up instead of following it. Every other process (the daemon,
the code server, the webserver, `jada`) keeps loading the definitions light: they are the main process,
and a run worker is a ``multiprocessing`` child.
"""

from __future__ import annotations

import importlib
import multiprocessing
import threading

_started = False


def in_run_worker() -> bool:
    return multiprocessing.parent_process() is not None


def warm_anthropic_import() -> None:
    global _started
    if _started or not in_run_worker():
        return
    _started = True
    threading.Thread(
        target=importlib.import_module, args=("anthropic",), name="warm-anthropic", daemon=True
    ).start()
