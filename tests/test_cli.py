"""`jada` reads ./.env like `dagster dev` does, and the shell's own variables win over it."""

from __future__ import annotations

import subprocess
import sys


def _jada(cwd, env, *args):
    return subprocess.run(
        [sys.executable, "-m", "jada_pipelines.cli", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_jada_reads_settings_from_the_dotenv_file_in_the_current_folder(tmp_path):
    (tmp_path / ".env").write_text("JADA_TASK_QUEUE_URL=bogus://nowhere\n")
    out = _jada(tmp_path, {"PATH": "", "DAGSTER_HOME": str(tmp_path)}, "task", "list")

    assert out.returncode == 2
    assert "JADA_TASK_QUEUE_URL='bogus://nowhere' is not understood" in out.stderr


def test_a_variable_set_in_the_shell_wins_over_the_dotenv_file(tmp_path):
    (tmp_path / ".env").write_text("JADA_TASK_QUEUE_URL=bogus://nowhere\n")
    env = {"PATH": "", "DAGSTER_HOME": str(tmp_path), "JADA_TASK_QUEUE_URL": f"sqlite:///{tmp_path}/tasks.db"}
    out = _jada(tmp_path, env, "task", "list")

    assert out.returncode == 0, out.stderr
    assert "STATUS" in out.stdout


def test_without_dagster_home_jada_says_which_variable_to_export(tmp_path):
    out = _jada(tmp_path, {"PATH": ""}, "task", "list")

    assert out.returncode == 2
    assert "DAGSTER_HOME is not set: export DAGSTER_HOME=" in out.stderr
