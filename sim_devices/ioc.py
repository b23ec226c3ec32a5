"""The simulated beamline served as EPICS process variables: a caproto IOC.

:func:`beamline_ioc` builds a caproto ``PVGroup`` over one
:class:`~uedsteer.sim_devices.beamline.SimulatedBeamline`: every put moves that beamline's
ophyd devices and every acquisition triggers its detector, so the hidden sample behind the PVs
(its damage, its shot counts, its frames) is the very one an in-process campaign drives. The
PVs and their default names are listed in :mod:`uedsteer.sim_devices.epics_pvs`.

What a client sees:

* each setting is a number with its unit (``EGU``) and drive limits equal to the simulated
  device's hard limits: the control limits of the channel (``lower_ctrl_limit`` /
  ``upper_ctrl_limit``, which ophyd's ``EpicsSignal(limits=True)`` checks before a put) and
  the record fields ``.DRVL`` / ``.DRVH`` (read-only). The IOC refuses a put outside them
  (caproto's ``CannotExceedLimits``), and nothing moves;
* ``Pump:Shutter`` is an enum ``closed`` / ``open``; ``Stage:Spot`` an integer;
* ``Det:Acquire`` is busy-style, an enum ``Done`` / ``Acquire``: a put of 1 (``Acquire``)
  takes a frame; the PV reads 1 while the frame is made and returns to 0 once ``Det:Image``
  holds it, and a put with completion callback completes then. A frame that fails returns the
  PV to 0 with a MAJOR alarm (status ``READ``) and the put fails;
* ``Det:Image`` is the frame flattened row by row (float32), ``Det:ImageShape`` its
  (rows, columns).

A put of a setting waits while a frame is being made, as the frame reads the settings when it
starts. The server speaks Channel Access through caproto; uedsteer writes no protocol code.
Start it with ``uedsteer ioc --prefix P`` (:mod:`uedsteer.controller.cli.ioc`), which keeps it
on the loopback interface (:mod:`uedsteer.sim_devices.epics_env`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from caproto import AlarmSeverity, AlarmStatus, ChannelType
from caproto.server import PVGroup, pvproperty

from .beamline import SimulatedBeamline
from .contracts import SETTING_NAMES, SETTINGS
from .epics_env import LOOPBACK, off_loopback
from .epics_pvs import PV_KEYS, PV_SUFFIXES
from .ioc_state import restore_state, save_state

__all__ = [
    "ACQUIRE_STATES",
    "SHUTTER_ENUM",
    "BeamlineIOC",
    "beamline_ioc",
    "no_delay",
    "serve",
]

SHUTTER_ENUM = ("closed", "open")
"""The shutter PV's enum strings: index 0 closed, 1 open (the simulated shutter's states)."""

ACQUIRE_STATES = ("Done", "Acquire")
"""The acquire PV's enum strings: 0 idle (frame written), 1 acquiring."""


class BeamlineIOC(PVGroup):
    """What the PVs of a simulated beamline do; :func:`beamline_ioc` adds the PVs.

    Parameters
    ----------
    prefix : str
        PV prefix (``P`` of ``P:Pump:Fluence``; give the separator yourself).
    beamline : SimulatedBeamline
        The beamline whose devices the PVs move and whose detector they trigger.
    frame_timeout : float
        Seconds a frame may take before the acquisition fails.
    state_file : path, optional
        Where every put to a setting, the spot or the shutter saves the devices' state
        (:mod:`uedsteer.sim_devices.ioc_state`).
    **kwargs
        Passed to ``caproto.server.PVGroup``.
    """

    def __init__(
        self,
        prefix: str,
        *,
        beamline: SimulatedBeamline,
        frame_timeout: float = 60.0,
        state_file: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(prefix, **kwargs)
        self.beamline = beamline
        self.frame_timeout = float(frame_timeout)
        self.state_file = state_file
        self._busy = asyncio.Lock()

    @property
    def pv_names(self) -> dict[str, str]:
        """Key → full PV name of every PV of :mod:`~uedsteer.sim_devices.epics_pvs`."""
        return {key: getattr(self, key).pvname for key in PV_KEYS}

    def _signal(self, key: str) -> Any:
        if key in SETTING_NAMES:
            return self.beamline.settings[key]
        return {"shutter": self.beamline.shutter, "spot": self.beamline.spot}[key]

    async def put_setting(self, instance: Any, value: Any) -> Any:
        """Move the device behind a setting, the shutter or the spot (the device checks its
        hard limit again and refuses a value beyond it). A shutter that changes is printed
        (the IOC's log says when the pump was on the sample)."""
        key = instance.pvspec.attr
        signal = self._signal(key)
        async with self._busy:  # a frame being made reads the settings it started with
            before = signal.get()
            signal.put(value)
            if self.state_file is not None:
                save_state(self.beamline, self.state_file)
        if key == "shutter" and signal.get() != before:
            print(f"{instance.pvname} {signal.get()}", flush=True)
        return value

    async def acquire_frame(self, instance: Any, value: Any) -> str:
        """Busy-style acquisition: 1 while the detector makes a frame, 0 once it is written."""
        if value in (0, ACQUIRE_STATES[0]):
            return ACQUIRE_STATES[0]
        async with self._busy:
            await instance.write(ACQUIRE_STATES[1], verify_value=False)
            loop = asyncio.get_running_loop()
            try:
                frame = await loop.run_in_executor(None, self._take_frame)
            except Exception as err:
                await instance.write(
                    ACQUIRE_STATES[0],
                    verify_value=False,
                    status=AlarmStatus.READ,
                    severity=AlarmSeverity.MAJOR_ALARM,
                )
                raise RuntimeError(f"{instance.pvname}: no frame: {err}") from err
            await self.image.write(frame.ravel())
            if instance.alarm.severity != AlarmSeverity.NO_ALARM:  # a failed frame's, cleared
                # (only then: every alarm write is a monitor update of its own, and caproto
                # holds an update that follows another closely for 10 ms to batch them, so an
                # unconditional one delayed the end of every frame by about 10 ms)
                await instance.alarm.write(
                    status=AlarmStatus.NO_ALARM, severity=AlarmSeverity.NO_ALARM
                )
        return ACQUIRE_STATES[0]

    def _take_frame(self) -> np.ndarray:
        """Trigger the simulated detector (in a worker thread) and return its frame."""
        det = self.beamline.detector
        det.trigger().wait(timeout=self.frame_timeout)
        return np.asarray(det.image.get(), dtype=np.float32)


def _drive_limit(limit: str) -> tuple[Callable, Callable]:
    """The getter and putter of a drive-limit field that mirrors the control limit ``limit``
    (caproto writes what a getter returns through the putter, so the putter lets that value
    through and refuses every other)."""

    async def getter(fields: Any, instance: Any) -> float:
        return getattr(fields.parent, limit)

    async def putter(fields: Any, instance: Any, value: float) -> float:
        if value != getattr(fields.parent, limit):
            raise ValueError(
                f"{instance.pvname} is read-only: the drive limits of {fields.parent.pvname} "
                "are its device's hard limits"
            )
        return value

    return getter, putter


def _limited(prop: pvproperty) -> pvproperty:
    """``prop`` with ``.DRVL`` / ``.DRVH`` reading its control limits and refusing puts."""
    for field, limit in (
        ("drive_low_limit", "lower_ctrl_limit"),
        ("drive_high_limit", "upper_ctrl_limit"),
    ):
        getter, putter = _drive_limit(limit)
        getattr(prop.fields, field).getter(getter)
        getattr(prop.fields, field).putter(putter)
    return prop


def _setting_pv(key: str, signal: Any, doc: str, units: str, integer: bool = False) -> pvproperty:
    low, high = signal.limits
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{signal.name}: limits {signal.limits} must be finite to serve them")
    kind: type = int if integer else float
    return _limited(
        pvproperty(
            name=PV_SUFFIXES[key],
            value=kind(signal.get()),
            dtype=kind,
            units=units,
            lower_ctrl_limit=kind(low),
            upper_ctrl_limit=kind(high),
            record="longout" if integer else "ao",
            put=BeamlineIOC.put_setting,
            doc=doc,
            **({} if integer else {"precision": 3}),
        )
    )


def beamline_ioc(
    beamline: SimulatedBeamline,
    prefix: str,
    frame_timeout: float = 60.0,
    state_file: str | os.PathLike | None = None,
) -> BeamlineIOC:
    """The IOC of a simulated beamline: its PVs under ``prefix``, backed by ``beamline``.

    Parameters
    ----------
    beamline : SimulatedBeamline
        The devices behind the PVs; their hard limits become the PVs' drive limits.
    prefix : str
        PV prefix, e.g. ``"UED:"`` for ``UED:Pump:Fluence``.
    frame_timeout : float
        Seconds a frame may take before the acquisition fails.
    state_file : path, optional
        The devices' state file: restored before the PVs take their first values when it
        exists, saved on every put (:mod:`uedsteer.sim_devices.ioc_state`).

    Returns
    -------
    BeamlineIOC
        A caproto ``PVGroup``; serve its ``pvdb`` with caproto's server (``uedsteer ioc``).

    Raises
    ------
    ValueError
        One line: an empty prefix, a device whose limits are not finite, or a state file
        that cannot be restored.
    """
    if not prefix:
        raise ValueError("prefix '' is not allowed: give a PV prefix such as 'UED:'")
    if state_file is not None:
        restore_state(beamline, state_file)
    pvs: dict[str, pvproperty] = {}
    for name in SETTING_NAMES:
        s = SETTINGS[name]
        pvs[name] = _setting_pv(name, beamline.settings[name], s.meaning, s.device_units)
    pvs["shutter"] = pvproperty(
        name=PV_SUFFIXES["shutter"],
        value=beamline.shutter.get(),
        dtype=ChannelType.ENUM,
        enum_strings=SHUTTER_ENUM,
        put=BeamlineIOC.put_setting,
        doc="pump shutter",
    )
    pvs["spot"] = _setting_pv("spot", beamline.spot, "sample spot index", "", integer=True)
    pvs["acquire"] = pvproperty(
        name=PV_SUFFIXES["acquire"],
        value=ACQUIRE_STATES[0],
        dtype=ChannelType.ENUM,
        enum_strings=ACQUIRE_STATES,
        put=BeamlineIOC.acquire_frame,
        doc="busy: 1 takes a frame, back to 0 when the image is written",
    )
    frame = np.asarray(beamline.detector.image.get(), dtype=np.float32)
    pvs["image"] = pvproperty(
        name=PV_SUFFIXES["image"],
        value=frame.ravel(),
        dtype=ChannelType.FLOAT,
        max_length=frame.size,
        units="counts",
        read_only=True,
        max_subscription_backlog=4,  # a frame is 272 kB; a monitor needs the newest only
        doc="the latest frame, flattened row by row",
    )
    pvs["image_shape"] = pvproperty(
        name=PV_SUFFIXES["image_shape"],
        value=list(frame.shape),
        dtype=int,
        max_length=2,
        read_only=True,
        doc="the frame's (rows, columns)",
    )
    cls = type("SimulatedBeamlineIOC", (BeamlineIOC,), {**pvs, "__doc__": BeamlineIOC.__doc__})
    return cls(prefix, beamline=beamline, frame_timeout=frame_timeout, state_file=state_file)


class _NoBeaconFailures(logging.Filter):
    """Drop caproto's traceback for a beacon nobody receives: beacons go to 127.0.0.1 only,
    and without a CA repeater listening there each one is refused."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to send beacon")


def no_delay(sock: Any) -> None:
    """Turn Nagle's algorithm off on a client's TCP circuit (``TCP_NODELAY``).

    caproto's asyncio server listens on a socket made with protocol number 0, so asyncio,
    which sets ``TCP_NODELAY`` only on sockets whose protocol is ``IPPROTO_TCP``, leaves
    Nagle's algorithm on for every circuit it accepts. A reply then waits for the client's
    (delayed, about 40 ms) acknowledgement of the previous one whenever two are in flight:
    the four puts of a ramp step took about 45 ms more than one, a frame about 30 ms more
    than its making. Channel Access clients set ``TCP_NODELAY`` on their side for the same
    reason.

    Parameters
    ----------
    sock : socket-like or None
        The circuit's socket (``writer.get_extra_info("socket")``); None is ignored.
    """
    import socket

    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def serve(
    ioc: PVGroup,
    stop: asyncio.Event,
    on_ready: Callable[[], Awaitable[None] | None] | None = None,
) -> None:
    """Serve ``ioc``'s PVs over Channel Access on 127.0.0.1 until ``stop`` is set.

    Parameters
    ----------
    ioc : caproto.server.PVGroup
        What to serve (e.g. :func:`beamline_ioc`).
    stop : asyncio.Event
        Set it (from a signal handler, another task) to shut the server down.
    on_ready : callable, optional
        Called once the server listens (may return an awaitable).

    Raises
    ------
    RuntimeError
        Before anything listens: the EPICS variables of
        :func:`~uedsteer.sim_devices.epics_env.loopback_environment` are not all set.
    """
    from caproto.asyncio.server import Context

    wrong = off_loopback()
    if wrong:
        raise RuntimeError(
            f"Channel Access would leave the loopback interface ({', '.join(wrong)}); "
            "call uedsteer.sim_devices.epics_env.loopback_environment() first"
        )
    logging.getLogger("caproto.ctx").addFilter(_NoBeaconFailures())

    class NoDelayContext(Context):
        """caproto's server with Nagle's algorithm off on every client's circuit."""

        async def tcp_handler(self, client: Any, addr: Any) -> None:
            no_delay(client.writer.get_extra_info("socket"))
            await super().tcp_handler(client, addr)

    ctx = NoDelayContext(ioc.pvdb, interfaces=[LOOPBACK])

    async def ready(async_lib) -> None:
        if on_ready is not None:
            result = on_ready()
            if result is not None:
                await result

    server = asyncio.create_task(ctx.run(startup_hook=ready))
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({server, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if server in done:  # the server failed (e.g. a port in use): say why
        stopping.cancel()
        server.result()
        return
    server.cancel()
    await asyncio.gather(server, return_exceptions=True)
