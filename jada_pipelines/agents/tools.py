"""The client tools a session may use: Anthropic's bash tool and text editor, run in the task's working directory.

What confines them, and what does not:
- The text editor resolves every path (symlinks included) and refuses any outside the working directory.
- Bash starts in the working directory with HOME set to it, a per-command timeout (the whole process group is
  killed) and an output cap. Its environment is built from an allow-list, so no API key, Google, Slack or AWS
  secret reaches the model's commands. Bash is not a sandbox: a command can still ``cd /``. Run the code
  location as an unprivileged user, in a container or VM, when tasks come from people you do not trust.
- Each bash command runs in a fresh shell, so ``cd`` and variables do not carry over between calls (files do);
  the model is told so in the tool result of a ``restart``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

BASH_TOOL = {"type": "bash_20250124", "name": "bash"}
EDITOR_NAME = "str_replace_based_edit_tool"
DEFAULT_COMMAND_TIMEOUT_S = 120.0
DEFAULT_OUTPUT_LIMIT = 30_000
# Variables bash may inherit; everything else (API keys, tokens, cloud credentials) stays out.
SAFE_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")
# How often a running command checks whether the session was told to stop (lease lost).
_STOP_POLL_S = 0.5


@dataclass(frozen=True)
class ToolResult:
    content: str
    is_error: bool = False


def scrubbed_environment(workdir: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in SAFE_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=str(workdir), PWD=str(workdir))
    return env


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit} characters cut: output is capped at {limit}] …\n{text[-half:]}"


@dataclass
class Toolbox:
    """Runs the model's tool calls for one session and remembers which files it changed (for the handoff)."""

    workdir: Path
    command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    stop: threading.Event = field(default_factory=threading.Event)
    files_touched: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)

    def definitions(self) -> list[dict]:
        """The tool list for the request; it stays byte-identical across calls so the prompt cache hits."""
        return [
            BASH_TOOL,
            {"type": "text_editor_20250728", "name": EDITOR_NAME, "max_characters": self.output_limit},
        ]

    def run(self, name: str, tool_input: dict) -> ToolResult:
        if name == "bash":
            return self.bash(tool_input)
        if name == EDITOR_NAME:
            return self.edit(tool_input)
        return ToolResult(f"Unknown tool {name!r}: only bash and {EDITOR_NAME} exist here.", is_error=True)

    # -- bash -----------------------------------------------------------------------------------------------

    def bash(self, tool_input: dict) -> ToolResult:
        if tool_input.get("restart"):
            return ToolResult("Every command already runs in a fresh shell in the working directory.")
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            return ToolResult("The bash tool needs a non-empty 'command'.", is_error=True)
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.workdir,
            env=scrubbed_environment(self.workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a timeout can kill everything the command started
        )
        output, verdict = self._wait(process)
        text = truncate(output.decode(errors="replace"), self.output_limit)
        if verdict:
            return ToolResult(f"{text}\n[{verdict}]".lstrip(), is_error=True)
        if process.returncode:
            return ToolResult(f"{text}\n[exit code {process.returncode}]".lstrip(), is_error=True)
        return ToolResult(text)

    def _wait(self, process: subprocess.Popen) -> tuple[bytes, str | None]:
        """Wait for the command, but kill its process group on timeout or when the session must stop."""
        waited = 0.0
        while True:
            try:
                output, _ = process.communicate(timeout=_STOP_POLL_S)
                return output, None
            except subprocess.TimeoutExpired:
                waited += _STOP_POLL_S
            if self.stop.is_set() or waited >= self.command_timeout_s:
                os.killpg(process.pid, signal.SIGKILL)
                output, _ = process.communicate()
                if self.stop.is_set():
                    return output, "killed: the session was stopped"
                return output, f"killed after the {self.command_timeout_s:g} s command timeout"

    # -- text editor ----------------------------------------------------------------------------------------

    def _path(self, raw: object) -> Path:
        if not isinstance(raw, str) or not raw:
            raise ValueError("The editor needs a 'path'.")
        path = Path(raw)
        resolved = (path if path.is_absolute() else self.workdir / path).resolve()
        if not resolved.is_relative_to(self.workdir):
            raise ValueError(f"{raw} is outside the working directory {self.workdir}; use paths inside it.")
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

    def _touched(self, path: Path) -> None:
        relative = str(path.relative_to(self.workdir))
        if relative not in self.files_touched:
            self.files_touched.append(relative)

    def _view(self, path: Path, tool_input: dict) -> ToolResult:
        if path.is_dir():
            # Two levels deep, as the text editor tool's documentation describes.
            entries = sorted(str(p.relative_to(path)) for pattern in ("*", "*/*") for p in path.glob(pattern))
            return ToolResult(truncate("\n".join(entries), self.output_limit))
        if not path.is_file():
            raise ValueError(f"{path} does not exist.")
        lines = path.read_text(errors="replace").splitlines()
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
        path.write_text(text)
        self._touched(path)
        return ToolResult(f"Created {path.relative_to(self.workdir)}.")

    def _replace(self, path: Path, tool_input: dict) -> ToolResult:
        old, new = tool_input.get("old_str"), tool_input.get("new_str", "")
        if not isinstance(old, str) or not old:
            raise ValueError("str_replace needs a non-empty 'old_str'.")
        text = path.read_text()
        count = text.count(old)
        if count != 1:
            raise ValueError(f"old_str occurs {count} times in {path.name}; it must match exactly once.")
        path.write_text(text.replace(old, new or ""))
        self._touched(path)
        return ToolResult(f"Replaced 1 occurrence in {path.relative_to(self.workdir)}.")

    def _insert(self, path: Path, tool_input: dict) -> ToolResult:
        line = tool_input.get("insert_line")
        new = tool_input.get("insert_text", tool_input.get("new_str"))
        if not isinstance(line, int) or not isinstance(new, str):
            raise ValueError("insert needs 'insert_line' (a number) and 'insert_text'.")
        lines = path.read_text().splitlines(keepends=True)
        if not 0 <= line <= len(lines):
            raise ValueError(f"insert_line {line} is outside 0..{len(lines)} for {path.name}.")
        lines.insert(line, new if new.endswith("\n") else new + "\n")
        path.write_text("".join(lines))
        self._touched(path)
        return ToolResult(f"Inserted after line {line} of {path.relative_to(self.workdir)}.")
