"""Rows that ask for work become tasks once; an edited prompt supersedes the row's unfinished task."""

from __future__ import annotations

import pandas as pd
import pytest

from jada_pipelines.port_sheet.tasks import requested_backends, requested_tasks, sync_tasks, task_id_for


@pytest.fixture
def queue(task_queue_backend):
    """Each test runs on every queue backend (SQLite, and DynamoDB on moto)."""
    return task_queue_backend


def rows(*pairs: tuple) -> pd.DataFrame:
    return pd.DataFrame({"id": [key for key, _ in pairs], "task": [task for _, task in pairs]})


def test_a_task_id_is_stable_for_a_row_and_prompt_and_changes_with_either():
    assert task_id_for("P-1", "fix it") == task_id_for("P-1", "fix it")
    assert task_id_for("P-1", "fix it") != task_id_for("P-1", "fix it now")
    assert task_id_for("P-1", "fix it") != task_id_for("P-2", "fix it")
    assert task_id_for("P-1", "fix it").startswith("sheet-P-1-")


def test_keys_that_sanitise_alike_still_get_different_task_ids():
    assert task_id_for("a b", "x") != task_id_for("a_b", "x")
    assert ":" not in task_id_for("port:7", "x")


def test_only_rows_with_a_non_empty_task_cell_ask_for_work():
    requested = requested_tasks(
        rows(("a", "do a"), ("b", ""), ("c", "   "), ("d", None), ("e", pd.NA), (7, " do seven ")),
        key_column="id",
        task_column="task",
    )
    assert requested == {
        "a": (task_id_for("a", "do a"), "do a"),
        "7": (task_id_for("7", "do seven"), "do seven"),
    }


def test_a_sheet_without_the_task_column_asks_for_nothing():
    assert requested_tasks(pd.DataFrame({"id": ["a"]}), key_column="id", task_column="task") == {}


def test_the_same_prompt_pulled_twice_enqueues_once(queue):
    requested = requested_tasks(rows(("a", "do a")), key_column="id", task_column="task")
    first = sync_tasks(queue, requested)
    second = sync_tasks(queue, requested)
    assert len(first.enqueued) == 1 and first.already_known == []
    assert second.enqueued == [] and second.already_known == first.enqueued
    task = queue.get(first.enqueued[0])
    assert task.status == "queued" and task.source == "port_sheet:a" and task.prompt == "do a"


def test_an_edited_prompt_enqueues_a_new_task_and_supersedes_the_old_one(queue):
    old = sync_tasks(queue, requested_tasks(rows(("a", "do a")), key_column="id", task_column="task"))
    new = sync_tasks(queue, requested_tasks(rows(("a", "do a better")), key_column="id", task_column="task"))
    assert new.superseded == old.enqueued
    assert queue.get(old.enqueued[0]).status == "superseded"
    assert queue.get(new.enqueued[0]).status == "queued"


def test_a_finished_task_is_not_superseded_and_other_rows_are_not_touched(queue):
    done = queue.enqueue("earlier", "old work", source="port_sheet:a")
    lease = queue.claim(worker="test", lease_seconds=60)
    queue.complete(lease, outcome="done", turns=1, cost_usd=0.01, summary="ok")
    neighbour = queue.enqueue("neighbour", "other work", source="port_sheet:ab")
    outcome = sync_tasks(queue, requested_tasks(rows(("a", "new work")), key_column="id", task_column="task"))
    assert outcome.superseded == []
    assert queue.get(done.task.id).status == "done"
    assert queue.get(neighbour.task.id).status == "queued"


def test_the_optional_backend_column_sets_each_rows_backend_and_a_bad_value_is_named(queue):
    sheet = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "task": ["do a", "do b", "do c", "do d"],
            "backend": ["claude-code", "", "Messages", "codex"],
        }
    )
    backends, bad = requested_backends(sheet, key_column="id")
    assert (backends, bad) == ({"a": "claude-code", "c": "messages"}, {"d": "codex"})
    requested = requested_tasks(sheet, key_column="id", task_column="task")
    sync_tasks(queue, requested, backends)
    assert queue.get(task_id_for("a", "do a")).backend == "claude-code"
    assert queue.get(task_id_for("b", "do b")).backend is None  # JADA_AGENT_BACKEND decides
    assert queue.get(task_id_for("c", "do c")).backend == "messages"
    assert requested_backends(pd.DataFrame({"id": ["a"]}), key_column="id") == ({}, {})
