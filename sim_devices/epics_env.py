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

The variables decide where Channel Access *sends*. caproto's client (ophyd's Channel Access layer
where pyepics is not installed) also *binds* its UDP search socket to every interface (address
``0.0.0.0``); :func:`bind_client_to_loopback` makes it bind to 127.0.0.1, so that nothing from
another machine reaches it either. The EPICS beamline calls both before its first PV.

``EPICS_CA_SERVER_PORT`` is left as it is (default 5064): on a machine where several IOCs run
at once, each on its own port (and its clients with the same port) keeps a unicast search from
reaching the wrong one; the tests do that.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping
from types import MappingProxyType

__all__ = [
    "LOOPBACK",
    "LOOPBACK_ENVIRONMENT",
    "bind_client_to_loopback",
    "loopback_environment",
    "off_loopback",
]

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


class _LoopbackSocket(socket.socket):
    """A socket that binds to 127.0.0.1 when asked to bind to every interface (``''`` or
    ``0.0.0.0``)."""

    def bind(self, address) -> None:  # noqa: D102 - socket API
        host, *rest = address
        super().bind((LOOPBACK if host in ("", "0.0.0.0") else host, *rest))


def bind_client_to_loopback() -> None:
    """Make caproto's Channel Access client bind its UDP search socket to 127.0.0.1.

    caproto's threading client (ophyd's Channel Access layer without pyepics) makes that socket
    with ``caproto.bcast_socket()`` and binds it to ``('', 0)``: every interface. ophyd makes
    its client context when it is imported, so this does two things, and is idempotent:

    * the client context already made (ophyd's) gets a new search socket bound to 127.0.0.1 in
      place of its own, which is closed; call this before the first PV, while no search is
      under way;
    * the sockets ``bcast_socket`` makes from now on (with the standard ``socket`` module) turn
      a bind to every interface into one to 127.0.0.1, keeping the options caproto set.

    caproto's asyncio server (``uedsteer ioc``) does not use ``bcast_socket``: it binds to
    ``EPICS_CAS_INTF_ADDR_LIST``. With pyepics (libca) as ophyd's layer this changes nothing:
    libca binds its own sockets.
    """
    import caproto

    original = caproto.bcast_socket
    if not getattr(original, "uedsteer_loopback", False):

        def bcast_socket(socket_module=socket):
            sock = original(socket_module)
            if socket_module is not socket:
                return sock
            return _LoopbackSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())

        bcast_socket.uedsteer_loopback = True
        bcast_socket.__doc__ = original.__doc__
        caproto.bcast_socket = bcast_socket
    from caproto.threading import pyepics_compat

    if pyepics_compat._make_context.cache_info().currsize:  # a context exists: rebind it
        _rebind(pyepics_compat.PV.default_context().broadcaster)


def _rebind(broadcaster) -> None:
    """Give a caproto ``SharedBroadcaster`` a search socket bound to 127.0.0.1 (unless it
    has one), registered with its selector thread in place of the old one."""
    import caproto

    old = broadcaster.udp_sock
    if old is None or old.getsockname()[0] == LOOPBACK:
        return
    new = caproto.bcast_socket()
    new.bind((LOOPBACK, 0))
    broadcaster.selector.remove_socket(old)
    broadcaster.udp_sock = new
    broadcaster.broadcaster.client_address = new.getsockname()
    broadcaster.selector.add_socket(new, broadcaster)
    old.close()
    broadcaster._register()  # with the repeater, from the new address
