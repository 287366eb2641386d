"""``JADA_AGENT_SANDBOX=uid``: the model's commands confined by plain Unix users, where bubblewrap cannot run
(Fargate, Docker's default seccomp profile, hosts without unprivileged user namespaces). Plain Python, no Dagster.

The run worker runs as root and each session takes one *slot uid* from ``JADA_AGENT_UID_RANGE`` (default
61000-61015), held by an ``flock`` on a file in the data directory for as long as the session runs: two sessions
never share a uid, also across ECS tasks that share the data volume, and a worker killed with -9 frees its
slot with its process. Every bash command then runs as that uid (and gid of the same number):

- through ``setpriv``: real, effective and saved ids set, no supplementary groups, ``no_new_privs`` (a setuid
  program cannot give privileges back), an empty capability bounding set; a new session and process group;
  the environment built from the allow-list only, with a private ``TMPDIR`` inside the working directory;
- under the same ``prlimit`` limits as in bubblewrap. ``RLIMIT_NPROC`` binds here, because the uid is not
  root and the uid belongs to this session alone: a fork storm stops at the limit;
- when the command's shell exits, when it times out, prints too much or the session is stopped, every process
  of the uid is killed (``kill(-1, SIGKILL)`` sent *as the uid*, which the kernel applies to all of its
  processes at once, a fork storm included), so nothing outlives the command, as in bubblewrap.

The worker calls ``prctl(PR_SET_DUMPABLE, 0)`` before the first command, so its ``/proc/PID/environ``,
``mem`` and ``fd`` belong to root and stay closed to the slot uid. The working directory is owned by the slot
uid, mode 0700, re-owned at the start of each attempt and given back to the worker at its end, so a later
session under the same uid cannot read it. At the start, a probe run *as the slot uid* checks that it cannot
read, list or write the data directory, the queue, the transcripts, the Dagster home or the token files, and
that it can reach its working directory; the session refuses to start otherwise, naming the path and the fix.
At the end, whatever the uid left in ``/tmp``, ``/var/tmp`` and ``/dev/shm`` is removed.

Not confined in this mode: the network (see docs/agents.md: a security group does that part on AWS), and files
the host leaves world-readable or world-writable.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jada_pipelines import settings

# Directories every user may write to: what a slot uid leaves there is removed at the end of its session.
SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
# The command's private temporary folder, inside its working directory.
TMP_NAME = ".jada-tmp"
SLOTS_DIR = "uid-slots"
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
# How long the end of a command may take to see every process of the uid gone.
_KILL_WAIT_S = 2.0


class UidSandboxError(settings.ConfigError):
    """The uid sandbox cannot confine a session here; the message names the path or setting and the fix."""

    transient = False


class UidSlotsBusy(UidSandboxError):
    """Every slot uid is held by a running session: the attempt goes back to the queue."""

    transient = True


def uid_range() -> range:
    return settings.agent_uid_range()


def probe_uid_mode() -> str | None:
    """``None`` when this worker can run commands as slot uids; otherwise why not, with the fix."""
    try:
        uid_range()
    except settings.ConfigError as exc:
        return str(exc)
    if os.geteuid() != 0:
        return (
            f"JADA_AGENT_SANDBOX=uid needs the run worker to run as root (it switches each command to a slot uid), "
            f"but it runs as uid {os.geteuid()}: run the worker as root (the run task's `user`), or use bubblewrap."
        )
    missing = [tool for tool in ("setpriv", "prlimit") if shutil.which(tool) is None]
    if missing:
        return f"JADA_AGENT_SANDBOX=uid needs {' and '.join(missing)} (util-linux): `apt-get install util-linux`."
    return None


def prepare_worker() -> None:
    """Before the first command: ``prctl(PR_SET_DUMPABLE, 0)``, so this process's /proc files (environ, mem,
    fd...) become root's, closed to every other uid (it holds until the worker execs; children inherit it until
    they exec); and ``PR_SET_CHILD_SUBREAPER``, so what a command leaves behind is reparented to the worker, which
    reaps it at once (a process killed but not reaped still counts against the uid's RLIMIT_NPROC)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for option, value, name in (
        (_PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE, 0"),
        (_PR_SET_CHILD_SUBREAPER, 1, "PR_SET_CHILD_SUBREAPER, 1"),
    ):
        if libc.prctl(option, value, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl({name}) failed")


def reap(uid: int, keep: int | None = None) -> None:
    """Reap the ended processes of ``uid`` that were reparented to this worker, but not ``keep`` (the command's
    shell, which its ``Popen`` waits for)."""
    for pid in uid_processes(uid, zombies=True, ours=True):
        if pid != keep:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def uid_processes(uid: int, *, zombies: bool = False, ours: bool = False) -> list[int]:
    """PIDs of the processes whose real, effective, saved or file-system uid is ``uid``: the live ones, and with
    ``zombies`` also those that ended but were not reaped yet (they still count against the uid's RLIMIT_NPROC).
    Zombies whose parent is this process are listed only with ``ours``."""
    found = []
    me = str(os.getpid())
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except (OSError, ValueError):
            continue
        if str(uid) not in fields.get("Uid", "").split():
            continue
        ended = fields.get("State", "").strip().startswith(("Z", "X"))
        if ended and (not zombies or (fields.get("PPid", "").strip() == me) != ours):
            continue
        found.append(int(name))
    return found


@dataclass
class UidSlot:
    """One session's slot uid, held while the session runs (``open_slot``; ``close`` at its end)."""

    uid: int
    workdir: Path
    lock_fd: int
    worker_uid: int
    worker_gid: int

    @property
    def gid(self) -> int:
        return self.uid

    # -- commands ---------------------------------------------------------------------------------------------

    def tmpdir(self) -> Path:
        return self.workdir / TMP_NAME

    def command_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """The command's environment: the allow-listed ``env``, with a fresh private ``TMPDIR`` it owns."""
        tmp = self.tmpdir()
        self._remove(tmp)
        tmp.mkdir(mode=0o700)
        os.lchown(tmp, self.uid, self.gid)
        return {**env, "TMPDIR": str(tmp)}

    def argv(self, command: str, prlimit: list[str], arguments: tuple[str, ...] = ()) -> list[str]:
        """``setpriv`` (ids, no groups, no_new_privs, no capabilities), then the limits, then bash."""
        return [
            *self._as_uid(),
            *prlimit,
            "/bin/bash",
            "-c",
            command,
            *arguments,
        ]

    def _as_uid(self) -> list[str]:
        return [
            shutil.which("setpriv") or "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--no-new-privs",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--",
        ]

    def end_command(self) -> bool:
        """Kill every process of the uid and remove the command's private TMPDIR. False when a process still
        ran after a few seconds of kills."""
        gone = self.kill_all()
        self._remove(self.tmpdir())
        return gone

    def kill_all(self, timeout_s: float = _KILL_WAIT_S, *, keep: int | None = None) -> bool:
        """SIGKILL every process of the uid, until none is left (or ``timeout_s``). The kill is sent as the
        uid itself with ``kill(-1)``, which reaches all of its processes in one pass, however fast they fork.
        Then reap them (all but ``keep``), so they no longer count against RLIMIT_NPROC."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not uid_processes(self.uid):
                reap(self.uid, keep)
                # Those another parent (the init process, without the subreaper) must reap: the next command waits.
                while uid_processes(self.uid, zombies=True) and time.monotonic() < deadline:
                    time.sleep(0.01)
                    reap(self.uid, keep)
                return True
            subprocess.run(
                [*self._as_uid(), "/bin/bash", "-c", "kill -KILL -1 2>/dev/null; exit 0"],
                env={"PATH": "/usr/bin:/bin"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            if time.monotonic() > deadline:
                return not uid_processes(self.uid)
            time.sleep(0.02)

    def own(self, path: Path) -> None:
        """Give a file the worker made inside the working directory (the editor's) to the slot uid."""
        with contextlib.suppress(FileNotFoundError):
            os.lchown(path, self.uid, self.gid)

    # -- session ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """The end of the session: no process of the uid left, nothing of it in the shared temporary folders,
        the working directory given back to the worker (so the next session under this uid cannot read it),
        and the slot free."""
        if self.lock_fd < 0:
            return
        try:
            self.kill_all()
            self._remove(self.tmpdir())
            remove_left_in_shared_dirs(self.uid)
            chown_tree(self.workdir, self.worker_uid, self.worker_gid)
        finally:
            os.close(self.lock_fd)
            self.lock_fd = -1

    @staticmethod
    def _remove(path: Path) -> None:
        # No process of the uid runs now (or it is only the worker's own files): rmtree never follows links.
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """``chown -hR uid:gid root``, never following a symbolic link; ``root`` itself becomes mode 0700."""
    os.lchown(root, uid, gid)
    os.chmod(root, 0o700)
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(parent, name), uid, gid)


def remove_left_in_shared_dirs(uid: int, roots: Iterable[str] = SHARED_WRITABLE) -> list[str]:
    """Remove what ``uid`` owns in the world-writable folders (and the world-writable folders within them).
    Returns the removed paths."""
    removed = []
    stack = [root for root in roots if os.path.isdir(root) and not os.path.islink(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_uid == uid:
                with contextlib.suppress(OSError):
                    if stat.S_ISDIR(st.st_mode):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                    removed.append(entry.path)
            elif stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_IWOTH:
                stack.append(entry.path)
    return removed


def protected_paths() -> list[Path]:
    """What no command may read: the data directory (queue, transcripts, other tasks), the Dagster home and the
    Google token files."""
    paths = [settings.data_dir(), settings.dagster_home()]
    for name in (
        "JADA_GOOGLE_TOKEN_FILE",
        "JADA_GOOGLE_SERVICE_ACCOUNT_FILE",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ):
        if value := settings.get(name):
            paths.append(Path(value))
    return [Path(os.path.abspath(path)) for path in paths]


# The probe, run as the slot uid: T:path may be traversed only (no listing, no writing); N:path grants nothing;
# W:path must be usable (the working directory). Prints what breaks the rule.
_PROBE = r"""
for p; do
  q=${p#?:}
  case $p in
    T:*) { [ -r "$q" ] || [ -w "$q" ]; } && echo "readable $q" ;;
    N:*) { [ -r "$q" ] || [ -w "$q" ] || { [ -d "$q" ] && [ -x "$q" ]; }; } && echo "readable $q" ;;
    W:*) { [ -x "$q" ] && [ -w "$q" ]; } || echo "unreachable $q" ;;
  esac
done
exit 0
"""


def _probe_list(workdir: Path, protected: list[Path]) -> list[str]:
    """The probe's arguments: the protected paths, and where one of them holds the working directory, the path
    down to it (traverse only) with every entry beside it (nothing)."""
    args: list[str] = []
    chain = {workdir, *workdir.parents}
    for path in protected:
        if path not in chain:
            args.append(f"N:{path}")
            continue
        if path == workdir:
            continue
        current = path
        while current != workdir:
            args.append(f"T:{current}")
            nxt = next(p for p in chain if p.parent == current)
            with contextlib.suppress(OSError):
                for entry in os.scandir(current):
                    if entry.path != str(nxt):
                        args.append(f"N:{entry.path}")
            current = nxt
    args.append(f"W:{workdir}")
    return list(dict.fromkeys(args))


def open_traverse_path(workdir: Path) -> None:
    """Let the slot uid pass through (``o+x``, never ``r`` or ``w``: a mode of 0711) the folders the worker owns
    between the data directory (or a workdir root) and the working directory."""
    data_dir = settings.data_dir()
    tops = [data_dir, *settings.workdir_roots()]
    me = os.getuid()
    for folder in workdir.parents:
        if not any(folder == top or folder.is_relative_to(top) for top in tops):
            break
        st = folder.stat()
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid == me and mode != mode & ~0o066 | 0o011:
            os.chmod(folder, mode & ~0o066 | 0o011)


def open_slot(workdir: Path) -> UidSlot:
    """Take a free slot uid for a session in ``workdir``: kill what that uid left behind, check that it cannot
    reach any protected path, and give it the working directory. UidSandboxError names what is wrong."""
    if problem := probe_uid_mode():
        raise UidSandboxError(problem)
    prepare_worker()
    workdir = Path(workdir).resolve()
    slots = settings.data_dir() / SLOTS_DIR
    slots.mkdir(mode=0o700, exist_ok=True)
    ids = uid_range()
    slot = None
    for uid in ids:
        fd = os.open(slots / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                continue
            raise
        slot = UidSlot(uid, workdir, fd, os.getuid(), os.getgid())
        break
    if slot is None:
        raise UidSlotsBusy(
            f"all {len(ids)} slot uids of JADA_AGENT_UID_RANGE ({ids.start}-{ids.stop - 1}) are held by running "
            "sessions: widen the range (one uid per concurrent session, across every worker sharing the data "
            "directory)."
        )
    try:
        slot.kill_all()  # a worker killed with -9 may have left some behind
        remove_left_in_shared_dirs(slot.uid)
        open_traverse_path(workdir)
        chown_tree(workdir, slot.uid, slot.gid)
        problems = probe_as(slot, _probe_list(workdir, protected_paths()))
        if problems:
            raise UidSandboxError(reachability_error(slot.uid, problems))
    except BaseException:
        with contextlib.suppress(OSError):
            chown_tree(workdir, slot.worker_uid, slot.worker_gid)
        os.close(slot.lock_fd)
        raise
    return slot


def probe_as(slot: UidSlot, args: list[str]) -> list[str]:
    done = subprocess.run(
        [*slot._as_uid(), "/bin/bash", "-c", _PROBE, "probe", *args],
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    slot.kill_all()
    if done.returncode != 0:
        return [f"failed the probe ({done.stderr.strip() or f'exit {done.returncode}'})"]
    return done.stdout.splitlines()


def reachability_error(uid: int, problems: list[str]) -> str:
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return (
        f"JADA_AGENT_SANDBOX=uid: the slot uid {uid} could reach what a command must not, so no session runs: "
        f"{shown}. Make the data directory, DAGSTER_HOME and the token files readable by their owner only "
        "(`chmod -R go-rwx PATH`), and let the slot uids pass (o+x, no more) through the folders above the "
        "working directories (docs/agents.md, Sandbox)."
    )
