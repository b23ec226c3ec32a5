"""A crystal store read back: Bragg lists with each pattern's truth, and the material split."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .store import check_crystal_store
from .systems import CRYSTAL_SYSTEMS


@dataclass
class CrystalDataset:
    """Bragg lists of a crystal store, with the truth of each pattern's material.

    Attributes
    ----------
    bragg : list of (n, 3) float32 arrays, one per pattern.
    material : (P,) global material index of each pattern.
    zone_axis : (P, 3) int zone axis [uvw] of each pattern.
    system : (P,) str crystal system; ``space_group`` (P,) int; ``lattice`` (P, 6).
    formula : (P,) str.
    source : (P,) str, how the material was drawn (``prototype``, ``wyckoff``, ``random``).
    spec : the store's configuration (dict).
    """

    bragg: list[np.ndarray]
    material: np.ndarray
    zone_axis: np.ndarray
    system: np.ndarray
    space_group: np.ndarray
    lattice: np.ndarray
    formula: np.ndarray
    source: np.ndarray
    spec: dict

    def __len__(self) -> int:
        return len(self.bragg)

    def subset(self, mask: np.ndarray) -> CrystalDataset:
        """The patterns where ``mask`` is True (boolean or index array)."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        columns = {name: getattr(self, name)[idx] for name in _PATTERN_COLUMNS}
        return CrystalDataset(bragg=[self.bragg[i] for i in idx], spec=self.spec, **columns)


_PATTERN_COLUMNS = tuple(
    f.name for f in dataclasses.fields(CrystalDataset) if f.name not in ("bragg", "spec")
)
"""The per-pattern array fields of :class:`CrystalDataset` (one row per Bragg list)."""


def load_crystal_dataset(path: str | Path, allow_incomplete: bool = False) -> CrystalDataset:
    """Read every finished chunk of a crystal store.

    Parameters
    ----------
    path : str or Path
        Store folder written by :func:`write_crystal_dataset`.
    allow_incomplete : bool
        Read a store whose generation has not finished (only its finished chunks).

    Raises
    ------
    FileNotFoundError
        If the folder is not a crystal store (says how to make one).
    ValueError
        If the store is incomplete and ``allow_incomplete`` is False.
    """
    path = Path(path)
    meta = check_crystal_store(path, allow_incomplete)
    bragg: list[np.ndarray] = []
    cols: dict[str, list[np.ndarray]] = {
        k: []
        for k in ("material", "zone_axis", "system", "space_group", "lattice", "formula", "source")
    }
    finished = [f for f in (path / "chunks").glob("chunk_*.npz") if f.stem[6:].isdigit()]
    for f in sorted(finished):
        with np.load(f, allow_pickle=False) as z:
            spots, offsets, pmat = z["spots"], z["offsets"], z["pattern_material"]
            bragg += [spots[offsets[j] : offsets[j + 1]] for j in range(len(pmat))]
            row = {int(m): j for j, m in enumerate(z["material"])}
            sel = np.array([row[int(m)] for m in pmat], dtype=np.int64)
            cols["material"].append(pmat)
            cols["zone_axis"].append(z["zone_axis"])
            cols["system"].append(np.asarray(CRYSTAL_SYSTEMS)[z["system"][sel]])
            cols["space_group"].append(z["space_group"][sel])
            cols["lattice"].append(z["lattice"][sel])
            cols["formula"].append(z["formula"][sel])
            src = z["source"][sel] if "source" in z.files else np.full(len(sel), "random")
            cols["source"].append(src)
    if not bragg:
        raise ValueError(f"path={path} holds no finished chunks yet")
    return CrystalDataset(
        bragg=bragg,
        material=np.concatenate(cols["material"]),
        zone_axis=np.concatenate(cols["zone_axis"]).reshape(-1, 3),
        system=np.concatenate(cols["system"]),
        space_group=np.concatenate(cols["space_group"]),
        lattice=np.concatenate(cols["lattice"]).reshape(-1, 6),
        formula=np.concatenate(cols["formula"]),
        source=np.concatenate(cols["source"]),
        spec=meta["config"],
    )


def split_by_material(
    material: Sequence[int] | np.ndarray, test_fraction: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train/test masks over patterns with every material on one side only.

    Parameters
    ----------
    material : array_like
        Material index of each pattern.
    test_fraction : float
        Share of materials in the test set (paper: 25 %), in (0, 1).
    seed : int
        Seed of the material shuffle.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction} must be in (0, 1)")
    material = np.asarray(material)
    ids = np.unique(material)
    rng = np.random.default_rng(seed)
    test_ids = rng.choice(ids, size=max(1, round(test_fraction * len(ids))), replace=False)
    test = np.isin(material, test_ids)
    return ~test, test


STORE_OFFSET = 10_000_000
"""Material-index offset of the k-th store in :func:`concatenate_datasets` (k · offset)."""


def concatenate_datasets(datasets: Sequence[CrystalDataset]) -> CrystalDataset:
    """Several crystal stores as one data set (e.g. zone-axis and random-orientation stores).

    Material indices of the k-th store are offset by k · 10⁷ so that materials of different
    stores stay different materials for :func:`split_by_material`. ``spec`` is the first
    store's configuration with the others under ``"also"``.
    """
    if not datasets:
        raise ValueError("datasets is empty; give at least one CrystalDataset")
    offset = STORE_OFFSET
    for k, d in enumerate(datasets):
        if len(d) and d.material.max() >= offset:
            raise ValueError(f"datasets[{k}] has material indices >= {offset}")
    spec = dict(datasets[0].spec)
    if len(datasets) > 1:
        spec["also"] = [d.spec for d in datasets[1:]]
    columns = {
        name: np.concatenate([getattr(d, name) for d in datasets]) for name in _PATTERN_COLUMNS
    }
    columns["material"] = np.concatenate([d.material + k * offset for k, d in enumerate(datasets)])
    return CrystalDataset(bragg=[b for d in datasets for b in d.bragg], spec=spec, **columns)
