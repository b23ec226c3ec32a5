"""Simulated 4D-STEM scan of Au nanoparticles, its raster plan and the crystal-map pipeline."""

from dataclasses import dataclass

import numpy as np
import pytest
from bluesky import RunEngine

from uedsteer.plans.stem import bragg_lists_from_docs, bragg_lists_from_run, raster_scan
from uedsteer.sim_devices.devices import LimitError
from uedsteer.sim_devices.stem_devices import StemMicroscope, unpad_bragg_list
from uedsteer.sim_devices.stem_particles import AU_LATTICE_CONSTANT
from uedsteer.sim_devices.stem_sample import NanoparticleField
from uedsteer.surrogates.crystal.features import CRYSTAL_SYSTEMS
from uedsteer.surrogates.crystal.maps import crystal_maps, mode_filter, nan_median_filter
from uedsteer.surrogates.crystal.maps_plot import plot_crystal_maps

N = 12  # small field: a handful of particles, a few dozen Bloch-wave runs


def fcc_q(a: float, q_max: float) -> np.ndarray:
    """|q| = sqrt(h² + k² + l²)/a of the reflections FCC allows (h, k, l all even or all odd)."""
    h = np.arange(-12, 13)
    hkl = np.stack(np.meshgrid(h, h, h, indexing="ij"), axis=-1).reshape(-1, 3)
    parity = hkl % 2
    allowed = np.all(parity == parity[:, :1], axis=1) & np.any(hkl != 0, axis=1)
    q = np.unique(np.round(np.linalg.norm(hkl[allowed], axis=1) / a, 9))
    return q[q <= q_max]


@pytest.fixture(scope="module")
def field() -> NanoparticleField:
    return NanoparticleField(nx=N, ny=N, seed=1)


@pytest.fixture(scope="module")
def clean_field() -> NanoparticleField:
    return NanoparticleField(nx=N, ny=N, seed=1, spurious_rate=0.0)


def test_field_is_seeded_and_has_particles_and_support(field):
    again = NanoparticleField(nx=N, ny=N, seed=1)
    assert [p.x_nm for p in again.particles] == [p.x_nm for p in field.particles]
    truth = field.truth_maps()
    on = truth["particle_id"] >= 0
    assert 0.05 < on.mean() < 0.6, "both particles and bare support in the field"
    assert np.allclose(truth["lattice_constant"][on], AU_LATTICE_CONSTANT)
    assert np.isnan(truth["lattice_constant"][~on]).all()
    assert (truth["thickness_nm"][on] > 0).all() and (truth["thickness_nm"][~on] == 0).all()
    with pytest.raises(ValueError, match="extra"):
        NanoparticleField(nx=4, bogus=1)


def test_particles_give_five_spots_or_more_support_fewer(field):
    lists = field.scan()
    n = np.vectorize(len)(lists)
    on = field.truth_maps()["particle_id"] >= 0
    assert (n[on] >= 5).mean() >= 0.95, n[on]
    assert n[~on].max() < 5, "support: central beam plus at most 3 spurious spots"
    xs, ys = field.grid_positions()
    iy, ix = np.argwhere(~on)[0]
    ideal = field.ideal_bragg(xs[ix], ys[iy])
    assert ideal.tolist() == [[0.0, 0.0, 1.0]], "bare carbon gives no Bragg spots"
    # the central beam is the brightest spot and carries most of the probe's electrons
    for spots in lists[on]:
        assert np.hypot(*spots[0, :2]) < 0.05
        assert spots[0, 2] > 0.3 * field.electrons_per_position


def test_spots_lie_on_allowed_fcc_reflections(clean_field):
    a = AU_LATTICE_CONSTANT
    rings = fcc_q(a, clean_field.k_max + 0.5)
    lam = 0.019687  # Å at 300 kV
    xs, ys = clean_field.grid_positions()
    on = np.argwhere(clean_field.truth_maps()["particle_id"] >= 0)
    q111 = []
    for iy, ix in on:
        ideal = clean_field.ideal_bragg(xs[ix], ys[iy])[1:]  # drop the central beam
        q = np.hypot(ideal[:, 0], ideal[:, 1])[:, None]
        # A listed spot is the in-plane part of an allowed g: |g| ≥ q, and |g| − q is at most
        # g_z²/(2q) with |g_z| ≤ sg_max + λ|g|²/2 (beams off the zero-order Laue zone).
        gz = clean_field.sg_max + 0.5 * lam * rings[None, :] ** 2
        gap = rings[None, :] - q
        assert ((gap >= -1e-9) & (gap <= gz**2 / (2 * q) + 1e-9)).any(axis=1).all()
        measured = clean_field.measure(xs[ix], ys[iy])
        q = np.hypot(measured[:, 0], measured[:, 1])
        q = q[q > 0.15]  # the central beam
        low = q[q < 1.0]  # rings up to (400) are ≥ 0.05 1/Å apart: unambiguous
        dist = np.abs(low[:, None] - rings[None, :]).min(axis=1)
        # jitter (5σ) plus the projection shortening (≤ 0.005 1/Å below 1 1/Å)
        assert dist.max() < 5 * clean_field.q_jitter + 0.005, (low, dist)
        q111.extend(low[np.abs(low - np.sqrt(3) / a) < 0.03])
    assert len(q111) >= 10
    # the (111) ring of the measured lists gives back a = 4.08 Å
    assert np.sqrt(3) / np.mean(q111) == pytest.approx(a, abs=0.02)


def test_detector_pads_and_truncates_to_max_spots(field):
    microscope = StemMicroscope(field=field, max_spots=4)
    p = max(field.particles, key=lambda p: p.radius_nm)
    microscope.probe.x.set(min(max(p.x_nm, 0.0), field.extent_nm[0])).wait(1)
    microscope.probe.y.set(min(max(p.y_nm, 0.0), field.extent_nm[1])).wait(1)
    assert microscope.truth()["particle_id"] == p.index
    microscope.detector.trigger().wait(5)
    reading = microscope.detector.read()
    spots = np.asarray(reading["stem_detector_spots"]["value"])
    assert spots.shape == (4, 3) and reading["stem_detector_n_spots"]["value"] == 4
    assert reading["stem_detector_n_truncated"]["value"] > 0
    assert np.all(np.diff(spots[:, 2]) <= 0), "brightest spots kept, in order"
    assert microscope.detector.bragg_list().shape == (4, 3)
    with pytest.raises(LimitError, match="above the hard limit"):
        microscope.probe.x.set(field.extent_nm[0] + 1.0)
    with pytest.raises(LimitError, match="kV"):
        microscope.voltage.set(400.0)


def run(plan):
    docs = []
    RunEngine({}, call_returns_result=False)(plan, lambda name, doc: docs.append((name, doc)))
    return docs


def test_raster_scan_records_one_event_per_position(field):
    microscope = StemMicroscope(field=field, max_spots=64)
    docs = run(raster_scan(microscope, N, N, step_nm=field.step_nm, md={"operator": "test"}))
    names = [name for name, _ in docs]
    assert names.count("start") == names.count("stop") == names.count("descriptor") == 1
    events = [doc for name, doc in docs if name == "event"]
    assert len(events) == N * N
    start, stop = docs[0][1], docs[-1][1]
    assert stop["exit_status"] == "success" and stop["num_events"] == {"primary": N * N}
    assert start["shape"] == [N, N] and start["num_points"] == N * N
    assert start["voltage_kv"] == 300.0 and start["operator"] == "test"
    assert start["simulation"]["field"]["seed"] == 1
    desc = docs[1][1]["data_keys"]
    assert desc["stem_detector_spots"]["shape"] == [64, 3]
    # row-major raster: y outer, x inner
    x = np.array([e["data"]["stem_probe_x"] for e in events]).reshape(N, N)
    y = np.array([e["data"]["stem_probe_y"] for e in events]).reshape(N, N)
    xs, ys = field.grid_positions()
    assert np.allclose(x, xs[None, :]) and np.allclose(y, ys[:, None])
    # fixed-shape padded readings, n_spots real rows first
    for e in events:
        spots = np.asarray(e["data"]["stem_detector_spots"])
        n = e["data"]["stem_detector_n_spots"]
        assert spots.shape == (64, 3)
        assert np.isfinite(spots[:n]).all() and np.isnan(spots[n:]).all()
        assert len(unpad_bragg_list(spots)) == n
    # back to a grid: particles pass the 5-spot filter, the support does not
    lists = bragg_lists_from_docs(docs)
    n_spots = np.vectorize(len)(lists)
    assert n_spots.shape == (N, N)
    on = field.truth_maps()["particle_id"] >= 0
    assert (n_spots[on] >= 5).mean() >= 0.95 and n_spots[~on].max() < 5


def test_raster_scan_round_trips_through_the_catalog(tmp_path):
    from uedsteer.plans.catalog import local_catalog, subscribe

    small = NanoparticleField(nx=5, ny=4, seed=3, coverage=0.6)
    microscope = StemMicroscope(field=small, max_spots=64)
    catalog = local_catalog(tmp_path / "cat")
    docs = []
    RE = RunEngine({})
    subscribe(RE, catalog)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    (uid,) = RE(raster_scan(microscope, 5, 4, step_nm=small.step_nm))
    from_catalog = bragg_lists_from_run(catalog[uid])
    from_docs = bragg_lists_from_docs(docs)
    assert from_catalog.shape == (4, 5)
    assert any(len(b) >= 5 for b in from_catalog.ravel())
    for a, b in zip(from_catalog.ravel(), from_docs.ravel(), strict=True):
        np.testing.assert_allclose(a, b)


def test_raster_scan_checks_bounds_before_the_run_opens(field):
    microscope = StemMicroscope(field=field)
    docs = []
    with pytest.raises(LimitError, match="above the hard limit"):
        RunEngine({}, call_returns_result=False)(
            raster_scan(microscope, N + 1, N, step_nm=field.step_nm),
            lambda name, doc: docs.append(name),
        )
    assert docs == [], "no run was opened"
    with pytest.raises(ValueError, match="step_nm"):
        list(raster_scan(microscope, 2, 2, step_nm=0.0))


# ------------------------------------------------------------------------ maps, fake predictor
@dataclass
class FakePrediction:
    crystal_system: np.ndarray
    difference_weight: np.ndarray
    lattice: np.ndarray
    valid: np.ndarray


class FakePredictor:
    """Looks each pattern up in a table: the code is the intensity of its last spot."""

    def __init__(self, table: dict[int, tuple[str, float, float, float]]) -> None:
        self.table = table  # code -> (system, difference weight, a of cubic model, a own model)
        self.calls: list[tuple[int, str | None]] = []

    def predict(self, bragg_lists, route_to=None) -> FakePrediction:
        self.calls.append((len(bragg_lists), route_to))
        rows = [self.table[int(spots[-1, 2])] for spots in bragg_lists]
        a = [r[2] if route_to == "cubic" else r[3] for r in rows]
        return FakePrediction(
            crystal_system=np.array([r[0] for r in rows]),
            difference_weight=np.array([r[1] for r in rows]),
            lattice=np.repeat(np.array(a)[:, None], 3, axis=1),
            valid=np.ones(len(rows), dtype=bool),
        )


def synthetic_scan(ny=10, nx=10):
    """A particle (columns ≥ 2) on support (columns 0–1) with planted defects.

    * (5, 5): one isolated hexagonal pixel inside the cubic particle;
    * (7, 7): a pattern with only 4 spots inside the particle;
    * rows 0–3 × columns 6–9: a low-confidence block (difference 0.001, a = 6 Å);
    * (8, 3): one isolated zero-confidence pixel.
    """
    lists = np.empty((ny, nx), dtype=object)
    table = {}
    lattice_true = np.full((ny, nx), np.nan)
    for iy in range(ny):
        for ix in range(nx):
            code = 1000 + iy * nx + ix
            n = 3 if ix < 2 else 8
            if (iy, ix) == (7, 7):
                n = 4
            spots = np.column_stack(
                [np.linspace(0, 1, n), np.zeros(n), np.r_[5000.0, np.full(n - 1, 50.0)]]
            )
            spots[-1, 2] = code
            lists[iy, ix] = spots
            system, weight, a = "cubic", 0.3, 4.0 + 0.01 * ix + 0.002 * iy
            if (iy, ix) == (5, 5):
                system, weight, a = "hexagonal", 0.05, 4.5
            if iy <= 3 and ix >= 6:
                weight, a = 0.001, 6.0
            if (iy, ix) == (8, 3):
                weight = 0.0
            own = a if system == "cubic" else 2.9
            table[code] = (system, weight, a, own)
            lattice_true[iy, ix] = a
    return lists, FakePredictor(table), lattice_true


def test_crystal_maps_filters_like_the_paper():
    lists, predictor, lattice_true = synthetic_scan()
    maps = crystal_maps(lists, predictor)  # min_spots 5, 5×5, difference 0.005, cubic
    cubic, hexagonal = CRYSTAL_SYSTEMS.index("cubic"), CRYSTAL_SYSTEMS.index("hexagonal")
    assert predictor.calls == [(10 * 8 - 1, "cubic")], "only ≥ 5-spot patterns, cubic model"
    # fewer than 5 spots: dropped, and the filter does not paint them
    assert (maps.system[:, :2] == -1).all() and maps.system[7, 7] == -1
    assert np.isnan(maps.lattice[:, :2]).all() and not maps.enough_spots[7, 7]
    # the isolated wrong pixel is outvoted by its 5×5 neighbourhood
    assert maps.system_raw[5, 5] == hexagonal and maps.system[5, 5] == cubic
    # low difference confidence after median filtering: the block's far corner goes ...
    for iy, ix in [(0, 9), (0, 8), (1, 9), (1, 8), (0, 7)]:
        assert maps.system[iy, ix] == -1 and maps.difference[iy, ix] < 0.005
    # ... its rim next to confident pixels stays, and so does an isolated 0-confidence pixel
    assert maps.system[3, 6] == cubic and maps.system[8, 3] == cubic
    assert maps.difference_raw[8, 3] == 0.0 and maps.difference[8, 3] == pytest.approx(0.3)
    # every other particle pixel is kept, as cubic
    expected_drop = np.zeros((10, 10), dtype=bool)
    expected_drop[:, :2] = True
    expected_drop[7, 7] = True
    rest = ~expected_drop
    rest[:4, 6:] = False
    assert (maps.system[rest] == cubic).all()
    assert set(np.unique(maps.system)) == {-1, cubic}
    # the median lattice constant uses the kept pixels only (the dropped block has a = 6 Å)
    assert maps.median_lattice == pytest.approx(np.median(lattice_true[maps.kept]))
    assert maps.median_lattice < 4.2 < np.nanmedian(np.where(maps.predicted, 6.0, np.nan))
    assert maps.counts()["cubic"] == maps.kept.sum()
    assert maps.counts(weighted=True)["cubic"] == pytest.approx(maps.difference[maps.kept].sum())


def test_per_pixel_lattice_uses_each_patterns_own_model():
    lists, predictor, _ = synthetic_scan()
    maps = crystal_maps(lists, predictor, lattice_system="per_pixel")
    assert predictor.calls[-1][1] is None
    assert maps.lattice[5, 5] == pytest.approx(2.9), "the hexagonal pattern's own model"
    cubic = crystal_maps(lists, predictor, lattice_system="cubic")
    assert cubic.lattice[5, 5] == pytest.approx(4.5)
    with pytest.raises(ValueError, match="lattice_system"):
        crystal_maps(lists, predictor, lattice_system="triclinic")
    with pytest.raises(ValueError, match="median_size"):
        crystal_maps(lists, predictor, median_size=4)


def test_padded_array_input_matches_list_input():
    lists, predictor, _ = synthetic_scan(6, 6)
    padded = np.full((6, 6, 10, 3), np.nan)
    for iy in range(6):
        for ix in range(6):
            padded[iy, ix, : len(lists[iy, ix])] = lists[iy, ix]
    a = crystal_maps(lists, predictor, median_size=3)
    b = crystal_maps(padded, predictor, median_size=3)
    assert (a.system == b.system).all() and (a.n_spots == b.n_spots).all()


def test_mode_and_median_filters_on_small_maps():
    classes = np.array([[0, 0, 0], [0, 2, 0], [0, 0, -1]])
    weights = np.full((3, 3), 0.2)
    out = mode_filter(classes, weights, 6, 3)
    assert out[1, 1] == 0 and out[2, 2] == -1
    # a 2-2 tie goes to the class with the larger summed weight
    tie = np.array([[1, 1], [3, 3]])
    w = np.array([[0.1, 0.1], [0.5, 0.5]])
    assert (mode_filter(tie, w, 6, 3) == 3).all()
    vals = np.array([[1.0, np.nan, 3.0], [4.0, 100.0, 6.0], [7.0, 8.0, 9.0]])
    med = nan_median_filter(vals, 3)
    assert med[1, 1] == pytest.approx(6.5) and np.isnan(med[0, 1])


def test_plot_crystal_maps_writes_png(tmp_path):
    lists, predictor, _ = synthetic_scan()
    maps = crystal_maps(lists, predictor)
    out = plot_crystal_maps(maps, tmp_path / "maps" / "au.png", step_nm=2.1, reference_a=4.08)
    assert out.exists() and out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
