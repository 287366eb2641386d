"""The working directory's disk and file-count limits, measured while a command runs. Plain Python, no Dagster.

A limit checked only after a command lets one command write at full disk speed for its whole timeout (3 GB in
6.5 s was measured, about 55 GB in a 120 s command), and a limit on bytes alone lets it fill the inode table
with empty files. So a ``WorkdirWatch`` measures the tree every ``interval_s`` (a second or less) from a thread
while the command runs, and says so the moment it is over ``JADA_AGENT_WORKDIR_MAX_MB`` or
``JADA_AGENT_WORKDIR_MAX_FILES``; the caller then kills the command's sandbox (whatever confines it). A scan
stops as soon as it is past a limit, so a tree of millions of files costs no more than one just over it; on a
big tree the watch spaces its scans out (``SCAN_COST_FACTOR``): a working directory of 100,000 files is
measured about every 0.9 s.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from jada_pipelines import settings

DEFAULT_WORKDIR_MAX_MB = settings.default("JADA_AGENT_WORKDIR_MAX_MB")
DEFAULT_WORKDIR_MAX_FILES = settings.default("JADA_AGENT_WORKDIR_MAX_FILES")
WATCH_INTERVAL_S = 0.5
# A scan of a big tree costs CPU (0.3 s for 100,000 files on the 2-core test machine): the watch waits at
# least this many times its last scan's duration, so it never takes more than a quarter of a core.
SCAN_COST_FACTOR = 3.0


@dataclass(frozen=True)
class WorkdirLimits:
    max_bytes: int = DEFAULT_WORKDIR_MAX_MB * 2**20
    max_files: int = DEFAULT_WORKDIR_MAX_FILES

    @classmethod
    def from_env(cls) -> WorkdirLimits:
        return cls(
            max_bytes=settings.get("JADA_AGENT_WORKDIR_MAX_MB") * 2**20,
            max_files=settings.get("JADA_AGENT_WORKDIR_MAX_FILES"),
        )


def tree_usage(paths: Iterable[Path], *, stop_past: WorkdirLimits | None = None) -> tuple[int, int]:
    """(bytes of disk, entries) used under ``paths``: blocks, so a sparse file counts what it really takes;
    every file, directory, link or other entry counts as one. Symlinks are not followed. With ``stop_past``
    the scan ends as soon as either figure is past its limit."""
    used = entries = 0
    stack = [str(path) for path in paths]
    while stack:
        try:
            scan = os.scandir(stack.pop())
        except OSError:
            continue
        with scan:
            for entry in scan:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                used += st.st_blocks * 512
                entries += 1
                if stop_past is not None and (used > stop_past.max_bytes or entries > stop_past.max_files):
                    return used, entries
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return used, entries


def over_limit(paths: list[Path], limits: WorkdirLimits) -> str | None:
    """Why ``paths`` together are over ``limits`` (the sentence a session ends with), else None."""
    used, entries = tree_usage(paths, stop_past=limits)
    where = " and ".join(str(p) for p in paths)
    fix = "; the session was ended. Free space in it (or raise the limit), then `jada task requeue` the task."
    if used > limits.max_bytes:
        return (
            f"the working directory {where} uses {used / 2**20:.1f} MB (or more), over "
            f"JADA_AGENT_WORKDIR_MAX_MB={limits.max_bytes // 2**20}{fix}"
        )
    if entries > limits.max_files:
        return (
            f"the working directory {where} holds more than {limits.max_files} files, over "
            f"JADA_AGENT_WORKDIR_MAX_FILES={limits.max_files}{fix}"
        )
    return None


class WorkdirWatch:
    """Measures ``paths`` every ``interval_s`` from a thread while it is open; the first time they are over
    ``limits`` it keeps the reason in ``verdict`` and calls ``on_over(verdict)`` (e.g. to kill a sandbox).

        with WorkdirWatch([workdir], limits, on_over=lambda why: kill()) as watch:
            ...run the command...
        if watch.verdict: ...
    """

    def __init__(
        self,
        paths: list[Path],
        limits: WorkdirLimits,
        *,
        interval_s: float = WATCH_INTERVAL_S,
        on_over: Callable[[str], None] | None = None,
    ) -> None:
        self.paths = paths
        self.limits = limits
        self.interval_s = interval_s
        self.on_over = on_over
        self.verdict: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="workdir-watch", daemon=True)

    def __enter__(self) -> WorkdirWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        wait = self.interval_s
        while not self._done.wait(wait):
            started = time.monotonic()
            verdict = over_limit(self.paths, self.limits)
            wait = max(self.interval_s, SCAN_COST_FACTOR * (time.monotonic() - started))
            if verdict is not None:
                self.verdict = verdict
                if self.on_over is not None:
                    self.on_over(verdict)
                return
