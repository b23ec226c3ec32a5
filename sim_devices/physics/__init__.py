"""Pure-numpy physics backend: grid, structures, structure factors, detector (no ophyd).

Nothing here names a material; materials (:mod:`uedsteer.sim_devices.materials`) build their
cells with :func:`path_cell` and :func:`supercell` and ship their phonon tables.
"""

from .detector import ELECTRONS_PER_FC, DetectorModel
from .difference import difference_channels, reference_pattern
from .form_factors import electron_form_factor, known_elements
from .grid import ReciprocalGrid
from .kinematic import (
    kinematic_amplitude,
    kinematic_intensities,
    kinematic_intensity,
    pixel_intensity,
)
from .phonons import ModeTable, read_mode_table
from .structures import (
    add_phonon_displacement,
    add_thermal_displacements,
    add_vacancies,
    apply_strain,
    degrade,
    path_cell,
    random_strain,
    rotate_in_plane,
    supercell,
    validate_atoms,
)

__all__ = [
    "ELECTRONS_PER_FC",
    "DetectorModel",
    "ModeTable",
    "ReciprocalGrid",
    "add_phonon_displacement",
    "add_thermal_displacements",
    "add_vacancies",
    "apply_strain",
    "degrade",
    "difference_channels",
    "electron_form_factor",
    "kinematic_amplitude",
    "kinematic_intensities",
    "kinematic_intensity",
    "pixel_intensity",
    "known_elements",
    "path_cell",
    "random_strain",
    "read_mode_table",
    "reference_pattern",
    "rotate_in_plane",
    "supercell",
    "validate_atoms",
]
