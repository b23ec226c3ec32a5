"""How random crystals are drawn and simulated, and what determines a crystal store.

The simulation defaults are the simulation convention
(:mod:`uedsteer.sim_devices.physics.bragg.convention`), shared with ``dynamical_bragg``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..physics.bragg.convention import (
    K_MAX,
    MIN_INTENSITY,
    SG_MAX,
    THERMAL_SIGMA,
    THICKNESS_NM,
    VOLTAGE_KV,
)
from .systems import CRYSTAL_SYSTEMS

SOURCES = ("prototype", "wyckoff", "random")


class CrystalGenSettings(BaseModel):
    """How crystals are drawn and simulated (every field is recorded in the store)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    systems: tuple[str, ...] = Field(
        CRYSTAL_SYSTEMS, description="Crystal systems to draw, in turn (no triclinic)."
    )
    sources: dict[str, float] = Field(
        {"prototype": 0.4, "wyckoff": 0.4, "random": 0.2},
        description="Relative weights of the three ways a crystal is drawn: 'prototype' (an "
        "AFLOW structure type with new elements and lattice), 'wyckoff' (a Materials-Project "
        "Wyckoff combination filled by pyxtal), 'random' (pyxtal on common space groups).",
    )
    common_fraction: float = Field(
        0.7, ge=0, le=1, description="'random': share drawn from the common space groups."
    )
    max_atoms: int = Field(48, ge=1, le=400, description="Most atoms in the conventional cell.")
    max_volume: float = Field(
        1000.0, gt=0, description="Largest conventional-cell volume, Å³ (paper: 1,000)."
    )
    zone_axes: int = Field(20, ge=1, le=200, description="Zone axes simulated per material.")
    max_index: int = Field(3, ge=1, le=6, description="Largest |u|, |v|, |w| of a zone axis.")
    random_orientations: int = Field(
        0,
        ge=0,
        le=200,
        description="Extra patterns per material at uniformly random orientations (off any "
        "zone axis, as randomly oriented nanoparticles are); stored with zone axis [0 0 0].",
    )
    method: Literal["dynamical", "kinematic"] = Field(
        "dynamical", description="Bloch-wave (abTEM) or kinematic Bragg lists."
    )
    thickness_nm: float = Field(
        THICKNESS_NM, gt=0, description="Specimen thickness, nm (paper: 20)."
    )
    voltage_kv: float = Field(VOLTAGE_KV, gt=0, description="Accelerating voltage, kV.")
    k_max: float = Field(K_MAX, gt=0, description="Largest in-plane |q| kept, 1/Å (no 2π).")
    sg_max: float = Field(
        SG_MAX,
        gt=0,
        description="Largest excitation error, 1/Å (at 20 nm a spot with s = 0.02 is already "
        "< 1 % of its in-zone intensity; larger values only add slow upper-layer beams).",
    )
    thermal_sigma: float = Field(
        THERMAL_SIGMA, ge=0, description="RMS thermal displacement (Debye–Waller), Å."
    )
    min_intensity: float = Field(
        MIN_INTENSITY, ge=0, description="Weakest spot kept (central beam 1)."
    )

    @field_validator("sources")
    @classmethod
    def _check_sources(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k in value if k not in SOURCES]
        if bad or any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError(
                f"sources={value} is not allowed: weights >= 0 (not all 0) for keys among {SOURCES}"
            )
        return value

    @field_validator("systems")
    @classmethod
    def _check_systems(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in value if s not in CRYSTAL_SYSTEMS]
        if bad or not value:
            raise ValueError(
                f"systems={value} is not allowed: choose among {CRYSTAL_SYSTEMS} (triclinic is "
                "not modelled)"
            )
        return value


class CrystalDatasetSpec(BaseModel):
    """Everything that determines a stored crystal data set (compared on resume)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_materials: int = Field(600, ge=1, description="Number of random crystals.")
    seed: int = Field(0, ge=0, description="Data seed: material i uses default_rng([seed, i]).")
    chunk: int = Field(12, ge=1, le=1000, description="Materials per stored chunk and task.")
    settings: CrystalGenSettings = Field(
        default_factory=CrystalGenSettings, description="Crystal drawing and simulation."
    )
