"""The beamline contract over uedsteer's five device roles, written once.

A beamline made of uedsteer's devices holds them as the attributes ``pump`` (``fluence``,
``wavelength``, ``shutter``), ``gun`` (``charge``), ``delay`` (``delay``), ``stage`` (``spot``)
and ``detector``: the simulated one (:class:`~uedsteer.sim_devices.beamline.SimulatedBeamline`),
the one of EPICS PVs (:class:`~uedsteer.sim_devices.epics_beamline.EpicsBeamline`) and the one a
queue item names (:class:`~uedsteer.plans.queue_plans.DeviceBeamline`). :class:`BeamlineRoles`
derives from them the accessors the plans drive (:class:`uedsteer.plans.protocols.Beamline`),
so the three cannot disagree on which signal moves a setting.

Like :mod:`~uedsteer.sim_devices.contracts`, this module imports nothing from ophyd or the
physics.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BeamlineRoles"]


class BeamlineRoles:
    """Mixin: :attr:`settings`, :attr:`shutter`, :attr:`spot`, :attr:`motors` and
    :attr:`devices` of an object with the devices ``pump``, ``gun``, ``delay``, ``stage`` and
    ``detector``.

    A setting added to the registry (:data:`~uedsteer.sim_devices.contracts.SETTINGS`) that one
    of these devices moves gets its entry in :attr:`settings` here.
    """

    pump: Any
    gun: Any
    delay: Any
    stage: Any
    detector: Any

    @property
    def settings(self) -> dict[str, Any]:
        """The signal that moves each setting, by name (every one of ``SETTING_NAMES``)."""
        return {
            "fluence": self.pump.fluence,
            "wavelength": self.pump.wavelength,
            "charge": self.gun.charge,
            "delay": self.delay.delay,
        }

    @property
    def shutter(self) -> Any:
        """The pump shutter (``"open"`` / ``"closed"``)."""
        return self.pump.shutter

    @property
    def spot(self) -> Any:
        """The sample spot index."""
        return self.stage.spot

    @property
    def motors(self) -> list[Any]:
        """The devices read with every frame besides the detector."""
        return [self.pump, self.gun, self.delay, self.stage]

    @property
    def devices(self) -> list[Any]:
        """All devices, the detector and then :attr:`motors`."""
        return [self.detector, *self.motors]
