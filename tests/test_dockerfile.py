"""The Dockerfile at the repository's root builds the image the docs and the ECS task definitions name. No
container runtime here, so this checks what can be checked without one: the Python and the pins, that every
file it copies and every program the task definitions start exist, and that its users and paths agree with the
task definitions and the settings. Whether it builds is not verified here."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from jada_pipelines import settings

REPO = Path(__file__).resolve().parents[1]
TASK_DEFINITIONS = REPO / "deploy" / "ecs" / "task-definitions"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    lines = [
        line for line in (REPO / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def only(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def container(name: str) -> dict:
    (defined,) = json.loads((TASK_DEFINITIONS / f"{name}.json").read_text())["containerDefinitions"]
    return defined


def environment(name: str) -> dict[str, str]:
    return {v["name"]: v["value"] for v in container(name).get("environment", [])}


def test_the_image_is_python_3_11_as_the_project_requires():
    (base,) = only("FROM")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-\w+", base)
    assert 'requires-python = ">=3.11,<3.12"' in (REPO / "pyproject.toml").read_text()
    assert sys.version_info[:2] == (3, 11)  # the suite checks the code on the same Python


def test_the_dependencies_are_installed_from_the_pinned_lock():
    runs = " ".join(only("RUN"))
    (install,) = re.findall(r"pip install [^&]*", runs)
    assert "-c requirements.lock" in install
    # Nothing is installed past the lock: no package named on the command line but the project itself.
    assert shlex.split(install)[2:] == ["-c", "requirements.lock", "."]
    lock = (REPO / "requirements.lock").read_text().splitlines()
    pins = [line for line in lock if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[^=\s]+", line) for line in pins), (
        "unpinned line"
    )
    locked = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in pins}
    project = (REPO / "pyproject.toml").read_text()
    dependencies = re.search(r"^dependencies = \[(.*?)^\]", project, re.S | re.M).group(1)
    for name, version in re.findall(r'"([A-Za-z0-9_.\-]+)==([^"]+)"', dependencies):
        assert locked[name.lower().replace("_", "-")] == version, (
            f"{name} differs between pyproject and the lock"
        )


def test_every_file_the_image_copies_exists():
    for arguments in only("COPY"):
        *sources, _ = shlex.split(arguments)
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".env" in ignored  # never in the build context


def test_bubblewrap_and_the_uid_sandbox_tools_are_installed():
    runs = " ".join(only("RUN"))
    (packages,) = re.findall(r"apt-get install -y --no-install-recommends ([^&]*)", runs)
    assert {"bubblewrap", "util-linux", "git", "tini"} <= set(packages.split())
    for program in ("setpriv", "prlimit"):  # util-linux's, used by JADA_AGENT_SANDBOX=uid
        assert shutil.which(program), f"{program} is not on this machine either"


def test_the_slot_uids_of_the_image_are_the_range_the_run_task_uses():
    runs = " ".join(only("RUN"))
    (first, last) = re.search(r"for uid in \$\(seq (\d+) (\d+)\)", runs).groups()
    assert f"{first}-{last}" == environment("run")["JADA_AGENT_UID_RANGE"] == settings.DEFAULT_AGENT_UID_RANGE
    assert environment("run")["JADA_AGENT_SANDBOX"] == "uid"
    # Closed to them: the image's world-writable folders, and the instance's home.
    assert "chmod 1770 /tmp /var/tmp" in runs and "chmod 0700 /opt/dagster/home" in runs


def test_the_default_user_is_not_root_and_the_run_task_starts_as_root():
    (user,) = only("USER")
    assert user == "jada" and "useradd --uid 10001 --gid jada" in " ".join(only("RUN"))
    assert container("run")["user"] == "0"  # it switches each command to a slot uid


def test_the_paths_agree_with_the_task_definitions():
    env = dict(item.split("=", 1) for item in shlex.split(" ".join(only("ENV"))))
    copies = [shlex.split(arguments) for arguments in only("COPY")]
    assert ["deploy/ecs/dagster.yaml", f"{env['DAGSTER_HOME']}/dagster.yaml"] in copies
    (workdir,) = only("WORKDIR")
    assert any("workspace.yaml" in copy for copy in copies)
    for name in ("run", "daemon", "webserver", "watchdog"):
        assert environment(name)["DAGSTER_HOME"] == env["DAGSTER_HOME"], name
        assert environment(name)["JADA_DATA_DIR"] == env["JADA_DATA_DIR"], name
        assert {m["containerPath"] for m in container(name)["mountPoints"]} == {env["JADA_DATA_DIR"]}, name
        assert container(name)["image"].endswith("/jada-pipelines:latest"), name
    assert workdir == "/opt/jada"


@pytest.mark.parametrize("name", ["daemon", "webserver", "watchdog"])
def test_the_programs_the_task_definitions_start_are_installed_by_the_lock(name):
    program = container(name)["command"][0]
    assert (Path(sys.executable).parent / program).exists(), (
        f"{name} starts {program}, which is not installed"
    )


def test_the_run_task_entrypoint_and_the_image_default_exist():
    entry = container("run")["entryPoint"]
    assert entry[:2] == ["python", "-m"] and importlib.util.find_spec(entry[2]) is not None
    assert json.loads(only("ENTRYPOINT")[0]) == ["/usr/bin/tini", "--"]
    default = json.loads(only("CMD")[0])
    assert (Path(sys.executable).parent / default[0]).exists()
    assert default == container("webserver")["command"]
