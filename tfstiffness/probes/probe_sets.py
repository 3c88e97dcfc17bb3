"""`ProbeSets`: fixed probe sets, what is measured on them, and the measuring and writing
(the value names are listed in the package docstring)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from tfstiffness import checks, measures
from tfstiffness.engine import structure
from tfstiffness.measures import alignment, uncertainty
from tfstiffness.probes.inputs import (
    check_label_count,
    checked_bootstrap_settings,
    checked_classes,
    checked_val_set,
    probe_inputs,
)
from tfstiffness.probes.random_state import random_state_preserved
from tfstiffness.probes.values import (
    INTERVAL_STATISTICS,
    XI_ESTIMATORS,
    Measurement,
    PairSet,
    mean_pairs,
    pair_stiffness,
    scalar_values,
    xi_values,
)

__all__ = ["ProbeSets"]


class ProbeSets:
    """Fixed probe sets and what is measured on them; see the `tfstiffness.probes` docstring.

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
        self.probe_x = probe_inputs(probe_x, "probe_x")
        self.probe_y = np.asarray(probe_y)
        check_label_count(self.probe_x, self.probe_y, "probe_x", "probe_y")
        self.val_x, self.val_y = checked_val_set(val_x, val_y, self.probe_x, self.probe_y)
        self.has_val = self.val_x is not None

        self.kinds = tuple(kinds)
        if not self.kinds or any(k not in measures.STIFFNESS_KINDS for k in self.kinds):
            raise ValueError(f"kinds: expected a non-empty subset of {measures.STIFFNESS_KINDS},"
                             f" got {kinds!r}.")
        self.distance_bins = checks.positive_int(distance_bins, "distance_bins")
        self.loss, self.by_layer, self.method, self.batch_size = loss, by_layer, method, batch_size
        self.representation = representation
        self.bootstrap_samples, self.bootstrap_confidence, self.bootstrap_seed = (
            checked_bootstrap_settings(bootstrap_samples, bootstrap_confidence, bootstrap_seed))

        self.labels = checks.class_labels(self.probe_y, "probe_y")
        self.val_labels = checks.class_labels(self.val_y, "val_y") if self.has_val else None
        self.fine_to_coarse = None if fine_to_coarse is None else np.asarray(fine_to_coarse)
        self.num_classes = checked_classes(num_classes, self.fine_to_coarse, self.labels,
                                           self.val_labels)

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
        from tfstiffness.engine.gram import gradient_gram
        from tfstiffness.errors import NonFiniteGradientError, NonFiniteWeightsError

        x, y = self.probe_x, self.probe_y
        if self.has_val:
            # One Gram matrix of [probe; val] gives all three pair sets as blocks, so each
            # example's gradient factors are computed once.
            x, y = structure.concat([x, self.val_x]), np.concatenate([y, self.val_y])
        with random_state_preserved():
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
                S = pair_stiffness(gram.total, gram.sq_norms, spec, kind)
                stiffness[pairs, kind] = S
                values.update(self._pair_values(pairs, kind, S, spec, distances, curves))
                for layer, block in gram.by_layer.items():
                    S_layer = pair_stiffness(block, np.diagonal(block), spec, kind)
                    values[f"{pairs}/{kind}/layer/{layer}"] = mean_pairs(S_layer, spec)
        values["undefined"] = 0
        return Measurement(values=values, gram_method=gram.method, stiffness=stiffness,
                           curves=curves)

    def _undefined(self, model: Any, error: Exception) -> Measurement:
        """A measurement of a model whose gradients are not finite (a diverged run): every
        value NaN, with the same names and shapes as a defined one, and a warning. A training
        run goes on (`TerminateOnNaN` decides whether it stops, not the measurement)."""
        from tfstiffness.engine.layer_keys import layer_key

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
                values.update(xi_values(name, None, None))
                values.update(self._interval_values(name, self._interval_names(), None))
                if self.by_layer:
                    values.update({f"{name}/layer/{layer}": nan for layer in layers})
        return Measurement(values=values, gram_method="undefined", stiffness={}, curves={})

    def _pair_values(self, pairs: str, kind: str, S: np.ndarray, spec: PairSet,
                     distances: np.ndarray, curves: dict) -> dict[str, Any]:
        """Every measure of one pair set and kind, by name (the place to add a measure)."""
        name = f"{pairs}/{kind}"
        C = measures.class_stiffness(S, spec.labels, spec.labels2, self.num_classes)
        within, between = measures.within_between(C)
        out: dict[str, Any] = {f"{name}/within": within, f"{name}/between": between,
                               f"{name}/mean": mean_pairs(S, spec), f"{name}/class_matrix": C}
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
        out.update(xi_values(name, *critical))
        curves[pairs, kind] = (curve, critical)
        return out

    def _alignment_values(self, pairs: str, spec: PairSet,
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
        from tfstiffness.outputs import plots, tensorboard

        tensorboard.write_scalars(writer, scalar_values(measurement.values), step, prefix=prefix)
        image_kinds = set(self.kinds if images is True else (images or ()))
        for (pairs, kind), S in measurement.stiffness.items():
            name = f"{prefix}/{pairs}/{kind}"
            if histograms:
                tensorboard.write_histogram(writer, S, f"{name}/values", step,
                                        exclude_diagonal=self._pairs[pairs].one_set)
            if kind not in image_kinds:
                continue
            tensorboard.write_class_matrix_image(
                writer, measurement.values[f"{pairs}/{kind}/class_matrix"], step,
                tag=f"{name}/class_matrix", fine_to_coarse=self.fine_to_coarse, vmax=1.0,
                title=f"{pairs} {kind} class stiffness (step {step})")
            if (pairs, kind) in measurement.curves:
                curve, critical = measurement.curves[pairs, kind]
                fig = plots.stiffness_vs_distance(
                    curve, critical, title=f"{pairs} {kind} stiffness vs distance (step {step})")
                tensorboard.write_figure(writer, fig, f"{name}/vs_distance", step)

    # ------------------------------------------------------------------------------------

    def _pair_specs(self) -> dict[str, PairSet]:
        """Rows and columns of each pair set in the Gram matrix of [probe; val]."""
        n = structure.num_examples(self.probe_x)
        fixed = self.representation is None
        train = slice(0, n)
        specs = {"train_train": PairSet(
            train, train, True, self.labels, None,
            measures.input_distances(self.probe_x) if fixed else None)}
        if self.has_val:
            val = slice(n, n + structure.num_examples(self.val_x))
            specs["train_val"] = PairSet(
                train, val, False, self.labels, self.val_labels,
                measures.input_distances(self.probe_x, self.val_x) if fixed else None)
            specs["val_val"] = PairSet(
                val, val, True, self.val_labels, None,
                measures.input_distances(self.val_x) if fixed else None)
        return specs
