"""A local, append-only journal of bluesky documents: what makes logging survive ``kill -9``.

Every document of a run is appended to ``<folder>/<run uid>.journal`` (msgpack records; numpy
arrays as raw bytes with dtype and shape) and flushed to the operating system before the
RunEngine moves on, so a process killed at any moment leaves every document it had emitted
on disk. The catalog is written from the journal by a background thread
(:mod:`uedsteer.plans.delivery`); a run whose journal is still there was not (yet) confirmed
in the catalog and is delivered the next time the catalog is opened.

While a run is being written its journal file holds an exclusive ``flock``: the operating
system releases it when the process ends, however it ends, so a journal that can be locked
belongs to no live writer.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

SUFFIX = ".journal"
_ND = 1  # msgpack extension code of a numpy array


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        if arr.dtype.hasobject:
            return arr.tolist()
        header = msgpack.packb((arr.dtype.str, list(arr.shape)))
        return msgpack.ExtType(_ND, len(header).to_bytes(4, "little") + header + arr.tobytes())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    raise TypeError(f"cannot journal a {type(obj).__name__}")


def _decode(code: int, data: bytes) -> Any:
    if code != _ND:
        return msgpack.ExtType(code, data)
    n = int.from_bytes(data[:4], "little")
    dtype, shape = msgpack.unpackb(data[4 : 4 + n])
    return np.frombuffer(data[4 + n :], dtype=np.dtype(dtype)).reshape(shape).copy()


def pack(name: str, doc: dict) -> bytes:
    """One journal record: ``(name, doc)`` as msgpack bytes."""
    return msgpack.packb((name, doc), default=_encode, use_bin_type=True)


def iter_journal(path: str | os.PathLike) -> Iterator[tuple[str, dict]]:
    """Iterate over the complete ``(name, doc)`` records of a journal file, in order.

    A record cut short by a kill during its write is dropped (it was never acknowledged).
    """
    unpacker = msgpack.Unpacker(ext_hook=_decode, raw=False, strict_map_key=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            unpacker.feed(chunk)
            for record in unpacker:
                yield tuple(record)


class RunJournal:
    """The open journal file of one run (append, flush, exclusive lock)."""

    def __init__(self, folder: Path, uid: str) -> None:
        self.path = folder / f"{uid}{SUFFIX}"
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        self.count = 0

    def append(self, name: str, doc: dict) -> int:
        """Append one document; returns its index within the run (0 = start)."""
        self._fh.write(pack(name, doc))
        self._fh.flush()  # in the OS's hands now: survives the death of this process
        self.count += 1
        return self.count - 1

    def sync(self) -> None:
        """Flush to the disk itself (not only to the operating system)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self, sync: bool = True) -> None:
        """Flush to the disk (``sync``) and release the lock."""
        if self._fh.closed:
            return
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


class DocumentJournal:
    """A RunEngine callback that journals every document of every run (module docstring).

    Parameters
    ----------
    folder : str or PathLike
        Where the journal files go (created if needed).

    Attributes
    ----------
    runs : dict
        Open :class:`RunJournal` per run uid.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.runs: dict[str, RunJournal] = {}
        self._run_of: dict[str, str] = {}  # descriptor uid -> run uid

    def __call__(self, name: str, doc: dict) -> tuple[str, int]:
        """Journal one document; returns (run uid, index of the document in its run)."""
        uid = self._owner(name, doc)
        if name == "start":
            self.runs[uid] = RunJournal(self.folder, uid)
        journal = self.runs[uid]
        index = journal.append(name, doc)
        if name == "descriptor":
            self._run_of[doc["uid"]] = uid
        if name == "stop":
            journal.sync()  # the run is whole on disk; the lock stays until it is delivered
            self._run_of = {d: r for d, r in self._run_of.items() if r != uid}
        return uid, index

    def _owner(self, name: str, doc: dict) -> str:
        if name == "start":
            return doc["uid"]
        if name in ("stop", "descriptor"):
            return doc["run_start"]
        if name in ("event", "event_page"):
            return self._run_of[doc["descriptor"]]
        run_start = doc.get("run_start")
        if run_start:
            return run_start
        if len(self.runs) == 1:  # resources and datums of the one open run
            return next(iter(self.runs))
        raise ValueError(f"cannot tell which run a {name!r} document belongs to")


def try_lock(path: Path) -> Any | None:
    """Open ``path`` with an exclusive lock, or None if a live writer holds it."""
    fh = open(path, "rb")  # noqa: SIM115 - the caller closes it
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def pending(folder: str | os.PathLike) -> list[Path]:
    """Journal files in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)
