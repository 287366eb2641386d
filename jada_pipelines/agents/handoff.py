"""The handoff an attempt leaves for the next one, built from what its transcript shows. Plain Python.

Both session backends write a transcript (``session.Transcript``), so both get the same handoff from it when a
session ends without writing one itself: an overloaded API after the SDK's retries, a wall-clock cut, a run
worker that died (the sensor builds it then). What the transcript shows is a fact the worker saw: the files
the session wrote, its last tool calls with their results in brief, and the model's last text. Nothing here
asks the model for anything.

The two transcript formats:
- Messages (``messages_backend.py``): ``reply`` lines hold the model's content blocks (``{"type": "tool_use", ...}``,
  ``{"type": "text", ...}``); ``tool_result`` lines hold each result with its ``tool_use_id``.
- Claude Code (``claude_code_backend.py``): the SDK's message stream, ``AssistantMessage`` lines with blocks
  ``{"id", "name", "input"}`` and ``{"text"}``, ``UserMessage`` lines with ``{"tool_use_id", "content",
  "is_error"}`` blocks.
"""

from __future__ import annotations

import json
from pathlib import Path

from jada_pipelines.agents.session import empty_handoff

# How much of the transcript goes into the handoff: the next session's first message carries it.
LAST_TOOL_CALLS = 5
BRIEF_CHARS = 300
LAST_TEXT_CHARS = 2000
# Tool inputs that name a file the call wrote (the Messages editor; Claude Code's Write/Edit/MultiEdit).
WRITING_EDITOR_COMMANDS = ("create", "str_replace", "insert")
WRITING_TOOLS = ("Write", "Edit", "MultiEdit", "NotebookEdit")


def brief(value: object, limit: int = BRIEF_CHARS) -> str:
    """One line of at most ``limit`` characters; longer text keeps its start and says how much was cut."""
    if isinstance(value, list):  # tool result content blocks
        value = "\n".join(str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in value)
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def _written_path(name: str, tool_input: dict) -> str | None:
    if name == "str_replace_based_edit_tool" and tool_input.get("command") in WRITING_EDITOR_COMMANDS:
        return tool_input.get("path")
    if name in WRITING_TOOLS:
        return tool_input.get("file_path") or tool_input.get("notebook_path")
    return None


def _blocks(entry: dict) -> list[dict]:
    """The content blocks of one transcript line, whichever backend wrote it."""
    kind = entry.get("kind")
    if kind == "reply":
        return [b for b in entry.get("content") or [] if isinstance(b, dict)]
    if kind in ("AssistantMessage", "UserMessage"):
        message = entry.get("message") or {}
        if message.get("model") == "<synthetic>":
            return []  # the CLI's own error notice, not the model's words
        content = message.get("content")
        return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    if kind == "tool_result":
        return [entry]
    return []


def read_transcript(path: Path | None) -> list[dict]:
    """The transcript's lines; a missing file, or a last line cut off by a killed worker, is no error."""
    if path is None:
        return []
    entries = []
    try:
        with path.open() as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    entries.append(entry)
    except OSError:
        return []
    return entries


def handoff_from_transcript(path: Path | None, *, reason: str, workdir: Path | None = None) -> dict | None:
    """The handoff the transcript at ``path`` supports, or None when it shows no model reply (the next attempt
    then keeps whatever handoff it had). ``reason`` says why the session stopped; it opens ``notes``."""
    calls: dict[str, dict] = {}  # tool_use_id → call, in order
    files: list[str] = []
    last_text = ""
    replies = 0
    for entry in read_transcript(path):
        if entry.get("kind") == "reply" or (entry.get("kind") == "AssistantMessage" and _blocks(entry)):
            replies += 1
        for block in _blocks(entry):
            if "tool_use_id" in block:  # a result
                call = calls.get(block["tool_use_id"])
                if call is not None:
                    call["result"] = brief(block.get("content"))
                    call["is_error"] = bool(block.get("is_error"))
            elif "name" in block and "id" in block and isinstance(block.get("input"), dict):
                calls[block["id"]] = {"tool": block["name"], "input": brief(block["input"])}
                written = _written_path(block["name"], block["input"])
                if isinstance(written, str) and written:
                    files.append(_relative(written, workdir))
            elif isinstance(block.get("text"), str) and block["text"].strip():
                last_text = block["text"].strip()
    if not replies:
        return None
    handoff = empty_handoff()
    handoff["files_touched"] = list(dict.fromkeys(files))
    handoff["last_tool_calls"] = [
        {"result": "(no result recorded)", **call} for call in list(calls.values())[-LAST_TOOL_CALLS:]
    ]
    if last_text:
        handoff["last_text"] = brief(last_text, LAST_TEXT_CHARS)
    handoff["notes"] = (
        f"{reason} This handoff was built from the session's transcript (the model wrote none): check the "
        "files touched and the last tool calls before going on."
    )
    return handoff


def _relative(raw: str, workdir: Path | None) -> str:
    path = Path(raw)
    if workdir is not None and path.is_absolute():
        try:
            return str(path.relative_to(workdir.resolve()))
        except ValueError:
            return raw
    return raw


def merge_handoffs(own: dict | None, seen: dict | None) -> dict | None:
    """The session's own handoff (the model's JSON, or a backend's note) with what the transcript shows added:
    files it wrote that the model left out, and the last tool calls and text when it gave none."""
    if not own:
        return seen
    if not seen:
        return own
    merged = dict(own)
    merged["files_touched"] = list(dict.fromkeys([*(own.get("files_touched") or []), *seen["files_touched"]]))
    for key in ("last_tool_calls", "last_text"):
        if key in seen and not merged.get(key):
            merged[key] = seen[key]
    return merged


def handoff_for(result, workdir: Path | None) -> dict | None:
    """The handoff to store for a finished session (``session.SessionResult``, either backend): its own, with
    what its transcript shows added, for every outcome that leaves the task unfinished. A ``done`` session
    needs none; a ``lost`` one may not write."""
    if result.outcome in ("done", "lost"):
        return result.handoff
    reason = f"The previous attempt ended {result.outcome}" + (f": {result.error}" if result.error else ".")
    seen = handoff_from_transcript(result.transcript_path, reason=reason, workdir=workdir)
    return merge_handoffs(result.handoff, seen)
