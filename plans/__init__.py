"""Bluesky plans for UED acquisition and logging to databroker (Tiled)."""

from .scans import (
    MsgGenerator,
    acquire_frames,
    close_shutter,
    delay_scan,
    fluence_scan,
    grid_scan,
    settings_of,
)

__all__ = [
    "MsgGenerator",
    "acquire_frames",
    "close_shutter",
    "delay_scan",
    "fluence_scan",
    "grid_scan",
    "settings_of",
]

from .catalog import connect_catalog, event_columns, local_catalog, read_frames, subscribe

__all__ += ["connect_catalog", "event_columns", "local_catalog", "read_frames", "subscribe"]
