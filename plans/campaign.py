"""The closed-loop campaign as one bluesky plan: propose → ramp → acquire → score → ingest.

``RE(campaign(beamline, scorer, controller))`` runs a whole campaign in one run. Its streams
(names, readouts and start-document keys in :mod:`uedsteer.plans.documents`, which the resume
reads by):

``reference``
    Frames with the pump shutter closed at the start (the scorer's pristine reference).
``proposals``
    One event per proposal: the settings and the optimizer's figures (damage upper bound,
    acquisition value, safe-set size, heating limit, GP hyperparameters as JSON: a summary
    in ``models`` and the full state a resumed campaign warm-starts from in ``gp_state``).
``primary``
    One event per shot: the frame, every device setting and, in the same event, the frame's
    scores and what the halting rules decided (atomic: a shot and its scores are never apart).
``failures``
    One event per failed shot (device fault): the settings asked for and the error.

The stop document's ``reason`` says why the campaign ended (budget, target reached, damage,
no safe candidate, repeated failures, a beamline that stopped answering). The pump shutter is
closed on every exit path.

A device fault at any step of a shot (a ramp step, the shutter, the trigger, the readings: a
disconnected PV, a put or a frame that fails) becomes a failed shot in ``failures``. The
campaign then proposes nothing until every device answers again: it waits up to the
configuration's ``reconnect_timeout``, closes the shutter first thing once the devices are
back (a restarted IOC may come back with it open), and carries on; otherwise it stops with
the devices that did not answer as its reason.

The plan applies the configuration's thread budget (``threads``,
:func:`uedsteer.surrogates.threads.apply_thread_budget`) in the thread that runs it, before
the run opens, and records it with the limits read back in the start document
(:data:`~uedsteer.plans.documents.THREADS_KEY`); before each proposal it fits the threads per
operation to the load of the moment (:func:`~uedsteer.surrogates.threads.fit_to_load`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import FailedStatus, Msg
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.utils import DisconnectedError

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.record import Step, Stop, failed_scores
from uedsteer.sim_devices.contracts import SETTING_NAMES, DetectorFault
from uedsteer.surrogates.threads import apply_thread_budget, current_limits, fit_to_load

from . import documents as doc
from .protocols import check_beamline, event_devices, setting_signals
from .scans import MsgGenerator, close_shutter, settings_of

N_REFERENCE = 3

DEVICE_FAULTS = (FailedStatus, TimeoutError, DisconnectedError, DetectorFault)
"""What a device raises when it fails or does not answer (a limit violation is not one: it
stops the campaign as an error)."""

BEAMLINE_UNREACHABLE = "beamline unreachable"
"""How the stop reason of a campaign whose devices stopped answering begins."""

RECONNECT_POLL = 0.5  # s between two looks at the devices while they do not answer

logger = logging.getLogger(__name__)

_PV_REPR = re.compile(r"<PV name='([^']+)'[^>]*>")  # caproto's PV in an error: its name

_SCORE_KEYS = tuple(failed_scores().keys()) + ("objective",)


def _signals(names, value, hinted: tuple[str, ...] = ()) -> dict[str, Cpt]:
    return {n: Cpt(Signal, value=value, kind="hinted" if n in hinted else "normal") for n in names}


_TABLE = ("shot", "progress", "damage_prob", "objective")
"""The shot fields a live table (bluesky's BestEffortCallback) shows besides the settings."""


ShotReadout = type(
    "ShotReadout",
    (Device,),
    {
        **_signals(doc.SHOT_COUNTS, 0, _TABLE),
        **_signals(_SCORE_KEYS, math.nan, _TABLE),
        **_signals(doc.SHOT_LABELS, ""),
        **_signals(SETTING_NAMES, math.nan),
        "__doc__": "Soft signals carrying one shot's scores and decision into an event.",
    },
)

CheckReadout = type(
    "CheckReadout",
    (Device,),
    {
        **_signals(doc.CHECK_FIELDS[:2], 0, doc.CHECK_FIELDS[:2]),
        **_signals(doc.CHECK_FIELDS[2:], math.nan, doc.CHECK_FIELDS[2:]),
        **_signals(doc.CHECK_LABELS, ""),
        "__doc__": "Soft signals carrying a check frame's shot, spot and damage probability.",
    },
)

ProposalReadout = type(
    "ProposalReadout",
    (Device,),
    {
        **_signals(doc.PROPOSAL_COUNTS, 0),
        **_signals(SETTING_NAMES, math.nan),
        **_signals(doc.PROPOSAL_FIGURES, math.nan),
        **_signals(doc.PROPOSAL_LABELS, ""),
        **_signals(doc.PROPOSAL_JSON, "{}"),
        "__doc__": "Soft signals carrying one proposal into an event.",
    },
)


class ShutterGuard:
    """Closes the pump shutter whenever the RunEngine pauses (Ctrl-C, a suspender, a pause
    request from the queueserver).

    bluesky calls ``pause()`` on every object a plan has used; the campaign plan touches this
    guard once, so a paused campaign never waits with the pump on the sample. The plan opens
    the shutter again right before the next shot, so a resumed campaign carries on as before.
    """

    def __init__(self, shutter) -> None:
        self.shutter = shutter
        self.name = f"{shutter.name}_guard"

    def pause(self) -> None:
        """Close the shutter (called by the RunEngine as it pauses). A shutter that does not
        answer is logged, not raised: the pause goes ahead, and the plan closes the shutter
        before anything else once the devices answer again."""
        try:
            self.shutter.set("closed").wait(10)
        except Exception as err:  # noqa: BLE001 - the pause must happen
            logger.error("pausing: the pump shutter did not close: %s", fault_text(err))

    def resume(self) -> None:
        """Nothing: the plan reopens the shutter before the next shot."""


def _put(device: Device, values: dict[str, Any]) -> None:
    for k, v in values.items():
        getattr(device, k).put(v)


def ramp_to(beamline, target: dict[str, float], campaign: Campaign) -> MsgGenerator:
    """Move every setting to ``target`` in steps no larger than the ramp limits.

    Fixed settings move in one step (they change only at the start); every step is checked by
    the devices' hard limits before anything moves.
    """
    signals = setting_signals(beamline)
    steps = {p.name: p.max_step for p in campaign.config.parameters}
    now = {k: float(s.get()) for k, s in signals.items()}
    n = 1
    for k, step in steps.items():
        n = max(n, math.ceil(abs(target[k] - now[k]) / step - 1e-9))
    for i in range(1, n + 1):
        args: list[Any] = []
        for k, sig in signals.items():
            v = now[k] + (target[k] - now[k]) * i / n if k in steps else target[k]
            if i == n:
                v = target[k]
            sig.check_value(v)
            args += [sig, float(v)]
        yield from bps.mv(*args)


def _open_event(stream: str, devices) -> MsgGenerator:
    """Open an event in ``stream`` and read ``devices`` into it; returns their readings. A
    device fault drops the half-made event (the caller records the fault) and raises."""
    yield from bps.create(stream)
    readings: dict[str, Any] = {}
    try:
        for d in devices:
            readings.update((yield from bps.read(d)) or {})
    except DEVICE_FAULTS:
        yield from bps.drop()
        raise
    return readings


def _emit(device: Device, stream: str) -> MsgGenerator:
    yield from _open_event(stream, [device])
    yield from bps.save()


def fault_text(err: BaseException) -> str:
    """One line saying what failed: a failed status's own cause with its device's name, the
    first line of the text."""
    status = err.args[0] if isinstance(err, FailedStatus) and err.args else None
    cause = status.exception() if hasattr(status, "exception") else None
    lines = _PV_REPR.sub(r"\1", str(cause or err)).strip().splitlines()
    text = (lines[0] if lines else type(cause or err).__name__)[:300]
    device = getattr(getattr(status, "device", None), "name", None)
    return f"{device}: {text}" if device and not text.startswith(f"{device}:") else text


def unreachable(beamline) -> list[str]:
    """The names of the devices a campaign moves or reads that do not answer now (their
    ``connected`` is false): the settings, the shutter, the spot and the detector."""
    devices = [*setting_signals(beamline).values(), beamline.shutter, beamline.spot]
    devices.append(beamline.detector)
    seen: dict[str, bool] = {}
    for d in devices:
        seen.setdefault(d.name, bool(getattr(d, "connected", True)))
    return [name for name, ok in seen.items() if not ok]


def _acquire_reference(beamline, scorer, campaign: Campaign, n: int) -> MsgGenerator:
    yield from close_shutter(beamline)
    frames = []
    for _ in range(n):
        reading = yield from bps.trigger_and_read(event_devices(beamline), name=doc.REFERENCE)
        frames.append(np.asarray(reading[beamline.detector.image.name]["value"]))
    scorer.set_reference(np.array(frames))
    campaign.reference = scorer.reference


def _shot(
    beamline, scorer, campaign: Campaign, step: Step, shot, truth_fn, check=None
) -> MsgGenerator:
    """Ramp to ``step``, open the shutter, take and score the frame, record it (one event
    in ``primary``); a device fault on the way records a failed shot in ``failures``."""
    det = beamline.detector
    try:
        yield from ramp_to(beamline, step.settings, campaign)
        yield from bps.mv(beamline.shutter, "open")  # closed by a pause or a move
        yield from bps.trigger(det, wait=True)
        # the event opens before the frame is scored, so that the frame read with it is the
        # one scored and a device that no longer answers fails the shot, not half an event
        readings = yield from _open_event(doc.SHOTS, event_devices(beamline))
    except DEVICE_FAULTS as err:
        trial = campaign.ingest(step, None, error=fault_text(err))
        _put(shot, _shot_values(trial))
        yield from _emit(shot, doc.FAILURES)
        return trial
    scores = scorer.score(np.asarray(readings[det.image.name]["value"])[None]).row(0)
    truth = truth_fn() if truth_fn is not None else None
    trial = campaign.ingest(step, scores, truth=truth)
    _put(shot, _shot_values(trial, scores.get("class_name", "")))
    yield from bps.read(shot)
    yield from bps.save()
    if campaign.config.check_frames:
        yield from _check_frame(beamline, scorer, campaign, trial, check)
    return trial


def _until_shutter_closed(beamline, timeout: float, every_device: bool) -> MsgGenerator:
    """Close the pump shutter, trying every ``RECONNECT_POLL`` s for up to ``timeout`` s (with
    ``every_device``, only once every device the campaign uses answers). Returns what still
    does not answer (device names, or the shutter with its fault), empty once it closed."""
    deadline = time.monotonic() + timeout
    while True:
        missing = unreachable(beamline) if every_device else []
        if not missing:
            try:
                yield from close_shutter(beamline)  # a restarted IOC may have it open
                return []
            except DEVICE_FAULTS as err:
                missing = [f"{beamline.shutter.name} ({fault_text(err)})"]
        if time.monotonic() >= deadline:
            return missing
        yield from bps.sleep(RECONNECT_POLL)


def _after_fault(beamline, campaign: Campaign) -> MsgGenerator:
    """After a failed shot: wait until every device answers and the shutter has closed, up to
    ``reconnect_timeout`` seconds; proposes nothing meanwhile. Stops the campaign when the
    devices do not come back, and returns whether they did not."""
    timeout = campaign.config.reconnect_timeout
    missing = yield from _until_shutter_closed(beamline, timeout, every_device=True)
    if missing:
        campaign.stop(
            f"{BEAMLINE_UNREACHABLE}: {', '.join(missing)} did not answer within {timeout:g} s "
            "of a failed shot"
        )
    return bool(missing)


def _close_shutter_at_exit(beamline, timeout: float) -> MsgGenerator:
    """Close the pump shutter as the campaign ends, trying for up to ``timeout`` seconds;
    raises, naming it, when it never answers."""
    missing = yield from _until_shutter_closed(beamline, timeout, every_device=False)
    if missing:
        raise ShutterNotClosed(
            f"the pump shutter did not close ({missing[0]}): its state is unknown, close it by hand"
        )


class ShutterNotClosed(RuntimeError):
    """The pump shutter did not answer as the campaign ended."""


def _check_frame(beamline, scorer, campaign: Campaign, trial, check) -> MsgGenerator:
    """The probe-only frame after ``trial``'s shot (``check_frames``): shutter closed, the same
    spot, no dose; its damage probability goes into the trial's damage attribution and, with
    the frame, into the :data:`~uedsteer.plans.documents.CHECKS` stream. The plan opens the
    shutter again before the next shot. A detector fault leaves the check NaN (recorded); a
    beamline that stops answering loses the check's event (logged), and the plan then waits
    for it as after a failed shot."""
    det = beamline.detector
    try:
        yield from close_shutter(beamline)
        yield from bps.trigger(det, wait=True)
        fault = ""
    except DEVICE_FAULTS as err:
        fault = fault_text(err)
    try:
        readings = yield from _open_event(doc.CHECKS, event_devices(beamline))
    except DEVICE_FAULTS as err:
        readings, fault = None, fault or fault_text(err)
    p = math.nan
    if not fault:
        scores = scorer.score(np.asarray(readings[det.image.name]["value"])[None]).row(0)
        p = float(scores["damage_prob"]) if scores.get("valid", True) else math.nan
    action = campaign.note_check(trial, p)  # a damaged spot is left before the next shot
    if readings is None:
        logger.error("shot %d: the check frame's event is lost: %s", trial.index, fault)
        return
    _put(check, {"shot": trial.index, "spot": trial.spot, "damage_prob": p, "action": action})
    yield from bps.read(check)
    yield from bps.save()


def _shot_values(trial, class_name: str = "invalid") -> dict[str, Any]:
    vals: dict[str, Any] = {k: float(trial.scores.get(k, math.nan)) for k in _SCORE_KEYS}
    vals.update(trial.settings)
    vals.update(
        shot=trial.index,
        spot=trial.spot,
        status=trial.status,
        error=trial.error,
        action=trial.action,
        class_name=class_name if trial.status == "ok" else "invalid",
    )
    return vals


def campaign(
    beamline,
    scorer,
    controller: Campaign,
    md: dict | None = None,
    n_reference: int = N_REFERENCE,
    truth_fn=None,
    on_shot=None,
) -> MsgGenerator:
    """A closed-loop campaign as one bluesky run (see the module docstring for its streams).

    Parameters
    ----------
    beamline : Beamline
        :class:`~uedsteer.sim_devices.beamline.SimulatedBeamline` or any object that satisfies
        :class:`uedsteer.plans.protocols.Beamline`.
    scorer : FrameScorer
        Scores each frame in-process (no catalog round trip).
    controller : Campaign
        Proposes settings and applies the halting rules; a resumed campaign
        (:func:`uedsteer.plans.resume.resume_campaign`) continues its record.
    md : dict, optional
        Extra run metadata.
    n_reference : int
        Pristine frames (shutter closed) taken first when the campaign has no reference yet.
    truth_fn : callable, optional
        Simulation harness only: returns the hidden truth after each shot for the record.
    on_shot : callable, optional
        ``on_shot(trial)`` after every shot (progress display).

    Raises
    ------
    ValueError
        Before the run opens: a beamline that does not satisfy the protocol
        (:class:`~uedsteer.plans.protocols.BeamlineMismatch`), ``n_reference`` below 3, a start
        setting outside a device's hard limit, or ``frames_per_point`` > 1 on a detector that
        cannot average.
    """
    check_beamline(beamline)
    if n_reference < 3:
        raise ValueError(f"n_reference={n_reference} must be >= 3 (difference images need it)")
    cfg = controller.config
    signals = setting_signals(beamline)
    from .preflight import check_config  # search boxes, start, fixed values vs the devices

    check_config(cfg, signals)  # before the run opens and before anything moves
    averaging = getattr(beamline.detector, "frames_per_point", None)
    if averaging is None and cfg.frames_per_point > 1:
        raise ValueError(
            f"frames_per_point={cfg.frames_per_point}: detector {beamline.detector.name!r} has "
            "no frames_per_point component to average with; use 1 or average in the detector"
        )
    if averaging is not None:
        averaging.check_value(cfg.frames_per_point)
        frames_before = averaging.get()
    # Here, in the thread that runs the plan (the RunEngine's), where the proposals and the
    # scoring compute: torch and OpenMP keep a thread's own setting once it has computed.
    threads = apply_thread_budget(cfg.threads)
    run_md = {
        doc.PLAN_NAME_KEY: doc.CAMPAIGN_PLAN,
        "purpose": "closed-loop safe Bayesian optimization",
        "sample": getattr(beamline, "sample_name", "MoTe2 monolayer"),
        "settings": settings_of(beamline),
        doc.CONFIG_KEY: cfg.model_dump(mode="json"),
        doc.RESUMED_FROM_KEY: getattr(controller, "resumed_from", None),
        "resume_changes": getattr(controller, "resume_changes", {}),
        "shots_before": len(controller.record),
        "scorer": {k: v for k, v in scorer.meta.items() if isinstance(v, (str, int, float))},
        "classes": list(scorer.classes),
        doc.DETECTORS_KEY: [beamline.detector.name],
        "motors": [d.name for d in beamline.motors],
        doc.THREADS_KEY: {**dataclasses.asdict(threads), "limits": current_limits()},
    }
    run_md.update(md or {})
    shot = ShotReadout(name=doc.SHOT_READOUT)
    prop = ProposalReadout(name=doc.PROPOSAL_READOUT)
    check = CheckReadout(name=doc.CHECK_READOUT)
    guard = ShutterGuard(beamline.shutter)
    closing_tried = False  # the body's last close failed: the cleanup tries once more

    def body() -> MsgGenerator:
        nonlocal closing_tried
        yield from bps.open_run(run_md)
        if averaging is not None:
            yield from bps.mv(averaging, cfg.frames_per_point)  # reference frames too
        # The shot streams are declared while the devices answer: the RunEngine caches each
        # device's description and configuration with a stream's first event, and a device
        # that failed in that first read would leave the cache half made for the whole run.
        if controller.finished_reason is None:  # a campaign with nothing to do shoots nothing
            yield from bps.declare_stream(*event_devices(beamline), shot, name=doc.SHOTS)
            if cfg.check_frames:
                yield from bps.declare_stream(*event_devices(beamline), check, name=doc.CHECKS)
        if controller.reference is None:
            yield from _acquire_reference(beamline, scorer, controller, n_reference)
        else:
            scorer.reference = controller.reference
        yield Msg("null", guard)  # the RunEngine now closes the shutter when it pauses
        yield from bps.mv(beamline.spot, controller.spot)
        yield from ramp_to(beamline, controller.last_settings(), controller)
        lost = False  # the devices stopped answering and did not come back
        while True:
            yield from bps.checkpoint()  # a Ctrl-C (deferred pause) lands between shots
            fit_to_load()  # the proposal's threads: the cores other processes leave free
            step = controller.next()
            if isinstance(step, Stop):
                break
            _put(
                prop,
                {
                    **step.settings,
                    **step.info(),
                    "shot": len(controller.record),
                    "spot": step.spot,
                    "seconds": controller.proposal_seconds[-1] if step.proposal else 0.0,
                    "models": json.dumps(step.proposal.models if step.proposal else {}),
                    "gp_state": json.dumps(
                        controller.optimizer.export_state() if step.proposal else {}
                    ),
                },
            )
            yield from _emit(prop, doc.PROPOSALS)
            trial = yield from _shot(beamline, scorer, controller, step, shot, truth_fn, check)
            if on_shot is not None:
                on_shot(trial)
            if (trial.status != "ok" or unreachable(beamline)) and trial.action != "stop":
                lost = yield from _after_fault(beamline, controller)
                if lost or controller.stopped:
                    break
            if trial.action == "move":
                yield from close_shutter(beamline)
                yield from bps.mv(beamline.spot, controller.spot)
            elif trial.action == "stop":
                break
        reason = controller.record.stop_reason or ""
        closing_tried = True
        try:
            # the wait for the devices is over once they were lost
            yield from _close_shutter_at_exit(beamline, 0.0 if lost else cfg.reconnect_timeout)
        except ShutterNotClosed as err:
            yield from bps.close_run(
                exit_status="fail", reason="; ".join(filter(None, [reason, str(err)]))
            )
            raise
        yield from bps.close_run(exit_status="fail" if lost else "success", reason=reason)

    def cleanup() -> MsgGenerator:
        yield from _close_shutter_at_exit(beamline, 0.0 if closing_tried else cfg.reconnect_timeout)
        if averaging is not None:
            yield from bps.mv(averaging, frames_before)  # the detector as the campaign found it

    return (yield from bpp.finalize_wrapper(body(), cleanup()))
