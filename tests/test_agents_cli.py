"""`jada task` adds, lists, shows, re-queues and cancels tasks, and says plainly when something is wrong."""

from __future__ import annotations

import json
import re

import pytest

from jada_pipelines.agents.queue import open_queue
from jada_pipelines.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_prints_the_id_and_a_duplicate_add_says_nothing_changed(capsys):
    code, out, _ = run(capsys, "task", "add", "Fix the login bug", "--id", "login", "--max-turns", "12")
    assert (code, out) == (0, "login\n")
    task = open_queue().get("login")
    assert (task.prompt, task.max_turns, task.status, task.source) == (
        "Fix the login bug",
        12,
        "queued",
        "cli",
    )
    code, out, err = run(capsys, "task", "add", "Fix the login bug", "--id", "login")
    assert (code, out) == (0, "login\n") and "already exists with this prompt" in err
    assert open_queue().get("login").prompt == "Fix the login bug"


def test_a_duplicate_id_with_another_prompt_exits_1_and_shows_both_prompts(capsys):
    run(capsys, "task", "add", "Fix the login bug", "--id", "login")
    code, out, err = run(capsys, "task", "add", "Something else", "--id", "login")
    assert (code, out) == (1, "")
    assert "task login already exists with another prompt; nothing changed." in err
    assert "its prompt: Fix the login bug" in err and "yours:      Something else" in err
    assert open_queue().get("login").prompt == "Fix the login bug"


def test_errors_without_an_id_name_no_task_that_was_never_created(capsys):
    code, out, err = run(capsys, "task", "add", "")
    assert (code, out, err) == (2, "", "jada: The prompt is empty: say what the agent should do.\n")
    for argv, message in (
        (("x", "--max-turns", "-3"), "argument --max-turns: -3 must be 1 or more"),
        (("x", "--max-attempts", "0"), "argument --max-attempts: 0 must be 1 or more"),
        (
            ("x", "--max-cost-usd", "-5"),
            "argument --max-cost-usd: -5 must be more than 0 dollars (leave the flag out for "
            "JADA_AGENT_MAX_COST_USD)",
        ),
    ):
        code, err = usage_error(capsys, "task", "add", *argv)
        assert code == 2
        assert err.splitlines()[-1] == f"jada task add: error: {message}"
        # The flag the user typed, never the queue's field name or an id they never saw.
        assert "max_cost_usd" not in err and "task-" not in err
    assert open_queue().list() == []


def usage_error(capsys, *argv) -> tuple[int, str]:
    """argparse's own errors exit with SystemExit(2) after printing the usage of the command typed."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return exit_info.value.code, capsys.readouterr().err


def test_an_unknown_option_is_reported_with_the_usage_of_the_command_it_was_typed_under(capsys):
    code, err = usage_error(capsys, "task", "add", "x", "--turns", "3")

    assert code == 2
    assert err.startswith("usage: jada task add ")
    assert err.splitlines()[-1] == "jada task add: error: unrecognized arguments: --turns 3"


def test_list_refuses_a_limit_below_one(capsys):
    code, err = usage_error(capsys, "task", "list", "--limit", "0")

    assert code == 2
    assert err.splitlines()[-1] == "jada task list: error: argument --limit: 0 must be 1 or more"


def test_a_task_queued_while_no_session_can_start_says_why_and_what_to_set(capsys):
    code, out, err = run(capsys, "task", "add", "Summarise the berth schedule", "--id", "t1")

    assert (code, out) == (0, "t1\n")
    assert err.startswith(
        "jada: task t1 is queued, but no session can start yet: ANTHROPIC_API_KEY is not set"
    )
    assert "`jada health`" in err


def test_a_task_queued_while_sessions_can_start_prints_only_its_id(capsys, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-for-the-cli")

    assert run(capsys, "task", "add", "Summarise the berth schedule", "--id", "t1") == (0, "t1\n", "")


def test_reusing_the_id_of_a_cancelled_task_offers_what_can_be_done(capsys):
    run(capsys, "task", "add", "Fix the login bug", "--id", "t1")
    run(capsys, "task", "cancel", "t1")

    code, _, err = run(capsys, "task", "add", "Something else", "--id", "t1")

    assert code == 1
    assert "cancel the old task" not in err
    assert err.splitlines()[-1] == (
        "An id names one task for good: choose another --id for your prompt (the old one is cancelled; "
        "`jada task requeue t1` runs its prompt again)."
    )


def test_reusing_the_id_of_a_queued_task_says_how_to_stop_it(capsys):
    run(capsys, "task", "add", "Fix the login bug", "--id", "t1")

    _, _, err = run(capsys, "task", "add", "Something else", "--id", "t1")

    assert err.splitlines()[-1].endswith("(the old one is queued; `jada task cancel t1` stops it).")


def test_show_does_not_print_the_internal_nonce(capsys):
    run(capsys, "task", "add", "Fix the login bug", "--id", "t1")

    _, out, _ = run(capsys, "task", "show", "t1")

    assert "nonce" not in out and open_queue().get("t1").nonce not in out
    assert "prompt: Fix the login bug" in out


def test_add_without_an_id_makes_one(capsys):
    _, out, _ = run(capsys, "task", "add", "Do it")
    assert open_queue().get(out.strip()).prompt == "Do it"


def test_add_takes_a_working_directory_and_a_priority(capsys, tmp_path, monkeypatch):
    repos = tmp_path / "repos"
    (repos / "app").mkdir(parents=True)
    monkeypatch.setenv("JADA_AGENT_WORKDIR_ROOTS", str(repos))
    monkeypatch.chdir(repos)
    run(capsys, "task", "add", "Low", "--id", "low")
    # A relative --workdir is resolved where the task is added, not where the run worker happens to start.
    code, _, _ = run(capsys, "task", "add", "Urgent", "--id", "urgent", "--workdir", "app", "--priority", "5")
    assert code == 0
    task = open_queue().get("urgent")
    assert (task.workdir, task.priority) == (str(repos / "app"), 5)
    assert open_queue().claim(worker="w", lease_seconds=60).task_id == "urgent"


def test_a_workdir_outside_the_allowed_roots_or_missing_and_a_bad_id_are_refused(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("JADA_AGENT_WORKDIR_ROOTS", str(tmp_path / "repos"))
    (tmp_path / "repos").mkdir()
    for workdir in ("/", str(tmp_path), str(tmp_path / "repos" / ".." / "elsewhere")):
        code, _, err = run(capsys, "task", "add", "x", "--id", "w1", "--workdir", workdir)
        assert code == 2 and "outside the allowed roots" in err and "JADA_AGENT_WORKDIR_ROOTS" in err
    code, _, err = run(
        capsys, "task", "add", "x", "--id", "w1", "--workdir", str(tmp_path / "repos" / "nope")
    )
    assert code == 2 and "does not exist" in err
    monkeypatch.delenv("JADA_AGENT_WORKDIR_ROOTS")
    code, _, err = run(capsys, "task", "add", "x", "--id", "w1", "--workdir", str(tmp_path / "repos"))
    assert (
        code == 2 and "outside the allowed roots" in err
    )  # the default root is the data directory's workdirs/
    for bad_id in ("../../x", "/tmp/x"):
        code, _, err = run(capsys, "task", "add", "x", "--id", bad_id)
        assert code == 2 and "letters, digits, '.', '_' or '-'" in err
    assert open_queue().list() == []


def test_a_bad_task_is_a_one_line_error(capsys):
    code, _, err = run(capsys, "task", "add", "x", "--id", "a:b")
    assert code == 2 and err.startswith("jada: The task id 'a:b'") and err.count("\n") == 1


def test_list_and_show_give_status_attempt_turns_cost_error_and_handoff(capsys):
    queue = open_queue()
    queue.enqueue("capped", "Big job")
    lease = queue.claim(worker="w", lease_seconds=60)
    handoff = {"done": ["a"], "next_steps": ["b", "c"], "failed_approaches": [], "files_touched": []}
    queue.complete(lease, outcome="incomplete", turns=30, cost_usd=0.1234, summary=None, handoff=handoff)
    _, out, _ = run(capsys, "task", "list")
    header, row = out.splitlines()
    assert header.split()[:5] == ["ID", "STATUS", "ATTEMPT", "TURNS", "COST_USD"]
    assert row.split()[:8] == ["capped", "incomplete", "1/3", "30", "0.1234", "2", "next", "steps"]
    _, out, _ = run(capsys, "task", "list", "--status", "incomplete", "--json")
    assert json.loads(out)[0]["handoff"] == handoff
    _, out, _ = run(capsys, "task", "show", "capped")
    assert "status: incomplete" in out and '"next_steps": [' in out
    _, out, _ = run(capsys, "task", "show", "capped", "--json")
    assert json.loads(out)["turns"] == 30


def test_show_of_an_unknown_task_says_how_to_find_ids(capsys):
    code, _, err = run(capsys, "task", "show", "nope")
    assert code == 1 and "jada task list" in err


def test_requeue_brings_back_a_dead_letter_and_refuses_a_running_task(capsys):
    queue = open_queue()
    queue.enqueue("dead", "x", max_attempts=1)
    queue.fail(queue.claim(worker="w", lease_seconds=60), error="boom", retryable=True)
    code, out, _ = run(capsys, "task", "requeue", "dead")
    assert code == 0 and "next attempt 2 of 2" in out
    assert queue.get("dead").status == "queued"
    queue.claim(worker="w", lease_seconds=60)
    code, _, err = run(capsys, "task", "requeue", "dead")
    assert code == 1 and "is running" in err


def test_cancel_cancels_once(capsys):
    open_queue().enqueue("t1", "x")
    assert run(capsys, "task", "cancel", "t1")[0] == 0
    code, _, err = run(capsys, "task", "cancel", "t1")
    assert code == 1 and "already cancelled" in err
    assert run(capsys, "task", "list", "--status", "bogus")[0] == 2


def test_queue_init_creates_the_sqlite_schema(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("JADA_TASK_QUEUE_URL", f"sqlite:///{tmp_path}/fresh.db")
    code, out, _ = run(capsys, "queue", "init")
    assert code == 0 and "fresh.db" in out
    assert (tmp_path / "fresh.db").exists()


def test_show_gives_local_iso_times_with_their_age_and_keeps_the_run_id_with_its_link(capsys, monkeypatch):
    monkeypatch.setenv("JADA_WEBSERVER_URL", "http://127.0.0.1:3100")
    queue = open_queue()
    queue.enqueue("t", "Job")
    lease = queue.claim(worker="w", lease_seconds=60)
    queue.mark_running(lease, run_id="run-1")
    queue.complete(lease, outcome="incomplete", turns=30, cost_usd=0.1, summary=None, handoff=None)
    queue.claim(worker="w", lease_seconds=60)  # the next attempt clears the task's run_id until it runs
    _, out, _ = run(capsys, "task", "show", "t")
    fields = dict(line.strip().split(": ", 1) for line in out.splitlines() if ": " in line)
    assert fields["run_id"] == "run-1  http://127.0.0.1:3100/runs/run-1"
    created = fields["created_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d \(just now\)", created), created
    assert fields["lease_expires_at"].endswith("(in 59 s)") or fields["lease_expires_at"].endswith(
        "(in 1 min)"
    )


def test_ages_read_like_a_person_would_say_them():
    from jada_pipelines.agents.cli import age

    assert [age(1000 - d, now=1000) for d in (2, 42, 185, 7300, 86400, 3 * 86400, -240)] == [
        "just now",
        "42 s ago",
        "3 min ago",
        "2 h ago",
        "1 day ago",
        "3 days ago",
        "in 4 min",
    ]


def test_list_marks_a_cut_error_with_an_ellipsis_and_cuts_a_short_one_not_at_all(capsys):
    queue = open_queue()
    for task_id, error in (("long", "word " * 30), ("short", "It broke.")):
        queue.enqueue(task_id, "Job")
        lease = queue.claim(worker="w", lease_seconds=60)
        queue.fail(lease, error=error, retryable=False)
    _, out, _ = run(capsys, "task", "list")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert rows["long"].endswith("word…") and len(rows["long"].split("  ")[-1].strip()) <= 60
    assert rows["short"].endswith("It broke.")


def test_add_takes_a_backend_and_a_cost_ceiling(capsys):
    code, _, _ = run(
        capsys, "task", "add", "Refactor", "--id", "r1", "--backend", "claude-code", "--max-cost-usd", "3"
    )
    task = open_queue().get("r1")
    assert (code, task.backend, task.max_cost_usd) == (0, "claude-code", 3.0)
    code, err = usage_error(capsys, "task", "add", "x", "--id", "r2", "--max-cost-usd", "0")
    assert code == 2 and "argument --max-cost-usd: 0 must be more than 0 dollars" in err
    assert open_queue().get("r2") is None
