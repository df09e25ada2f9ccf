"""Runs inside the sandbox's child interpreter (``python -I``) before any untrusted code:
isolates the network, applies resource limits, drops root, installs an audit hook, then
executes the program. Standard library only; it must not import posttrain.

argv: program_path limits_json
"""

import ctypes
import json
import os
import pkgutil  # noqa: F401  (runpy needs it; import before privileges are dropped)
import resource
import runpy
import sys

CLONE_NEWNET = 0x40000000
BLOCKED_EVENTS = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                  "ctypes.dlopen", "ctypes.cdata"}


def _isolate_network() -> bool:
    """A fresh network namespace has no usable interface; needs root (or CAP_SYS_ADMIN)."""
    try:
        return ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) == 0
    except OSError:
        return False


def _limit(resource_id: int, value: int) -> None:
    soft, hard = resource.getrlimit(resource_id)
    cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(resource_id, (cap, cap))


WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
WORKDIR = os.path.realpath(os.getcwd())


def _writes(mode: object, flags: object) -> bool:
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & WRITE_FLAGS)


def _deny(event: str, args: tuple) -> None:
    if event in BLOCKED_EVENTS:
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open" and args and isinstance(args[0], (str, bytes)) and _writes(args[1], args[2]):
        path = os.path.realpath(os.fsdecode(args[0]))
        if os.path.commonpath([path, WORKDIR]) != WORKDIR:
            raise PermissionError(f"sandbox: writing outside the working directory ({path}) is not allowed")


def main() -> None:
    program, limits = sys.argv[1], json.loads(sys.argv[2])
    if os.geteuid() == 0:
        _isolate_network()
    _limit(resource.RLIMIT_CPU, limits["cpu_s"])
    _limit(resource.RLIMIT_AS, limits["memory_bytes"])
    _limit(resource.RLIMIT_FSIZE, limits["file_size_bytes"])
    _limit(resource.RLIMIT_CORE, 0)
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(limits["gid"])
        os.setuid(limits["uid"])
    _limit(resource.RLIMIT_NPROC, limits["processes"])
    sys.argv = [program]
    sys.path.insert(0, os.path.dirname(program))
    sys.addaudithook(_deny)
    runpy.run_path(program, run_name="__main__")


main()
