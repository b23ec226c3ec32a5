"""Channel Access stays on this machine: the EPICS environment every IOC and client of uedsteer
runs with.

Channel Access finds a PV by UDP search (clients) and announces servers by UDP beacons (IOCs),
both sent by default to every broadcast address of every network interface. uedsteer's IOC, its
EPICS beamline and its tests must never send anything beyond the loopback interface, so each of
them calls :func:`loopback_environment` before it creates a server or its first PV:

==================================  ==========  =============================================
variable                            value       effect
==================================  ==========  =============================================
``EPICS_CA_AUTO_ADDR_LIST``         ``NO``      clients do not add the interfaces' broadcasts
``EPICS_CA_ADDR_LIST``              127.0.0.1   clients search only here
``EPICS_CAS_INTF_ADDR_LIST``        127.0.0.1   servers listen (TCP and UDP) only here
``EPICS_CAS_BEACON_ADDR_LIST``      127.0.0.1   servers send beacons only here
``EPICS_CAS_AUTO_BEACON_ADDR_LIST`` ``NO``      servers do not add the interfaces' broadcasts
==================================  ==========  =============================================

``EPICS_CA_SERVER_PORT`` is left as it is (default 5064): on a machine where several IOCs run
at once, each on its own port (and its clients with the same port) keeps a unicast search from
reaching the wrong one; the tests do that.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from types import MappingProxyType

__all__ = ["LOOPBACK", "LOOPBACK_ENVIRONMENT", "loopback_environment", "off_loopback"]

LOOPBACK = "127.0.0.1"

LOOPBACK_ENVIRONMENT: Mapping[str, str] = MappingProxyType(
    {
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_ADDR_LIST": LOOPBACK,
        "EPICS_CAS_INTF_ADDR_LIST": LOOPBACK,
        "EPICS_CAS_BEACON_ADDR_LIST": LOOPBACK,
        "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    }
)
"""The variables :func:`loopback_environment` sets, and their values."""


def loopback_environment(
    environ: MutableMapping[str, str] | None = None,
) -> dict[str, str]:
    """Keep Channel Access on the loopback interface: set the variables of
    :data:`LOOPBACK_ENVIRONMENT`, overriding whatever they held.

    Call it before a caproto server or the first EPICS PV of a process is created (the libraries
    read the variables when they search, listen or beacon). It is idempotent.

    Parameters
    ----------
    environ : mutable mapping, optional
        The environment to change; default ``os.environ`` (this process and the processes it
        starts). Pass a copy to prepare a child process's environment.

    Returns
    -------
    dict
        The values that were there before (``None`` where a variable was unset), for a caller
        that wants to restore them.
    """
    env = os.environ if environ is None else environ
    before = {key: env.get(key) for key in LOOPBACK_ENVIRONMENT}
    env.update(LOOPBACK_ENVIRONMENT)
    return before


def off_loopback(environ: Mapping[str, str] | None = None) -> list[str]:
    """The variables of :data:`LOOPBACK_ENVIRONMENT` that ``environ`` (default ``os.environ``)
    does not hold at their loopback values, as ``NAME=value`` (``NAME unset``); empty: all set."""
    env = os.environ if environ is None else environ
    return [
        f"{key}={env[key]}" if key in env else f"{key} unset"
        for key, value in LOOPBACK_ENVIRONMENT.items()
        if env.get(key) != value
    ]
