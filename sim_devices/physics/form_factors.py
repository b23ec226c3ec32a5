"""Electron scattering factors (Lobato & Van Dyck 2014 parameterization).

f(g) = Σ_{i=1..5} a_i (2 + b_i g²) / (1 + b_i g²)², with g in 1/Å (no 2π), a_i in Å,
b_i in Å², f in Å. The table (H to Lr, Z = 1…103) is package data
(``data/lobato_2014.json``), taken from the published parameters.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np
from numpy.typing import ArrayLike


@lru_cache(maxsize=1)
def _table() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    text = resources.files(__package__).joinpath("data/lobato_2014.json").read_text()
    raw = json.loads(text)["elements"]
    return {s: (np.asarray(v["a"], float), np.asarray(v["b"], float)) for s, v in raw.items()}


def known_elements() -> tuple[str, ...]:
    """Chemical symbols with electron scattering factors, ordered by Z."""
    return tuple(_table())


def electron_form_factor(symbol: str, g: ArrayLike) -> np.ndarray:
    """Electron scattering factor of a neutral atom.

    Parameters
    ----------
    symbol : str
        Chemical symbol, e.g. ``"Mo"`` or ``"Te"`` (H … Lr).
    g : array_like
        Scattering vector magnitude in 1/Å without 2π (g = 1/d); must be finite.

    Returns
    -------
    numpy.ndarray
        f(g) in Å, same shape as ``g``.

    Raises
    ------
    ValueError
        If the element is unknown or ``g`` holds non-finite values.
    """
    table = _table()
    if symbol not in table:
        raise ValueError(
            f"symbol={symbol!r} has no electron scattering factor; "
            f"known elements are H…Lr (Z = 1…{len(table)})"
        )
    g = np.asarray(g, dtype=np.float64)
    if not np.all(np.isfinite(g)):
        raise ValueError("g must be finite (1/Å without 2π); got NaN or inf")
    a, b = table[symbol]
    g2 = g[..., None] ** 2
    return np.sum(a * (2.0 + b * g2) / (1.0 + b * g2) ** 2, axis=-1)
