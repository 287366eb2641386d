# The image docs/production.md and deploy/ecs/task-definitions/*.json name: the code location, its pinned
# dependencies, bubblewrap and the session slot uids. Build and push: docs/production.md, section 4.
#
#   docker build -t jada-pipelines .
#
# One image for every ECS task: the run task starts as root (its task definition's "user": "0") because each
# model command is switched to a slot uid (JADA_AGENT_SANDBOX=uid); its other users are set in their task
# definitions too. The default user is the unprivileged `jada`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    JADA_DATA_DIR=/var/lib/jada/data

# bubblewrap: the sandbox where user namespaces exist (a VM, a Docker host that allows them); util-linux:
# setpriv and prlimit for JADA_AGENT_SANDBOX=uid; git for the sessions' work; tini reaps orphans when no init
# process is given (ECS: the task definitions' initProcessEnabled).
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap util-linux git tini ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# The service user, and one user per session slot of JADA_AGENT_SANDBOX=uid (JADA_AGENT_UID_RANGE=61000-61015):
# no home, no shell, no group shared with anyone.
RUN groupadd --gid 10001 jada \
    && useradd --uid 10001 --gid jada --home-dir /opt/jada --no-create-home --shell /usr/sbin/nologin jada \
    && for uid in $(seq 61000 61015); do \
         groupadd --gid "$uid" "jada-slot-$uid" \
         && useradd --uid "$uid" --gid "$uid" --no-create-home --home-dir /nonexistent \
              --shell /usr/sbin/nologin "jada-slot-$uid"; \
       done

WORKDIR /opt/jada
COPY requirements.lock pyproject.toml README.md workspace.yaml ./
COPY jada_pipelines ./jada_pipelines
# The whole tree pinned by the lock; no dev tools, no Claude Code CLI (the Messages backend runs on Fargate).
RUN pip install -c requirements.lock . \
    && python -c "import jada_pipelines.definitions, jada_pipelines.run_task"

# The instance every task loads (EcsRunLauncher, Postgres storage); readable by its owner only, so a slot uid
# cannot read it (uid mode checks that at the start of each session).
COPY deploy/ecs/dagster.yaml /opt/dagster/home/dagster.yaml
RUN mkdir -p /var/lib/jada/data \
    && chown -R jada:jada /opt/dagster/home /var/lib/jada \
    && chmod 0700 /opt/dagster/home /var/lib/jada/data \
    # The world-writable folders of the image: closed to the slot uids (root and jada may still write).
    # /dev/shm is mounted by the container runtime at start; docs/agents.md says what that leaves open.
    && chgrp jada /tmp /var/tmp \
    && chmod 1770 /tmp /var/tmp

USER jada
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["dagster-webserver", "--host", "0.0.0.0", "--port", "3000", "--workspace", "workspace.yaml"]
