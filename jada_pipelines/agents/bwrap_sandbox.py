"""The bubblewrap sandbox every bash command of a session runs in. Plain Python, no Dagster.

``bwrap_argv(policy, command)`` turns a small ``SandboxPolicy`` into the ``bwrap`` argument list:
- its own user, PID, IPC, UTS and (unless ``network``) network namespaces, a fresh ``/proc`` that shows only
  the sandbox's processes, ``--die-with-parent`` and ``--new-session``;
- no capabilities and no nested user namespaces inside (``--cap-drop ALL``, ``--disable-userns``), even when
  the worker runs as root;
- the task's working directory read-write at its own path, the system's program and library folders and a
  few harmless files of ``/etc`` read-only, a private size-limited ``/tmp`` and a minimal ``/dev``. Nothing
  else of the host: not the data directory, the Dagster home, the token file, the repository, ``/root`` or
  ``/home``. The sandbox's own root and ``/dev`` are read-only, ``/dev/shm`` is a size-limited tmpfs too;
- the environment built from the allow-list only (``--clearenv``, then ``--setenv``);
- resource limits set inside the sandbox, on the command itself (``prlimit``): file size, processes and
  address space. ``RLIMIT_NPROC`` does not bind a process whose real user on the host is root; there the
  number of processes is bounded by the service's pids cgroup (systemd ``TasksMax=``, see deploy/) and by the
  command timeout, which ends the whole PID namespace.

When the sandbox's first process (the command's shell) exits, the kernel ends every process left in its PID
namespace: a ``setsid sleep 300 &`` dies with the command that started it, pipe or no pipe. Killing ``bwrap``
(timeout, lease lost, output flood) ends the namespace the same way.

``JADA_AGENT_SANDBOX=uid`` runs each command as an unprivileged slot uid instead, where bubblewrap cannot run
(``uid_sandbox.py``); ``JADA_AGENT_SANDBOX=off`` runs commands unconfined (see docs/agents.md for when that is
acceptable); ``JADA_AGENT_NETWORK=host`` shares the host's network, loopback services included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jada_pipelines import settings

# The host's program and library folders, bound read-only where they exist (a merged-/usr system has /bin,
# /lib... as links into /usr, recreated as the same links inside).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Files of /etc that programs need to start and that hold nothing secret: the loader cache, Debian's
# alternatives links (awk, editor...), time zones, user names, and TLS roots for JADA_AGENT_NETWORK=host.
ETC_PATHS = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
    "/etc/gitconfig",
)
# Only with the host's network: name resolution.
NETWORK_ETC_PATHS = ("/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/gai.conf")
# Inside, the command runs as an ordinary user; on the host its files belong to the worker's user.
SANDBOX_UID = 1000
SANDBOX_HOSTNAME = "jada-sandbox"

INSTALL_HINT = (
    "install bubblewrap (`apt-get install bubblewrap`, which `make dev` and `make test` do as root), or allow "
    "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or "
    "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu)"
)


@dataclass(frozen=True)
class Rlimits:
    """Per-command resource limits, applied inside the sandbox (also when it is off)."""

    file_size_mb: int = settings.default(
        "JADA_AGENT_MAX_FILE_MB"
    )  # RLIMIT_FSIZE: the largest file one command may write
    processes: int = settings.default(
        "JADA_AGENT_MAX_PROCESSES"
    )  # RLIMIT_NPROC: see the module docstring for a root worker
    address_space_mb: int = settings.default(
        "JADA_AGENT_MAX_MEMORY_MB"
    )  # RLIMIT_AS: virtual memory of each process

    @classmethod
    def from_env(cls) -> Rlimits:
        return cls(
            file_size_mb=settings.get("JADA_AGENT_MAX_FILE_MB"),
            processes=settings.get("JADA_AGENT_MAX_PROCESSES"),
            address_space_mb=settings.get("JADA_AGENT_MAX_MEMORY_MB"),
        )

    def prlimit_argv(self) -> list[str]:
        mb = 1024 * 1024
        return [
            "prlimit",
            f"--fsize={self.file_size_mb * mb}",
            f"--nproc={self.processes}",
            f"--as={self.address_space_mb * mb}",
            "--",
        ]


@dataclass(frozen=True)
class SandboxPolicy:
    workdir: Path
    env: Mapping[str, str]
    network: bool = False
    tmp_size_mb: int = 256
    rlimits: Rlimits = field(default_factory=Rlimits)
    system_paths: tuple[str, ...] = SYSTEM_PATHS
    etc_paths: tuple[str, ...] = ETC_PATHS
    # More host paths to show inside: (host path, path inside, writable). The Claude Code backend binds its
    # CLI read-only and the task's config directory and key-proxy socket folder read-write.
    binds: tuple[tuple[str, str, bool], ...] = ()


def _system_mounts(paths: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    for path in paths:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


def bwrap_argv(
    policy: SandboxPolicy,
    command: str,
    *,
    bwrap: str = "bwrap",
    arguments: tuple[str, ...] = (),
    info_fd: int | None = None,
) -> list[str]:
    """The full argument list that runs ``command`` with bash inside the sandbox ``policy`` describes;
    ``arguments`` follow as bash's ``$0 $1...`` (``bash -c command args...``). ``info_fd``: bwrap writes
    ``{"child-pid": N}`` there, the host PID of the sandbox's first process (see ``end_sandbox``)."""
    workdir = str(policy.workdir)
    args = [
        bwrap,
        *([] if info_fd is None else ["--info-fd", str(info_fd)]),
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        *([] if policy.network else ["--unshare-net"]),
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        SANDBOX_HOSTNAME,
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--disable-userns",
        "--clearenv",
    ]
    for name, value in policy.env.items():
        args += ["--setenv", name, value]
    args += _system_mounts(policy.system_paths)
    etc = policy.etc_paths + (NETWORK_ETC_PATHS if policy.network else ())
    for path in etc:
        args += ["--ro-bind-try", path, path]
    tmp_size = str(policy.tmp_size_mb * 1024 * 1024)
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # Every writable place but the working directory is a size-limited tmpfs (they are memory)...
        "--size",
        tmp_size,
        "--tmpfs",
        "/dev/shm",
        "--size",
        tmp_size,
        "--tmpfs",
        "/tmp",
        "--bind",
        workdir,
        workdir,
    ]
    for source, target, writable in policy.binds:
        args += ["--bind" if writable else "--ro-bind", source, target]
    args += [
        # ...and the rest is read-only: the sandbox's own root (where bwrap made the working directory's
        # parents) and /dev (its device nodes stay usable).
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/",
        "--chdir",
        workdir,
        "--",
        *policy.rlimits.prlimit_argv(),
        "/bin/bash",
        "-c",
        command,
        *arguments,
    ]
    return args


def sandbox_child_pid(info: bytes) -> int | None:
    """The host PID of the sandbox's first process, from what bwrap wrote to its ``--info-fd``."""
    import json

    try:
        return int(json.loads(info.decode())["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


def end_sandbox(child_pid: int, *, timeout_s: float = 2.0) -> bool:
    """SIGKILL the sandbox's first process and wait until it is gone: the kernel then ends every other process
    of its PID namespace before that process can be reaped, so nothing the command started is left. Returns
    False when it still ran after ``timeout_s``."""
    import signal

    try:
        os.kill(child_pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{child_pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):  # exited; only its parent's reaping is left
            return True
        time.sleep(0.01)
    return False


# -- settings -------------------------------------------------------------------------------------------------


def sandbox_mode() -> str:
    """``bwrap`` (the default), ``uid`` (each command as a slot uid, ``uid_sandbox.py``) or ``off``
    (``JADA_AGENT_SANDBOX=off``: commands run unconfined)."""
    raw = settings.get("JADA_AGENT_SANDBOX").lower()
    if raw in ("bwrap", "on"):
        return "bwrap"
    if raw in ("uid", "off"):
        return raw
    raise settings.ConfigError(
        f"JADA_AGENT_SANDBOX={raw!r} is not a sandbox mode: leave it unset (bubblewrap), set it to 'uid' where "
        "bubblewrap cannot run (each command as an unprivileged slot uid), or to 'off' to run the model's "
        "commands unconfined."
    )


def network_mode() -> str:
    """``none`` (the default: the sandbox has only its own loopback) or ``host`` (``JADA_AGENT_NETWORK``)."""
    raw = settings.get("JADA_AGENT_NETWORK").lower()
    if raw not in ("none", "host"):
        raise settings.ConfigError(
            f"JADA_AGENT_NETWORK={raw!r} is not a network mode: leave it unset (no network) or set it to "
            "'host' to share this machine's network, its loopback services included."
        )
    return raw


@dataclass(frozen=True)
class SandboxStatus:
    mode: str  # bwrap | uid | off
    network: str  # none | host
    problem: str | None  # why no session can run, naming the fix; None when sessions can run

    @property
    def summary(self) -> str:
        if self.mode == "off":
            return (
                "JADA_AGENT_SANDBOX=off: the model's commands run unconfined, as the run worker's user, and can "
                "read its secrets and files."
            )
        if self.mode == "uid":
            return "uid (network not confined)"
        return f"bubblewrap, network {self.network}"


# A probe spawns bwrap once; the sensor asks every tick, so the answer is kept this long.
_PROBE_TTL_S = 60.0
_probe_cache: dict[str, tuple[float, str | None]] = {}


def probe_bwrap(bwrap: str | None = None) -> str | None:
    """``None`` when bwrap can build a sandbox here; otherwise why not, with the fix."""
    path = bwrap or shutil.which("bwrap")
    if path is None:
        return f"bubblewrap (bwrap) is not installed, so no agent session can run sandboxed: {INSTALL_HINT}."
    cached = _probe_cache.get(path)
    if cached and time.monotonic() - cached[0] < _PROBE_TTL_S:
        return cached[1]
    try:
        with tempfile.TemporaryDirectory(prefix="jada-sandbox-probe-") as workdir:
            argv = bwrap_argv(SandboxPolicy(workdir=Path(workdir), env={}), "true", bwrap=path)
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, env={})
        problem = None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            problem = (
                f"bubblewrap cannot create a sandbox here ({detail[-1] if detail else f'exit {done.returncode}'}), "
                f"so no agent session can run: {INSTALL_HINT}."
            )
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = f"bubblewrap could not be started ({exc}), so no agent session can run: {INSTALL_HINT}."
    _probe_cache[path] = (time.monotonic(), problem)
    return problem


def sandbox_status() -> SandboxStatus:
    """The sandbox sessions would get now; ``problem`` says why none can run (sensor skip, health ERROR)."""
    try:
        mode, network = sandbox_mode(), network_mode()
    except settings.ConfigError as exc:
        return SandboxStatus("bwrap", "none", str(exc))
    if mode == "uid":
        from jada_pipelines.agents.uid_sandbox import probe_uid_mode

        return SandboxStatus(mode, "host", probe_uid_mode())
    return SandboxStatus(mode, network, probe_bwrap() if mode == "bwrap" else None)
