"""The sandbox against hostile programs, and HumanEval's canonical vs broken solutions."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from posttrain.rewards.code import CodeTestsReward, extract_code
from posttrain.rewards.sandbox import SandboxLimits, run_python

pytestmark = pytest.mark.integration

FAST = SandboxLimits(timeout_s=5, cpu_s=3, memory_mb=256, file_size_mb=4)


def _stray_processes(marker: str) -> list[str]:
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if marker in line]


def test_a_plain_program_runs_and_its_output_comes_back() -> None:
    result = run_python("import sys\nprint(sum(range(10)))\nprint('warn', file=sys.stderr)", FAST)
    assert result.passed and result.stdout == "45\n" and result.stderr == "warn\n"
    assert not run_python("raise SystemExit(3)", FAST).passed


def test_infinite_loop_is_stopped() -> None:
    started = time.perf_counter()
    result = run_python("while True:\n    pass", SandboxLimits(timeout_s=3, cpu_s=1))
    assert not result.passed and result.status in ("killed", "timeout")
    assert time.perf_counter() - started < 5


def test_sleeping_forever_hits_the_wall_clock_and_the_group_is_killed() -> None:
    program = "import time, os\nos.fork() if hasattr(os, 'fork') else None\ntime.sleep(1000)  # posttrain-sleeper"
    result = run_python(program, SandboxLimits(timeout_s=1.5, processes=4))
    assert result.status == "timeout"
    time.sleep(0.2)
    assert _stray_processes("posttrain-sleeper") == []


def test_fork_bomb_is_contained() -> None:
    program = "import os\nwhile True:\n    os.fork()  # posttrain-forkbomb"
    result = run_python(program, SandboxLimits(timeout_s=5, cpu_s=3, processes=8))
    assert not result.passed
    time.sleep(0.2)
    assert _stray_processes("program.py") == []


def test_memory_bomb_fails_without_hurting_the_parent() -> None:
    result = run_python("blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 2**20))", FAST)
    assert not result.passed and "MemoryError" in result.stderr


def test_writing_outside_the_working_directory_is_refused(tmp_path: Path) -> None:
    targets = [tmp_path / "escaped.txt", Path("/tmp") / f"posttrain-escape-{os.getpid()}.txt"]
    for target in targets:
        result = run_python(f"open({str(target)!r}, 'w').write('owned')", FAST)
        assert not result.passed, target
        assert not target.exists(), target
    inside = run_python("open('notes.txt', 'w').write('fine')\nprint(open('notes.txt').read())", FAST)
    assert inside.passed and inside.stdout == "fine\n"


def test_parent_environment_and_secrets_are_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTTRAIN_TEST_SECRET", "hunter2")
    program = (
        "import os\nprint(dict(os.environ))\n"
        "for pid in (os.getppid(), 1):\n"
        "    try:\n        print(open(f'/proc/{pid}/environ').read())\n"
        "    except OSError as err:\n        print('denied', err)\n"
    )
    result = run_python(program, FAST)
    assert "hunter2" not in result.stdout and "POSTTRAIN_TEST_SECRET" not in result.stdout


def test_network_connections_fail() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(4)
    port = server.getsockname()[1]
    accepted: list[bool] = []

    def accept() -> None:
        try:
            server.accept()
            accepted.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    program = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
    result = run_python(program, FAST)
    thread.join()
    server.close()
    assert not result.passed and "connected" not in result.stdout and accepted == []


def test_printing_gigabytes_is_cut_off() -> None:
    started = time.perf_counter()
    result = run_python("import sys\nwhile True:\n    sys.stdout.write('x' * 2**20)", FAST)
    assert not result.passed
    assert len(result.stdout) <= 4096
    assert time.perf_counter() - started < 5


def test_hostile_batch_scores_failed_in_parallel_and_scoring_goes_on() -> None:
    reward = CodeTestsReward(workers=4, timeout_s=3, cpu_s=2, memory_mb=256, file_size_mb=4)
    hostile = ["while True: pass", "import os\nwhile True: os.fork()", "x = bytearray(2**34)",
               "import socket; socket.create_connection(('1.1.1.1', 80), timeout=1)",
               "print('y' * 2**30)", "open('/etc/posttrain-owned', 'w')"]
    good = "def add(a, b):\n    return a + b"
    completions = hostile + [f"```python\n{good}\n```"]
    tests = "assert add(2, 3) == 5"
    started = time.perf_counter()
    scores = reward(["" for _ in completions], completions, [tests] * len(completions))
    assert scores == [0.0] * len(hostile) + [1.0]
    assert time.perf_counter() - started < 12  # parallel: not the sum of every timeout
    assert not Path("/etc/posttrain-owned").exists()


def test_extract_code_takes_the_last_fenced_block() -> None:
    text = "idea:\n```python\nx = 1\n```\nfinal:\n```py\nx = 2\n```"
    assert extract_code(text) == "x = 2\n" and extract_code("x = 3") == "x = 3"


def test_humaneval_canonical_solutions_pass_and_broken_ones_fail() -> None:
    from posttrain.data.tasks.humaneval import humaneval_rows

    rows = humaneval_rows()
    assert len(rows) == 164
    reward = CodeTestsReward(include_prompt=True, extract_block=False, workers=4, timeout_s=20, cpu_s=15)
    prompts, answers = [r["prompt"] for r in rows], [r["answer"] for r in rows]
    canonical = reward(prompts, [r["canonical_solution"] for r in rows], answers)
    assert sum(canonical) == 164, [r["task_id"] for r, s in zip(rows, canonical) if s == 0]
    broken = reward(prompts, ["    return None\n" for _ in rows], answers)
    assert sum(broken) == 0, [r["task_id"] for r, s in zip(rows, broken) if s == 1]
