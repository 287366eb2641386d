"""port_sheet/ keeps its engines plain Python: only the Dagster side (assets, checks, resources, job,
schedule, sensors, definitions) imports Dagster, as in the other domain folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jada_pipelines.port_sheet as port_sheet

DAGSTER_SIDE = {"__init__", "assets", "checks", "resources", "jobs", "schedules", "sensors", "definitions"}


def test_the_port_sheet_engines_import_no_dagster():
    folder = Path(port_sheet.__file__).parent
    engines = sorted(path.stem for path in folder.glob("*.py") if path.stem not in DAGSTER_SIDE)
    assert {"pull", "push", "plan", "tasks", "a1", "keys", "store"} <= set(engines)
    # One interpreter with nothing loaded yet: after each engine's import, Dagster must still be absent.
    code = (
        "import importlib, sys\n"
        f"for name in {engines!r}:\n"
        "    importlib.import_module(f'jada_pipelines.port_sheet.{name}')\n"
        "    if 'dagster' in sys.modules: print(name); break\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"port_sheet/{out.stdout.strip()}.py imports dagster"
