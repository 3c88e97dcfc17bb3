"""The one measuring path: stiffness of fixed probe sets, as numbers and as TensorBoard summaries.

`ProbeSets` holds a fixed probe set (and optionally a second, held-out one) and the settings of
what is measured on it. `ProbeSets.measure(model)` computes ONE exact Gram matrix of
per-example loss gradients over [probe; held-out] (`gradient_gram`) and derives, for each pair
set and each stiffness kind, every measure; `ProbeSets.write(writer, measurement, step)` writes
them as TensorBoard scalars, images and histograms. `StiffnessCallback` (during `model.fit`) and
the study runners (`tfstiffness.studies`, from their resumable training loop) both measure
through it, so what TensorBoard shows and what results files hold come from one place.

Pair sets: ``train_train`` (probe x probe, self pairs excluded), and with a held-out set also
``train_val`` (every probe example against every held-out one) and ``val_val``.

The values of a measurement (`Measurement.values`, tag -> number or array; TensorBoard tags
are these under ``stiffness/``):

- ``zero_gradients/train`` (and ``/val``): examples whose gradient is exactly zero (their
  cosine stiffness is 0).
- ``undefined``: 1 when the model's gradients on the probes are not finite (NaN weights, a
  diverged run): every other value is then NaN, with a warning; measuring never raises for
  it, so a `fit` is never aborted by its callback (`ProbeSets.undefined_count` counts them).
- per pair set PAIRS and kind KIND (``sign``/``cosine``), under ``PAIRS/KIND/``: ``within``,
  ``between`` (`measures.within_between` of the class matrix), ``mean`` (all pairs),
  ``superclass_contrast`` (with `fine_to_coarse`), ``class_matrix`` [K, K], the within-class
  stiffness-vs-distance curve ``curve_edges`` [B + 1], ``curve_means`` [B], ``curve_counts``
  [B], its critical length by both estimators of `measures.critical_length`:

  - crossing: ``xi_crossed`` (1/0), ``xi_crossing`` (NaN unless crossed),
    ``xi_crossing_status`` (index into `XI_STATUSES`), ``xi_crossing_bound`` (where xi lies
    when it did not cross);
  - linear fit: ``xi_linear_fit`` (NaN unless a line with a negative slope reaches zero at a
    positive distance), ``xi_linear_fit_status``, ``xi_linear_fit_slope``,
    ``xi_linear_fit_intercept``, ``xi_linear_fit_r2`` and ``xi_linear_fit_extrapolated`` (1
    when xi lies outside the distances measured, 0 inside, NaN without xi);

  and ``layer/LAYER`` with `by_layer` (mean stiffness of that layer's parameters alone).
- per pair set, under ``PAIRS/alignment/`` (from the Gram block itself, not a stiffness kind;
  `tfstiffness.measures.alignment`): for ``train_train`` and ``val_val`` ``m_coherence``,
  ``class_m_coherence`` [K], ``gradient_diversity``, ``gradient_confusion`` and
  ``gradient_confusion_cosine``; for ``train_val`` ``summed_gradient_cosine`` (the train-val
  alignment: the cosine between the summed train and the summed val gradients).
- with ``bootstrap_samples > 0``: percentile bootstrap intervals (`uncertainty.bootstrap`,
  probe examples resampled within classes, from the Gram matrix already computed: no extra
  gradient) as ``NAME_ci_low`` and ``NAME_ci_high`` beside ``within``, ``between``,
  ``superclass_contrast``, ``xi_crossing``, ``xi_linear_fit`` and ``alignment/m_coherence``.
  An xi interval end is +inf (-inf) when more than (1 - confidence) / 2 of the resamples have
  no xi below (above) the distances measured.

Scalars are the 0-d values except the xi statuses and the crossing bound; NaN and infinite
scalars are skipped by the writer (xi where there is none). Images: the class matrix and the
stiffness-vs-distance curve (both estimators) of each pair set and kind. Histograms: every
pairwise value.

Adding a measure: compute it in `_pair_values` (it sees one pair set's stiffness matrix, its
Gram block, labels and distances) and return it under a new name. It then reaches the
callback's history, the studies' checkpoints and results, and TensorBoard (when it is a
number) without another change.

Example:
    >>> import keras, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(12, 3)).astype("float32"), np.arange(12) % 2
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> probes = ProbeSets(x[:6], y[:6], x[6:], y[6:], kinds=("cosine",), distance_bins=4,
    ...                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> m = probes.measure(model)
    >>> probes.pair_sets, m.values["train_val/cosine/class_matrix"].shape
    (('train_train', 'train_val', 'val_val'), (2, 2))
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness import measures
from tfstiffness.engine import structure
from tfstiffness.measures import alignment
from tfstiffness.measures import uncertainty

__all__ = ["INTERVAL_STATISTICS", "XI_ESTIMATORS", "XI_STATUSES", "Measurement", "ProbeSets",
           "scalar_values"]

#: `measures.CriticalLength.status` values, in the order of the ``xi_*_status`` codes.
XI_STATUSES = measures.CRITICAL_LENGTH_STATUSES
#: The critical-length estimators (`measures.critical_length` methods), as in the value names.
XI_ESTIMATORS = ("crossing", "linear_fit")
#: Statistics given a bootstrap interval, per pair set and kind (``superclass_contrast`` only
#: with super-classes, the xi only where the pair set has a curve).
INTERVAL_STATISTICS = ("within", "between", "superclass_contrast", "xi_crossing",
                       "xi_linear_fit")
# Numbers that are not TensorBoard scalars (status codes; a bound shown in the curve image).
_NOT_SCALARS = ("/xi_crossing_status", "/xi_crossing_bound", "/xi_linear_fit_status")


@dataclasses.dataclass
class Measurement:
    """One measurement of a model on the probe sets.

    Attributes:
        values: tag -> number or array (see the module docstring); the record that histories,
            checkpoints and results keep.
        gram_method: the `gradient_gram` method that computed the Gram matrix.
        stiffness: (pairs, kind) -> the pair set's stiffness matrix (for histograms; not kept).
        curves: (pairs, kind) -> (`measures.StiffnessCurve`, (crossing, linear fit)
            `measures.CriticalLength`s), for the images; absent for a pair set without two
            examples of one class.
    """

    values: dict[str, Any]
    gram_method: str
    stiffness: dict[tuple[str, str], np.ndarray]
    curves: dict[tuple[str, str], tuple[Any, Any]]


def scalar_values(values: Mapping[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars among a measurement's values: finite-or-NaN numbers.

    Example:
        >>> scalar_values({"a/within": 0.5, "a/class_matrix": np.eye(2),
        ...                "a/xi_crossing_status": 1})
        {'a/within': 0.5}
    """
    return {key: float(value) for key, value in values.items()
            if np.ndim(value) == 0 and not key.endswith(_NOT_SCALARS)
            and np.asarray(value).dtype.kind in "fiub"}


@dataclasses.dataclass(frozen=True)
class _PairSet:
    """One pair set: its block of the [probe; val] Gram matrix, labels and input distances."""

    rows: slice
    cols: slice
    one_set: bool  # rows and columns are the same examples (self pairs excluded)
    labels: np.ndarray
    labels2: np.ndarray | None  # column labels, for two sets
    distances: np.ndarray | None  # input distances; None when measured in a representation


class ProbeSets:
    """Fixed probe sets and what is measured on them; see the module docstring.

    Args:
        probe_x: [N, ...] inputs of the probe set (ideally class-balanced, e.g. about 50
            examples per class): one array, or a list / dict of arrays for a multi-input
            model, as `model.fit` takes them.
        probe_y: [N] integer class labels or [N, K] one-hot labels, as the loss expects.
        val_x: optional [M, ...] inputs of a second (held-out) probe set: adds the
            ``train_val`` and ``val_val`` pair sets.
        val_y: labels of the second probe set, in the same format as `probe_y`.
        loss: the loss whose per-example gradients are compared (a `keras.losses.Loss`, a
            loss name or a per-example callable); None uses the model's compiled loss. Pass
            the same object at every measurement: traced functions are cached per loss.
        num_classes: classes K of the class matrices; default `len(fine_to_coarse)` if
            given, else the largest label + 1.
        fine_to_coarse: optional [K] super-class of each class: adds ``superclass_contrast``
            and groups the class-matrix image by super-class.
        kinds: stiffness kinds, any of "sign" and "cosine".
        distance_bins: bins of the stiffness-vs-distance curves.
        by_layer: also measure the stiffness of each layer's parameters alone.
        method: `gradient_gram` method.
        batch_size: `gradient_gram` block size; None chooses from memory.
        representation: optional ``f(model, x) -> [n, d]`` features in which distances are
            measured at each measurement (e.g. a pooled hidden layer); None: input distances,
            computed once.
        bootstrap_samples: resamples of the bootstrap intervals (``..._ci_low`` /
            ``..._ci_high`` values); 0 (the default) measures no interval. A few hundred give
            stable 95% ends; the cost grows linearly with it and is mostly the xi estimators
            refitted on each resample.
        bootstrap_confidence: nominal coverage of the intervals, in (0, 1).
        bootstrap_seed: seed of the resampling (the same resamples at every measurement).

    Raises:
        ValueError: inconsistent lengths or shapes, labels that are not classes, an unknown
            kind, a non-positive bin count, `fine_to_coarse` not of length `num_classes`, or
            bootstrap settings out of range.
    """

    def __init__(
        self,
        probe_x: Any,
        probe_y: Any,
        val_x: Any = None,
        val_y: Any = None,
        *,
        loss: Any = None,
        num_classes: int | None = None,
        fine_to_coarse: Any = None,
        kinds: Sequence[str] = ("sign", "cosine"),
        distance_bins: int = 20,
        by_layer: bool = False,
        method: str = "auto",
        batch_size: int | None = None,
        representation: Callable[[Any, np.ndarray], np.ndarray] | None = None,
        bootstrap_samples: int = 0,
        bootstrap_confidence: float = 0.95,
        bootstrap_seed: int = 0,
    ):
        self.probe_x = _as_array(probe_x, "probe_x")
        self.probe_y = np.asarray(probe_y)
        _check_length(self.probe_x, self.probe_y, "probe_x", "probe_y")
        if (val_x is None) != (val_y is None):
            raise ValueError("val_x, val_y: give both (a second probe set) or neither.")
        self.has_val = val_x is not None
        if self.has_val:
            val_x, val_y = _as_array(val_x, "val_x"), np.asarray(val_y)
            _check_length(val_x, val_y, "val_x", "val_y")
            if structure.shapes_key(val_x) != structure.shapes_key(self.probe_x):
                raise ValueError("val_x: examples of another structure, shape or dtype than "
                                 f"probe_x's ({_describe(val_x)} vs {_describe(self.probe_x)}).")
            if val_y.shape[1:] != self.probe_y.shape[1:]:
                raise ValueError(f"val_y: labels of shape {val_y.shape[1:]}, but probe_y "
                                 f"has {self.probe_y.shape[1:]}; use the same format.")
        self.val_x, self.val_y = val_x, val_y

        self.kinds = tuple(kinds)
        if not self.kinds or any(k not in measures.STIFFNESS_KINDS for k in self.kinds):
            raise ValueError(f"kinds: expected a non-empty subset of {measures.STIFFNESS_KINDS},"
                             f" got {kinds!r}.")
        self.distance_bins = positive_int(distance_bins, "distance_bins")
        self.loss, self.by_layer, self.method, self.batch_size = loss, by_layer, method, batch_size
        self.representation = representation
        if isinstance(bootstrap_samples, bool) or not isinstance(
                bootstrap_samples, (int, np.integer)) or bootstrap_samples < 0:
            raise ValueError("bootstrap_samples: expected an integer >= 0 (0: no intervals), "
                             f"got {bootstrap_samples!r}.")
        if isinstance(bootstrap_confidence, bool) or not isinstance(
                bootstrap_confidence, (int, float)) or not 0 < bootstrap_confidence < 1:
            raise ValueError("bootstrap_confidence: expected a number in (0, 1), e.g. 0.95, "
                             f"got {bootstrap_confidence!r}.")
        if isinstance(bootstrap_seed, bool) or not isinstance(
                bootstrap_seed, (int, np.integer)) or bootstrap_seed < 0:
            raise ValueError(f"bootstrap_seed: expected an integer >= 0, got {bootstrap_seed!r}.")
        self.bootstrap_samples = int(bootstrap_samples)
        self.bootstrap_confidence = float(bootstrap_confidence)
        self.bootstrap_seed = int(bootstrap_seed)

        self.labels = _class_labels(self.probe_y, "probe_y")
        self.val_labels = _class_labels(val_y, "val_y") if self.has_val else None
        self.fine_to_coarse = None if fine_to_coarse is None else np.asarray(fine_to_coarse)
        if num_classes is None:
            if self.fine_to_coarse is not None:
                num_classes = len(self.fine_to_coarse)
            else:
                all_labels = [self.labels] + ([self.val_labels] if self.has_val else [])
                num_classes = int(max(labels.max() for labels in all_labels)) + 1
        self.num_classes = positive_int(num_classes, "num_classes")
        for labels, name in ((self.labels, "probe_y"), (self.val_labels, "val_y")):
            if labels is not None and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(f"{name}: classes must lie in [0, {self.num_classes}), got "
                                 f"[{labels.min()}, {labels.max()}].")
        if self.fine_to_coarse is not None:
            if self.fine_to_coarse.shape != (self.num_classes,):
                raise ValueError(f"fine_to_coarse: expected {self.num_classes} entries (one "
                                 f"per class), got shape {self.fine_to_coarse.shape}.")
            if not np.issubdtype(self.fine_to_coarse.dtype, np.integer):
                raise ValueError("fine_to_coarse: expected integer super-class indices.")

        self._pairs = self._pair_specs()
        self.pair_sets = tuple(self._pairs)
        #: pair set -> the distance bin edges of the latest curve.
        self.curve_edges: dict[str, np.ndarray] = {}
        self._warned_no_curve: set[str] = set()
        #: "PAIRS/KIND/STAT" -> resamples on which a statistic was undefined (e.g. no curve
        #: bin left to fit), summed over measurements; each name is warned about once.
        self.bootstrap_undefined: dict[str, int] = {}
        #: measurements whose gradients were not finite (recorded as NaN).
        self.undefined_count = 0

    # ------------------------------------------------------------------------------------
    # Measuring
    # ------------------------------------------------------------------------------------

    def measure(self, model: Any) -> Measurement:
        """Measures the model's current weights on the probe sets.

        Runs inference-mode forward passes only, and restores the global random states
        (NumPy, Python, TensorFlow's eager op seeds, Keras' seed generator) afterwards, so
        measuring never changes a training run.
        """
        # TensorFlow: imported on first use (the binaries quieten its start-up log first).
        from tfstiffness.engine._validation import NonFiniteWeightsError
        from tfstiffness.engine.gram import NonFiniteGradientError, gradient_gram

        x, y = self.probe_x, self.probe_y
        if self.has_val:
            # One Gram matrix of [probe; val] gives all three pair sets as blocks, so each
            # example's gradient factors are computed once.
            x, y = structure.concat([x, self.val_x]), np.concatenate([y, self.val_y])
        with _random_state_preserved():
            try:
                gram = gradient_gram(model, x, y, loss=self.loss, by_layer=self.by_layer,
                                     method=self.method, batch_size=self.batch_size,
                                     verbose=False)
            except (NonFiniteGradientError, NonFiniteWeightsError) as err:
                return self._undefined(model, err)
            features = None if self.representation is None else np.asarray(
                self.representation(model, x))
        n = structure.num_examples(self.probe_x)
        values: dict[str, Any] = {"zero_gradients/train": int(np.sum(gram.sq_norms[:n] == 0))}
        if self.has_val:
            values["zero_gradients/val"] = int(np.sum(gram.sq_norms[n:] == 0))
        stiffness, curves = {}, {}
        for pairs, spec in self._pairs.items():
            distances = spec.distances
            if features is not None:
                distances = measures.input_distances(
                    features[spec.rows], None if spec.one_set else features[spec.cols])
            values.update(self._alignment_values(pairs, spec, gram.total))
            for kind in self.kinds:
                S = _stiffness(gram.total, gram.sq_norms, spec, kind)
                stiffness[pairs, kind] = S
                values.update(self._pair_values(pairs, kind, S, spec, distances, curves))
                for layer, block in gram.by_layer.items():
                    S_layer = _stiffness(block, np.diagonal(block), spec, kind)
                    values[f"{pairs}/{kind}/layer/{layer}"] = _mean_pairs(S_layer, spec)
        values["undefined"] = 0
        return Measurement(values=values, gram_method=gram.method, stiffness=stiffness,
                           curves=curves)

    def _undefined(self, model: Any, error: Exception) -> Measurement:
        """A measurement of a model whose gradients are not finite (a diverged run): every
        value NaN, with the same names and shapes as a defined one, and a warning. A training
        run goes on (`TerminateOnNaN` decides whether it stops, not the measurement)."""
        from tfstiffness.engine._generic import layer_key

        self.undefined_count += 1
        warnings.warn(f"stiffness is undefined at this measurement ({error}); recorded as NaN "
                      f"({self.undefined_count} undefined measurement(s) so far).",
                      UserWarning, stacklevel=3)
        nan, k, bins = math.nan, self.num_classes, self.distance_bins
        values: dict[str, Any] = {"zero_gradients/train": nan, "undefined": 1}
        if self.has_val:
            values["zero_gradients/val"] = nan
        layers = dict.fromkeys(layer_key(v) for v in model.trainable_variables)
        for pairs in self._pairs:
            values.update(self._alignment_values(pairs, self._pairs[pairs], None))
            for kind in self.kinds:
                name = f"{pairs}/{kind}"
                values.update({f"{name}/{stat}": nan for stat in ("within", "between", "mean")})
                values[f"{name}/class_matrix"] = np.full((k, k), nan)
                if self.fine_to_coarse is not None:
                    values[f"{name}/superclass_contrast"] = nan
                values.update({f"{name}/curve_edges": np.full(bins + 1, nan),
                               f"{name}/curve_means": np.full(bins, nan),
                               f"{name}/curve_counts": np.zeros(bins, np.int64)})
                values.update(_xi_values(name, None, None))
                values.update(self._interval_values(name, self._interval_names(), None))
                if self.by_layer:
                    values.update({f"{name}/layer/{layer}": nan for layer in layers})
        return Measurement(values=values, gram_method="undefined", stiffness={}, curves={})

    def _pair_values(self, pairs: str, kind: str, S: np.ndarray, spec: _PairSet,
                     distances: np.ndarray, curves: dict) -> dict[str, Any]:
        """Every measure of one pair set and kind, by name (the place to add a measure)."""
        name = f"{pairs}/{kind}"
        C = measures.class_stiffness(S, spec.labels, spec.labels2, self.num_classes)
        within, between = measures.within_between(C)
        out: dict[str, Any] = {f"{name}/within": within, f"{name}/between": between,
                               f"{name}/mean": _mean_pairs(S, spec), f"{name}/class_matrix": C}
        if self.fine_to_coarse is not None:
            out[f"{name}/superclass_contrast"] = measures.superclass_contrast(
                C, self.fine_to_coarse)
        try:
            curve = measures.stiffness_vs_distance(
                S, labels=spec.labels, labels2=spec.labels2, pairs="within",
                bins=self.distance_bins, distances=distances)
        except ValueError:  # no two examples of one class in this pair set
            if pairs not in self._warned_no_curve:
                self._warned_no_curve.add(pairs)
                warnings.warn(f"{pairs} has no pair of examples of the same class, so no "
                              "stiffness-vs-distance curve or xi.", stacklevel=3)
            curve = None
        statistics = self._interval_names(with_xi=curve is not None)
        if self.bootstrap_samples:
            with warnings.catch_warnings():  # Counted and warned about once instead.
                warnings.simplefilter("ignore", UserWarning)
                intervals = uncertainty.bootstrap(
                    statistics, S, spec.labels, labels2=spec.labels2,
                    num_classes=self.num_classes, fine_to_coarse=self.fine_to_coarse,
                    distances=distances, pairs="within",
                    bins=self.distance_bins if curve is None else curve.edges,
                    num_samples=self.bootstrap_samples, confidence=self.bootstrap_confidence,
                    seed=self.bootstrap_seed)
            self._count_undefined(name, intervals)
            out.update(self._interval_values(name, statistics, intervals))
        if curve is None:
            return out
        self.curve_edges[pairs] = curve.edges
        critical = tuple(measures.critical_length(curve, method) for method in XI_ESTIMATORS)
        out.update({f"{name}/curve_edges": curve.edges, f"{name}/curve_means": curve.means,
                    f"{name}/curve_counts": curve.counts})
        out.update(_xi_values(name, *critical))
        curves[pairs, kind] = (curve, critical)
        return out

    def _alignment_values(self, pairs: str, spec: _PairSet,
                          G: np.ndarray | None) -> dict[str, Any]:
        """The gradient-alignment family of one pair set from its Gram block (None: NaN, for an
        undefined measurement). One set: m-coherence (overall and per class), gradient
        diversity and confusion; two sets: the cosine of the summed gradients."""
        name = f"{pairs}/alignment"
        if not spec.one_set:
            if G is None:
                return {f"{name}/summed_gradient_cosine": math.nan}
            return {f"{name}/summed_gradient_cosine": alignment.train_val_alignment(
                G[spec.rows, spec.cols], G[spec.rows, spec.rows], G[spec.cols, spec.cols])}
        if G is None:
            out = {f"{name}/{stat}": math.nan for stat in (
                "m_coherence", "gradient_diversity", "gradient_confusion",
                "gradient_confusion_cosine")}
            out[f"{name}/class_m_coherence"] = np.full(self.num_classes, math.nan)
            if self.bootstrap_samples:
                out.update(self._interval_values(name, ("m_coherence",), None))
            return out
        block = G[spec.rows, spec.cols]
        stats = alignment.alignment_statistics(block, spec.labels, self.num_classes)
        out = {f"{name}/m_coherence": stats.m_coherence(),
               f"{name}/class_m_coherence": stats.class_m_coherence(),
               f"{name}/gradient_diversity": stats.gradient_diversity(),
               f"{name}/gradient_confusion": stats.gradient_confusion("gram"),
               f"{name}/gradient_confusion_cosine": stats.gradient_confusion("cosine")}
        if self.bootstrap_samples:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                interval = uncertainty.bootstrap(
                    "m_coherence", block, spec.labels, num_classes=self.num_classes,
                    num_samples=self.bootstrap_samples, confidence=self.bootstrap_confidence,
                    seed=self.bootstrap_seed)
            self._count_undefined(name, {"m_coherence": interval})
            out.update(self._interval_values(name, ("m_coherence",), {"m_coherence": interval}))
        return out

    def _count_undefined(self, name: str, intervals: Mapping[str, Any]) -> None:
        """Adds the undefined resamples of each interval to `bootstrap_undefined`; warns the
        first time a statistic has some (its interval uses the other resamples)."""
        for stat, interval in intervals.items():
            if not interval.num_undefined:
                continue
            key = f"{name}/{stat}"
            if key not in self.bootstrap_undefined:
                warnings.warn(f"bootstrap: {key} is undefined on {interval.num_undefined} of "
                              f"{interval.samples.size} resamples (e.g. a resample with "
                              "too few pairs); its interval uses the others. Reported once; "
                              "ProbeSets.bootstrap_undefined counts them.", UserWarning,
                              stacklevel=4)
            self.bootstrap_undefined[key] = (self.bootstrap_undefined.get(key, 0)
                                             + interval.num_undefined)

    def _interval_names(self, with_xi: bool = True) -> list[str]:
        """The statistics given an interval in one pair set and kind."""
        return [stat for stat in INTERVAL_STATISTICS
                if (stat != "superclass_contrast" or self.fine_to_coarse is not None)
                and (with_xi or not stat.startswith("xi_"))]

    def _interval_values(self, name: str, statistics: Sequence[str],
                         intervals: Mapping[str, Any] | None) -> dict[str, float]:
        """``NAME/STAT_ci_low`` and ``_ci_high`` (NaN when `intervals` is None); nothing
        without bootstrap samples."""
        if not self.bootstrap_samples:
            return {}
        out = {}
        for stat in statistics:
            interval = None if intervals is None else intervals[stat]
            out[f"{name}/{stat}_ci_low"] = math.nan if interval is None else interval.low
            out[f"{name}/{stat}_ci_high"] = math.nan if interval is None else interval.high
        return out

    # ------------------------------------------------------------------------------------
    # Writing
    # ------------------------------------------------------------------------------------

    def write(
        self,
        writer: Any,
        measurement: Measurement,
        step: int,
        *,
        images: bool | Collection[str] = True,
        histograms: bool = True,
        prefix: str = "stiffness",
    ) -> None:
        """Writes a measurement to a `tf.summary` writer at `step`.

        Args:
            writer: the summary writer.
            measurement: what `measure` returned.
            step: the TensorBoard step.
            images: write the class-matrix and stiffness-vs-distance images: True for every
                kind, or the kinds to draw (e.g. ``("cosine",)``). Each image is rendered by
                matplotlib in 0.1 to 0.4 s.
            histograms: write histograms of the pairwise stiffness values.
            prefix: tag prefix.
        """
        from tfstiffness.outputs import plots
        from tfstiffness.outputs import tensorboard as summary

        summary.write_scalars(writer, scalar_values(measurement.values), step, prefix=prefix)
        image_kinds = set(self.kinds if images is True else (images or ()))
        for (pairs, kind), S in measurement.stiffness.items():
            name = f"{prefix}/{pairs}/{kind}"
            if histograms:
                summary.write_histogram(writer, S, f"{name}/values", step,
                                        exclude_diagonal=self._pairs[pairs].one_set)
            if kind not in image_kinds:
                continue
            summary.write_class_matrix_image(
                writer, measurement.values[f"{pairs}/{kind}/class_matrix"], step,
                tag=f"{name}/class_matrix", fine_to_coarse=self.fine_to_coarse, vmax=1.0,
                title=f"{pairs} {kind} class stiffness (step {step})")
            if (pairs, kind) in measurement.curves:
                curve, critical = measurement.curves[pairs, kind]
                fig = plots.stiffness_vs_distance(
                    curve, critical, title=f"{pairs} {kind} stiffness vs distance (step {step})")
                summary.write_figure(writer, fig, f"{name}/vs_distance", step)

    # ------------------------------------------------------------------------------------

    def _pair_specs(self) -> dict[str, _PairSet]:
        """Rows and columns of each pair set in the Gram matrix of [probe; val]."""
        n = structure.num_examples(self.probe_x)
        fixed = self.representation is None
        train = slice(0, n)
        specs = {"train_train": _PairSet(
            train, train, True, self.labels, None,
            measures.input_distances(self.probe_x) if fixed else None)}
        if self.has_val:
            val = slice(n, n + structure.num_examples(self.val_x))
            specs["train_val"] = _PairSet(
                train, val, False, self.labels, self.val_labels,
                measures.input_distances(self.probe_x, self.val_x) if fixed else None)
            specs["val_val"] = _PairSet(
                val, val, True, self.val_labels, None,
                measures.input_distances(self.val_x) if fixed else None)
        return specs


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _stiffness(G: np.ndarray, sq_norms: np.ndarray, spec: _PairSet, kind: str) -> np.ndarray:
    rows, cols = spec.rows, spec.cols
    block = G[rows, cols]
    with warnings.catch_warnings():
        # Zero-gradient examples are counted in `zero_gradients/...` instead of warned about
        # at every measurement.
        warnings.filterwarnings("ignore", message=".*exactly zero gradient")
        if spec.one_set:
            return measures.stiffness_matrix(block, kind, sq_norms=sq_norms[rows])
        return measures.stiffness_matrix(block, kind, sq_norms=sq_norms[rows],
                                         sq_norms2=sq_norms[cols])


def _xi_values(name: str, crossing: measures.CriticalLength | None,
               fit: measures.CriticalLength | None) -> dict[str, float | int]:
    """The critical length by both estimators as numbers (None, None: an undefined
    measurement, every number NaN and the statuses "no_pairs")."""
    nan, no_pairs = math.nan, XI_STATUSES.index("no_pairs")
    if crossing is None:
        out: dict[str, float | int] = {f"{name}/xi_crossed": nan, f"{name}/xi_crossing": nan,
                                       f"{name}/xi_crossing_status": no_pairs,
                                       f"{name}/xi_crossing_bound": nan}
    else:
        crossed = crossing.status == "crossed"
        out = {f"{name}/xi_crossed": float(crossed),
               f"{name}/xi_crossing": crossing.xi if crossed else nan,
               f"{name}/xi_crossing_status": XI_STATUSES.index(crossing.status),
               f"{name}/xi_crossing_bound": nan if crossed or crossing.bound is None
               else crossing.bound}
    fitted = fit is not None and fit.xi is not None

    def number(value: float | None) -> float:
        return nan if value is None else float(value)

    out.update({
        f"{name}/xi_linear_fit": fit.xi if fitted else nan,
        f"{name}/xi_linear_fit_status": no_pairs if fit is None else XI_STATUSES.index(
            fit.status),
        f"{name}/xi_linear_fit_slope": nan if fit is None else number(fit.slope),
        f"{name}/xi_linear_fit_intercept": nan if fit is None else number(fit.intercept),
        f"{name}/xi_linear_fit_r2": nan if fit is None else number(fit.r_squared),
        f"{name}/xi_linear_fit_extrapolated": float(fit.extrapolated) if fitted else nan})
    return out


def _mean_pairs(S: np.ndarray, spec: _PairSet) -> float:
    """Mean stiffness over all pairs; self pairs excluded within one set."""
    if spec.one_set:
        off_diagonal = ~np.eye(S.shape[0], dtype=bool)
        return float(S[off_diagonal].mean()) if off_diagonal.any() else math.nan
    return float(S.mean())


@contextlib.contextmanager
def _random_state_preserved() -> Iterator[None]:
    """Restores the global random states on exit, so measuring never shifts training's draws.

    Nothing in a measurement is meant to draw random numbers, but a user's model may (e.g. a
    layer calling `keras.random.*` without a seed), and a measurement that moved the NumPy or
    Python state would change a data pipeline that shuffles with them.
    """
    import keras

    numpy_state, python_state = np.random.get_state(), random.getstate()
    # TensorFlow's eager op-seed stream (private; absent when no global seed is set).
    tf_context = _tf_context()
    tf_rng = getattr(tf_context, "_rng", None)
    tf_state = tf_rng.getstate() if tf_rng is not None else None
    keras_generator = _keras_global_seed_generator()
    keras_state = (None if keras_generator is None
                   else keras.ops.convert_to_numpy(keras_generator.state))
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
        if tf_rng is not None and getattr(tf_context, "_rng", None) is tf_rng:
            tf_rng.setstate(tf_state)
        if keras_generator is not None:
            keras_generator.state.assign(keras_state)


def _tf_context() -> Any:
    try:
        from tensorflow.python.eager import context
    except ImportError:  # pragma: no cover - layout of a future TensorFlow
        return None
    return context.context()


def _keras_global_seed_generator() -> Any:
    try:
        from keras.src.backend.common import global_state
        from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
    except ImportError:  # pragma: no cover - layout of a future Keras
        return None
    return global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)


def _as_array(x: Any, name: str) -> Any:
    """The probe inputs: one array, or a list / dict of arrays (a multi-input model)."""
    def leaf(leaf_name: str, value: Any) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"{leaf_name}: expected a numeric array [N, ...], got ragged or "
                            "mixed data.")
        if array.ndim == 0 or len(array) == 0:
            raise ValueError(f"{leaf_name}: expected a non-empty array with a leading example "
                             "axis.")
        return array

    if isinstance(x, (list, tuple)) and not all(isinstance(v, (np.ndarray, dict)) or
                                                hasattr(v, "__array__") for v in x):
        x = np.asarray(x)  # a nested Python list of numbers: one array
    x = structure.map_named(leaf, x, name)
    lengths = {len(v) for v in structure.leaves(x)}
    if len(lengths) > 1:
        raise ValueError(f"{name}: every input needs the same number of examples, got "
                         f"{sorted(lengths)}.")
    return x


def _describe(x: Any) -> str:
    return ", ".join(f"{name} {tuple(leaf.shape[1:])} {leaf.dtype}"
                     for name, leaf in structure.named_leaves(x, "x"))


def _check_length(x: Any, y: np.ndarray, x_name: str, y_name: str) -> None:
    n = structure.num_examples(x)
    if y.ndim == 0 or len(y) != n:
        raise ValueError(f"{y_name}: expected {n} labels (one per example of {x_name}), "
                         f"got shape {y.shape}.")


def _class_labels(y: np.ndarray, name: str) -> np.ndarray:
    """Integer classes of integer or one-hot labels (class matrices need classes)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1).astype(np.int64)
    y = y.reshape(len(y), -1)
    if y.shape[1] != 1:
        raise ValueError(f"{name}: expected [N] class labels or [N, K] one-hot labels, got "
                         f"shape {y.shape}.")
    y = y[:, 0]
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise ValueError(f"{name}: class stiffness needs integer class labels, got {y.dtype} "
                         "values that are not whole numbers.")
    return y.astype(np.int64)


def positive_int(value: Any, name: str) -> int:
    """`value` as an int, or a ValueError naming `name` when it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}.")
    return int(value)
