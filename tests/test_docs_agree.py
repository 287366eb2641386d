"""The README, .env.example and docs/ say the same thing about paths, variables and defaults, so that a
person following any one of them ends up with the same set-up.

- One Google token path wherever a person is told where to put it.
- Every variable of .env.example is in docs/configuration.md's table, and every variable there is in
  .env.example.
- A default given in two tables is the same default; a value in .env.example that is not the default says
  the default in its comment.
- One statement about a missing Anthropic key; the Slack how-to linked from where people configure Slack.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
# Where a person is told which token path to use (the demo keeps its own token in demo_state/; production's
# service layout is deploy/'s).
TOKEN_PATH_SOURCES = ("README.md", ".env.example", "docs/configuration.md", "docs/google.md")
TABLE_DOCS = ("configuration.md", "agents.md", "google.md", "alerts_health.md", "production.md")


def read(name: str) -> str:
    return (REPO / name).read_text()


def _split_outside_backticks(text: str) -> list[str]:
    parts, current, inside = [], "", False
    for index, char in enumerate(text):
        if char == "`":
            inside = not inside
        if char == "," and not inside and text[index + 1 : index + 2] == " ":
            parts.append(current.strip())
            current = ""
            continue
        current += char
    return [*parts, current.strip()]


def table_defaults(text: str) -> dict[str, str]:
    """Variable → its default cell, from markdown tables whose first column names variables in backticks and
    whose last column is the default. A row naming several variables gives their defaults in order."""
    found = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        names = re.findall(r"`([A-Z][A-Z0-9_]+\*?)`", cells[0])
        defaults = _split_outside_backticks(cells[-1]) if len(names) > 1 else [cells[-1]]
        if len(defaults) != len(names):
            defaults = [cells[-1]] * len(names)
        found.update(zip(names, defaults, strict=True))
    return found


def env_example() -> dict[str, tuple[str, str]]:
    """Variable → (value, comment) of each `# NAME=value  # comment` line of .env.example."""
    found = {}
    for line in read(".env.example").splitlines():
        match = re.match(r"#\s*([A-Z][A-Z0-9_]+)=(\S*)\s*(?:#\s*(.*))?$", line)
        if match:
            found[match.group(1)] = (match.group(2), match.group(3) or "")
    return found


def essence(default: str) -> str:
    """A default cell without its explanation: 'none: sessions …' → 'none', '`5`' → '5'."""
    return re.split(r":\s|;\s|\s\(", default, maxsplit=1)[0].replace("`", "").strip()


def _covered(name: str, names) -> bool:
    return name in names or any(n.endswith("*") and name.startswith(n[:-1]) for n in names)


def test_the_google_token_path_is_the_same_wherever_people_are_told_it():
    paths = {}
    for source in TOKEN_PATH_SOURCES:
        text = read(source)
        for path in re.findall(r"JADA_GOOGLE_TOKEN_FILE=([^\s`)…]+)", text):
            paths.setdefault(path, []).append(source)
        for path in re.findall(r"jada auth google [^`\n]*--output ([^\s`]+)", text):
            paths.setdefault(path, []).append(source)
    assert len(paths) == 1, f"token paths disagree: {paths}"


def test_every_variable_of_env_example_is_in_the_configuration_table_and_back():
    documented = table_defaults((DOCS / "configuration.md").read_text())
    example = env_example()
    example_text = read(".env.example")

    assert [name for name in example if not _covered(name, documented)] == []
    assert [name for name in documented if not name.endswith("*") and name not in example_text] == []


def test_a_default_is_the_same_in_every_table_that_gives_it():
    reference = table_defaults((DOCS / "configuration.md").read_text())
    disagreements = []
    for doc in TABLE_DOCS[1:]:
        for name, default in table_defaults((DOCS / doc).read_text()).items():
            if name in reference and essence(default) != essence(reference[name]):
                disagreements.append((doc, name, default, reference[name]))
    assert disagreements == []


def test_a_value_in_env_example_is_the_default_or_says_what_the_default_is():
    reference = table_defaults((DOCS / "configuration.md").read_text())
    wrong = []
    for name, (value, comment) in env_example().items():
        default = essence(reference.get(name, ""))
        if not default or default.startswith(("none", "see")) or value == default:
            continue
        if f"default {default}" not in comment and f"default: {default}" not in comment:
            wrong.append((name, value, comment, default))
    assert wrong == []


def test_a_missing_anthropic_key_is_described_one_way():
    readme, agents = read("README.md"), (DOCS / "agents.md").read_text()
    assert "`agent_task_sensor` claims nothing" in readme
    assert "`agent_task_sensor` claims nothing" in agents
    assert essence(table_defaults(agents)["ANTHROPIC_API_KEY"]) == "none"
    for doc in [REPO / "README.md", *DOCS.glob("*.md")]:
        assert "sessions fail, naming the variable" not in doc.read_text(), doc.name


def test_the_slack_how_to_is_linked_from_where_people_configure_slack():
    first_steps = read("README.md").split("## First steps for real use", 1)[1].split("\n## ", 1)[0]
    slack_step = next(line for line in first_steps.splitlines() if "Slack" in line)
    assert "docs/alerts_health.md#set-up" in slack_step
    slack_row = next(
        line for line in (DOCS / "configuration.md").read_text().splitlines() if "`SLACK_WEBHOOK_URL`" in line
    )
    assert "alerts_health.md#set-up" in slack_row
    assert "\n## Set-up\n" in (DOCS / "alerts_health.md").read_text()


def test_the_claude_code_extra_is_not_inside_the_numbered_first_steps():
    first_steps = read("README.md").split("## First steps for real use", 1)[1].split("\n## ", 1)[0]
    assert "claude-code" not in first_steps
