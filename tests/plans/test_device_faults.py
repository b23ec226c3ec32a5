"""Device faults in a campaign, in-process and fast: a beamline whose devices stop answering
(disconnected, as when an IOC dies) and come back, or never do. The end-to-end version with a
real IOC killed under the queueserver is in ``test_queueserver.py``."""

from __future__ import annotations

import threading
import time

import pytest
from bluesky import RunEngine
from ophyd.utils import DisconnectedError

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig
from uedsteer.plans import documents as doc
from uedsteer.plans.campaign import BEAMLINE_UNREACHABLE, ShutterNotClosed, campaign
from uedsteer.plans.protocols import setting_signals
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.surrogates.scorer import FrameScorer

pytestmark = pytest.mark.filterwarnings("ignore")

SHOT = doc.readout_key(doc.SHOT_READOUT, "shot")
PROPOSAL = doc.readout_key(doc.PROPOSAL_READOUT, "shot")


@pytest.fixture(scope="module")
def scorer():
    return FrameScorer.pretrained()


class Outage:
    """Makes the beamline's setting signals and shutter "disconnected" from a given shot on:
    ``connected`` false and every ``set`` / ``get`` raising ``DisconnectedError``, until
    :meth:`end` (or for good). Patches the classes, so that only these instances change."""

    def __init__(self, beamline: SimulatedBeamline, monkeypatch, shutter_too: bool = True):
        self.down = self.armed = False
        self.ended_at: float | None = None
        self.signals = list(setting_signals(beamline).values())
        if shutter_too:
            self.signals.append(beamline.shutter)
        outage = self
        for cls in {type(s) for s in self.signals}:
            for name in ("set", "get", "put"):
                original = getattr(cls, name)

                def patched(sig, *args, _original=original, _name=name, **kwargs):
                    if outage.armed and _name == "set" and any(sig is s for s in outage.signals):
                        outage.begin()  # mid-shot: the next move fails
                    if outage.down and any(sig is s for s in outage.signals):
                        raise DisconnectedError(f"{sig.name}: disconnected")
                    return _original(sig, *args, **kwargs)

                monkeypatch.setattr(cls, name, patched)
            connected = cls.connected

            def is_connected(sig, _connected=connected):
                if outage.down and any(sig is s for s in outage.signals):
                    return False
                return _connected.fget(sig)

            monkeypatch.setattr(cls, "connected", property(is_connected))

    def begin(self) -> None:
        self.down, self.armed, self.began_at = True, False, time.time()
        if getattr(self, "seconds", None):
            threading.Timer(self.seconds, self.end).start()

    def arm(self, seconds: float) -> None:
        """Go down at the next move, for ``seconds``."""
        self.armed = True
        self.seconds = seconds

    def end(self) -> None:
        self.down, self.ended_at = False, time.time()


def run_campaign(beamline, scorer, config: CampaignConfig, on_shot=None):
    """The campaign plan in a RunEngine; its documents by name, and what it raised."""
    docs: list[tuple[str, dict]] = []
    RE = RunEngine({}, context_managers=[])
    RE.subscribe(lambda name, d: docs.append((name, d)))
    camp = Campaign(config)
    error = None
    try:
        RE(campaign(beamline, scorer, camp, on_shot=on_shot))
    except Exception as err:  # noqa: BLE001 - returned to the test
        error = err
    return camp, docs, error


def campaign_with_outage(
    scorer, monkeypatch, after_shot: int, seconds: float | None, timeout: float, **kwargs
):
    """A 5-shot campaign whose devices stop answering after shot ``after_shot``: at its next
    move when ``seconds`` is given (for that long; 0: for good), else at once, between two
    shots (for good). ``kwargs`` go to :class:`Outage`."""
    bl = SimulatedBeamline(seed=0)
    outage = Outage(bl, monkeypatch, **kwargs)

    def on_shot(trial):
        if trial.index == after_shot:
            outage.begin() if seconds is None else outage.arm(seconds)

    cfg = CampaignConfig(budget=5, target=5.0, n_candidates=64, reconnect_timeout=timeout)
    return (bl, outage, *run_campaign(bl, scorer, cfg, on_shot))


def events(docs, stream: str) -> list[dict]:
    uids = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == stream}
    return [d for n, d in docs if n == "event" and d["descriptor"] in uids]


def test_devices_that_come_back_fail_one_shot_and_nothing_is_proposed_meanwhile(
    scorer, monkeypatch
):
    """The devices stop answering during shot 2's ramp, for 2 s: shot 2 fails (recorded with
    the error), no proposal is made until they answer, the shutter is closed first, and the
    campaign carries on with shot 3."""
    bl, outage, camp, docs, error = campaign_with_outage(scorer, monkeypatch, 1, 2.0, 30)
    assert error is None, error
    statuses = [t.status for t in camp.record.trials]
    assert statuses[:3] == ["ok", "ok", "failed"] and statuses[3:] == ["ok"] * (len(statuses) - 3)
    assert "disconnected" in camp.record.trials[2].error
    (failure,) = events(docs, doc.FAILURES)
    assert failure["data"][SHOT] == 2
    proposals = events(docs, doc.PROPOSALS)
    assert [e["data"][PROPOSAL] for e in proposals] == list(range(len(statuses)))
    assert not [e for e in proposals if failure["time"] < e["time"] < outage.ended_at]
    assert [e["data"][SHOT] for e in events(docs, doc.SHOTS)] == [0, 1, *range(3, len(statuses))]
    (stop,) = [d for n, d in docs if n == "stop"]
    assert stop["exit_status"] == "success"
    assert bl.shutter.get() == "closed"


def test_devices_that_never_come_back_stop_the_campaign_naming_them(scorer, monkeypatch):
    """The settings stop answering for good between two shots (the shutter still answers): the
    campaign sees it before it proposes, proposes nothing more, stops after
    ``reconnect_timeout`` naming the devices, and closes the shutter."""
    started = time.monotonic()
    bl, _, camp, docs, error = campaign_with_outage(
        scorer, monkeypatch, 0, None, 1.5, shutter_too=False
    )
    assert error is None, error
    assert [t.status for t in camp.record.trials] == ["ok"]
    assert len(events(docs, doc.PROPOSALS)) == 1
    (stop,) = [d for n, d in docs if n == "stop"]
    assert stop["exit_status"] == "fail"
    assert stop["reason"].startswith(BEAMLINE_UNREACHABLE)
    assert "pump_fluence" in stop["reason"] and "within 1.5 s" in stop["reason"]
    assert time.monotonic() - started >= 1.5
    assert bl.shutter.get() == "closed"


def test_a_shutter_that_never_answers_is_said_in_the_stop_and_raised(scorer, monkeypatch):
    """Settings and shutter gone for good during shot 1: a failed shot, then the run's stop
    says the shutter's state is unknown and the plan raises, so that no one takes the
    campaign's end for a safe one."""
    _, _, camp, docs, error = campaign_with_outage(scorer, monkeypatch, 0, 0.0, 1.0)
    assert isinstance(error, ShutterNotClosed), error
    assert [t.status for t in camp.record.trials] == ["ok", "failed"]
    assert len(events(docs, doc.FAILURES)) == 1 and len(events(docs, doc.PROPOSALS)) == 2
    assert "close it by hand" in str(error)
    (stop,) = [d for n, d in docs if n == "stop"]
    assert stop["exit_status"] == "fail"
    assert stop["reason"].startswith(BEAMLINE_UNREACHABLE) and "state is unknown" in stop["reason"]


def test_devices_lost_in_the_first_shots_readings_leave_the_run_writable(scorer, monkeypatch):
    """The devices stop answering right after the first shot's frame, while its event is read:
    that shot fails and, once they answer again, the next shots are recorded (the RunEngine's
    cache of the stream was made when the run opened, not half made by the failed reading)."""
    bl = SimulatedBeamline(seed=0)
    outage = Outage(bl, monkeypatch)
    trigger, shots = bl.detector.trigger, []

    def trigger_then_fail():
        status = trigger()
        shots.append(status)
        if len(shots) == 4:  # 3 reference frames, then the first shot's frame
            status.wait(10)
            outage.seconds = 1.0
            outage.begin()
        return status

    configuration = bl.detector.read_configuration

    def read_configuration():  # an EPICS detector's configuration is a PV too
        if outage.down:
            raise DisconnectedError("det_image_shape: disconnected")
        return configuration()

    monkeypatch.setattr(bl.detector, "trigger", trigger_then_fail)
    monkeypatch.setattr(bl.detector, "read_configuration", read_configuration)
    cfg = CampaignConfig(budget=3, target=5.0, n_candidates=64, reconnect_timeout=30)
    camp, docs, error = run_campaign(bl, scorer, cfg)
    assert error is None, error
    assert [t.status for t in camp.record.trials] == ["failed", "ok", "ok"]
    assert [e["data"][SHOT] for e in events(docs, doc.SHOTS)] == [1, 2]
    assert [e["data"][SHOT] for e in events(docs, doc.FAILURES)] == [0]
