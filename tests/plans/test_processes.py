"""uedsteer.plans.processes on real child processes: stopping by id (SIGKILL after the timeout,
the process group, zombies reaped, an ended process), and waiting for a server that exits."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from uedsteer.plans.processes import (
    NoAnswer,
    ServerExited,
    free_port,
    launch,
    port_open,
    stop_process,
    wait_until_answers,
)


def gone(pid: int) -> bool:
    """Ended and reaped: no such process (a zombie would still be there)."""
    return not psutil.pid_exists(pid)


def wait_for(condition, timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_a_child_deaf_to_sigterm_is_killed_after_the_timeout_and_reaped(tmp_path):
    proc = launch(["sh", "-c", "trap '' TERM; exec sleep 60"], tmp_path / "deaf.log")
    wait_for(lambda: psutil.Process(proc.pid).name() == "sleep")  # the trap is set
    start = time.monotonic()
    assert stop_process(proc, timeout=0.3) == "killed"
    assert time.monotonic() - start < 2.0
    assert proc.returncode == -signal.SIGKILL, "the Popen has its exit status"
    assert gone(proc.pid), "no zombie left"
    assert stop_process(proc) == "not running"
    assert stop_process(proc.pid) == "not running"


def test_the_process_group_goes_with_its_leader(tmp_path):
    # one sleep is the shell's child, the other an orphan of a subshell: only the group has it
    proc = launch(["sh", "-c", "(sleep 60 &); sleep 60 & wait"], tmp_path / "group.log")
    leader = psutil.Process(proc.pid)

    def group() -> list[psutil.Process]:
        return [p for p in psutil.process_iter() if p.pid != proc.pid and _pgid(p) == proc.pid]

    wait_for(lambda: len(group()) >= 2)
    members = group()
    assert len(leader.children(recursive=True)) < len(members), "one left the tree"
    assert stop_process(proc, timeout=2, tree=True, group=True) == "stopped"
    assert proc.returncode is not None
    for p in members:
        assert not p.is_running() or p.status() == psutil.STATUS_ZOMBIE, p


def _pgid(p: psutil.Process) -> int | None:
    import os

    try:
        return os.getpgid(p.pid)
    except OSError:
        return None


def test_a_request_that_fails_is_followed_by_the_signal_at_once(tmp_path):
    proc = launch(["sleep", "60"], None)

    def refuse() -> None:
        raise ConnectionError("no answer")

    start = time.monotonic()
    assert stop_process(proc, ask=refuse, ask_timeout=30, timeout=5) == "stopped"
    assert time.monotonic() - start < 2.0
    assert proc.returncode == -signal.SIGTERM


def test_a_server_that_exits_is_reported_with_its_log_tail(tmp_path):
    log = tmp_path / "server.log"
    proc = launch(["sh", "-c", "echo starting; echo 'address already in use' >&2; exit 3"], log)
    with pytest.raises(ServerExited) as err:
        wait_until_answers(lambda: False, process=proc, timeout=10, what="toy", log=log)
    assert isinstance(err.value, RuntimeError)
    head, *rest = str(err.value).splitlines()
    assert head == err.value.headline == f"toy exited with 3; see {log}"
    assert "address already in use" in rest[-1] and "starting" in rest[-2]


def test_a_silent_server_times_out_and_is_stopped(tmp_path):
    proc = launch(["sleep", "60"], tmp_path / "silent.log")
    port = free_port(udp=True)
    assert not port_open(port)
    calls = []

    def probe() -> bool:
        calls.append(1)
        raise ConnectionRefusedError  # "not yet"

    with pytest.raises(NoAnswer, match=rf"^toy did not answer on 127.0.0.1:{port} within 0.3 s"):
        wait_until_answers(
            probe,
            process=proc,
            timeout=0.3,
            what="toy",
            where=f"127.0.0.1:{port}",
            log=tmp_path / "silent.log",
            interval=0.02,
            errors=(ConnectionError,),
            on_timeout=lambda: stop_process(proc),
        )
    assert len(calls) > 2 and proc.returncode == -signal.SIGTERM
