"""``FrameScorer``: the one object the controller and the plans use to score frames.

``FrameScorer.pretrained()`` loads the weights shipped in ``surrogates/weights/`` (made by
``uedsteer train cnn``, ``uedsteer train vae`` and ``uedsteer train finetune``), with
``torch.load(..., weights_only=True)``: a weights file cannot run code.

Optional crystal output: with a crystal-structure predictor attached
(:meth:`FrameScorer.attach_crystal_predictor`, or ``crystal=`` of :meth:`FrameScorer.load` /
:meth:`FrameScorer.pretrained`), every valid frame is also turned into a Bragg list
(:func:`uedsteer.surrogates.crystal.peaks.find_bragg_peaks`, 10–20 ms a frame on one core)
and the predictor's crystal system and confidence go into :attr:`Scores.crystal_system` and
:attr:`Scores.crystal_confidence`. Without one those fields are ``""`` / NaN and scoring costs
nothing more.

Input of :meth:`FrameScorer.score`: frames as :mod:`uedsteer.surrogates.frame_input`
describes (an empty batch gives empty :class:`~uedsteer.surrogates.scores.Scores`, so a batch
API needs no special case); a frame that cannot be scored is flagged, never classified.

Threads: at batch 1 the scorer's parallel regions are too short to share well with other
busy processes (a parallel region waits for its slowest thread, and on a busy core that
thread waits a whole scheduling slice), so by default batches of up to :data:`SMALL_BATCH`
frames are scored on one torch thread: in the calling thread where it computes on one
torch thread itself (no hand-over), else on the scorer's own worker threads of one torch
thread each, the CNN on one and the VAE branch on the other while two cores are free (see
``threads`` and ``concurrent`` of :class:`FrameScorer`), one after the other on one worker
where other processes keep the cores busy
(:func:`~uedsteer.surrogates.threads.free_workers`), which contends less. The process's
thread budget (:mod:`uedsteer.surrogates.threads`) bounds the workers: with a budget of one
core, both branches run on one worker. The calling thread's torch setting is never changed.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from uedsteer.sim_devices.materials import default_material
from uedsteer.sim_devices.physics.difference import MIN_REFERENCES, reference_pattern

from .cnn import load_uednet
from .frame_input import (
    FLAG_REASONS,
    FRAME_SIZE,
    frame_batch,
    frame_flags,
    frame_quality,
    numeric_array,
)
from .heating import HeatingEstimator
from .preprocess import cnn_input, reference_tensor, vae_input
from .scores import Scores
from .threads import affinity_cores, applied_thread_budget, free_workers
from .vae import ConvVAE, LatentLine

WEIGHTS = "weights"
SMALL_BATCH = 8
"""Batches of up to this many frames are scored with ``FrameScorer.threads`` torch threads."""


class CrystalPredictor(Protocol):
    """What :meth:`FrameScorer.attach_crystal_predictor` needs (e.g. the random-forest
    predictor of :mod:`uedsteer.surrogates.crystal`).

    ``predict(bragg_lists)`` takes a list of (m, 3) Bragg lists ``(qx, qy, I)`` (central beam
    first) and returns an object with (N,) arrays ``crystal_system`` (str),
    ``system_confidence`` (float) and ``valid`` (bool).
    """

    def predict(self, bragg_lists: list[np.ndarray]) -> Any:
        """Predict the crystal system of each Bragg list."""
        ...


def card_classes(meta: dict) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Class names and damage-class indices recorded in a model card (``scorer.json``).

    A card without them (written before classes were recorded) is read as the default
    material's (:func:`uedsteer.sim_devices.materials.default_material`).

    Raises
    ------
    ValueError
        If the names are not unique or a damage index does not name a class.
    """
    material = default_material()
    classes = tuple(str(c) for c in meta.get("classes", material.class_names))
    damage = tuple(int(k) for k in meta.get("damage_classes", material.damage_classes))
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"the model card's classes {list(classes)} must be unique names")
    if any(not 0 <= k < len(classes) for k in damage):
        raise ValueError(f"damage_classes {list(damage)} must index the {len(classes)} classes")
    return classes, damage


class FrameScorer:
    """CNN classifier + VAE latent line + reference frames, scoring raw detector frames.

    Parameters
    ----------
    cnn : torch.nn.Module
        Classifier of pooled difference images (:class:`UEDNet`).
    vae : ConvVAE
    line : LatentLine
    reference : numpy.ndarray
        (261, 261) mean of pristine 2H frames (normalized), the subtrahend of the
        difference images; it must pass the frame checks of :meth:`score` (finite, not all
        zero, not negative).
    recon_scale : float
        Median reconstruction error of the VAE's training frames.
    saturation : float
        Pixel value treated as saturated.
    meta : dict, optional
        Training metadata (written to ``scorer.json`` by :meth:`save`): the model card. Its
        ``classes`` (class names in CNN output order) and ``damage_classes`` (their indices
        that mean damage) name the classes; a card without them is read as the default
        material's (MoTe2).
    crystal : CrystalPredictor, optional
        Crystal-structure predictor for the optional crystal output (see
        :meth:`attach_crystal_predictor`); default none.
    threads : int or None
        torch intra-op threads of each of the scorer's two worker threads, which score
        batches of up to :data:`SMALL_BATCH` frames. Default 1: a frame's convolutions are too
        small to split well, and split across cores that other processes keep busy, every
        parallel region waits for its slowest thread. ``None``: score every batch on the
        calling thread with torch's process-wide setting (``torch.set_num_threads``). Larger
        batches always do.
    concurrent : bool
        Score a batch of up to :data:`SMALL_BATCH` frames as two branches at once, the CNN on
        one worker thread and the VAE, frame quality and heating on the other (default), or
        one after the other on one worker. The numbers are the same bit for bit (each branch
        runs on ``threads`` torch threads); the latency is that of the longer branch. The
        branches run at once only while the other processes leave two cores free
        (:func:`uedsteer.surrogates.threads.free_workers`, over the last second): on busy
        cores the second thread waits for a core, and one after the other is faster. The
        process's thread budget has the last word: ``scorer_workers`` of
        :func:`uedsteer.surrogates.threads.apply_thread_budget` (before any budget is
        applied, the cores the process may run on), so on one core the branches run one
        after the other.
    """

    def __init__(
        self,
        cnn: torch.nn.Module,
        vae: ConvVAE,
        line: LatentLine,
        reference: np.ndarray,
        recon_scale: float = 1.0,
        saturation: float = 65535.0,
        meta: dict | None = None,
        crystal: CrystalPredictor | None = None,
        threads: int | None = 1,
        concurrent: bool = True,
    ) -> None:
        # channels_last: faster small convolutions on CPU (oneDNN) with the same numbers bit
        # for bit: the CNN ~2×, the VAE decoder 0.93 → 0.69 ms at batch 1. Not the VAE
        # encoder: there it saves 0.06 ms but changes the latent in the 7th digit.
        self.cnn = cnn.eval().to(memory_format=torch.channels_last)
        self.vae = vae.eval()
        self.vae.decoder.to(memory_format=torch.channels_last)
        self.line = line
        self.saturation = float(saturation)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_workers = 0
        self.threads = threads
        self.concurrent = bool(concurrent)
        self.reference = reference_pattern(self._checked_reference(reference, "reference"))
        self.recon_scale = float(recon_scale)
        self.meta = meta or {}
        self.classes, self.damage_classes = card_classes(self.meta)
        self.crystal: CrystalPredictor | None = None
        self.crystal_peak_options: dict[str, Any] = {}
        if crystal is not None:
            self.attach_crystal_predictor(crystal)

    # ---------------------------------------------------------------- persistence
    @classmethod
    def load(
        cls,
        folder: str | Path | None = None,
        variant: str = "exp",
        crystal: CrystalPredictor | None = None,
    ) -> FrameScorer:
        """Load a scorer from ``folder`` (default: the shipped weights).

        Parameters
        ----------
        variant : {"exp", "syn"}
            Fine-tuned CNNExp (default) or the synthetic-only CNNSyn classifier.
        crystal : CrystalPredictor, optional
            Attach this crystal-structure predictor (see :meth:`attach_crystal_predictor`).
        """
        if variant not in ("exp", "syn"):
            raise ValueError(f"variant={variant!r} is not known; allowed: 'exp', 'syn'")
        root = Path(folder) if folder else Path(str(resources.files(__package__) / WEIGHTS))
        meta_path = root / "scorer.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no scorer in {root}: train one with `uedsteer train cnn`, `uedsteer train vae`"
                " and `uedsteer train finetune`"
            )
        meta = json.loads(meta_path.read_text())
        cnn_file = root / f"cnn_{variant}.pt"
        if not cnn_file.is_file():
            cnn_file = root / "cnn_syn.pt"
        cnn = load_uednet(cnn_file, len(card_classes(meta)[0]))
        vae = ConvVAE(meta["latent_dim"])
        vae.load_state_dict(torch.load(root / "vae.pt", weights_only=True))
        reference = np.load(root / "reference.npy", allow_pickle=False)
        line = LatentLine(meta["line"]["z_2h"], meta["line"]["z_1tp"])
        return cls(cnn, vae, line, reference, meta["recon_scale"], meta=meta, crystal=crystal)

    @classmethod
    def pretrained(
        cls, variant: str = "exp", crystal: CrystalPredictor | None = None
    ) -> FrameScorer:
        """The scorer shipped with the package (no training needed).

        ``crystal`` optionally attaches a crystal-structure predictor
        (:meth:`attach_crystal_predictor`).
        """
        return cls.load(None, variant, crystal=crystal)

    def save(self, folder: str | Path, cnn_name: str = "cnn_syn.pt") -> Path:
        """Write VAE, CNN, reference and metadata into ``folder``."""
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        torch.save(self.cnn.state_dict(), root / cnn_name)
        # The VAE's tensors in the standard layout, as training wrote them (its decoder runs
        # channels_last), so that a saved scorer's vae.pt is byte for byte the trained one
        # (clone, not contiguous(): a 1-channel weight keeps odd strides through the latter);
        # the CNN was saved channels_last from the start.
        vae_state = self.vae.state_dict()  # an OrderedDict with module metadata: keep it
        for key, value in vae_state.items():
            vae_state[key] = value.clone(memory_format=torch.contiguous_format)
        torch.save(vae_state, root / "vae.pt")
        np.save(root / "reference.npy", self.reference.astype(np.float32))
        meta = dict(self.meta)
        meta.update(
            latent_dim=self.vae.latent_dim,
            line=self.line.to_dict(),
            recon_scale=self.recon_scale,
            classes=list(self.classes),
            damage_classes=list(self.damage_classes),
        )
        (root / "scorer.json").write_text(json.dumps(meta, indent=1))
        return root

    @property
    def threads(self) -> int | None:
        """torch threads for batches of up to :data:`SMALL_BATCH` frames (None: torch's
        process-wide setting); see the class description."""
        return self._threads

    @threads.setter
    def threads(self, value: int | None) -> None:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1
        ):
            raise ValueError(f"threads={value!r} is not allowed; give an int >= 1 or None")
        self._threads = None if value is None else int(value)
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.shutdown(wait=False)

    @property
    def reference(self) -> np.ndarray:
        """(261, 261) normalized mean of the pristine reference frames.

        Setting it (a (261, 261) pattern or a (k, 261, 261) stack of k ≥ 3 frames) checks the
        value as :meth:`set_reference` does; a rejected value raises ``ValueError`` and leaves
        the previous reference in force.
        """
        return self._reference

    @reference.setter
    def reference(self, value: np.ndarray) -> None:
        # everything is derived and checked before anything is replaced: a rejected
        # reference leaves the previous one in force
        reference = reference_pattern(self._checked_reference(value, "reference"))
        try:
            heating = HeatingEstimator(reference)
        except ValueError as err:
            raise ValueError(
                f"reference is rejected ({err}); allowed: a pattern with Bragg intensity "
                "outside the beam stop"
            ) from None
        self._ref_t = reference_tensor(reference)
        self._heating = heating
        self._reference = reference

    def set_reference(self, frames: np.ndarray) -> None:
        """Use ≥ 3 pristine 2H frames of *this* sample and beamline as the reference.

        Raises
        ------
        ValueError
            If ``frames`` is not a (k, 261, 261) stack of k ≥ 3 frames that :meth:`score`
            would call valid (finite, not all zero, not negative, at most 1 % saturated). The
            previous reference then stays in force.
        """
        frames = self._checked_reference(frames, "frames", stack=True)
        self.reference = reference_pattern(frames.astype(np.float32, copy=False))

    def _checked_reference(self, value: Any, name: str, stack: bool = False) -> np.ndarray:
        """``value`` as an array after the frame checks of :meth:`score`; ``ValueError``
        naming ``name`` otherwise.

        ``stack``: ``value`` must be a (k, 261, 261) stack of k ≥ 3 frames; otherwise one
        (261, 261) pattern or such a stack.
        """
        n = FRAME_SIZE
        allowed = f"allowed: a (k, {n}, {n}) stack of k >= {MIN_REFERENCES} pristine 2H frames"
        if not stack:
            allowed += f" or their ({n}, {n}) mean"
        arr = numeric_array(value, name, allowed + " of real numbers")
        if arr.ndim not in ((3,) if stack else (2, 3)) or arr.shape[-2:] != (n, n):
            raise ValueError(f"{name} has shape {arr.shape}; {allowed}")
        if arr.ndim == 3 and len(arr) < MIN_REFERENCES:
            raise ValueError(f"{name} holds {len(arr)} frames; {allowed}")
        if arr.dtype.kind == "c":
            raise ValueError(f"{name} has dtype {arr.dtype}; {allowed} of real numbers")
        batch = arr if arr.ndim == 3 else arr[None]
        for i, flag in enumerate(frame_flags(batch, self.saturation)):
            if flag:
                where = f"{name}[{i}]" if arr.ndim == 3 else name
                raise ValueError(
                    f"{where} is flagged {flag!r} ({FLAG_REASONS[flag]}); {allowed}, each finite, "
                    "not all zero, not negative and at most 1 % saturated"
                )
        return arr

    # ---------------------------------------------------------------- crystal output
    def attach_crystal_predictor(
        self, predictor: CrystalPredictor | None, **peak_options: Any
    ) -> None:
        """Fill :attr:`Scores.crystal_system` / ``crystal_confidence`` from now on.

        Each valid frame is turned into a Bragg list with
        :func:`~uedsteer.surrogates.crystal.peaks.find_bragg_peaks` and passed to
        ``predictor.predict``. If the predictor raises or returns something malformed, the
        frames' crystal fields stay ``""`` / NaN and a ``RuntimeWarning`` is issued: the crystal
        output is a diagnostic and never stops the scoring of a campaign.

        Parameters
        ----------
        predictor : CrystalPredictor or None
            Object with ``predict(bragg_lists)`` (see :class:`CrystalPredictor`); None detaches
            the current one.
        **peak_options
            Keyword options of ``find_bragg_peaks`` (e.g. ``threshold=0.02``).

        Raises
        ------
        ValueError
            If ``predictor`` has no callable ``predict`` or a peak option is unknown or out of
            range.
        """
        if predictor is None:
            self.crystal, self.crystal_peak_options = None, {}
            return
        if not callable(getattr(predictor, "predict", None)):
            raise ValueError(
                f"predictor={type(predictor).__name__} has no predict(bragg_lists) method; "
                "give a crystal-structure predictor or None"
            )
        from .crystal.peaks import peak_options as check_peak_options

        self.crystal_peak_options = check_peak_options(**peak_options)
        self.crystal = predictor

    def _crystal_scores(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(crystal_system (object array of str), confidence) of valid frames; ``""`` / NaN
        where not computed."""
        from .crystal.peaks import frame_to_bragg

        n = len(frames)
        systems, confidence = np.full(n, "", dtype=object), np.full(n, np.nan)
        try:
            pred = self.crystal.predict(frame_to_bragg(frames, **self.crystal_peak_options))
            system = np.asarray(pred.crystal_system, dtype=str)
            conf = np.asarray(pred.system_confidence, dtype=np.float64)
            ok = np.asarray(pred.valid, dtype=bool)
            if not system.shape == conf.shape == ok.shape == (n,):
                raise ValueError(
                    f"predict() returned arrays of shapes {system.shape}, {conf.shape}, "
                    f"{ok.shape} for {n} Bragg lists"
                )
        except Exception as err:  # any failure: the crystal output is optional
            warnings.warn(
                f"crystal predictor failed ({type(err).__name__}: {err}); crystal fields left "
                "empty",
                RuntimeWarning,
                stacklevel=3,
            )
            return systems, confidence
        systems[ok] = system[ok]
        confidence[ok] = conf[ok]
        return systems, confidence

    # ---------------------------------------------------------------- scoring
    def _cnn_branch(self, frames: np.ndarray) -> np.ndarray:
        """Class probabilities (B, n_classes) of valid frames."""
        with torch.inference_mode():
            x = cnn_input(frames, self._ref_t).to(memory_format=torch.channels_last)
            return torch.softmax(self.cnn(x), 1).double().numpy()

    def _vae_branch(
        self, frames: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Latent codes, scaled reconstruction errors, frame quality and heating of valid
        frames."""
        with torch.inference_mode():
            x = vae_input(frames)
            mu, _ = self.vae.encode(x)
            rec = self.vae.decode(mu)
            error = ((rec - x) ** 2).flatten(1).mean(1).double().numpy()
            quality = frame_quality(frames)
        heating = self._heating.estimate(frames)
        return mu.double().numpy(), error / self.recon_scale, quality, heating

    def _both_branches(self, frames: np.ndarray) -> tuple[np.ndarray, tuple]:
        """Both branches one after the other (one worker thread)."""
        return self._cnn_branch(frames), self._vae_branch(frames)

    @property
    def workers(self) -> int:
        """Worker threads that batches of up to :data:`SMALL_BATCH` frames are scored on: the
        process's thread budget's ``scorer_workers`` (:mod:`uedsteer.surrogates.threads`), 2
        or 1; before any budget is applied, as many of 2 as the process has cores. With one,
        the two branches run one after the other."""
        budget = applied_thread_budget()
        return budget.scorer_workers if budget is not None else min(2, affinity_cores())

    def _workers(self) -> tuple[ThreadPoolExecutor, int]:
        """The scorer's worker threads and their number (two, or one where the thread budget
        allows one), each set to :attr:`threads` torch threads.

        They are started here and set once: ``torch.set_num_threads`` also empties oneDNN's
        cache of compiled convolutions, so switching per call would cost more than a frame's
        convolutions (a new thread budget, applied once, starts new workers). The process-wide
        default that threads started later inherit is put back afterwards; the calling
        thread's own setting is never touched.
        """
        n_workers = self.workers
        if self._pool is not None and (
            self._pool_pid != os.getpid() or self._pool_workers != n_workers
        ):
            # a forked child has none of its parent's threads; a new budget, other workers
            old, self._pool = self._pool, None
            if self._pool_pid == os.getpid():
                old.shutdown(wait=False)
        pool = self._pool
        if pool is None:
            process_default = torch.get_num_threads()
            ready = threading.Barrier(n_workers + 1)

            def start(n: int) -> None:
                # torch reads the process-wide default into a thread on its first parallel
                # call: let that happen first, or it would later override n
                torch.get_num_threads()
                torch.set_num_threads(n)
                ready.wait()

            pool = ThreadPoolExecutor(n_workers, thread_name_prefix="uedsteer-scorer")
            for _ in range(n_workers):
                pool.submit(start, self.threads)
            ready.wait()
            torch.set_num_threads(process_default)
            self._pool, self._pool_pid, self._pool_workers = pool, os.getpid(), n_workers
        return pool, n_workers

    def __getstate__(self) -> dict[str, Any]:
        # a thread pool is neither copied nor pickled; a copy starts its own
        state = dict(self.__dict__)
        state["_pool"] = None
        return state

    @torch.inference_mode()
    def score(self, frames: np.ndarray | Sequence[np.ndarray]) -> Scores:
        """Score raw frames.

        Parameters
        ----------
        frames : numpy.ndarray or sequence of numpy.ndarray
            (B, 261, 261) or (261, 261) raw detector frames (any real dtype), or a list of
            (261, 261) frames. B = 0 (an empty batch or list) gives empty :class:`Scores`.

        Returns
        -------
        Scores
            Frames that cannot be scored are flagged (see :data:`FLAG_REASONS`: NaN or
            infinite pixels, all zero, negative, > 1 % saturated, complex values, or in a list
            a frame of another size) and get NaN scores and class −1; they are never given a
            class. ``crystal_system`` / ``crystal_confidence`` are filled for valid frames only
            when a crystal predictor is attached (:meth:`attach_crystal_predictor`).

        Raises
        ------
        ValueError
            For input that is not real or complex numbers (text, booleans, objects), has
            neither 2 nor 3 dimensions, or is a whole batch of frames of another size than
            (261, 261).
        """
        frames, known = frame_batch(frames)
        b = len(frames)
        flags = frame_flags(frames, self.saturation, known)
        valid = np.array([f == "" for f in flags], dtype=bool)
        n_lat = self.vae.latent_dim
        probs = np.full((b, len(self.classes)), np.nan)
        latent = np.full((b, n_lat), np.nan)
        recon = np.full(b, np.nan)
        quality = np.zeros(b)
        heating = np.full(b, np.nan)
        good = frames if valid.all() else frames[valid]
        if len(good):
            if len(good) > SMALL_BATCH or self.threads is None:
                probs[valid] = self._cnn_branch(good)
                vae_scores = self._vae_branch(good)
            else:
                pool, n_workers = self._workers()
                if torch.get_num_threads() == self.threads:
                    # the calling thread computes as a worker would: no hand-over (on busy
                    # cores a worker waits for a core to start and again to hand back)
                    probs[valid], vae_scores = self._both_branches(good)
                elif self.concurrent and n_workers > 1 and free_workers(n_workers) > 1:
                    cnn = pool.submit(self._cnn_branch, good)
                    vae_scores = pool.submit(self._vae_branch, good).result()
                    probs[valid] = cnn.result()
                else:
                    cnn, vae = pool.submit(self._both_branches, good).result()
                    probs[valid], vae_scores = cnn, vae
            latent[valid], recon[valid], quality[valid], heating[valid] = vae_scores
        progress, distance = np.full(b, np.nan), np.full(b, np.nan)
        if len(good):
            progress[valid], distance[valid] = self.line.project(latent[valid])
        crystal_system, crystal_conf = None, None
        if self.crystal is not None:
            crystal_system, crystal_conf = np.full(b, "", dtype=object), np.full(b, np.nan)
            if len(good):
                crystal_system[valid], crystal_conf[valid] = self._crystal_scores(good)
            crystal_system = crystal_system.astype(str)
        predicted = np.where(valid, np.nan_to_num(probs, nan=-1).argmax(1), -1)
        return Scores(
            class_probs=probs,
            predicted_class=predicted.astype(int),
            damage_prob=probs[:, list(self.damage_classes)].sum(1),
            latent=latent,
            line_distance=distance,
            progress=progress,
            recon_error=recon,
            frame_quality=quality,
            heating=heating,
            valid=valid,
            flags=flags,
            crystal_system=crystal_system,
            crystal_confidence=crystal_conf,
            classes=self.classes,
        )
