"""``uedsteer ioc`` in a subprocess for the tests: its own Channel Access port, a random PV
prefix, the loopback rule in its environment and in this process's, stopped by its pid.

Each IOC runs on its own Channel Access port (``EPICS_CA_SERVER_PORT``, free when it starts)
and under a random PV prefix, so that IOCs of parallel test workers never answer each other's
searches; :func:`running_ioc` waits until its PVs answer."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from uedsteer.sim_devices.epics_env import (
    bind_client_to_loopback,
    loopback_environment,
    off_loopback,
)

UEDSTEER = [sys.executable, "-m", "uedsteer.controller.cli"]
START_TIMEOUT = 60.0  # s for the IOC to import the physics and answer (a busy machine)


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (Channel Access uses both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on 127.0.0.1")


@dataclass
class Ioc:
    """A running ``uedsteer ioc`` subprocess."""

    proc: subprocess.Popen
    prefix: str
    port: int
    env: dict[str, str]
    log: Path
    args: tuple[str, ...] = ()

    def output(self) -> str:
        return self.log.read_text()

    def launch(self) -> None:
        """Start ``uedsteer ioc`` (again, after a kill: same prefix, port and arguments; its
        output appended to the log)."""
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [*UEDSTEER, "ioc", "--prefix", self.prefix, *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing the IOC could close or save on the way out."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Start it again after :meth:`kill` and wait until its PVs answer."""
        self.log.write_text(self.output().replace("ready\n", "(was ready)\n"))
        self.launch()
        wait_until_answering(self)


def wait_until_answering(ioc: Ioc) -> None:
    """Until the IOC says it listens and one of its PVs answers a Channel Access read."""
    from ophyd import EpicsSignalRO

    deadline = time.monotonic() + START_TIMEOUT
    while "ready" not in ioc.output().splitlines():
        if ioc.proc.poll() is not None:
            pytest.fail(f"uedsteer ioc exited with {ioc.proc.returncode}:\n{ioc.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"uedsteer ioc not ready within {START_TIMEOUT} s:\n{ioc.output()}")
        time.sleep(0.05)
    probe = EpicsSignalRO(f"{ioc.prefix}Det:ImageShape", name="probe")
    probe.wait_for_connection(timeout=max(1.0, deadline - time.monotonic()))
    assert list(probe.get(use_monitor=False)) == [261, 261]
    probe.destroy()


def stop_process(proc: subprocess.Popen) -> int:
    """SIGTERM, then SIGKILL after 10 s; the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


@contextlib.contextmanager
def running_ioc(folder: Path, *args: str) -> Iterator[Ioc]:
    """``uedsteer ioc --prefix <random> ARGS`` on a free port, this process's Channel Access
    pointed at it; stopped by its pid at the end."""
    prefix = f"T{uuid.uuid4().hex[:10]}:"
    port = free_port()
    env = dict(os.environ)
    loopback_environment(env)
    env["EPICS_CA_SERVER_PORT"] = str(port)
    assert off_loopback(env) == [], "the loopback rule holds before the IOC starts"
    loopback_environment()  # and in this process, before its first PV
    bind_client_to_loopback()
    old_port = os.environ.get("EPICS_CA_SERVER_PORT")
    os.environ["EPICS_CA_SERVER_PORT"] = str(port)
    log = folder / f"ioc-{prefix.rstrip(':')}.log"
    log.write_text("")
    ioc = Ioc(None, prefix, port, env, log, args)  # type: ignore[arg-type]
    ioc.launch()
    try:
        wait_until_answering(ioc)
        yield ioc
    finally:
        stop_process(ioc.proc)
        if old_port is None:
            os.environ.pop("EPICS_CA_SERVER_PORT", None)
        else:
            os.environ["EPICS_CA_SERVER_PORT"] = old_port


def read_pv(name: str, string: bool = False):
    """One Channel Access read of ``name`` through a new signal (no cached monitor value)."""
    from ophyd import EpicsSignalRO

    sig = EpicsSignalRO(name, name="read", string=string)
    try:
        sig.wait_for_connection(timeout=10)
        return sig.get(use_monitor=False)
    finally:
        sig.destroy()
