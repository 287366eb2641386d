"""One registry of settings: every variable the product reads is declared once in ``settings.REGISTRY``, with
its kind, default and meaning; the code reads only through it, the docs and .env.example name each one with
the same default, and the tests scrub each one from a developer's shell."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from jada_pipelines import settings
from jada_pipelines.agents.resources import max_cost_from_env
from tests import conftest
from tests.test_docs_agree import DOCS, TABLE_DOCS, env_example, essence, read, table_defaults

PACKAGE = Path(settings.__file__).resolve().parent
ENV_FUNCTIONS = {"environ", "getenv", "putenv", "unsetenv", "environb", "getenvb"}

# The places outside settings.py that touch os.environ, each *passing* an environment on or setting a library's
# switch; none reads a setting. (claude_code_sandbox.py's key-proxy bridge copies os.environ for the CLI too,
# but it is a script in a string run inside the sandbox, not this package's code.)
ENVIRONMENT_PASSING = {
    # The model's commands get only the allow-listed SAFE_ENV names (PATH, LANG, ...).
    ("agents/tools.py", "scrubbed_environment"),
    # `jada demo` starts the product's processes with the shell's environment plus the demo's settings.
    ("emulators/demo/launch.py", "main"),
    # The demo's re-consent step runs `jada auth google` with the shell's environment and the emulator's URI.
    ("emulators/demo/story.py", "run_reconsent"),
    # oauthlib's own switches (OAUTHLIB_RELAX_TOKEN_SCOPE, OAUTHLIB_INSECURE_TRANSPORT for loopback only).
    ("google_api/oauth.py", "consent"),
    ("google_api/oauth.py", "_allow_plain_http_on_loopback"),
    # The ECS run task execs the worker with its environment plus the secrets it read.
    ("run_task.py", "main"),
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), filename=str(path))


def _environment_uses(tree: ast.AST):
    """(enclosing function, node) of each use of os.environ / os.getenv / ..., and of `from os import environ`."""
    found = []

    def visit(node, function):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        from_os = (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
        )
        if from_os and node.attr in ENV_FUNCTIONS:
            found.append((function, node))
        imported = isinstance(node, ast.ImportFrom) and node.module == "os"
        if imported and any(alias.name in ENV_FUNCTIONS for alias in node.names):
            found.append((function, node))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return found


def _names_read(tree: ast.AST) -> set[str]:
    """Constant names looked up in os.environ (``os.environ[NAME]``, ``.get(NAME)``, ``os.getenv(NAME)``)."""
    names = set()
    for node in ast.walk(tree):
        key = None
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "environ"
        ):
            key = node.slice
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault"):
                if isinstance(func.value, ast.Attribute) and func.value.attr == "environ":
                    key = node.args[0]
            elif isinstance(func, ast.Attribute) and func.attr == "getenv":
                key = node.args[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


def test_no_module_but_settings_reads_the_environment():
    outside = sorted(
        (path, function)
        for path, tree in _modules()
        if path != "settings.py"
        for function, _ in _environment_uses(tree)
        if (path, function) not in ENVIRONMENT_PASSING
    )
    assert outside == [], "read settings through jada_pipelines.settings.get(), not os.environ"


def test_the_places_that_pass_an_environment_on_read_no_setting_from_it():
    read_there = {
        (path, name)
        for path, tree in _modules()
        if path != "settings.py"
        for name in _names_read(tree)
        if name in settings.REGISTRY or name.startswith("JADA_")
    }
    assert read_there == set()


def test_every_jada_name_in_the_code_is_a_registered_setting():
    unknown = set()
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in re.findall(r"JADA_[A-Z0-9_]+", node.value):
                    if name.endswith(
                        "_"
                    ):  # a prefix, such as f"JADA_HEALTH_{field}": some setting must have it
                        known = any(registered.startswith(name) for registered in settings.REGISTRY)
                    else:
                        known = name in settings.REGISTRY
                    if not known:
                        unknown.add((path, name))
    assert unknown == set()


def test_every_health_threshold_is_a_registered_setting_with_the_thresholds_default():
    from jada_pipelines.health.grading import Thresholds, _variable

    defaults = Thresholds()
    for field in Thresholds.__dataclass_fields__:
        assert settings.default(_variable(field)) == getattr(defaults, field)


def test_every_setting_is_in_the_configuration_table_and_in_env_example():
    documented = table_defaults((DOCS / "configuration.md").read_text())
    everywhere = {}
    for doc in TABLE_DOCS:
        everywhere.update(table_defaults((DOCS / doc).read_text()))
    example = read(".env.example")

    def in_configuration(name):
        if name in documented:
            return True
        prefixed = any(n.endswith("*") and name.startswith(n[:-1]) for n in documented)
        return prefixed and name in everywhere  # JADA_HEALTH_*: each threshold in alerts_health.md's table

    assert [name for name in settings.REGISTRY if not in_configuration(name)] == []
    assert [name for name in settings.REGISTRY if not re.search(rf"\b{name}\b", example)] == []


def _text(default) -> str:
    return f"{default:g}" if isinstance(default, float) else str(default)


def test_a_documented_default_is_the_registered_default():
    wrong = []
    for doc in TABLE_DOCS:
        for name, cell in table_defaults((DOCS / doc).read_text()).items():
            registered = settings.REGISTRY.get(name)
            if registered is None or registered.default is None:
                continue
            documented = essence(cell)
            if not documented or documented.startswith(("none", "see")) or " / " in documented:
                continue
            if documented != _text(registered.default):
                wrong.append((doc, name, documented, registered.default))
    assert wrong == []


def test_a_value_in_env_example_is_the_registered_default_or_says_what_the_default_is():
    wrong = []
    for name, (value, comment) in env_example().items():
        registered = settings.REGISTRY.get(name)
        if registered is None or registered.default is None or not value:
            continue
        default = _text(registered.default)
        if value != default and f"default {default}" not in comment and f"default: {default}" not in comment:
            wrong.append((name, value, comment, default))
    assert wrong == []


def test_a_newly_registered_setting_is_scrubbed_from_the_tests_environment(monkeypatch):
    new = settings.Setting("JADA_SOMETHING_NEW", settings.TEXT, None, "a setting added tomorrow")
    monkeypatch.setitem(settings.REGISTRY, new.name, new)

    assert "JADA_SOMETHING_NEW" in conftest.scrubbed_names()
    assert set(settings.REGISTRY) <= set(conftest.scrubbed_names())


def test_a_setting_left_in_a_developers_shell_does_not_reach_a_test():
    # DAGSTER_HOME and JADA_DATA_DIR are set afresh for every test; everything else registered is unset.
    leaked = [
        name
        for name in settings.REGISTRY
        if name not in ("DAGSTER_HOME", "JADA_DATA_DIR") and settings.is_set(name)
    ]
    assert leaked == []


def test_reading_an_unregistered_name_is_refused():
    with pytest.raises(LookupError, match="JADA_NOT_A_SETTING is not a registered setting"):
        settings.get("JADA_NOT_A_SETTING")


def test_an_unset_or_blank_setting_reads_as_its_default(monkeypatch):
    assert settings.get("JADA_AGENT_TMP_MB") == 256
    monkeypatch.setenv("JADA_AGENT_TMP_MB", "  ")
    assert settings.get("JADA_AGENT_TMP_MB") == 256
    monkeypatch.setenv("JADA_AGENT_TMP_MB", " 512 ")
    assert settings.get("JADA_AGENT_TMP_MB") == 512
    monkeypatch.setenv("JADA_PORT_SHEET_TAB", " Berths ")
    assert settings.get("JADA_PORT_SHEET_TAB") == "Berths"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "JADA_AGENT_MAX_TURNS",
            "ten",
            "JADA_AGENT_MAX_TURNS='ten' is not a whole number; set it to an integer such as 30.",
        ),
        ("JADA_AGENT_TMP_MB", "0", "JADA_AGENT_TMP_MB=0 must be 1 or more; unset means 256."),
        (
            "JADA_AGENT_TMP_MB",
            "1.5",
            "JADA_AGENT_TMP_MB='1.5' is not a whole number; set it to an integer such as 256.",
        ),
        (
            "JADA_AGENT_COMMAND_TIMEOUT_SECONDS",
            "-3",
            "JADA_AGENT_COMMAND_TIMEOUT_SECONDS='-3' is not a positive number of seconds; set it to a number such as 120.",
        ),
        (
            "JADA_AGENT_SESSION_MAX_SECONDS",
            "2h",
            "JADA_AGENT_SESSION_MAX_SECONDS='2h' is not a positive number of seconds; set it to a number such as 7200.",
        ),
        ("JADA_AGENT_MAX_COST_USD", "$5", "JADA_AGENT_MAX_COST_USD='$5' is not a positive number of dollars"),
        ("JADA_AGENT_MAX_COST_USD", "0", "or unset it for no ceiling."),
    ],
)
def test_a_malformed_setting_is_refused_with_its_name_and_what_to_set(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(settings.ConfigError) as raised:
        settings.get(name)
    assert message in str(raised.value)


def test_the_cost_ceiling_reads_through_the_registry(monkeypatch):
    assert max_cost_from_env() is None
    monkeypatch.setenv("JADA_AGENT_MAX_COST_USD", "2.5")
    assert max_cost_from_env() == 2.5
    monkeypatch.setenv("JADA_AGENT_MAX_COST_USD", "nothing")
    with pytest.raises(settings.ConfigError, match="JADA_AGENT_MAX_COST_USD='nothing'"):
        max_cost_from_env()


def test_every_setting_says_what_it_is_for():
    assert [name for name, setting in settings.REGISTRY.items() if not setting.meaning.strip()] == []
    assert all(name == setting.name for name, setting in settings.REGISTRY.items())
    assert {setting.kind for setting in settings.REGISTRY.values()} <= {
        settings.TEXT,
        settings.INT,
        settings.COUNT,
        settings.SECONDS,
        settings.DOLLARS,
    }
