"""The process variables of a UED beamline: what each is, and its default name under a prefix.

The simulated beamline's IOC (:mod:`uedsteer.sim_devices.ioc`) serves these names, and
:class:`~uedsteer.sim_devices.epics_beamline.EpicsBeamline` connects to them unless a PV map
names a facility's own:

=================  ====================  =====================================================
key                default (after P)     what
=================  ====================  =====================================================
``fluence``        ``Pump:Fluence``      incident pump fluence, mJ/cm^2 (float, drive limits)
``wavelength``     ``Pump:Wavelength``   pump wavelength, nm (float, drive limits)
``charge``         ``Gun:Charge``        electron bunch charge, fC (float, drive limits)
``delay``          ``Delay:Time``        pump–probe delay, ps (float, drive limits)
``shutter``        ``Pump:Shutter``      pump shutter, enum ``closed`` / ``open``
``spot``           ``Stage:Spot``        sample spot index (integer, drive limits)
``acquire``        ``Det:Acquire``       busy: a put of 1 takes a frame, 0 when it is written
``image``          ``Det:Image``         the frame, flattened row by row (float32 waveform)
``image_shape``    ``Det:ImageShape``    the frame's (rows, columns) (integer waveform)
=================  ====================  =====================================================

The first four keys are the settings of the registry
(:data:`uedsteer.sim_devices.contracts.SETTING_NAMES`), in its order (a test holds them
together: a new setting needs its PV here, in the IOC and in the EPICS beamline).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["PV_KEYS", "PV_SUFFIXES", "default_pv_names"]

PV_SUFFIXES: Mapping[str, str] = MappingProxyType(
    {
        "fluence": "Pump:Fluence",
        "wavelength": "Pump:Wavelength",
        "charge": "Gun:Charge",
        "delay": "Delay:Time",
        "shutter": "Pump:Shutter",
        "spot": "Stage:Spot",
        "acquire": "Det:Acquire",
        "image": "Det:Image",
        "image_shape": "Det:ImageShape",
    }
)
"""Each key's default PV name after the prefix (module docstring: what each PV is)."""

PV_KEYS: tuple[str, ...] = tuple(PV_SUFFIXES)
"""The keys of a PV map: the settings, then ``shutter``, ``spot`` and the detector's PVs."""


def default_pv_names(prefix: str) -> dict[str, str]:
    """Every key's PV name under ``prefix`` (``"UED:"`` → ``{"fluence": "UED:Pump:Fluence", …}``).

    Parameters
    ----------
    prefix : str
        Prepended as it is (give the separator, e.g. the trailing colon, yourself).

    Returns
    -------
    dict
        Key → PV name, for every key of :data:`PV_KEYS`, in that order.
    """
    return {key: f"{prefix}{suffix}" for key, suffix in PV_SUFFIXES.items()}
