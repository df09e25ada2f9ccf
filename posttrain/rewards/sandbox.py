"""Running untrusted Python in a separate, limited process.

Each call gets a fresh temporary working directory (deleted afterwards), a minimal
environment (no variable of the parent is inherited), its own session/process group
(killed as a whole on timeout), and inside the child, before the program runs: a private
network namespace when started as root, rlimits on CPU time, address space, file size and
process count, root dropped to an unprivileged user, and an audit hook that refuses
sockets, ctypes and writes outside the working directory. stdout/stderr go to files in
the working directory, so the file-size limit caps them. What this does and does not
protect against: docs/rewards.md, "Sandbox".
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CHILD = Path(__file__).with_name("_sandbox_child.py")
Status = Literal["ok", "error", "timeout", "killed"]


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock; the whole process group is killed after it
    cpu_s: int = 10
    memory_mb: int = 1024  # address space
    file_size_mb: int = 16  # any file written, stdout and stderr included
    processes: int = 1  # RLIMIT_NPROC of the sandbox user (see docs: per user, not per call)
    output_chars: int = 4096  # stdout/stderr kept in the result
    user: str = "nobody"  # who the program runs as when the trainer runs as root


@dataclass(frozen=True)
class ExecutionResult:
    status: Status  # ok: exit code 0; error: non-zero exit; timeout: wall clock hit; killed: by a signal
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "ok"


def run_python(program: str, limits: SandboxLimits | None = None, stdin: str = "") -> ExecutionResult:
    """Run ``program`` as ``__main__`` in the sandbox and wait for it (at most ``timeout_s``)."""
    limits = limits or SandboxLimits()
    return _run_in_fresh_dir(program, limits, sandbox_interpreter(limits.user), stdin)


def _run_in_fresh_dir(program: str, limits: SandboxLimits, interpreter: str, stdin: str = "") -> ExecutionResult:
    workdir = Path(tempfile.mkdtemp(prefix="posttrain-sandbox-"))
    try:
        return _run_in(workdir, program, limits, interpreter, stdin)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_many(programs: Sequence[str], limits: SandboxLimits | None = None, workers: int = 4) -> list[ExecutionResult]:
    """Run programs in parallel, at most ``workers`` at a time, results in input order."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: run_python(p, limits), programs))


def _run_in(workdir: Path, program: str, limits: SandboxLimits, interpreter: str, stdin: str) -> ExecutionResult:
    source = workdir / "program.py"
    source.write_text(program)
    uid, gid = _sandbox_ids(limits.user)
    if os.geteuid() == 0:
        os.chown(workdir, uid, gid)
        os.chown(source, uid, gid)
    child_limits = {
        "cpu_s": limits.cpu_s, "memory_bytes": limits.memory_mb * 2**20,
        "file_size_bytes": limits.file_size_mb * 2**20, "processes": limits.processes, "uid": uid, "gid": gid,
    }
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir), "LANG": "C.UTF-8",
           "PYTHONIOENCODING": "utf-8"}
    started = time.perf_counter()
    with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
        process = subprocess.Popen(
            [interpreter, "-I", "-B", str(CHILD), str(source), json.dumps(child_limits)],
            cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err, start_new_session=True,
        )
        status: Status
        try:
            process.communicate(stdin.encode(), timeout=limits.timeout_s)
            code = process.returncode
            status = "ok" if code == 0 else ("killed" if code < 0 else "error")
        except subprocess.TimeoutExpired:
            status, code = "timeout", None
        finally:
            _kill_group(process)
    seconds = time.perf_counter() - started
    return ExecutionResult(status, code, _head(workdir / "stdout", limits.output_chars),
                           _head(workdir / "stderr", limits.output_chars), seconds)


def _kill_group(process: subprocess.Popen) -> None:
    """Kill everything left in the program's session (its children included), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@functools.lru_cache(maxsize=8)
def sandbox_interpreter(user: str) -> str:
    """A Python whose standard library the sandbox user can read.

    The trainer's own interpreter may live where only its owner can read (a virtualenv
    under ``/root``); the child needs nothing but the standard library, so any Python 3
    the unprivileged user can run will do. Probed once per user.
    """
    if os.geteuid() != 0:
        return sys.executable
    candidates = [sys.executable, os.path.realpath(sys.executable), getattr(sys, "_base_executable", ""),
                  shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or ""]
    for candidate in dict.fromkeys(c for c in candidates if c):
        probe = _run_in_fresh_dir("import decimal, fractions, statistics, heapq, bisect, string", SandboxLimits(
            timeout_s=20, user=user), candidate)
        if probe.passed:
            return candidate
    raise RuntimeError(f"no Python interpreter found whose standard library user {user!r} can read "
                       f"(tried {candidates}); set the sandbox user to one that can, or install python3 system-wide")


def _sandbox_ids(user: str) -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise RuntimeError(f"sandbox user {user!r} does not exist; create it or set the reward's user") from None
    return entry.pw_uid, entry.pw_gid


def _head(path: Path, chars: int) -> str:
    with open(path, "rb") as handle:
        return handle.read(chars * 4).decode("utf-8", errors="replace")[:chars]
