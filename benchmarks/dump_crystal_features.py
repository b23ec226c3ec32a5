"""Dump what the crystal model and the data stores compute, to show a refactoring changed none.

Writes one ``.npz`` with: the Bragg lists and truth of a tiny fixed crystal store (6 materials,
seed 5, Bloch waves, written through the resumable store); its features in every feature set
(``radial``, ``zone``, ``radial+zone``), oriented or not, with and without a detector window;
kinematic and dynamical Bragg lists and zone axes of Si, Cu and Mg; frames from
``generate_frames`` and from a frame store (written, then grown); and the per-pattern and
aggregated predictions of tiny models (same seed) trained on that store, before and after a
save/load round trip. ``--compare A B`` checks two dumps with ``np.array_equal``.

Run: ``./py benchmarks/dump_crystal_features.py --out /tmp/crystal-features-after.npz``, then
``./py benchmarks/dump_crystal_features.py --compare BEFORE.npz AFTER.npz`` (about 2 minutes
on two shared cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

FEATURE_SETS = ("radial", "zone", "radial+zone")
SMALL = {"n_estimators": 8, "max_depth": 6}


def _crystal_store(tmp: Path, res: dict) -> list[np.ndarray]:
    from uedsteer.sim_devices.crystals.dataset import load_crystal_dataset
    from uedsteer.sim_devices.crystals.settings import CrystalDatasetSpec, CrystalGenSettings
    from uedsteer.sim_devices.crystals.store import write_crystal_dataset

    settings = CrystalGenSettings(zone_axes=3, max_atoms=8, max_index=2, random_orientations=1)
    spec = CrystalDatasetSpec(n_materials=6, seed=5, chunk=2, settings=settings)
    write_crystal_dataset(tmp / "crystals", spec, n_workers=1, progress=False)
    data = load_crystal_dataset(tmp / "crystals")
    for j, bragg in enumerate(data.bragg):
        res[f"store_bragg_{j}"] = bragg
    for column in ("material", "zone_axis", "system", "space_group", "lattice", "formula"):
        res[f"store_{column}"] = getattr(data, column)
    res["store_source"] = data.source
    return data


def _features(data, res: dict) -> None:
    from uedsteer.surrogates.crystal.predictor import CrystalPredictor

    for mode in FEATURE_SETS:
        for orient in (True, False):
            for q_range in (None, (0.2, 1.5)):
                x, valid = CrystalPredictor(features=mode, orient=orient, q_range=q_range).features(
                    data.bragg
                )
                key = f"feat_{mode}_{orient}_{q_range is not None}"
                res[key], res[key + "_valid"] = x, valid


def _bragg_lists(res: dict) -> None:
    from ase.build import bulk

    from uedsteer.sim_devices.physics.bragg import dynamical_bragg, kinematic_bragg, zone_axes

    crystals = {
        "Si": bulk("Si", "diamond", a=5.43),
        "Cu": bulk("Cu", "fcc", a=3.6),
        "Mg": bulk("Mg", "hcp", a=3.21, c=5.21),
    }
    for name, crystal in crystals.items():
        res[f"axes_{name}"] = zone_axes(crystal, n=4, max_index=2)
        for axis in ((0, 0, 1), (1, 1, 0)):
            res[f"dyn_{name}_{axis}"] = dynamical_bragg(crystal, axis, k_max=1.5, thickness_nm=15.0)
            res[f"kin_{name}_{axis}"] = kinematic_bragg(crystal, axis, k_max=1.5)


def _frames(tmp: Path, res: dict) -> None:
    from uedsteer.sim_devices.frame_store import DatasetSpec, load_dataset, write_dataset
    from uedsteer.sim_devices.frames import generate_frames

    for label in ("ref_2H", "vacancy_1Tp"):
        res[f"frames_{label}"] = generate_frames(label, 2, seed=3, base_size=(10, 6))[0]
    spec = DatasetSpec(
        labels=("ref_2H", "degraded"),
        n_per_label=3,
        seed=2,
        chunk=2,
        settings={"base_size": (10, 6)},
    )
    write_dataset(tmp / "frames.zarr", spec, n_workers=1, progress=False)
    res["store_frames"] = load_dataset(tmp / "frames.zarr")[0]
    grown = spec.model_copy(update={"n_per_label": 5})  # the store grows; old frames stay
    write_dataset(tmp / "frames.zarr", grown, n_workers=1, progress=False)
    res["store_frames_grown"] = load_dataset(tmp / "frames.zarr")[0]


def _predictions(tmp: Path, data, res: dict) -> None:
    from uedsteer.surrogates.crystal.predictor import CrystalPredictor

    for mode in ("radial", "zone"):
        model = CrystalPredictor(
            features=mode,
            random_state=0,
            n_jobs=1,
            system_params=SMALL,
            space_group_params=SMALL,
            lattice_params=SMALL,
        )
        x, v = model.features(data.bragg)
        model.fit(x[v], data.system[v], data.space_group[v], data.lattice[v, :3], progress=False)
        pred = model.predict(data.bragg)
        res[f"pred_{mode}_system"] = pred.crystal_system
        res[f"pred_{mode}_sg"] = pred.space_group
        res[f"pred_{mode}_lattice"] = pred.lattice
        res[f"pred_{mode}_votes"] = pred.system_votes
        agg = model.predict_aggregate(data.bragg)
        res[f"agg_{mode}"] = np.array([agg.confidence, agg.space_group, *agg.lattice])
        res[f"agg_{mode}_system"] = np.array(agg.crystal_system)
        loaded = CrystalPredictor.load(model.save(tmp / f"model_{mode}"))
        res[f"loaded_{mode}_lattice"] = loaded.predict(data.bragg).lattice


def dump(out: Path) -> None:
    res: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        data = _crystal_store(tmp, res)
        _features(data, res)
        _bragg_lists(res)
        _frames(tmp, res)
        _predictions(tmp, data, res)
    np.savez(out, **res)
    print(f"{out}: {len(res)} arrays")


def compare(before: Path, after: Path) -> bool:
    a, b = np.load(before), np.load(after)
    only = sorted(set(a.files) ^ set(b.files))
    common = sorted(set(a.files) & set(b.files))
    bad = [
        k
        for k in common
        if a[k].dtype != b[k].dtype
        or not np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind in "fc")
    ]
    print(f"{len(common)} arrays in both; np.array_equal for all: {not bad}")
    if bad:
        print(f"differ: {bad}")
    if only:
        print(f"in one dump only: {only}")
    return not bad and not only


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write a dump here (.npz)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        return 0 if compare(*args.compare) else 1
    if args.out is None:
        parser.error("give --out PATH or --compare BEFORE AFTER")
    dump(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
