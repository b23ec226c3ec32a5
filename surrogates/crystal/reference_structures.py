"""Real crystals a crystal model should read: gold, rock salt, zinc blende and a few more.

The training stores hold random crystals; these are textbook structures, simulated as the
guide's snippet does (:func:`~uedsteer.sim_devices.physics.bragg.dynamical_bragg` with its
defaults, the simulation convention, along :func:`~uedsteer.sim_devices.physics.bragg.zone_axes`
``n=10``) and read by the model's aggregate over the ten patterns. The model card
(``uedsteer train crystal``) and the tests report them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ReferenceStructure:
    """A textbook crystal: how to build it and what it is."""

    name: str
    crystal_system: str
    space_group: int
    a: float  # Å, conventional cell
    c: float | None = None  # Å, for the non-cubic ones

    def atoms(self) -> Any:
        """The conventional cell as ``ase.Atoms``."""
        from ase.build import bulk
        from ase.spacegroup import crystal

        builders = {
            "Au (fcc)": lambda: bulk("Au", "fcc", a=self.a, cubic=True),
            "NaCl (rock salt)": lambda: bulk("NaCl", "rocksalt", a=self.a, cubic=True),
            "ZnS (zinc blende)": lambda: bulk("ZnS", "zincblende", a=self.a, cubic=True),
            "Si (diamond)": lambda: bulk("Si", "diamond", a=self.a, cubic=True),
            "Fe (bcc)": lambda: bulk("Fe", "bcc", a=self.a, cubic=True),
            "Mg (hcp)": lambda: bulk("Mg", "hcp", a=self.a, c=self.c),
            "ZnO (wurtzite)": lambda: bulk("ZnO", "wurtzite", a=self.a, c=self.c),
            "TiO2 (rutile)": lambda: crystal(
                ["Ti", "O"],
                basis=[(0, 0, 0), (0.3048, 0.3048, 0)],
                spacegroup=136,
                cellpar=[self.a, self.a, self.c, 90, 90, 90],
            ),
        }
        return builders[self.name]()


REFERENCE_STRUCTURES: tuple[ReferenceStructure, ...] = (
    ReferenceStructure("Au (fcc)", "cubic", 225, 4.08),
    ReferenceStructure("NaCl (rock salt)", "cubic", 225, 5.64),
    ReferenceStructure("ZnS (zinc blende)", "cubic", 216, 5.41),
    ReferenceStructure("Si (diamond)", "cubic", 227, 5.431),
    ReferenceStructure("Fe (bcc)", "cubic", 229, 2.87),
    ReferenceStructure("Mg (hcp)", "hexagonal", 194, 3.21, 5.21),
    ReferenceStructure("ZnO (wurtzite)", "hexagonal", 186, 3.25, 5.21),
    ReferenceStructure("TiO2 (rutile)", "tetragonal", 136, 4.594, 2.959),
)
"""The structures :func:`read_reference_structures` reads (the first three are the guide's)."""


def reference_bragg_lists(structure: ReferenceStructure, n_zone_axes: int = 10) -> list:
    """The guide's lists of one structure: ``dynamical_bragg`` (convention defaults) along
    ``zone_axes(atoms, n=n_zone_axes)``."""
    from uedsteer.sim_devices.physics.bragg import bragg_lists_for_zone_axes, zone_axes

    atoms = structure.atoms()
    return bragg_lists_for_zone_axes(atoms, zone_axes(atoms, n=n_zone_axes))


def read_reference_structures(
    predictor: Any,
    structures: tuple[ReferenceStructure, ...] = REFERENCE_STRUCTURES,
    n_zone_axes: int = 10,
) -> list[dict[str, Any]]:
    """Each structure's aggregate prediction next to its truth.

    Returns
    -------
    list of dict
        Per structure: ``name``, the true ``crystal_system``, ``space_group``, ``a`` (and
        ``c``), the predicted ones (``predicted_system``, ``predicted_space_group``,
        ``predicted_lattice`` (a, b, c) in Å), the aggregate ``confidence`` and the number of
        patterns.
    """
    rows = []
    for structure in structures:
        agg = predictor.predict_aggregate(reference_bragg_lists(structure, n_zone_axes))
        rows.append(
            {
                "name": structure.name,
                "crystal_system": structure.crystal_system,
                "space_group": structure.space_group,
                "a": structure.a,
                "c": structure.c,
                "predicted_system": agg.crystal_system,
                "predicted_space_group": int(agg.space_group),
                "predicted_lattice": [round(float(v), 4) for v in np.asarray(agg.lattice)],
                "confidence": round(float(agg.confidence), 4),
                "patterns": int(agg.n_patterns),
            }
        )
    return rows
