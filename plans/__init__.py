"""Bluesky plans for UED acquisition, the closed-loop campaign, and logging to Tiled."""

from .campaign import campaign, ramp_to
from .catalog import connect_catalog, event_columns, local_catalog, read_frames, subscribe
from .protocols import Beamline, check_beamline
from .resume import resume_campaign
from .scans import (
    MsgGenerator,
    acquire_frames,
    close_shutter,
    delay_scan,
    fluence_scan,
    grid_scan,
    settings_of,
)
from .simulate import simulate_campaign

__all__ = [
    "Beamline",
    "MsgGenerator",
    "acquire_frames",
    "campaign",
    "check_beamline",
    "close_shutter",
    "connect_catalog",
    "delay_scan",
    "event_columns",
    "fluence_scan",
    "grid_scan",
    "local_catalog",
    "ramp_to",
    "read_frames",
    "resume_campaign",
    "settings_of",
    "simulate_campaign",
    "subscribe",
]
