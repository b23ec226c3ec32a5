"""Pure-numpy physics backend: grid, structures, structure factors, detector (no ophyd)."""

from .detector import ELECTRONS_PER_FC, DetectorModel
from .difference import difference_channels, reference_pattern
from .form_factors import electron_form_factor, known_elements
from .grid import ReciprocalGrid
from .kinematic import kinematic_amplitude, kinematic_intensities, kinematic_intensity
from .phonons import ModeTable, load_modes
from .structures import (
    PHASES,
    add_phonon_displacement,
    add_thermal_displacements,
    add_vacancies,
    apply_strain,
    canonical_phase,
    degrade,
    mote2_cell,
    mote2_supercell,
    random_strain,
    rotate_in_plane,
    validate_atoms,
)

__all__ = [
    "ELECTRONS_PER_FC",
    "DetectorModel",
    "ModeTable",
    "PHASES",
    "ReciprocalGrid",
    "add_phonon_displacement",
    "add_thermal_displacements",
    "add_vacancies",
    "apply_strain",
    "canonical_phase",
    "degrade",
    "difference_channels",
    "electron_form_factor",
    "kinematic_amplitude",
    "kinematic_intensities",
    "kinematic_intensity",
    "known_elements",
    "load_modes",
    "mote2_cell",
    "mote2_supercell",
    "random_strain",
    "reference_pattern",
    "rotate_in_plane",
    "validate_atoms",
]
