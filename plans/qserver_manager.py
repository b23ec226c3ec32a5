"""Start and stop a bluesky-queueserver RE Manager with uedsteer's profile, on 127.0.0.1 only.

``REManager(redis.address, folder, environ=env).start()`` runs ``start-re-manager`` with the
startup module of :mod:`uedsteer.plans.qserver_profile`, its user-group permissions, and a copy
of its ``existing_plans_and_devices.yaml`` in ``folder`` (the RE Manager rewrites the file it is
given each time it opens the environment). Every socket stays on the loopback interface:

* the control socket (requests: ``--zmq-control-addr tcp://127.0.0.1:PORT``) and the info
  socket (console output: ``--zmq-info-addr tcp://127.0.0.1:PORT``), each on a free port;
* Redis at the ``127.0.0.1:PORT`` given (:class:`uedsteer.plans.redis_server.RedisServer`);
* the RE Worker's Channel Access clients: the EPICS loopback variables
  (:func:`uedsteer.sim_devices.epics_env.loopback_environment`) are set in the environment the
  RE Manager is started with, whatever the caller's holds.

:meth:`REManager.api` is a ``bluesky_queueserver_api`` client of it. :meth:`REManager.stop`
asks the manager to close (``manager_stop``), then ends it and every process it started by
their process ids.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uedsteer.sim_devices.epics_env import LOOPBACK, loopback_environment

from .processes import ChildServer, free_port, script_command, stop_process
from .qserver_profile import EXISTING_PLANS_AND_DEVICES, STARTUP_MODULE, USER_GROUP_PERMISSIONS

__all__ = ["REManager", "start_re_manager_command"]


def start_re_manager_command() -> list[str]:
    """The ``start-re-manager`` executable beside this Python, else the ``PATH``'s."""
    return script_command("start-re-manager")


class REManager(ChildServer):
    """A ``start-re-manager`` subprocess serving uedsteer's profile on 127.0.0.1.

    Parameters
    ----------
    redis_address : str
        ``127.0.0.1:PORT`` of the Redis server that holds the queue.
    folder : str or PathLike
        Working folder: the copy of ``existing_plans_and_devices.yaml`` and the log
        ``re_manager.log``.
    environ : mapping, optional
        Environment of the RE Manager (default ``os.environ``): the profile's variables
        (:mod:`uedsteer.plans.qserver_profile.namespace`), ``EPICS_CA_SERVER_PORT`` … The EPICS
        loopback variables are set on a copy.
    redis_prefix : str, optional
        Prefix of the manager's Redis keys (default: a random one, so that managers sharing a
        Redis server never share a queue).
    control_port, info_port : int, optional
        Default: free ports.
    startup_module : str
        Default: uedsteer's profile.

    Attributes
    ----------
    process : subprocess.Popen or None
        The ``start-re-manager`` process.
    """

    what = "start-re-manager"

    def __init__(
        self,
        redis_address: str,
        folder: str | os.PathLike,
        *,
        environ: Mapping[str, str] | None = None,
        redis_prefix: str | None = None,
        control_port: int | None = None,
        info_port: int | None = None,
        startup_module: str = STARTUP_MODULE,
    ) -> None:
        host = redis_address.split(":", 1)[0]
        if host != LOOPBACK:
            raise ValueError(f"redis_address={redis_address!r}: give {LOOPBACK}:PORT")
        self.redis_address = redis_address
        self.folder = Path(folder).resolve()
        self.environ = dict(os.environ if environ is None else environ)
        loopback_environment(self.environ)
        self.redis_prefix = redis_prefix or f"uedsteer_{uuid.uuid4().hex[:8]}"
        self.control_port = control_port or free_port()
        self.info_port = info_port or free_port()
        self.startup_module = startup_module
        self.log = self.folder / "re_manager.log"
        self.existing = self.folder / EXISTING_PLANS_AND_DEVICES.name
        self.process: subprocess.Popen | None = None
        self._api: Any = None

    @property
    def control_address(self) -> str:
        """``tcp://127.0.0.1:PORT`` of the control socket (``zmq_control_addr`` of a client)."""
        return f"tcp://{LOOPBACK}:{self.control_port}"

    @property
    def info_address(self) -> str:
        """``tcp://127.0.0.1:PORT`` of the info socket (``zmq_info_addr`` of a client)."""
        return f"tcp://{LOOPBACK}:{self.info_port}"

    def command(self) -> list[str]:
        """The command line that starts the RE Manager."""
        return [
            *start_re_manager_command(),
            "--startup-module",
            self.startup_module,
            "--existing-plans-devices",
            str(self.existing),
            "--user-group-permissions",
            str(USER_GROUP_PERMISSIONS),
            "--redis-addr",
            self.redis_address,
            "--redis-name-prefix",
            self.redis_prefix,
            "--zmq-control-addr",
            self.control_address,
            "--zmq-info-addr",
            self.info_address,
            "--zmq-publish-console",
            "ON",
            "--use-ipython-kernel",
            "OFF",
        ]

    def api(self) -> Any:
        """A ``bluesky_queueserver_api.zmq.REManagerAPI`` client of this manager (one, reused)."""
        if self._api is None:
            from bluesky_queueserver_api.zmq import REManagerAPI

            self._api = REManagerAPI(
                zmq_control_addr=self.control_address, zmq_info_addr=self.info_address
            )
        return self._api

    def start(self, timeout: float = 60.0) -> REManager:
        """Start the RE Manager and wait until it answers a ``status`` request.

        The environment is not opened (``api().environment_open()`` does that).

        Raises
        ------
        ServerExited, NoAnswer
            As :meth:`ChildServer.start <uedsteer.plans.processes.ChildServer.start>`.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.existing.exists():
            shutil.copyfile(EXISTING_PLANS_AND_DEVICES, self.existing)
        self._launch(self.command(), env=self.environ, cwd=self.folder)
        # a request before it listens times out (an exception): not yet
        self._wait(self._answers, timeout, self.control_address, errors=(Exception,))
        return self

    def _answers(self) -> bool:
        self.api().status(reload=True)  # raises until the manager listens
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Close the RE Manager: ``manager_stop`` (``safe_off``: a running plan is not
        finished) with ``timeout`` seconds to take effect, then SIGTERM, then SIGKILL after 10
        s, each to the process ids of the manager and every process it started (the RE Worker
        among them)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            stop_process(
                self.process,
                ask=lambda: self.api().send_request(
                    method="manager_stop", params={"option": "safe_off"}
                ),
                ask_timeout=timeout,
                timeout=10.0,
                tree=True,
            )
        finally:
            if self._api is not None:
                self._api.close()
                self._api = None
