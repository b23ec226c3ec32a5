"""Delivering journalled documents to a Tiled catalog without ever holding up the RunEngine.

:class:`CatalogDelivery` is the RunEngine callback behind :func:`uedsteer.plans.subscribe`.
Each document is first appended to the run's local journal (:mod:`uedsteer.plans.journal`,
well under a millisecond for a frame), then handed to a background thread that writes it into
the catalog with bluesky-tiled-plugins' ``TiledWriter``. The plan never waits for the catalog,
so a slow or vanished Tiled server cannot keep the pump shutter open.

When a write fails (server stopped, network gone) the run goes *offline*: the user is told once,
documents keep going to the journal, and the thread probes the server every few seconds. When
it answers, the partial copy of the run is deleted and the whole run is written again from the
journal, then the run continues live. A run's journal is deleted once the catalog holds every
one of its documents; what is left over after a crash is delivered by :func:`deliver_pending`
the next time the catalog is opened.
"""

from __future__ import annotations

import queue
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .journal import DocumentJournal, iter_journal, pending, try_lock

PROBE_SECONDS = 2.0
"""How often an offline run checks whether the catalog answers again."""

QUIET_SECONDS = 0.02
"""The catalog is written while the RunEngine has emitted nothing for this long (or while it
waits for the delivery): a burst of frames is not slowed by the writes competing with it."""

MAX_BACKLOG = 400
"""Documents held back at most (≈ 100 MB of 261 × 261 frames); beyond it the writes go on
during the burst."""

LAG_SECONDS = 5.0
"""A catalog write taking longer than this is reported to the user (once, until it recovers)."""

STALL_SECONDS = 10.0
"""A stop document waits for its run's delivery while the delivery makes progress; after this
long without progress it returns (the documents stay journalled and are delivered later)."""


def _writer(client: Any, batch_size: int) -> Callable[[str, dict], None]:
    from bluesky_tiled_plugins import TiledWriter

    return TiledWriter(client, batch_size=batch_size, max_array_size=0)


def _say(message: str) -> None:
    print(f"uedsteer: {message}", file=sys.stderr, flush=True)


@dataclass
class _Run:
    writer: Callable[[str, dict], None]
    delivered: int = -1  # index of the last document the catalog has
    offline: bool = False
    last_probe: float = 0.0
    refused: str = ""  # why the catalog, answering again, did not take the run back
    stopped: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def _counts(docs: list[tuple[str, dict]]) -> tuple[bool, Counter]:
    """(has a stop document, events per stream name) of a journalled run."""
    names = {d["uid"]: d.get("name", "primary") for n, d in docs if n == "descriptor"}
    events: Counter = Counter()
    for n, d in docs:
        if n == "event":
            events[names[d["descriptor"]]] += 1
        elif n == "event_page":
            events[names[d["descriptor"]]] += len(d["seq_num"])
    return any(n == "stop" for n, _ in docs), events


def run_complete(client: Any, docs: list[tuple[str, dict]]) -> bool:
    """Whether the catalog holds the journalled run ``docs`` whole (stop and every event)."""
    uid = docs[0][1]["uid"]
    try:
        run = client[uid]
        has_stop, events = _counts(docs)
        if has_stop and not run.metadata.get("stop"):
            return False
        for stream, n in events.items():
            if len(run[stream]["seq_num"].read()) != n:
                return False
    except KeyError:
        return False
    return True


def _rewrite(client: Any, docs: list[tuple[str, dict]], batch_size: int) -> Callable:
    """Delete the catalog's partial copy of the run and write ``docs`` again; returns the
    writer, ready for the run's next documents.

    For a local catalog (``client.uedsteer_data``) the run's data folder goes too: a writer
    killed between creating an array's files and recording them in the catalog leaves files
    that no catalog entry owns, and the array could not be created again over them.
    """
    uid = docs[0][1]["uid"]
    try:
        client[uid].delete(recursive=True, external_only=False)
    except KeyError:
        pass
    data = getattr(client, "uedsteer_data", None)
    if data is not None and Path(uid).name == uid and uid not in ("", ".", ".."):
        shutil.rmtree(Path(data) / uid, ignore_errors=True)
    writer = _writer(client, batch_size)
    for name, doc in docs:
        writer(name, doc)
    return writer


def deliver_pending(client: Any, folder: str | Path, batch_size: int = 1) -> list[str]:
    """Deliver what earlier processes journalled but the catalog never confirmed.

    Journals held by a live writer (another process still running its run) are left alone.

    Parameters
    ----------
    client : tiled client of bluesky runs
    folder : str or Path
        The journal folder of this catalog.
    batch_size : int
        Events per write.

    Returns
    -------
    list of str
        The uids of the runs that were delivered (or found complete) and whose journals were
        removed.
    """
    done = []
    for path in pending(folder):
        lock = try_lock(path)
        if lock is None:
            continue
        try:
            docs = list(iter_journal(path))
            if not docs or docs[0][0] != "start":
                continue
            if not run_complete(client, docs):
                _rewrite(client, docs, batch_size)
            if run_complete(client, docs):
                path.unlink()
                done.append(docs[0][1]["uid"])
        finally:
            lock.close()
    if done:
        _say(f"delivered {len(done)} journalled run(s) to the catalog: {', '.join(done)}")
    return done


class CatalogDelivery:
    """RunEngine callback: journal every document, write it to the catalog in the background.

    Parameters
    ----------
    client : tiled client of bluesky runs
    journal : str or Path
        The journal folder.
    batch_size : int
        Events per catalog write (1: a second session sees every shot as it comes).
    notify : callable, optional
        ``notify(message)`` for what the user must know (default: one line on stderr).
    """

    def __init__(
        self,
        client: Any,
        journal: str | Path,
        batch_size: int = 1,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.journal = DocumentJournal(journal)
        self.batch_size = batch_size
        self.notify = notify or _say
        self._queue: queue.Queue = queue.Queue()
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._busy_since: float | None = None  # when the current catalog write began
        self._last_doc = 0.0  # when the RunEngine last emitted a document
        self._draining = 0  # callers waiting for the delivery
        self._lagging = False
        self._thread = threading.Thread(target=self._work, name="uedsteer-delivery", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ RunEngine side
    def __call__(self, name: str, doc: dict) -> None:
        self._last_doc = time.monotonic()
        uid, index = self.journal(name, doc)
        if name == "start":
            with self._lock:
                self._runs[uid] = _Run(writer=_writer(self.client, self.batch_size))
        self._queue.put((uid, index, name, doc))
        busy = self._busy_since
        if busy is not None and time.monotonic() - busy > LAG_SECONDS and not self._lagging:
            self._lagging = True
            self.notify(
                f"the catalog has not answered for {time.monotonic() - busy:.0f} s; the run "
                f"goes on and its documents are kept in {self.journal.folder} until the "
                "catalog has them"
            )
        if name == "stop":
            self.wait(uid)

    def wait(self, uid: str) -> bool:
        """Wait until run ``uid`` is in the catalog; False if it went offline or stalled."""
        run = self._runs.get(uid)
        if run is None:
            return True
        self._draining += 1
        try:
            last, since = run.delivered, time.monotonic()
            while not run.done.wait(0.05):
                if run.offline:
                    return False
                if run.delivered != last:
                    last, since = run.delivered, time.monotonic()
                elif time.monotonic() - since > STALL_SECONDS:
                    return False
            return True
        finally:
            self._draining -= 1

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait (at most ``timeout`` s) until every run so far is in the catalog."""
        end = time.monotonic() + timeout
        self._draining += 1
        try:
            return self._flush_until(end)
        finally:
            self._draining -= 1

    def _flush_until(self, end: float) -> bool:
        while time.monotonic() < end:
            with self._lock:
                busy = [r for r in self._runs.values() if not r.done.is_set()]
            if self._queue.empty() and not [r for r in busy if r.stopped]:
                return True
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------------ background side
    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=PROBE_SECONDS / 4)
            except queue.Empty:
                self._probe_offline()
                continue
            uid, index, name, doc = item
            self._yield_to_run_engine()
            run = self._runs.get(uid)
            if run is None:  # delivered whole by a probe that read it from the journal
                continue
            if name == "stop":
                run.stopped = True
            if run.offline:
                self._probe(uid, run)
            elif index > run.delivered:
                self._busy_since = time.monotonic()
                try:
                    run.writer(name, doc)
                    run.delivered = index
                except Exception as err:  # noqa: BLE001 - any failure: keep it journalled
                    self._go_offline(uid, run, err)
                finally:
                    self._busy_since = None
                if self._lagging and self._queue.empty() and not run.offline:
                    self._lagging = False
                    self.notify("the catalog answers again and has every document so far")
            if run.stopped and not run.offline and run.delivered == index:
                self._finish(uid, run)

    def _yield_to_run_engine(self) -> None:
        """Hold the writes back while the RunEngine is emitting (see ``QUIET_SECONDS``)."""
        while (
            not self._draining
            and self._queue.qsize() < MAX_BACKLOG
            and time.monotonic() - self._last_doc < QUIET_SECONDS
        ):
            time.sleep(QUIET_SECONDS / 2)

    def _go_offline(self, uid: str, run: _Run, err: Exception) -> None:
        run.offline = True
        run.last_probe = time.monotonic()
        if self._lagging:
            return  # the user was told already, once per outage
        self._lagging = True
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        self.notify(
            f"the catalog stopped accepting run {uid[:8]} ({type(err).__name__}: {reason}); "
            f"its documents are kept in {self.journal.folder} and will be delivered when "
            "the catalog answers again"
        )

    def _probe_offline(self) -> None:
        for uid, run in list(self._runs.items()):
            if run.offline:
                self._probe(uid, run)

    def _probe(self, uid: str, run: _Run) -> None:
        if time.monotonic() - run.last_probe < PROBE_SECONDS:
            return
        run.last_probe = time.monotonic()
        journal = self.journal.runs.get(uid)
        path = journal.path if journal else self.journal.folder / f"{uid}.journal"
        try:
            docs = list(iter_journal(path))
            run.writer = _rewrite(self.client, docs, self.batch_size)
        except Exception as err:  # noqa: BLE001 - still unreachable; try again later
            self._refused(uid, run, err)
            return
        run.delivered = len(docs) - 1
        run.offline = False
        self._lagging = False
        run.stopped = any(n == "stop" for n, _ in docs)
        self.notify(f"the catalog answers again: run {uid[:8]} delivered ({len(docs)} documents)")
        if run.stopped:
            self._finish(uid, run)

    def _refused(self, uid: str, run: _Run, err: Exception) -> None:
        """Tell the user (once for each different reason) when the catalog answers again but
        does not take the run back: that will not pass by waiting for the server."""
        import httpx

        if isinstance(err, httpx.TransportError):
            return  # not answering yet: the outage the user was told about
        reason = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"
        if reason != run.refused:
            run.refused = reason
            self.notify(
                f"the catalog answers but did not take run {uid[:8]} back ({reason}); its "
                f"documents stay in {self.journal.folder} and the delivery tries again"
            )

    def _finish(self, uid: str, run: _Run) -> None:
        """Check that the catalog has the whole run exactly once, then drop its journal.

        A write retried after a lost response can leave a row twice; such a run (or one
        short of a row) is written again from the journal.
        """
        journal = self.journal.runs.get(uid)
        path = journal.path if journal else self.journal.folder / f"{uid}.journal"
        try:
            docs = list(iter_journal(path))
            if not run_complete(self.client, docs):
                run.writer = _rewrite(self.client, docs, self.batch_size)
        except Exception as err:  # noqa: BLE001 - catalog gone again: deliver later
            self._go_offline(uid, run, err)
            return
        self.journal.runs.pop(uid, None)
        if journal is not None:
            journal.close(sync=False)
        path.unlink(missing_ok=True)
        run.done.set()
        with self._lock:
            self._runs.pop(uid, None)
