"""Stiffness aggregates for N beyond memory: accumulated block by block, never forming N x N.

`stiffness_summary` runs the same tiled Gram computation as `gradient_gram`, but each block of
stiffness is folded into class sums, distance histograms and neighbourhood sums and then
dropped. Memory is O(block^2 + the factor cache), whatever N is. With `checkpoint`, the
accumulated state and the finished blocks are saved atomically as it goes; the same call
after an interruption continues from there and ends with the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness import checks, measures
from tfstiffness.distributed import cluster, summary_sync
from tfstiffness.engine import pipelines, structure
from tfstiffness.engine.run import GramRun, Progress, check_finite_block, prepare_run
from tfstiffness.errors import ConfigMismatchError, CorruptFileError
from tfstiffness.measures import StiffnessCurve, alignment, neighbourhood
from tfstiffness.measures.input_space import InputSpace
from tfstiffness.measures.input_space import features as _features
from tfstiffness.measures.neighbourhood import DIRECT_DISTANCE_MAX_FEATURES
from tfstiffness.outputs.atomic import NPZ_READ_ERRORS, atomic_write, read_npz

_PAIRS = ("within", "between", "all")
CHECKPOINT_ADVICE = "Delete it (the run then starts over) or pass another checkpoint path."


@dataclass
class StiffnessSummary:
    """Aggregates of sign and cosine stiffness over every pair of examples.

    Attributes:
        kinds: the stiffness kinds aggregated ("sign", "cosine").
        class_matrix: kind -> [K, K] class stiffness (self-pairs excluded on one set).
        within, between: kind -> within- and between-class stiffness.
        superclass_contrast: kind -> contrast (when `fine_to_coarse` was given).
        distance_curve: kind -> `StiffnessCurve` on the fixed `distance_edges`.
        neighbourhood: kind -> [N] mean stiffness to neighbours within `radius` (NaN: none).
        neighbour_counts: [N] neighbours of each point within `radius`.
        nearest_distances: [N] distance to the nearest other point (NaN: an old checkpoint).
        sq_norms, sq_norms2: squared per-example gradient norms of each set.
        num_zero_gradient: examples whose gradient is exactly zero (their cosine is 0).
        blocks_total: number of Gram blocks; blocks_resumed: how many came from a checkpoint.
        blocks_by_worker: the blocks each worker computed in this call, in the cluster's
            order (chief first); one entry without a multi-worker strategy. With
            `blocks_resumed` they add up to `blocks_total`.
        alignment: the gradient-alignment family's sufficient statistics by class
            (`alignment.AlignmentStatistics`: m-coherence, gradient diversity and confusion,
            overall and per class); for two sets, their cross sums.
    """

    kinds: tuple[str, ...]
    class_matrix: dict[str, np.ndarray]
    within: dict[str, float]
    between: dict[str, float]
    sq_norms: np.ndarray
    sq_norms2: np.ndarray
    num_zero_gradient: int
    blocks_total: int
    blocks_resumed: int = 0
    blocks_by_worker: tuple[int, ...] = ()
    superclass_contrast: dict[str, float] = field(default_factory=dict)
    distance_curve: dict[str, StiffnessCurve] = field(default_factory=dict)
    neighbourhood: dict[str, np.ndarray] = field(default_factory=dict)
    neighbour_counts: np.ndarray | None = None
    nearest_distances: np.ndarray | None = None
    alignment: alignment.AlignmentStatistics | None = None


def stiffness_summary(
    model: keras.Model,
    x: Any,
    y: Any = None,
    loss: Any = None,
    x2: Any = None,
    y2: Any = None,
    *,
    num_classes: int | None = None,
    fine_to_coarse: Sequence[int] | None = None,
    kinds: Sequence[str] = ("sign", "cosine"),
    distance_edges: Sequence[float] | None = None,
    pairs: str = "within",
    radius: float | None = None,
    weighting: str = "uniform",
    bandwidth: float | None = None,
    block_size: int | None = None,
    method: str = "auto",
    strategy: tf.distribute.Strategy | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: float = 60.0,
    verbose: bool | None = None,
    loss_weights: Any = None,
    sample_weight: Any = None,
    sample_weight2: Any = None,
    num_examples: int | None = None,
) -> StiffnessSummary:
    """Class, distance and neighbourhood stiffness of all pairs, without the N x N matrix.

    Equal to `class_stiffness`, `stiffness_vs_distance(..., bins=distance_edges)` and
    `neighbourhood_stiffness(..., radius=...)` on the full matrix, up to float summation
    order.

    Args:
        model, x, y, loss, x2, y2, method, loss_weights, sample_weight, sample_weight2,
            num_examples: as for `gradient_gram` (datasets and generators are read once into
            arrays; per-example weights: G_w = diag(w) G diag(w)); `y` (and
            `y2`) must be class labels (integers or one-hot) of a single-output model.
        num_classes: K (default: from the labels).
        fine_to_coarse: class -> super-class, for the super-class contrast.
        kinds: stiffness kinds to aggregate.
        distance_edges: bin edges of input distance; None gives 20 equal bins on [0, 2], the
            whole range of the distance; `()` skips the distance curve.
        pairs: pairs binned by distance: "within" class, "between" classes or "all".
        radius: neighbourhood radius in input space (Euclidean, on the flattened input or
            the concatenated float inputs) for neighbourhood stiffness, one set only; None
            skips it.
        weighting, bandwidth: as for `neighbourhood_stiffness` ("uniform" or "gaussian").
        block_size: examples per block (default as `gradient_gram`).
        strategy: a `tf.distribute.Strategy` to spread the blocks over its replicas. Under
            a multi-worker strategy (MultiWorkerMirroredStrategy from `TF_CONFIG`) every
            worker makes the same call: the blocks are divided among all workers' replicas,
            each worker folds in its own blocks, and the aggregates are reduced so that every
            worker returns the same summary. Workers whose model, data or settings differ
            are refused (on every worker), naming what differs.
        checkpoint: a file path: state is saved there every `checkpoint_every` seconds and
            at the end; a later call with the same model (architecture and every variable,
            moving statistics included), loss, data and settings resumes; any difference is
            refused, naming what differs. On a cluster only the chief reads and writes it
            (other workers ignore the path, so it may be shared): each save reduces every
            worker's state, and a restarted cluster resumes from the chief's file.
        verbose: progress on stderr (default: after 5 seconds; on a cluster, chief only).

    Raises:
        cluster.WorkerLostError: on a cluster, another worker stopped (see `cluster`).

    Returns:
        A `StiffnessSummary`.

    Example:
        >>> import keras, numpy as np, tfstiffness as tfs
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> x, y = np.random.rand(50, 4).astype("float32"), np.arange(50) % 3
        >>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        >>> summary = tfs.stiffness_summary(model, x, y, loss=loss, block_size=16)
        >>> summary.class_matrix["cosine"].shape
        (3, 3)
    """
    _check_settings(kinds, pairs, radius, x2, weighting)
    # Read here, not only in prepare_run: the class labels may come from the data.
    x, y, sample_weight = pipelines.examples(model, x, y, sample_weight, "x", num_examples)
    x2, y2, sample_weight2 = pipelines.examples(model, x2, y2, sample_weight2, "x2")
    labels, labels2, k = summary_labels(y, y2, num_classes)
    edges = np.linspace(0.0, 2.0, 21) if distance_edges is None else np.asarray(
        distance_edges, np.float64)
    run = prepare_run(model, x, y, loss, x2, y2, method, block_size, strategy, loss_weights,
                      batch_size_name="block_size", sample_weight=sample_weight,
                      sample_weight2=sample_weight2)
    acc = _Accumulator(run, tuple(kinds), labels, labels2, k, edges, pairs, radius,
                       weighting, bandwidth)
    fingerprint = _fingerprint(model, run, kinds=list(kinds), num_classes=k,
                               distance_edges=edges.tolist(), pairs=pairs, radius=radius,
                               weighting=weighting, bandwidth=bandwidth)
    if strategy is not None:
        return _on_workers(run, acc, fingerprint, checkpoint, checkpoint_every, verbose,
                           strategy, fine_to_coarse, run.num_block_pairs)
    return _in_one_process(run, acc, fingerprint, checkpoint, checkpoint_every, verbose,
                           fine_to_coarse)


def _check_settings(kinds, pairs, radius, x2, weighting) -> None:
    for kind in kinds:
        if kind not in measures.STIFFNESS_KINDS:
            raise ValueError(f"kinds: expected kinds among {measures.STIFFNESS_KINDS}, got "
                             f"{kind!r}.")
    if pairs not in _PAIRS:
        raise ValueError(f"pairs: expected one of {_PAIRS}, got {pairs!r}.")
    if radius is not None and x2 is not None:
        raise ValueError("radius: neighbourhood stiffness needs one set; drop x2 or radius.")
    if radius is not None:
        neighbourhood.check_radius(radius)
    if weighting not in ("uniform", "gaussian"):
        raise ValueError(f"weighting: expected 'uniform' or 'gaussian', got {weighting!r}.")


def _in_one_process(run: GramRun, acc: _Accumulator, fingerprint: dict[str, str], checkpoint,
                    checkpoint_every: float, verbose: bool | None,
                    fine_to_coarse) -> StiffnessSummary:
    """The summary computed by this process alone: every block not yet in the checkpoint
    (if any) folded in, the checkpoint saved every `checkpoint_every` seconds and at the end."""
    total = run.num_block_pairs
    resumed = acc.load(checkpoint, fingerprint) if checkpoint else 0
    progress = Progress("stiffness_summary", total, verbose, done=resumed)
    last_save = time.monotonic()
    computed = 0
    for b in run.blocks(done=frozenset(acc.done)):
        acc.add(b)
        computed += 1
        progress.step()
        if checkpoint and time.monotonic() - last_save >= checkpoint_every:
            acc.save(checkpoint, fingerprint)
            last_save = time.monotonic()
    progress.close()
    if checkpoint:
        acc.save(checkpoint, fingerprint)
    return acc.result(fine_to_coarse, total, resumed, (computed,))


def _on_workers(run: GramRun, acc: _Accumulator, fingerprint: dict[str, str], checkpoint,
                checkpoint_every: float, verbose: bool | None,
                strategy: tf.distribute.Strategy, fine_to_coarse,
                total_blocks: int) -> StiffnessSummary:
    """The summary on one worker of a cluster; every worker calls it, in step.

    Each worker folds only the blocks its own replicas computed into its accumulator. At a
    sync (scheduled by the chief every `checkpoint_every` seconds of its steps, and at the
    end) every worker's state goes to every worker (`cluster.gather_workers`) and is reduced;
    the chief keeps the total (and saves it), the others start again from empty. The final
    sync gives every worker the total. Exchanges, in order on every worker: fingerprints,
    the chief's checkpoint, each scheduled sync, the end.
    """
    chief = cluster.is_chief(strategy)
    summary_sync.check_same_run(strategy, fingerprint)
    if checkpoint and chief:
        acc.load(checkpoint, fingerprint)  # a refusal raises here; the others then stop
    sync = summary_sync.WorkerSync(strategy, acc, chief)
    done = sync.exchange(next_after=1 if checkpoint else 0)["done"]  # the chief's, to all
    progress = Progress("stiffness_summary", total_blocks,
                              False if verbose is None and not chief else verbose,
                              done=len(done))
    workers = cluster.num_workers(strategy)
    steps = run.local_steps(done=frozenset(map(tuple, done)))
    since, started = 0, time.monotonic()
    for blocks in steps:
        for b in blocks:
            acc.add(b)
            sync.computed += 1
        for _ in range(min(len(blocks) * workers, total_blocks - progress.done)):
            progress.step()  # the chief's blocks, times the workers: an estimate
        since += 1
        if since == sync.next_after:
            seconds_per_step = (time.monotonic() - started) / since
            sync.exchange(next_after=max(1, round(checkpoint_every / max(seconds_per_step,
                                                                         1e-9))))
            if checkpoint and chief:
                acc.save(checkpoint, fingerprint)
            since, started = 0, time.monotonic()
    progress.close()
    acc.state = sync.exchange(next_after=0)
    if checkpoint and chief:
        acc.save(checkpoint, fingerprint)
    return acc.result(fine_to_coarse, total_blocks, len(done), sync.by_worker)


def summary_labels(
    y: Any, y2: Any, num_classes: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """The class labels `stiffness_summary` aggregates by, checked as it checks them.

    Args:
        y, y2: class labels (integers or one-hot) of the first and second set (`y2` None:
            one set).
        num_classes: K, or None to take it from the labels.

    Returns:
        (labels, labels2, K): int64 class indices of each set (labels2 is labels for one
        set) and the number of classes.

    Raises:
        ValueError: `y` or `y2` is a structure (a multi-output model), or not class labels.
        TypeError: labels that are not numbers; `num_classes` not an int.
    """
    for labels, argument in ((y, "y"), (y2, "y2")):
        if structure.is_nested(labels):
            raise ValueError(f"{argument}: stiffness_summary needs one array of class labels (a "
                             "single-output classifier); use gradient_gram for other models.")
        if labels is not None and np.ndim(labels) and not len(labels):
            raise ValueError(f"{argument}: no examples (N = 0); give at least one example.")
    labels = checks.class_labels(y, "y")
    labels2 = labels if y2 is None else checks.class_labels(y2, "y2")
    return labels, labels2, checks.num_classes(num_classes, labels, labels2, names=("y", "y2"))


def _digest(*chunks: bytes) -> str:
    h = hashlib.blake2b(digest_size=16)
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def _fingerprint(model, run, **settings) -> dict[str, str]:
    """What the numbers depend on, part by part, so a resume is refused naming what differs."""
    def variables(vs):
        return _digest(*(f"{v.path}{tuple(v.shape)}{v.dtype}".encode() + np.asarray(
            v.value if hasattr(v, "value") else v).tobytes() for v in vs))

    architecture = [(layer.__class__.__qualname__, layer.name, [
        (v.path, tuple(v.shape), v.trainable) for v in layer.weights])
        for layer in model._flatten_layers(include_self=True, recursive=True)]
    data = [run.x, run.y] + ([] if run.x2 is None else [run.x2, run.y2])
    return {
        "model architecture": _digest(json.dumps(architecture, default=str).encode()),
        "trainable variables": variables(model.trainable_variables),
        "non-trainable variables (e.g. BatchNorm moving statistics)": variables(
            model.non_trainable_variables),
        "loss": _digest(run.prepared.loss_fn.description.encode()),
        "data": _digest(*(b for part in data for b in structure.contiguous_bytes(part))),
        "method and block size": _digest(json.dumps([run.prepared.method, run.block]).encode()),
        **{f"setting {name}": _digest(json.dumps(value, default=str).encode())
           for name, value in settings.items()},
    }


class _Accumulator:
    """Running sums of every aggregate, fed one Gram block at a time."""

    def __init__(self, run, kinds, labels, labels2, num_classes, edges, pairs, radius,
                 weighting, bandwidth):
        self.one_set = run.x2 is None
        self.n, self.m = run.n, run.m
        self.kinds, self.labels, self.labels2, self.k = kinds, labels, labels2, num_classes
        self.edges, self.pairs, self.radius = edges, pairs, radius
        self.weighting = weighting
        self.width = None if radius is None else (radius / 2 if bandwidth is None else bandwidth)
        self.x, self.x2 = run.x, run.x2
        # Only per-feature statistics are kept; rows are standardised block by block.
        self.space = InputSpace.fit(run.x, run.x2)
        if radius is not None and self.space.kind != "features":
            raise ValueError("radius: neighbourhoods are measured in the space of float inputs, "
                             "and these inputs are all integer ids; drop radius.")
        self.block = run.block
        self.state = self.empty_state()

    def empty_state(self) -> dict[str, np.ndarray]:
        """The sums of no block at all."""
        bins, k = max(len(self.edges) - 1, 0), self.k
        state = {"sq_norms": np.zeros(self.n), "sq_norms2": np.zeros(self.m),
                 "done": np.zeros((0, 2), np.int64), "hist_counts": np.zeros(bins, np.int64),
                 "alignment/block_sums": np.zeros((k, k)), "alignment/traces": np.zeros(k),
                 "alignment/min_off_diagonal": np.full((k, k), np.inf),
                 "alignment/min_off_diagonal_cosine": np.full((k, k), np.inf)}
        for kind in self.kinds:
            state[f"class_sums/{kind}"] = np.zeros((k, k))
            state[f"hist_sums/{kind}"] = np.zeros(bins)
            if self.radius is not None:
                state[f"nbr_sums/{kind}"] = np.zeros(self.n)
        if self.radius is not None:
            state["nbr_weights"] = np.zeros(self.n)
            state["nbr_counts"] = np.zeros(self.n, np.int64)
            state["nbr_nearest"] = np.full(self.n, np.inf)  # squared distances
        return state

    def _unit(self, x: Any, rows: slice) -> np.ndarray:
        """As `measures.input_distances`: the set's input space, block by block."""
        return self.space.unit(structure.take(x, rows))

    def _points(self, rows: slice) -> np.ndarray:
        """As `neighbourhood_stiffness`: raw inputs, centred when distances use the expansion."""
        points = _features(structure.take(self.x, rows))
        # One set (radius refuses two), so the space's mean is this set's mean.
        return points - self.space.mean if points.shape[1] > DIRECT_DISTANCE_MAX_FEATURES \
            else points

    @property
    def done(self) -> set[tuple[int, int]]:
        return {tuple(p) for p in self.state["done"]}

    def add(self, b) -> None:
        check_finite_block(b, self.one_set)
        st = self.state
        G = b.total
        sq_r = sum(b.row_sq_norms.values())
        sq_c = sum(b.col_sq_norms.values())
        st["sq_norms"][b.rows] = sq_r
        st["sq_norms2" if not self.one_set else "sq_norms"][b.cols] = sq_c
        diagonal = self.one_set and b.index[0] == b.index[1]
        lr, lc = self.labels[b.rows], self.labels2[b.cols]
        yr, yc = np.eye(self.k)[lr], np.eye(self.k)[lc]
        d = None
        if len(self.edges):
            unit_c = self._unit(self.x if self.one_set else self.x2, b.cols)
            d = np.clip(1.0 - self._unit(self.x, b.rows) @ unit_c.T, 0.0, 2.0)
            keep = self._distance_pairs(lr, lc, diagonal)
            st["hist_counts"] += np.histogram(d[keep], bins=self.edges)[0]
        if self.radius is not None:
            sq_dist = _pair_sq_distances(self._points(b.rows), self._points(b.cols))
            if diagonal:
                np.fill_diagonal(sq_dist, np.inf)
            near = np.sqrt(sq_dist) <= self.radius
            w = near.astype(np.float64) if self.weighting == "uniform" else np.where(
                near, np.exp(-sq_dist / (2.0 * self.width ** 2)), 0.0)
            st["nbr_weights"][b.rows] += w.sum(1)
            st["nbr_counts"][b.rows] += near.sum(1)
            if b.mirrored:
                st["nbr_weights"][b.cols] += w.sum(0)
                st["nbr_counts"][b.cols] += near.sum(0)
                st["nbr_nearest"][b.cols] = np.minimum(st["nbr_nearest"][b.cols], sq_dist.min(0))
            st["nbr_nearest"][b.rows] = np.minimum(st["nbr_nearest"][b.rows], sq_dist.min(1))
        tile = alignment.block_alignment_statistics(
            G, np.arange(b.rows.start, b.rows.stop), np.arange(b.cols.start, b.cols.stop),
            lr, lc, self.k, row_sq_norms=sq_r, col_sq_norms=sq_c, one_set=self.one_set,
            mirrored=b.mirrored)
        merged = self._alignment().combine(tile)
        for name in ("block_sums", "traces", "min_off_diagonal", "min_off_diagonal_cosine"):
            st[f"alignment/{name}"] = getattr(merged, name)
        with warnings.catch_warnings():  # zero gradients are counted once, at the end
            warnings.simplefilter("ignore")
            for kind in self.kinds:
                S = measures.stiffness_matrix(G, kind=kind, sq_norms=sq_r, sq_norms2=sq_c)
                if diagonal:
                    S = S.copy()
                    np.fill_diagonal(S, 0.0)  # self-pairs are excluded
                sums = yr.T @ S @ yc
                st[f"class_sums/{kind}"] += sums + sums.T if b.mirrored else sums
                if d is not None:
                    st[f"hist_sums/{kind}"] += np.histogram(d[keep], bins=self.edges,
                                                            weights=S[keep])[0]
                if self.radius is not None:
                    st[f"nbr_sums/{kind}"][b.rows] += (w * S).sum(1)
                    if b.mirrored:
                        st[f"nbr_sums/{kind}"][b.cols] += (w * S).sum(0)
        st["done"] = np.concatenate([st["done"], np.array([b.index], np.int64)])

    def _alignment(self) -> alignment.AlignmentStatistics:
        return alignment.AlignmentStatistics(
            **{name: self.state[f"alignment/{name}"] for name in (
                "block_sums", "traces", "min_off_diagonal", "min_off_diagonal_cosine")},
            one_set=self.one_set)

    def _distance_pairs(self, lr, lc, diagonal) -> np.ndarray:
        same = lr[:, None] == lc[None, :]
        keep = {"within": same, "between": ~same, "all": np.ones_like(same)}[self.pairs]
        if diagonal:  # one set: each unordered pair once, i < j
            keep = keep & np.triu(np.ones_like(keep), 1)
        return keep

    def result(self, fine_to_coarse, total_blocks, resumed, by_worker) -> StiffnessSummary:
        st = self.state
        counts_r = np.bincount(self.labels, minlength=self.k).astype(np.float64)
        counts_c = np.bincount(self.labels2, minlength=self.k).astype(np.float64)
        pair_counts = np.outer(counts_r, counts_c) - (np.diag(counts_r) if self.one_set else 0)
        summary = StiffnessSummary(
            kinds=self.kinds, class_matrix={}, within={}, between={},
            sq_norms=st["sq_norms"].astype(np.float32),
            sq_norms2=(st["sq_norms"] if self.one_set else st["sq_norms2"]).astype(np.float32),
            num_zero_gradient=int((st["sq_norms"] == 0).sum()) + (
                0 if self.one_set else int((st["sq_norms2"] == 0).sum())),
            blocks_total=total_blocks, blocks_resumed=resumed, blocks_by_worker=by_worker,
            alignment=self._alignment())
        centres = (self.edges[:-1] + self.edges[1:]) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            for kind in self.kinds:
                C = np.where(pair_counts > 0, st[f"class_sums/{kind}"] / pair_counts, np.nan)
                summary.class_matrix[kind] = C
                summary.within[kind], summary.between[kind] = measures.within_between(C)
                if fine_to_coarse is not None:
                    summary.superclass_contrast[kind] = measures.superclass_contrast(
                        C, fine_to_coarse)
                if len(self.edges):
                    hc = st["hist_counts"]
                    summary.distance_curve[kind] = StiffnessCurve(
                        edges=self.edges, centres=centres,
                        means=np.where(hc > 0, st[f"hist_sums/{kind}"] / hc, np.nan),
                        counts=hc, pairs=self.pairs)
                if self.radius is not None:
                    wsum = st["nbr_weights"]
                    summary.neighbourhood[kind] = np.where(
                        wsum > 0, st[f"nbr_sums/{kind}"] / wsum, np.nan)
        if self.radius is not None:
            summary.neighbour_counts = st["nbr_counts"]
            summary.nearest_distances = np.sqrt(st["nbr_nearest"])
            if (st["nbr_counts"] == 0).any():
                warnings.warn(neighbourhood.no_neighbour_message(int((st["nbr_counts"] == 0).sum()),
                                                   summary.nearest_distances, self.radius),
                              UserWarning, stacklevel=3)
        if summary.num_zero_gradient:
            warnings.warn(f"{summary.num_zero_gradient} examples have an exactly zero "
                          "gradient; their cosine stiffness is 0.", UserWarning, stacklevel=3)
        return summary

    def save(self, path, fingerprint: dict[str, str]) -> None:
        # Atomic: a kill leaves the old checkpoint or the new one, never half of one.
        with atomic_write(path, "wb") as f:
            np.savez(f, fingerprint=np.array(json.dumps(fingerprint, sort_keys=True)),
                     **self.state)

    def load(self, path, fingerprint: dict[str, str]) -> int:
        path = os.fspath(path)
        if not os.path.exists(path):
            return 0
        try:
            saved = read_npz(path)
            stored = dict(json.loads(str(saved["fingerprint"])))
            # A checkpoint from before nearest distances were kept: they stay unknown (NaN).
            arrays = {key: saved[key] if key in saved or key != "nbr_nearest" else
                      np.full(self.n, np.nan) for key in self.state}
            bad = [k for k, v in arrays.items() if v.shape != self.state[k].shape and k != "done"]
            if bad:
                raise ValueError(f"{bad[0]} of shape {arrays[bad[0]].shape}, expected "
                                 f"{self.state[bad[0]].shape}")
        except (*NPZ_READ_ERRORS, KeyError, TypeError) as err:
            raise CorruptFileError(
                f"checkpoint: {path} is not a readable stiffness_summary checkpoint "
                f"({type(err).__name__}: {err}); it may be truncated or another file. "
                f"{CHECKPOINT_ADVICE}") from None
        differs = [part for part in sorted(set(stored) | set(fingerprint))
                   if stored.get(part) != fingerprint.get(part)]
        if differs:
            raise ConfigMismatchError(
                f"checkpoint: {path} was written for a different run: {', '.join(differs)} "
                f"differ. Resuming would mix two runs' numbers. {CHECKPOINT_ADVICE}")
        self.state.update(arrays)
        return len(self.state["done"])


def _pair_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """As `neighbourhood_stiffness`: exact differences for few features, else the expansion."""
    if a.shape[1] <= DIRECT_DISTANCE_MAX_FEATURES:
        out = np.zeros((len(a), len(b)))
        for fa, fb in zip(a.T, b.T):
            out += (fa[:, None] - fb[None, :]) ** 2
        return out
    out = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(out, 0.0)
