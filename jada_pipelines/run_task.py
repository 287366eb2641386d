"""The ECS run task's entrypoint: read the run's secrets from Secrets Manager with the task role, then exec the
command the launcher gave the container (``dagster api execute_run ...``).

``deploy/ecs/task-definitions/run.json`` sets ``entryPoint`` to ``python -m jada_pipelines.run_task``, and
EcsRunLauncher replaces only the ``command``, which arrives here as arguments. The task definition injects no
secret: it names them (``JADA_ANTHROPIC_API_KEY_SECRET_ID``, ``JADA_POSTGRES_URL_SECRET_ID``), and this reads
them at start. So they are not in the container's environment that ECS shows and starts every process with,
only in the environment of the worker this execs, a root process whose ``/proc/PID/environ`` a slot uid cannot
read (``agents/uid_sandbox.py``); the model's commands get the allow-list of ``agents/tools.py`` either way,
which never holds them, nor ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``.
"""

from __future__ import annotations

import os
import sys

from jada_pipelines import settings
from jada_pipelines.aws_clients import client, error_code

# The variable a secret's value is read into, and the setting that names the secret.
SECRET_IDS = {
    "ANTHROPIC_API_KEY": "JADA_ANTHROPIC_API_KEY_SECRET_ID",
    "JADA_POSTGRES_URL": "JADA_POSTGRES_URL_SECRET_ID",
}


def secrets_from_secrets_manager() -> dict[str, str]:
    """The values of the secrets the ``JADA_*_SECRET_ID`` settings name; ConfigError says what to fix."""
    from botocore.exceptions import BotoCoreError, ClientError

    wanted = {target: secret_id for target, name in SECRET_IDS.items() if (secret_id := settings.get(name))}
    values: dict[str, str] = {}
    for target, secret_id in wanted.items():
        setting = SECRET_IDS[target]
        if settings.get(target) is not None:
            raise settings.ConfigError(
                f"{target} is in this task's environment and {setting} names a secret too: remove {target} "
                "from the task definition (its `environment` or `secrets`), so only the worker holds it."
            )
        try:
            response = client("secretsmanager").get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            code = error_code(exc)
            raise settings.ConfigError(
                f"Secrets Manager refused {setting}={secret_id!r} ({code}): "
                + (
                    "create the secret, or correct the setting."
                    if code == "ResourceNotFoundException"
                    else "give the run task's role secretsmanager:GetSecretValue on it "
                    "(deploy/ecs/iam/jada-run-task-role.json)."
                )
            ) from None
        except BotoCoreError as exc:
            raise settings.ConfigError(
                f"Secrets Manager could not be reached for {setting}={secret_id!r} ({type(exc).__name__}): check "
                "the task's network route to Secrets Manager and AWS_DEFAULT_REGION."
            ) from None
        value = (response.get("SecretString") or "").strip()
        if not value:
            raise settings.ConfigError(
                f"The secret {secret_id!r} ({setting}) holds no text: store {target}'s value in it as a plain "
                "string (`aws secretsmanager put-secret-value --secret-string ...`)."
            )
        values[target] = value
    return values


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print(
            "usage: python -m jada_pipelines.run_task COMMAND [ARG...]: reads the secrets named by "
            f"{', '.join(SECRET_IDS.values())} from Secrets Manager, then runs COMMAND with them.",
            file=sys.stderr,
        )
        return 2
    try:
        values = secrets_from_secrets_manager()
    except settings.ConfigError as exc:
        print(f"jada run task: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG: the task stops at once, and the sentence is in its log
    os.execvpe(command[0], command, {**os.environ, **values})
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
