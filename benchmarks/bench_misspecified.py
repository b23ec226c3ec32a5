"""The default uedsteer campaign on samples the simulator's family never draws (issue 33).

Runs ``bench_campaign``'s ``uedsteer`` strategy (the defaults, budget 40, ``on_damage="move"``
like the in-family figures of docs/benchmarks/results.md; ``--on-damage halt`` for the default
policy) on wide-family samples ``ResponseParams.random_wide(seed)`` (every property of
``response.WIDE_RANGES`` drawn) and, in the same run, on in-family samples
``ResponseParams.random(seed)``, alternating so that a partial run has both. Wide-family seeds
start at 1000 (disjoint from the in-family seeds 100-519 used elsewhere).

For each family it prints success, campaigns without damage, damage events and median shots to
success (definitions as ``bench_campaign.outcome``), then every failing sample (damage or no
success) with its properties as ratios to the defaults (shifts in eV for the exciton energies)
and a summary of which properties the failures share: each property's mean percentile rank of
the failing samples among all samples of the family (0.5: no tendency; near 0 or 1: the
failures sit at one end of the range).

Drawn properties are printed by short names (``response.WIDE_RANGES``'s, see ``SHORT``: e.g.
``E_A`` the A exciton's shift in eV, ``h_B`` the B exciton's height factor, ``epsD`` the damage
threshold's factor, ``steep`` the transition's steepness factor, ``c_T`` the heating per
absorbed energy, ``k_u`` the thermal-rms coefficient, ``res_eV`` the resonance in eV).
Derived properties printed beside them: ``dw/eps`` (Debye-Waller Δ⟨u²⟩ per
absorbed mJ/cm² at the 10 ps delay, the heating reading's scale), ``abs_band`` (absorbance at
the resonance), ``eps_T_band`` (transformation threshold at the resonance), ``window``
(ε_D over the absorbed fluence that gives x = 0.8 at the resonance: below 1, no damage-free
success exists there), ``F08`` (the pump fluence, mJ/cm², for x = 0.8 at the resonance; above
12 it is beyond the search box), each as a ratio to the default sample's value (``F08`` and
``window`` absolute).

Each finished campaign is appended to ``--out`` (JSON lines, with the ``--set`` fields and the
host's CPU); ``--resume`` skips the seeds already there, ``--summary-only`` prints the figures
of that file, and an interrupted run (Ctrl-C, SIGTERM) prints what finished. ``--jobs N`` runs
N campaigns at a time in worker processes of one thread each (the same campaigns as one job:
each is seeded on its own). ``--set FIELD=VALUE`` (repeatable) changes a ``CampaignConfig``
field of uedsteer's configuration, to measure a variant on the same seeds. ``--controller-seeds
0,1,2`` runs every sample once per seed of the controller (``CampaignConfig.seed``: its
candidate draws and fits) and pools them: one seed decides a verdict within a campaign or two,
three do not (docs/benchmarks/misspecification.md). ``--scale FIELD=FACTOR`` (repeatable)
multiplies a property of every wide-family sample, e.g. one the family does not draw
(``expansion_per_k``, the thermal expansion that dominates the simulated heating reading); the
records carry it and the summary says so. ``--oversample 3`` renders the beamline's frames with
each pixel integrated (3 × 3 samples of the kinematic intensity) instead of sampled at its
centre, and ``--scorer DIR`` scores them with a scorer trained on such frames
(docs/benchmarks/misspecification.md says how one is made).

The rates carry Wilson 95 % intervals: on 60 samples one campaign is 1.7 points, and the
figures move by a campaign or two with any perturbation of the campaigns (another CPU's
floating point included; docs/benchmarks/misspecification.md).

Run: ``python benchmarks/bench_misspecified.py --samples 60 --jobs 2 --controller-seeds 0,1,2
--out misspecified.jsonl`` (3 min 17 s a controller seed on the two cores of the 2026-12-07
host, both families); ``--summary-only --out`` on a file that holds several runs pools them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_campaign  # noqa: E402

from uedsteer.controller.cli.arguments import oversample  # noqa: E402
from uedsteer.controller.config import CampaignConfig  # noqa: E402
from uedsteer.sim_devices.response import HC_EV_NM, WIDE_RANGES, ResponseParams  # noqa: E402

warnings.filterwarnings("ignore")

DEFAULT = ResponseParams()
SUFFIX = ("A", "B", "C")
SHORT = {
    "exciton_energies_ev": "E",
    "edge_ev": "edge",
    "exciton_heights": "h",
    "exciton_widths_ev": "w",
    "continuum": "cont",
    "resonance_ev": "res_eV",
    "resonance_width_ev": "res_w",
    "resonance_gain": "gain",
    "transform_threshold": "epsT0",
    "damage_threshold": "epsD",
    "transform_steepness": "steep",
    "damage_slow_rate": "r_s",
    "damage_slow_power": "p",
    "damage_fast_rate": "r_f",
    "melt_factor": "melt",
    "heating_k_per_mj": "c_T",
    "thermal_rms_k": "k_u",
    "tau_thermal_ps": "tau_th",
}
"""Short names of the drawn properties in the printout (E_A: the A exciton's shift in eV)."""


def success_point(rp: ResponseParams, delay_ps: float = 10.0) -> tuple[float, float]:
    """(absorbed fluence, pump fluence) that give x = 0.8 at the resonance's wavelength (the
    lowest threshold), at ``delay_ps``; inf when x = 0.8 is out of reach of the delay response."""
    wl = HC_EV_NM / rp.resonance_ev
    peak = (1 - np.exp(-delay_ps / rp.tau_transform_ps)) * np.exp(-delay_ps / rp.tau_recovery_ps)
    s = 0.8 / peak
    if s >= 1:
        return float("inf"), float("inf")
    eps_t = rp.transform_threshold_at(wl)
    eps = eps_t * (1 + rp.transform_steepness * np.log(s / (1 - s)))
    return float(eps), float(eps / rp.absorbance(wl))


def dw_per_eps(rp: ResponseParams, delay_ps: float = 10.0) -> float:
    """Debye-Waller Δ⟨u²⟩ (Å²) per absorbed mJ/cm² at ``delay_ps``: the heating reading's scale."""
    return rp.thermal_rms_k * rp.heating_k_per_mj * (1 - np.exp(-delay_ps / rp.tau_thermal_ps))


def properties(rp: ResponseParams) -> dict[str, float]:
    """The sample's drawn properties relative to the defaults (a factor, a shift in eV, or the
    value for the resonance position), then the derived ones."""
    out: dict[str, float] = {}
    for name, r in WIDE_RANGES.items():
        value, default = getattr(rp, name), getattr(DEFAULT, name)
        if isinstance(value, tuple):
            for s, v, d in zip(SUFFIX, value, default, strict=True):
                out[f"{SHORT[name]}_{s}"] = r.relative(v, d)
        else:
            out[SHORT[name]] = r.relative(value, default)
    wl = HC_EV_NM / rp.resonance_ev
    eps08, f08 = success_point(rp)
    d_wl = HC_EV_NM / DEFAULT.resonance_ev
    out["dw/eps"] = dw_per_eps(rp) / dw_per_eps(DEFAULT)
    out["abs_band"] = rp.absorbance(wl) / DEFAULT.absorbance(d_wl)
    out["eps_T_band"] = rp.transform_threshold_at(wl) / DEFAULT.transform_threshold_at(d_wl)
    out["window"] = rp.damage_threshold / eps08
    out["F08"] = f08
    return out


def scaled(rp: ResponseParams, scale: dict[str, float]) -> ResponseParams:
    """``rp`` with each field of ``scale`` multiplied by its factor (validated)."""
    values = rp.model_dump()
    return ResponseParams.model_validate({**values, **{k: values[k] * f for k, f in scale.items()}})


def draw(family: str, seed: int, scale: dict[str, float] | None = None) -> ResponseParams:
    """The sample of ``family`` at ``seed``; ``scale`` multiplies fields of a wide-family
    sample (``--scale``: a property the family keeps at its default, moved off it)."""
    if family != "wide":
        return ResponseParams.random(seed)
    return scaled(ResponseParams.random_wide(seed), scale or {})


def run_one(family: str, seed: int, scorer, budget: int, scale: dict | None = None) -> dict:
    rp = draw(family, seed, scale)
    t0 = time.perf_counter()
    out, _ = bench_campaign.run_uedsteer(rp, seed, scorer, budget)
    out.pop("modes", None)
    record = {
        "family": family,
        "seed": seed,
        **out,
        "seconds": time.perf_counter() - t0,
        "props": properties(rp),
    }
    if scale and family == "wide":
        record["scale"] = dict(scale)
    return record


def failed(r: dict) -> bool:
    return r["damage"] > 0 or not r["success"]


def controller_seed(r: dict) -> int:
    """The controller's seed (``CampaignConfig.seed``) of a record: its ``config``'s, else 0."""
    return int(r.get("config", {}).get("seed", 0))


def figures(rs: list[dict]) -> tuple[int, int, int, float]:
    """Campaigns that succeeded, campaigns without damage, damage events, and the median shots
    to success (NaN without one) of the records ``rs``."""
    succ = [r["shots_to_success"] for r in rs if r["success"]]
    return (
        len(succ),
        sum(r["damage"] == 0 for r in rs),
        sum(r["damage"] for r in rs),
        float(np.median(succ)) if succ else float("nan"),
    )


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a rate of ``k`` in ``n`` (95 % by default)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(mid - half), float(mid + half)


def rate(k: int, n: int) -> str:
    """``k``/``n`` as a percentage with its Wilson 95 % interval."""
    lo, hi = wilson(k, n)
    return f"{k / n:.1%} ({lo:.0%}-{hi:.0%})"


def host() -> str:
    """The CPU's model name (figures differ between CPUs by a campaign or two)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def parse_sets(items: list[str]) -> dict:
    """``FIELD=VALUE`` pairs as ``CampaignConfig`` overrides (VALUE read as JSON where it
    parses, else as text), checked by building a configuration with them."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: give FIELD=VALUE, e.g. heating_margin=0.9")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    try:
        CampaignConfig(**out)
    except ValidationError as err:
        e = err.errors()[0]
        field = ".".join(str(k) for k in e["loc"])
        raise SystemExit(f"--set {field}={e.get('input')!r}: {e['msg']}") from None
    return out


def parse_scales(items: list[str]) -> dict[str, float]:
    """``FIELD=FACTOR`` pairs of ``--scale``: a numeric ``ResponseParams`` field and a factor
    ≥ 0, checked by scaling the default sample with them."""
    out: dict[str, float] = {}
    defaults = ResponseParams().model_dump()
    numeric = {
        k for k, v in defaults.items() if isinstance(v, float | int) and not isinstance(v, bool)
    }
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in numeric:
            raise SystemExit(
                f"--scale {item!r}: give FIELD=FACTOR with FIELD one of the sample's numeric "
                f"properties ({', '.join(sorted(numeric))})"
            )
        try:
            factor = float(value)
        except ValueError:
            factor = float("nan")
        if not factor >= 0 or factor == float("inf"):
            raise SystemExit(f"--scale {key}={value!r}: give a finite factor >= 0")
        out[key] = factor
    try:
        scaled(ResponseParams(), out)
    except ValidationError as err:
        e = err.errors()[0]
        raise SystemExit(f"--scale {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
    return out


def checks_frames(record: dict) -> bool:
    """Whether a record's campaign took check frames (older records say it as ``mode``)."""
    if "check_frames" in record:
        return bool(record["check_frames"])
    if "mode" in record:
        return record["mode"] == "check_frames"
    return bench_campaign.CHECK_FRAMES


def summarize(records: list[dict], budget: int) -> None:
    """Print the figures of each family, its failing samples and what they share (the
    properties recomputed from each record's family, seed and ``scale``)."""
    by_mode = {checks_frames(r) for r in records}
    if len(by_mode) > 1:  # runs with and without check frames are figures of two controllers
        for mode in sorted(by_mode):
            summarize([r for r in records if checks_frames(r) == mode], budget)
        return
    for r in records:
        r["props"] = properties(draw(r["family"], r["seed"], r.get("scale")))
    fams = [f for f in ("wide", "family") if any(r["family"] == f for r in records)]
    sets = {k: v for r in records for k, v in r.get("config", {}).items() if k != "seed"}
    cseeds = sorted({controller_seed(r) for r in records})
    hosts = sorted({r.get("host", "not recorded") for r in records})
    checks = sorted({checks_frames(r) for r in records})
    scales = sorted({json.dumps(r["scale"], sort_keys=True) for r in records if "scale" in r})
    print(
        f"\nbudget {budget} shots, uedsteer (on_damage={bench_campaign.ON_DAMAGE}, "
        f"check_frames={'/'.join(map(str, checks))}"
        + "".join(f", {k}={v}" for k, v in sets.items())
        + f"); host {'; '.join(hosts)}; controller seeds {', '.join(map(str, cseeds))}"
        + (" (pooled)" if len(cseeds) > 1 else "")
    )
    renders = sorted({(r.get("oversample", 1), r.get("scorer") or "shipped") for r in records})
    if renders != [(1, "shipped")]:
        for n, sc in renders:
            print(f"frames: {n} x {n} samples a pixel; scorer {sc}")
    for sc in scales:
        print(
            "wide samples scaled: " + ", ".join(f"{k} x {v:g}" for k, v in json.loads(sc).items())
        )
    print(
        f"{'family':8s} {'samples':>8s} {'seeds':>12s} {'success':>17s} {'no damage':>18s} "
        f"{'damage events':>14s} {'median shots':>13s} {'x=0.8 reachable':>16s}"
    )
    fig = {}
    for f in fams:
        rs = [r for r in records if r["family"] == f]
        seeds = sorted(r["seed"] for r in rs)
        fig[f] = (len(rs), *figures(rs))
        n, succ, clean, events, med = fig[f]
        ok = [r["props"]["window"] > 1 and r["props"]["F08"] <= 12 for r in rs]
        print(
            f"{f:8s} {n:8d} {f'{seeds[0]}-{seeds[-1]}':>12s} {rate(succ, n):>17s} "
            f"{rate(clean, n):>18s} {events:14d} {med:13.1f} {np.mean(ok):16.0%}"
        )
    if len(cseeds) > 1:
        for f in fams:
            for c in cseeds:
                rs = [r for r in records if r["family"] == f and controller_seed(r) == c]
                succ, clean, events, med = figures(rs)
                print(
                    f"  {f} controller seed {c}: success {succ / len(rs):.1%}, no damage "
                    f"{clean / len(rs):.1%}, {events} events, median {med:.1f} "
                    f"({len(rs)} samples)"
                )
    if "wide" in fig and "family" in fig:
        n, succ, clean, _, med = fig["wide"]
        goals = (
            ("campaigns without damage >= 98 %", clean / n >= 0.98),
            ("success >= 85 %", succ / n >= 0.85),
            ("median shots <= in-family + 2", med <= fig["family"][4] + 2),
        )
        print(
            "issue 33 goals on the wide family: "
            + "; ".join(f"{g}: {'met' if m else 'NOT met'}" for g, m in goals)
        )
    for f in fams:
        rs = [r for r in records if r["family"] == f]
        bad = [r for r in rs if failed(r)]
        print(
            f"\n{f}: {len(bad)} failing of {len(rs)} (damage or no success; S<n>: success at "
            "shot n, -: none; d<k>: k damage events)"
        )
        if not bad:
            continue
        keys = list(rs[0]["props"])
        for r in bad:
            stop = str(r.get("stop", "")).split(":")[0]
            tag = f"/c{controller_seed(r)}" if len(cseeds) > 1 else ""
            print(
                f"  seed {r['seed']}{tag}: {'S' if r['success'] else '-'}"
                f"{r['shots_to_success'] or ''} d{r['damage']} stop={stop}  "
                + " ".join(f"{k}={r['props'][k]:.3g}" for k in keys)
            )
        print(
            f"  what the {len(bad)} failures share (mean percentile rank among the {len(rs)}; "
            "0.5 = none; lo/mid/hi thirds of the family's values: failures/all):"
        )
        rows = []
        for k in keys:
            v = np.array([r["props"][k] for r in rs])
            if np.ptp(v) < 1e-12:
                continue
            rank = (np.argsort(np.argsort(v)) + 0.5) / len(v)
            fail = np.array([failed(r) for r in rs])
            cuts = np.quantile(v, [1 / 3, 2 / 3])
            third = np.digitize(v, cuts)
            counts = "/".join(
                f"{int((fail & (third == t)).sum())}:{int((third == t).sum())}" for t in range(3)
            )
            rows.append(
                (
                    abs(rank[fail].mean() - 0.5),
                    k,
                    rank[fail].mean(),
                    counts,
                    np.median(v[fail]),
                    np.median(v),
                )
            )
        for _, k, mr, counts, mf, ma in sorted(rows, reverse=True)[:10]:
            print(
                f"    {k:24s} rank {mr:.2f}  lo/mid/hi {counts:14s} median failing {mf:.3g} "
                f"vs all {ma:.3g}"
            )


_worker_scorer = None


def load_scorer(folder: str | None):
    """The scorer of ``--scorer``: ``FrameScorer.load(folder)``, or the shipped one."""
    from uedsteer.surrogates.scorer import FrameScorer

    return FrameScorer.pretrained() if folder is None else FrameScorer.load(folder)


def _configure(args: argparse.Namespace, overrides: dict) -> None:
    """Set ``bench_campaign``'s settings of the run from the options (in this process and in
    each ``--jobs`` worker)."""
    bench_campaign.ON_DAMAGE = args.on_damage
    bench_campaign.CHECK_FRAMES = args.check_frames
    bench_campaign.OVERRIDES = overrides
    bench_campaign.OVERSAMPLE = args.oversample


def _start_worker(args: argparse.Namespace, overrides: dict) -> None:
    """A worker process of ``--jobs``: the benchmark's settings and its own scorer."""
    global _worker_scorer
    _configure(args, overrides)
    _worker_scorer = load_scorer(args.scorer)


def _run(
    family: str, seed: int, cseed: int, budget: int, overrides: dict, scale: dict, scorer
) -> dict:
    """One campaign at the controller's seed ``cseed``; its record carries the configuration
    fields it ran with (the seed left out where it is the default 0)."""
    config = overrides if cseed == 0 else {**overrides, "seed": cseed}
    bench_campaign.OVERRIDES = config
    return {**run_one(family, seed, scorer, budget, scale), "config": config}


def _run_in_worker(
    family: str, seed: int, cseed: int, budget: int, overrides: dict, scale: dict
) -> dict:
    return _run(family, seed, cseed, budget, overrides, scale, _worker_scorer)


def _campaigns(todo, args, overrides, scale):
    """Each finished campaign's record, in the order they finish: in this process, or with
    ``--jobs`` N > 1 in N worker processes of one thread each."""
    if args.jobs <= 1:
        scorer = load_scorer(args.scorer)
        for f, seed, cseed in todo:
            yield _run(f, seed, cseed, args.budget, overrides, scale, scorer)
        return
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, "1")  # the workers' thread budget: one thread each
    with ProcessPoolExecutor(
        args.jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(args, overrides),
    ) as pool:
        futures = [
            pool.submit(_run_in_worker, f, seed, cseed, args.budget, overrides, scale)
            for f, seed, cseed in todo
        ]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except KeyboardInterrupt:
            for fut in futures:
                fut.cancel()
            raise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=60, help="samples per family")
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--wide-seed", type=int, default=1000, help="first wide-family seed")
    ap.add_argument("--family-seed", type=int, default=200, help="first in-family seed")
    ap.add_argument(
        "--families",
        default="wide,family",
        help="comma-separated: wide, family, or wide,family (the default: both, alternating)",
    )
    ap.add_argument("--on-damage", default="move", choices=("move", "halt"))
    ap.add_argument(
        "--check-frames",
        action="store_true",
        help="uedsteer takes a probe-only frame after each shot (check_frames)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a CampaignConfig field of uedsteer's configuration (repeatable; VALUE as JSON)",
    )
    ap.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="FIELD=FACTOR",
        help="multiply a property of every wide-family sample (repeatable), e.g. "
        "expansion_per_k=0.25 for a property the family does not draw",
    )
    ap.add_argument(
        "--oversample",
        type=oversample,
        default=1,
        help="samples per pixel edge of the simulated frames (odd; 3: pixels integrated as a "
        "detector does; 1: the point samples the shipped scorer was trained on)",
    )
    ap.add_argument(
        "--scorer",
        default=None,
        help="scorer folder (FrameScorer.load) instead of the shipped one, e.g. one trained on "
        "frames of the same --oversample",
    )
    ap.add_argument(
        "--jobs", type=int, default=1, help="campaigns at a time, in processes of one thread"
    )
    ap.add_argument(
        "--controller-seeds",
        default="0",
        help="seeds of the controller (CampaignConfig.seed), comma-separated: every sample once "
        "per seed, figures pooled",
    )
    ap.add_argument("--out", type=Path, default=None, help="append each campaign (JSON lines)")
    ap.add_argument("--resume", action="store_true", help="skip the seeds already in --out")
    ap.add_argument("--summary-only", action="store_true", help="print --out's figures only")
    args = ap.parse_args()
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: give at least 1")
    overrides = parse_sets(args.set)
    scale = parse_scales(args.scale)
    if args.scorer is not None and not (Path(args.scorer) / "scorer.json").is_file():
        raise SystemExit(
            f"--scorer {args.scorer!r}: no scorer.json there; give a folder that "
            "`uedsteer train vae` and `uedsteer train finetune --out` wrote"
        )
    try:
        cseeds = [int(c) for c in args.controller_seeds.split(",")]
    except ValueError:
        raise SystemExit(
            f"--controller-seeds {args.controller_seeds!r}: give integers, e.g. 0,1,2"
        ) from None
    if "seed" in overrides:
        raise SystemExit("--set seed=...: give the controller's seeds with --controller-seeds")
    _configure(args, overrides)
    records: list[dict] = []
    if args.out is not None and args.out.exists() and (args.resume or args.summary_only):
        records = [json.loads(line) for line in args.out.read_text().splitlines() if line]
    if args.summary_only:
        summarize(records, args.budget)
        return
    first = {"wide": args.wide_seed, "family": args.family_seed}
    fams = [f.strip() for f in args.families.split(",")]
    if not fams or any(f not in first for f in fams):
        raise SystemExit(
            f"--families={args.families!r}: give wide, family or wide,family (comma-separated)"
        )
    plan = [(f, first[f] + k, c) for c in cseeds for k in range(args.samples) for f in fams]
    done = {(r["family"], r["seed"], controller_seed(r)) for r in records}
    print(
        "seeds: " + ", ".join(f"{f} {first[f]}-{first[f] + args.samples - 1}" for f in fams),
        flush=True,
    )

    def stop(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    CampaignConfig()  # fail early on a broken config
    cpu = host()
    try:
        for r in _campaigns([p for p in plan if p not in done], args, overrides, scale):
            r.update(check_frames=args.check_frames, host=cpu)
            if args.oversample != 1 or args.scorer is not None:
                r.update(oversample=args.oversample, scorer=args.scorer)
            records.append(r)
            if args.out is not None:
                with args.out.open("a") as fh:
                    fh.write(json.dumps(r) + "\n")
            p = r["props"]
            print(
                f"{r['family']:6s} {r['seed']}/c{controller_seed(r)}: "
                f"{'S' if r['success'] else '-'}"
                f"{r['shots_to_success'] or '':<3}d{r['damage']} ({r['seconds']:.0f}s) "
                f"window {p['window']:.2f} F08 {p['F08']:.1f}",
                flush=True,
            )
    except KeyboardInterrupt:
        print("\ninterrupted: figures of the finished campaigns", flush=True)
    records.sort(key=lambda r: (r["family"], controller_seed(r), r["seed"]))
    summarize(records, args.budget)


if __name__ == "__main__":
    main()
