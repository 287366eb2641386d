"""The client tools a session may use: Anthropic's bash tool and text editor, run in the task's working directory.

The model's commands are untrusted: whoever edits the port sheet's ``task`` column starts a session. So:
- Every bash command runs in a fresh bubblewrap sandbox (``bwrap_sandbox.py``): only the working directory is
  writable, nothing else of the host is visible, no network unless ``JADA_AGENT_NETWORK=host``, and the
  environment is built from an allow-list, so no API key, Google, Slack, AWS or Postgres secret reaches it.
  Where bubblewrap cannot run, ``JADA_AGENT_SANDBOX=uid`` runs each command as the session's slot uid instead
  (``uid_sandbox.py``); the hooks below (``uid_slot``) are all this module knows of it.
- Limits hold whatever the command does: a timeout (and a stopped session) ends the whole sandbox and the
  call returns within a second or two of its deadline, pipe or no pipe; output is read as it arrives into a
  bounded head-and-tail buffer and the command is stopped past a byte limit; file size, processes and memory
  are ``setrlimit`` limits; the working directory's size and file count are watched while the command runs
  (``workdir_watch.py``) and the sandbox is killed the moment either is over its limit (``WorkdirFull``).
- The text editor runs in-process: it resolves every path, refuses any outside the working directory and any
  symlink, opens only regular files (``O_NOFOLLOW | O_NONBLOCK``, then ``fstat``: a FIFO, socket or device
  gets a sentence, never a hang), lists directories without following symlinks, and refuses files over a size
  limit instead of reading them into memory.
- Each bash command runs in a fresh shell, so ``cd``, variables and background processes do not carry over
  between calls (files do); the model is told so in the tool result of a ``restart``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jada_pipelines import settings
from jada_pipelines.agents.bwrap_sandbox import (
    Rlimits,
    SandboxPolicy,
    bwrap_argv,
    end_sandbox,
    sandbox_child_pid,
)
from jada_pipelines.agents.workdir_watch import (
    DEFAULT_WORKDIR_MAX_FILES,
    DEFAULT_WORKDIR_MAX_MB,
    WorkdirLimits,
    WorkdirWatch,
    over_limit,
)

if TYPE_CHECKING:
    from jada_pipelines.agents.uid_sandbox import UidSlot

BASH_TOOL = {"type": "bash_20250124", "name": "bash"}
EDITOR_NAME = "str_replace_based_edit_tool"
DEFAULT_COMMAND_TIMEOUT_S = settings.default("JADA_AGENT_COMMAND_TIMEOUT_SECONDS")
# Characters of a command's output (or a view) that go back to the model.
DEFAULT_OUTPUT_LIMIT = 30_000
# Bytes of output a command may print before it is stopped (JADA_AGENT_MAX_OUTPUT_MB).
DEFAULT_OUTPUT_MAX_BYTES = settings.default("JADA_AGENT_MAX_OUTPUT_MB") * 1024 * 1024
# The largest file the editor opens (JADA_AGENT_EDITOR_MAX_KB).
DEFAULT_EDITOR_MAX_BYTES = settings.default("JADA_AGENT_EDITOR_MAX_KB") * 1024
DEFAULT_TMP_SIZE_MB = settings.default("JADA_AGENT_TMP_MB")
# Variables bash may inherit; everything else (API keys, tokens, cloud credentials) stays out.
SAFE_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")
# Commits made in the working directory need an identity; the sandbox has no ~/.gitconfig.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "jada agent",
    "GIT_AUTHOR_EMAIL": "agent@jada.invalid",
    "GIT_COMMITTER_NAME": "jada agent",
    "GIT_COMMITTER_EMAIL": "agent@jada.invalid",
}
# How often a running command checks its deadline and whether the session was told to stop.
_POLL_S = 0.2
# After a kill, how long to wait for bwrap to go (the kernel ends the sandbox's PID namespace with it).
_REAP_S = 2.0
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False


class WorkdirFull(Exception):
    """The working directory grew past its limit: the session ends, and the task waits for a person."""


def scrubbed_environment(workdir: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in SAFE_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(GIT_IDENTITY, HOME=str(workdir), PWD=str(workdir), TMPDIR="/tmp")
    return env


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit} characters cut: output is capped at {limit}] …\n{text[-half:]}"


class HeadTail:
    """Keeps the first and last ``keep`` bytes of a stream, however long it is; memory stays bounded."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * self.keep:  # trim in batches, not on every chunk
                del self.tail[: len(self.tail) - self.keep]

    def text(self) -> str:
        tail = self.tail[-self.keep :] if len(self.tail) > self.keep else self.tail
        cut = self.total - len(self.head) - len(tail)
        head_text = self.head.decode(errors="replace")
        if cut <= 0:
            return head_text + tail.decode(errors="replace")
        return (
            f"{head_text}\n… [{cut} bytes of output cut: the result keeps the first and last {self.keep} bytes] …"
            f"\n{tail.decode(errors='replace')}"
        )


# What the editor says of a path that is not a regular file, by its st_mode type.
_NOT_REGULAR = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
}


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """A descriptor of the regular file ``path``, opened without following a symlink and without blocking (a
    FIFO with no writer, or no reader, would block an ordinary open for ever); anything else is ValueError."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{path} is a symbolic link: {_REGULAR_ONLY}") from None
        if exc.errno == errno.ENXIO:
            raise ValueError(f"{path} is a FIFO or socket: {_REGULAR_ONLY}") from None
        raise
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        raise ValueError(f"{path} is {_NOT_REGULAR.get(kind, 'not a regular file')}: {_REGULAR_ONLY}")
    return fd


_REGULAR_ONLY = "the editor works on regular files only (use bash for anything else)"


@dataclass
class Toolbox:
    """Runs the model's tool calls for one session and remembers which files it changed (for the handoff)."""

    workdir: Path
    command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    stop: threading.Event = field(default_factory=threading.Event)
    files_touched: list[str] = field(default_factory=list)
    sandbox: str = "bwrap"  # or "uid" / "off": JADA_AGENT_SANDBOX
    network: bool = False  # JADA_AGENT_NETWORK=host
    rlimits: Rlimits = field(default_factory=Rlimits)
    output_max_bytes: int = DEFAULT_OUTPUT_MAX_BYTES
    editor_max_bytes: int = DEFAULT_EDITOR_MAX_BYTES
    workdir_max_bytes: int = DEFAULT_WORKDIR_MAX_MB * 1024 * 1024
    workdir_max_files: int = DEFAULT_WORKDIR_MAX_FILES
    tmp_size_mb: int = DEFAULT_TMP_SIZE_MB
    # time.monotonic() past which no command may run (the session's wall-clock limit); None: no limit.
    deadline: float | None = None
    # JADA_AGENT_SANDBOX=uid: the session's slot uid, taken here and freed by close().
    uid_slot: UidSlot | None = None

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.sandbox == "uid" and self.uid_slot is None:
            from jada_pipelines.agents.uid_sandbox import open_slot

            self.uid_slot = open_slot(self.workdir)

    def close(self) -> None:
        """The end of the session: in uid mode, no process of its uid is left and the slot is free."""
        if self.uid_slot is not None:
            self.uid_slot.close()

    @classmethod
    def from_env(cls, workdir: Path, **overrides) -> Toolbox:
        """A toolbox with the limits the JADA_AGENT_* settings give (see docs/agents.md, "Sandbox")."""
        from jada_pipelines.agents.bwrap_sandbox import network_mode, sandbox_mode

        mb = 1024 * 1024
        values = dict(
            sandbox=sandbox_mode(),
            network=network_mode() == "host",
            rlimits=Rlimits.from_env(),
            output_max_bytes=settings.get("JADA_AGENT_MAX_OUTPUT_MB") * mb,
            editor_max_bytes=settings.get("JADA_AGENT_EDITOR_MAX_KB") * 1024,
            workdir_max_bytes=WorkdirLimits.from_env().max_bytes,
            workdir_max_files=WorkdirLimits.from_env().max_files,
            tmp_size_mb=settings.get("JADA_AGENT_TMP_MB"),
            command_timeout_s=settings.get("JADA_AGENT_COMMAND_TIMEOUT_SECONDS"),
        )
        values.update(overrides)
        return cls(workdir, **values)

    def definitions(self) -> list[dict]:
        """The tool list for the request; it stays byte-identical across calls so the prompt cache hits."""
        return [
            BASH_TOOL,
            {"type": "text_editor_20250728", "name": EDITOR_NAME, "max_characters": self.output_limit},
        ]

    def run(self, name: str, tool_input: dict) -> ToolResult:
        if name == "bash":
            result = self.bash(tool_input)
            self.check_disk()
            return result
        if name == EDITOR_NAME:
            result = self.edit(tool_input)
            self.check_disk()
            return result
        return ToolResult(f"Unknown tool {name!r}: only bash and {EDITOR_NAME} exist here.", is_error=True)

    @property
    def workdir_limits(self) -> WorkdirLimits:
        return WorkdirLimits(max_bytes=self.workdir_max_bytes, max_files=self.workdir_max_files)

    def check_disk(self) -> None:
        if (verdict := over_limit([self.workdir], self.workdir_limits)) is not None:
            raise WorkdirFull(verdict)

    # -- bash -----------------------------------------------------------------------------------------------

    def command_argv(self, command: str, *, info_fd: int | None = None) -> list[str]:
        env = scrubbed_environment(self.workdir)
        if self.uid_slot is not None:
            return self.uid_slot.argv(command, self.rlimits.prlimit_argv())
        if self.sandbox == "off":
            return [*self.rlimits.prlimit_argv(), "bash", "-c", command]
        policy = SandboxPolicy(
            workdir=self.workdir,
            env=env,
            network=self.network,
            tmp_size_mb=self.tmp_size_mb,
            rlimits=self.rlimits,
        )
        return bwrap_argv(policy, command, info_fd=info_fd)

    def bash(self, tool_input: dict) -> ToolResult:
        if tool_input.get("restart"):
            return ToolResult(
                "Every command already runs in a fresh shell in the working directory; background processes "
                "end with the command that started them."
            )
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            return ToolResult("The bash tool needs a non-empty 'command'.", is_error=True)
        timeout = self.command_timeout_s
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
            if timeout <= 0:
                return ToolResult("not executed: the session's wall-clock limit was reached", is_error=True)
        # bwrap reports the host PID of the sandbox's first process here, so a kill can wait for the sandbox.
        info_read, info_write = os.pipe() if self.sandbox == "bwrap" else (None, None)
        env = scrubbed_environment(self.workdir)
        if self.uid_slot is not None:
            env = self.uid_slot.command_env(env)  # a fresh private TMPDIR
        process = subprocess.Popen(
            self.command_argv(command, info_fd=info_write),
            pass_fds=() if info_write is None else (info_write,),
            cwd=self.workdir,
            # bwrap itself gets the allow-listed environment too: its process inside the sandbox (PID 1) keeps
            # the environment it was started with, readable in the sandbox's /proc/1/environ.
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a kill reaches bwrap (and, unsandboxed, everything in its group)
        )
        if info_write is not None:
            os.close(info_write)
        try:
            output, verdict = self._collect(process, timeout, info_read)
        finally:
            if info_read is not None:
                os.close(info_read)
            if self.uid_slot is not None:
                self.uid_slot.end_command()  # nothing of the command outlives it
        text = output.text()
        if verdict:
            return ToolResult(f"{text}\n[{verdict}]".lstrip(), is_error=True)
        if process.returncode:
            return ToolResult(f"{text}\n[exit code {process.returncode}]".lstrip(), is_error=True)
        return ToolResult(text)

    def _collect(
        self, process: subprocess.Popen, timeout: float, info_read: int | None
    ) -> tuple[HeadTail, str | None]:
        """Read the output as it arrives until the command ends, its deadline passes, the session is stopped
        or it prints too much; in the last three cases the whole sandbox is killed."""
        output = HeadTail(self.output_limit // 2)
        deadline = time.monotonic() + timeout
        fd = process.stdout.fileno()
        verdict = None
        watch = WorkdirWatch([self.workdir], self.workdir_limits)
        shell_ended = False
        with selectors.DefaultSelector() as selector, watch:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                if self.uid_slot is not None and not shell_ended and process.poll() is not None:
                    # As bubblewrap's PID namespace does: the shell's end ends what it left running, so the
                    # pipe closes once its last output is read.
                    shell_ended = True
                    self.uid_slot.kill_all()
                if self.stop.is_set():
                    verdict = "killed: the session was stopped"
                    break
                if watch.verdict is not None:
                    verdict = f"killed: {watch.verdict}"
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    verdict = f"killed after the {timeout:g} s command timeout"
                    break
                if not selector.select(min(_POLL_S, remaining)):
                    continue
                chunk = os.read(fd, _READ_CHUNK)
                if not chunk:  # every process that held the pipe has closed it
                    break
                output.add(chunk)
                if output.total > self.output_max_bytes:
                    verdict = (
                        f"stopped: the command printed more than {self.output_max_bytes // 2**20} MB "
                        "(JADA_AGENT_MAX_OUTPUT_MB); redirect large output to a file and read parts of it"
                    )
                    break
        if verdict is None:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                verdict = f"killed after the {timeout:g} s command timeout"
        if verdict is not None:
            self._kill(process, info_read)
        process.stdout.close()
        return output, verdict

    def _kill(self, process: subprocess.Popen, info_read: int | None) -> None:
        # The sandbox's first process first, waiting until the kernel has ended its whole PID namespace (bwrap's
        # --die-with-parent alone would do it too, but a moment after we return). In uid mode, every process of
        # the slot uid. Unsandboxed, the process group is all there is to kill.
        if self.uid_slot is not None:
            self.uid_slot.kill_all(keep=process.pid)
        child_pid = None
        if info_read is not None:
            os.set_blocking(info_read, False)
            with contextlib.suppress(BlockingIOError):
                child_pid = sandbox_child_pid(os.read(info_read, 4096))
        if child_pid is not None:
            end_sandbox(child_pid, timeout_s=_REAP_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_REAP_S)

    # -- text editor ----------------------------------------------------------------------------------------

    def _path(self, raw: object) -> Path:
        if not isinstance(raw, str) or not raw:
            raise ValueError("The editor needs a 'path'.")
        path = Path(raw)
        candidate = path if path.is_absolute() else self.workdir / path
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self.workdir):
            raise ValueError(f"{raw} is outside the working directory {self.workdir}; use paths inside it.")
        if candidate.is_symlink():
            raise ValueError(f"{raw} is a symbolic link: {_REGULAR_ONLY}")
        return resolved

    def edit(self, tool_input: dict) -> ToolResult:
        command = tool_input.get("command")
        handler = {
            "view": self._view,
            "create": self._create,
            "str_replace": self._replace,
            "insert": self._insert,
        }
        if command not in handler:
            return ToolResult(
                f"Unknown editor command {command!r}: use view, create, str_replace or insert.", True
            )
        try:
            path = self._path(tool_input.get("path"))
            return handler[command](path, tool_input)
        except (ValueError, OSError) as exc:
            return ToolResult(str(exc), is_error=True)

    def _read(self, path: Path, errors: str = "strict") -> str:
        """The file's text, refusing one over the editor's size limit without reading it."""
        if not os.path.lexists(path):
            raise ValueError(f"{path} does not exist.")
        fd = open_regular(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as file:
            size = os.fstat(fd).st_size
            if size > self.editor_max_bytes:
                raise ValueError(
                    f"{path.relative_to(self.workdir)} is {size} bytes, over the editor's limit of "
                    f"{self.editor_max_bytes} (JADA_AGENT_EDITOR_MAX_KB); read parts of it with bash "
                    "(head, sed -n, grep) instead."
                )
            data = file.read(self.editor_max_bytes + 1)
        # Edits read strictly (a file that is not text fails rather than being rewritten with U+FFFD).
        return data.decode(errors=errors)

    @staticmethod
    def _write(path: Path, text: str) -> None:
        """Write ``text`` over the regular file ``path`` (created when missing), never through a symlink, FIFO
        or device."""
        fd = open_regular(path, os.O_WRONLY | os.O_CREAT)
        with os.fdopen(fd, "wb") as file:
            file.truncate(0)
            file.write(text.encode())

    def _touched(self, path: Path) -> None:
        if self.uid_slot is not None:  # the editor writes as the worker: give the file (and new folders) back
            for part in (path, *path.parents):
                if part == self.workdir:
                    break
                self.uid_slot.own(part)
        relative = str(path.relative_to(self.workdir))
        if relative not in self.files_touched:
            self.files_touched.append(relative)

    def _view(self, path: Path, tool_input: dict) -> ToolResult:
        if path.is_dir():
            # Two levels deep, as the text editor tool's documentation describes; a symlink is listed, never
            # followed (it may point anywhere).
            entries = []
            with os.scandir(path) as top:
                for entry in top:
                    entries.append(entry.name)
                    if entry.is_dir(follow_symlinks=False):
                        with contextlib.suppress(OSError), os.scandir(entry.path) as inner:
                            entries += [f"{entry.name}/{child.name}" for child in inner]
            return ToolResult(truncate("\n".join(sorted(entries)), self.output_limit))
        lines = self._read(path, errors="replace").splitlines()
        start, end = 1, len(lines)
        view_range = tool_input.get("view_range")
        if view_range:
            if not (
                isinstance(view_range, list)
                and len(view_range) == 2
                and all(type(n) is int for n in view_range)
            ):
                raise ValueError(
                    f"view_range must be two line numbers [start, end] (end -1: to the end), not {view_range!r}."
                )
            start, end = view_range
            end = len(lines) if end == -1 else end
        numbered = "\n".join(f"{n:6}\t{line}" for n, line in enumerate(lines[start - 1 : end], start=start))
        return ToolResult(truncate(numbered, self.output_limit))

    def _create(self, path: Path, tool_input: dict) -> ToolResult:
        text = tool_input.get("file_text")
        if not isinstance(text, str):
            raise ValueError("create needs 'file_text'.")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write(path, text)
        self._touched(path)
        return ToolResult(f"Created {path.relative_to(self.workdir)}.")

    def _replace(self, path: Path, tool_input: dict) -> ToolResult:
        old, new = tool_input.get("old_str"), tool_input.get("new_str", "")
        if not isinstance(old, str) or not old:
            raise ValueError("str_replace needs a non-empty 'old_str'.")
        text = self._read(path)
        count = text.count(old)
        if count != 1:
            raise ValueError(f"old_str occurs {count} times in {path.name}; it must match exactly once.")
        self._write(path, text.replace(old, new or ""))
        self._touched(path)
        return ToolResult(f"Replaced 1 occurrence in {path.relative_to(self.workdir)}.")

    def _insert(self, path: Path, tool_input: dict) -> ToolResult:
        line = tool_input.get("insert_line")
        new = tool_input.get("insert_text", tool_input.get("new_str"))
        if not isinstance(line, int) or not isinstance(new, str):
            raise ValueError("insert needs 'insert_line' (a number) and 'insert_text'.")
        lines = self._read(path).splitlines(keepends=True)
        if not 0 <= line <= len(lines):
            raise ValueError(f"insert_line {line} is outside 0..{len(lines)} for {path.name}.")
        lines.insert(line, new if new.endswith("\n") else new + "\n")
        self._write(path, "".join(lines))
        self._touched(path)
        return ToolResult(f"Inserted after line {line} of {path.relative_to(self.workdir)}.")
