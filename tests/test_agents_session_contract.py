"""The session contract is one module: every place that names a backend accepts exactly ``session.BACKENDS``,
and neither backend leans on the other."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest

from jada_pipelines import settings
from jada_pipelines.agents import session
from jada_pipelines.agents.queue import QueueError, open_queue
from jada_pipelines.agents.resources import backend_from_env
from jada_pipelines.cli import main
from jada_pipelines.port_sheet.tasks import requested_backends

AGENTS = Path(session.__file__).parent
BACKEND_MODULES = {"messages_backend", "claude_code_backend"}


def _imported_agents_modules(path: Path) -> set[str]:
    """The ``jada_pipelines.agents`` modules a file imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "jada_pipelines.agents":
                names.update(alias.name for alias in node.names)
            elif node.module.startswith("jada_pipelines.agents."):
                names.add(node.module.removeprefix("jada_pipelines.agents."))
        elif isinstance(node, ast.Import):
            names.update(
                a.name.removeprefix("jada_pipelines.agents.")
                for a in node.names
                if a.name.startswith("jada_pipelines.agents.")
            )
    return names


@pytest.mark.parametrize("backend", sorted(BACKEND_MODULES))
def test_each_backend_rests_on_the_session_contract_and_on_nothing_of_the_other(backend):
    imported = _imported_agents_modules(AGENTS / f"{backend}.py")
    assert "session" in imported
    assert not imported & (BACKEND_MODULES - {backend}), imported


def test_the_cli_the_setting_the_queue_and_the_sheet_accept_every_backend_name_and_nothing_else(
    monkeypatch, capsys
):
    rows = pd.DataFrame({"id": [f"r{i}" for i in range(len(session.BACKENDS))] + ["bad"]})
    rows["backend"] = [*session.BACKENDS, "codex"]
    chosen, bad = requested_backends(rows, key_column="id")
    assert sorted(chosen.values()) == sorted(session.BACKENDS) and bad == {"bad": "codex"}
    for name in session.BACKENDS:
        monkeypatch.setenv("JADA_AGENT_BACKEND", name)
        assert backend_from_env() == name
        assert main(["task", "add", "x", "--id", f"cli-{name}", "--backend", name]) == 0
        assert open_queue().get(f"cli-{name}").backend == name
    monkeypatch.setenv("JADA_AGENT_BACKEND", "codex")
    with pytest.raises(settings.ConfigError, match="not a session backend"):
        backend_from_env()
    with pytest.raises(QueueError, match="not a session backend"):
        open_queue().enqueue("q-codex", "x", backend="codex")
    with pytest.raises(SystemExit):
        main(["task", "add", "x", "--id", "cli-codex", "--backend", "codex"])
    assert "invalid choice: 'codex'" in capsys.readouterr().err
    assert session.DEFAULT_BACKEND in session.BACKENDS


def test_an_unset_backend_setting_means_the_default_backend(monkeypatch):
    monkeypatch.delenv("JADA_AGENT_BACKEND", raising=False)
    assert (
        backend_from_env()
        == session.DEFAULT_BACKEND
        == session.SessionSpec("t", 1, "x", Path("."), 1, "m").backend
    )
