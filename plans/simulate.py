"""Run a whole campaign on a :class:`SimulatedBeamline` and return its record (with truth).

A simulated campaign records its simulation in the run's start document under
:data:`SIMULATION_KEY` (:class:`SimulationRecord`: the sample's number, the beamline's seed,
the number of spots and the sample's hidden response parameters), so that a resumed campaign
continues on the same simulated sample. Resuming, the sample's spots are brought to the state
the recorded shots left them in (:func:`restore_simulated_sample`): the sample's damage model
is deterministic, so replaying the recorded pulses reproduces it exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted
from pydantic import BaseModel, ConfigDict, Field

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig
from uedsteer.controller.record import CampaignRecord, Trial
from uedsteer.sim_devices.beamline import REPLAY_SETTINGS, SimulatedBeamline
from uedsteer.sim_devices.response import ResponseParams
from uedsteer.surrogates.threads import apply_thread_budget

from . import documents as doc
from .campaign import campaign
from .documents import SIMULATION_KEY
from .protocols import setting_signals
from .resume import run_chain, stream_table


class SimulationRecord(BaseModel):
    """What a simulated campaign ran on, as recorded in its start document.

    ``hidden_response`` is the simulated sample's hidden truth. It is recorded only so that a
    simulated campaign can be resumed on the same sample; the controller never reads it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample: int | None = Field(
        None,
        description="The sample was ResponseParams.random(sample); None: parameters given "
        "directly (e.g. the defaults).",
    )
    seed: int = Field(description="Seed of the simulated beamline's random numbers (frames).")
    n_spots: int = Field(100, ge=1, description="Spots on the simulated sample.")
    hidden_response: ResponseParams = Field(
        description="The simulated sample's hidden response (truth, never read by the "
        "controller; recorded to resume on the same sample)."
    )

    def label(self) -> str:
        """The sample as a user names it: ``random(N)`` or ``given parameters``."""
        return "given parameters" if self.sample is None else f"random({self.sample})"


def recorded_simulation(runs: list[Any]) -> SimulationRecord | None:
    """The simulation recorded with the newest of ``runs`` that has one (None: none has)."""
    for run in runs[::-1]:
        md = run.metadata["start"].get(SIMULATION_KEY)
        if md:
            return SimulationRecord.model_validate(md)
    return None


def resume_simulation(
    catalog: Any, uid: str, sample: int | None = None, seed: int | None = None
) -> tuple[ResponseParams, int, int | None]:
    """The simulated sample and beamline seed to resume the campaign of run ``uid`` with.

    Parameters
    ----------
    catalog : tiled client of bluesky runs
    uid : str
        The run to continue (``Campaign.resumed_from``).
    sample : int, optional
        The sample the user asked for; must be the recorded one (None: the recorded one).
    seed : int, optional
        Seed of the beamline's frame noise; default the recorded one.

    Returns
    -------
    response : ResponseParams
        The recorded sample's hidden response (for the simulated beamline only).
    seed : int
    sample : int or None
        ``ResponseParams.random(sample)`` drew the sample; None: parameters given directly.
        Pass all three to :func:`simulate_campaign` (``response=``, ``seed=``, ``sample=``).

    Raises
    ------
    ValueError
        One line: no such run, no simulation recorded with it or the runs it continues, or
        a ``sample`` other than the recorded one.
    """
    rec = recorded_simulation(run_chain(catalog, uid))
    if rec is None:
        raise ValueError(
            f"run {uid!r} records no simulated sample (not written by simulate_campaign); "
            "give the sample explicitly to simulate_campaign"
        )
    if sample is not None and sample != rec.sample:
        raise ValueError(
            f"run {uid!r} ran on simulated sample {rec.label()}, asked sample random({sample}): "
            "a resumed campaign continues on the sample it started on"
        )
    return rec.hidden_response, rec.seed if seed is None else int(seed), rec.sample


def recorded_pulses(runs: list[Any], beamline: SimulatedBeamline) -> list[dict[str, Any]]:
    """Every detector trigger the runs recorded that reached the sample, in order.

    Per run its reference frames (shutter closed), then its ``primary`` shots (including
    shots whose frame was invalid, which the sample took). Shots in ``failures`` are left out:
    the detector faulted on trigger, before any pulse reached the sample. The device readings
    are looked up under the names of ``beamline``'s devices.

    Returns
    -------
    list of dict
        ``spot``, ``fluence``, ``wavelength``, ``delay``, ``shutter``, ``frames`` (pulses per
        trigger: the run's ``frames_per_point``) and ``shot`` (shot index; None for a
        reference frame), for :meth:`SimulatedBeamline.replay`.
    """
    signals = setting_signals(beamline)
    keys = {
        "spot": beamline.spot.name,
        **{k: signals[k].name for k in REPLAY_SETTINGS},
        "shutter": beamline.shutter.name,
    }
    out: list[dict[str, Any]] = []
    for run in runs:
        start = run.metadata["start"]
        frames = int((start.get(doc.CONFIG_KEY) or {}).get("frames_per_point", 1))
        for stream in (doc.REFERENCE, doc.SHOTS, doc.CHECKS):
            table = stream_table(run, stream)
            if not table:
                continue
            absent = [k for k in keys.values() if k not in table]
            if absent:
                raise ValueError(
                    f"run {start['uid']!r} stream {stream!r} has no {absent}: it was not "
                    f"recorded on a beamline with these device names"
                )
            cols = {k: table[key] for k, key in keys.items()}
            shot_key = doc.readout_key(doc.SHOT_READOUT, "shot")
            shots = table[shot_key] if stream == doc.SHOTS else None
            for i in range(len(cols["spot"])):
                pulse = {k: v[i] for k, v in cols.items()}
                pulse["shutter"] = str(pulse["shutter"])
                pulse["frames"] = frames
                pulse["shot"] = None if shots is None else int(shots[i])
                out.append(pulse)
    return out


def restore_simulated_sample(
    beamline: SimulatedBeamline, runs: list[Any]
) -> dict[int, dict[str, Any]]:
    """Bring a pristine simulated sample to the state the recorded runs left it in.

    Parameters
    ----------
    beamline : SimulatedBeamline
        Its sample must not have been shot yet (replaying onto a used sample would count
        the shots twice).
    runs : list
        The campaign's runs, origin first (``Campaign.resumed_runs``).

    Returns
    -------
    dict
        Shot index → the hidden truth after that shot (what ``Trial.truth`` held).

    Raises
    ------
    ValueError
        If the sample was already shot, or the runs' device names differ from the beamline's.
    """
    used = [i for i, s in enumerate(beamline.sample.spots) if s.shots]
    if used:
        raise ValueError(
            f"the simulated sample was already shot (spots {used[:5]}); restore onto a fresh "
            "SimulatedBeamline"
        )
    pulses = recorded_pulses(runs, beamline)
    truths = beamline.replay(pulses)
    return {p["shot"]: t for p, t in zip(pulses, truths, strict=True) if p["shot"] is not None}


def _simulation_for(
    controller: Campaign,
    response: ResponseParams | None,
    seed: int | None,
    sample: int | None,
    beamline: SimulatedBeamline | None,
) -> tuple[ResponseParams | None, int, int | None, int]:
    """(response, seed, sample, n_spots) of this simulation: a resumed campaign's recorded
    ones unless given, refusing a sample other than the recorded one."""
    recorded = recorded_simulation(controller.resumed_runs)
    n_spots = 100
    if recorded is not None:
        where = f"campaign resumed from run {controller.resumed_from!r}"
        asked = beamline.sample.params if beamline is not None else response
        if sample is not None and sample != recorded.sample:
            raise ValueError(
                f"{where} ran on simulated sample {recorded.label()}, asked sample "
                f"random({sample}): a resumed campaign continues on the sample it started on"
            )
        if asked is not None and asked != recorded.hidden_response:
            raise ValueError(
                f"{where} ran on simulated sample {recorded.label()}, asked another sample "
                "(response parameters differ): a resumed campaign continues on the sample it "
                "started on"
            )
        response, sample = recorded.hidden_response, recorded.sample
        seed = recorded.seed if seed is None else seed
        n_spots = recorded.n_spots
    if sample is not None:
        drawn = ResponseParams.random(sample)
        given = beamline.sample.params if beamline is not None else response
        if given is not None and given != drawn:
            raise ValueError(f"sample={sample}: the response given is not random({sample})")
        response = drawn
    return response, 0 if seed is None else int(seed), sample, n_spots


def simulate_campaign(
    config: CampaignConfig | None = None,
    response: ResponseParams | None = None,
    seed: int | None = None,
    scorer=None,
    catalog=None,
    on_shot: Callable[[Trial], None] | None = None,
    RE: RunEngine | None = None,
    md: dict | None = None,
    controller: Campaign | None = None,
    beamline: SimulatedBeamline | None = None,
    sample: int | None = None,
) -> CampaignRecord:
    """Run a closed-loop campaign on a simulated beamline.

    Parameters
    ----------
    config : CampaignConfig, optional
        Default ``CampaignConfig()``.
    response : ResponseParams, optional
        The hidden sample (default ``ResponseParams()``, or ``ResponseParams.random(sample)``);
        the controller never sees it.
    seed : int, optional
        Seed of the beamline's random numbers (frames, noise); default 0, or for a resumed
        campaign the recorded one.
    scorer : FrameScorer, optional
        Default: the shipped ``FrameScorer.pretrained()``.
    catalog : tiled client, optional
        When given, every document goes there (TiledWriter, one write per event so a killed
        process loses nothing).
    on_shot : callable, optional
        Called with each :class:`Trial` (progress display).
    RE : RunEngine, optional
        Default: a fresh RunEngine without a context-manager signal handler. When a pause
        interrupts the campaign (``RunEngineInterrupted``), the catalog stays subscribed so
        that ``RE.abort()`` or ``RE.resume()`` is recorded too.
    md : dict, optional
        Extra run metadata.
    controller : Campaign, optional
        Continue this campaign (e.g. from :func:`~uedsteer.plans.resume.resume_campaign`)
        instead of a new one. A
        resumed campaign continues on its recorded simulated sample (a different ``response``,
        ``sample`` or beamline sample is refused), and a fresh beamline's sample is first
        brought to the state the recorded shots left it in; the earlier shots get their
        hidden truth back.
    beamline : SimulatedBeamline, optional
        Default: ``SimulatedBeamline(response, seed)``.
    sample : int, optional
        The sample is ``ResponseParams.random(sample)``; recorded so that a resume finds it.

    Returns
    -------
    CampaignRecord
        Per shot the settings, the scores and the sample's hidden truth; ``to_dataframe()``
        gives one row per shot with ``truth_x``, ``truth_vacancy``, ``truth_molten``.

    Raises
    ------
    ValueError
        Before the run opens: a resumed campaign asked to continue on another sample, a
        ``response`` that is not ``random(sample)``, or an ``OMP_NUM_THREADS`` (or
        ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``) that is not a positive integer.

    Notes
    -----
    The process's thread budget (the configuration's ``threads``,
    :func:`uedsteer.surrogates.threads.apply_thread_budget`) is applied first, before the
    scorer loads and the RunEngine's thread computes.
    """
    controller = controller or Campaign(config or CampaignConfig())
    # before the scorer loads and before a new RunEngine's thread computes anything
    apply_thread_budget(controller.config.threads)
    if scorer is None:
        from uedsteer.surrogates.scorer import FrameScorer

        scorer = FrameScorer.pretrained()
    response, seed, sample, n_spots = _simulation_for(controller, response, seed, sample, beamline)
    bl = beamline or SimulatedBeamline(response or ResponseParams(), seed=seed, n_spots=n_spots)
    if controller.resumed_runs and not any(s.shots for s in bl.sample.spots):
        truths = restore_simulated_sample(bl, controller.resumed_runs)
        for t in controller.record.trials:
            if t.truth is None and t.index in truths:
                t.truth = truths[t.index]
    record = SimulationRecord(
        sample=sample, seed=bl.seed, n_spots=len(bl.sample.spots), hidden_response=bl.sample.params
    )
    md = {SIMULATION_KEY: record.model_dump(mode="json"), **(md or {})}
    if RE is None:
        RE = RunEngine({}, call_returns_result=True, context_managers=[])
    token = None
    if catalog is not None:
        from .catalog import subscribe

        token = subscribe(RE, catalog, batch_size=1)

    def truth() -> dict[str, Any]:
        return bl.truth()

    try:
        RE(campaign(bl, scorer, controller, md=md, truth_fn=truth, on_shot=on_shot))
    except RunEngineInterrupted:
        # Paused (Ctrl-C): stay subscribed so RE.abort() / RE.resume() still reach the catalog.
        raise
    except BaseException:
        if token is not None:
            RE.unsubscribe(token)
        raise
    if token is not None:
        RE.unsubscribe(token)
    return controller.record
