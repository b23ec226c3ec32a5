"""What the simulated IOC's devices keep across a restart: settings, spot and shutter.

Real beamline hardware does not forget its state when its IOC crashes: a pump shutter left
open stays open, and the restarted IOC reads it back (or restores it with EPICS autosave).
``uedsteer ioc --state FILE`` models that: every put to a setting, the spot or the shutter
writes them to ``FILE`` (JSON, replaced atomically), and an IOC started with an existing
``FILE`` moves its simulated devices there before it serves a PV. The sample's hidden state
(damage, shot counts) is not kept: it lives in the simulation, not in the hardware.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .contracts import SETTING_NAMES

__all__ = ["DeviceState", "restore_state", "save_state"]


class DeviceState(BaseModel):
    """The devices' state as the state file holds it."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, float] = Field(description="Each setting's value, by name.")
    spot: int = Field(ge=0, description="The sample spot index.")
    shutter: str = Field(description="The pump shutter: 'open' or 'closed'.")


def _state_of(beamline: Any) -> DeviceState:
    return DeviceState(
        settings={k: float(beamline.settings[k].get()) for k in SETTING_NAMES},
        spot=int(beamline.spot.get()),
        shutter=str(beamline.shutter.get()),
    )


def save_state(beamline: Any, path: str | os.PathLike) -> None:
    """Write the devices' state of ``beamline`` to ``path``, atomically (a reader never sees
    half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(_state_of(beamline).model_dump_json())
    os.replace(tmp, path)


def restore_state(beamline: Any, path: str | os.PathLike) -> DeviceState | None:
    """Move the devices of ``beamline`` to the state saved in ``path``; None when there is no
    such file yet.

    Raises
    ------
    ValueError
        One line naming the file: not a state file, or a value beyond a device's limits.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = DeviceState.model_validate(json.loads(path.read_text()))
        missing = sorted(set(SETTING_NAMES) - set(state.settings))
        if missing:
            raise ValueError(f"no value for {', '.join(missing)}")
        for k in SETTING_NAMES:
            beamline.settings[k].put(state.settings[k])
        beamline.spot.put(state.spot)
        beamline.shutter.put(state.shutter)
    except (ValueError, ValidationError) as err:
        text = str(err).splitlines()[0]
        raise ValueError(f"state file {path}: {text}") from err
    return state
