"""Bragg lists of one crystal along several zone axes (one structure-factor table for all)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .bloch import dynamical_bragg, structure_factor_for
from .convention import K_MAX, THERMAL_SIGMA
from .inputs import _zone_axis_vector, as_atoms
from .kinematic import kinematic_bragg

_METHODS = ("dynamical", "kinematic")


def bragg_lists_for_zone_axes(
    crystal: Any,
    zone_axes: ArrayLike,
    *,
    method: str = "dynamical",
    **kw: Any,
) -> list[np.ndarray]:
    """Bragg lists of one crystal along several zone axes.

    For ``method="dynamical"`` one structure-factor table (:func:`structure_factor_for`, or
    ``structure_factor=`` in ``kw``) serves every zone axis: each coupling the axes share is
    computed once.

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The unit cell.
    zone_axes : array_like of int, shape (m, 3)
        The [uvw] list, e.g. from :func:`zone_axes`.
    method : {"dynamical", "kinematic"}
        Which simulator.
    **kw
        Keyword arguments of :func:`dynamical_bragg` / :func:`kinematic_bragg` (not
        ``rotation``).

    Returns
    -------
    list of numpy.ndarray
        One Bragg list per zone axis, in order.

    Raises
    ------
    ValueError
        For an unknown method, a ``rotation`` keyword, a malformed zone-axis list or any
        error of the simulators.
    """
    if method not in _METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {_METHODS}")
    if "rotation" in kw:
        raise ValueError("rotation is not accepted here: give zone_axes, or call the simulator")
    try:
        axes = np.asarray(zone_axes, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("zone_axes must be an (m, 3) array of integers [uvw]") from None
    if axes.ndim != 2 or axes.shape[1] != 3:
        raise ValueError(f"zone_axes must have shape (m, 3); got {axes.shape}")
    atoms = as_atoms(crystal)
    for i, uvw in enumerate(axes):
        _zone_axis_vector(uvw, name=f"zone_axes[{i}]")
    if method == "kinematic":
        kw.pop("structure_factor", None)
        return [kinematic_bragg(atoms, uvw, **kw) for uvw in axes.astype(np.int64)]
    if kw.get("structure_factor") is None:
        kw["structure_factor"] = structure_factor_for(
            atoms, kw.get("k_max", K_MAX), kw.get("thermal_sigma", THERMAL_SIGMA)
        )
    return [dynamical_bragg(atoms, uvw, **kw) for uvw in axes.astype(np.int64)]
