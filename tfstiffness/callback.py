"""`StiffnessCallback`: stiffness of a fixed probe set measured during `model.fit`.

At each measurement the callback measures through `tfstiffness.probes.ProbeSets`, the code the
study binaries use too: the exact Gram matrix of per-example loss gradients on the probe set
(and a second, validation probe set when given), sign and cosine stiffness, class stiffness
matrices, within/between-class summaries, the super-class contrast, stiffness against input
distance and the critical length xi by both estimators (crossing and linear fit), the
gradient-alignment family (m-coherence, gradient diversity and confusion, train-val
alignment) and, with `bootstrap_samples`, bootstrap intervals. It keeps every number in
`callback.history` and, with a `log_dir`, writes them as TensorBoard scalars, images and
histograms.

Measuring never changes training: forward passes run with `training=False`, weights and
optimizer are only read, and the global random states (NumPy, Python, TensorFlow's eager
op seeds, Keras' global seed generator) are restored after each measurement.

TensorBoard tags (all under `stiffness/`; PAIRS is `train_train`, and with a validation probe
also `train_val` and `val_val`; KIND is each of `kinds`):

- scalars `stiffness/PAIRS/KIND/within`, `.../between`, `.../mean` (mean over all pairs, self
  pairs excluded), `.../superclass_contrast` (with `fine_to_coarse`), `.../xi_crossed` (1 when
  the within-class stiffness-vs-distance curve crosses zero, else 0), `.../xi_crossing` (only
  when it crosses), `.../xi_linear_fit` (only when the fitted line falls to zero at a positive
  distance), `.../xi_linear_fit_slope`, `.../xi_linear_fit_intercept`, `.../xi_linear_fit_r2`,
  `.../xi_linear_fit_extrapolated` (1 when that xi lies beyond the distances measured),
  `.../layer/LAYER` (with `by_layer`: mean off-diagonal stiffness over that layer's
  parameters), `stiffness/PAIRS/alignment/...` (`m_coherence`, `gradient_diversity`,
  `gradient_confusion`, `gradient_confusion_cosine` of the train and val probes,
  `summed_gradient_cosine` of train_val), with `bootstrap_samples` the interval ends
  `..._ci_low` / `..._ci_high` of within, between, the super-class contrast, both xi and
  m-coherence, and `stiffness/zero_gradients/train` (and `/val`): examples whose gradient is
  exactly zero (their cosine stiffness is 0). The full list is in `tfstiffness.probes`.
- images `stiffness/PAIRS/KIND/class_matrix` (grouped by super-class when `fine_to_coarse` is
  given; colour range fixed to [-1, 1] so steps compare) and `stiffness/PAIRS/KIND/vs_distance`
  (mean within-class stiffness per distance bin, xi by both estimators marked).
- histograms `stiffness/PAIRS/KIND/values`: every pairwise stiffness value, self pairs excluded.

Example:
    >>> import keras, numpy as np, tempfile
    >>> from tfstiffness.callback import StiffnessCallback
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(64, 4)).astype("float32"), np.arange(64) % 2
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
    ...                           keras.layers.Dense(2)])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> cb = StiffnessCallback(x[:16], y[:16], log_dir=tempfile.mkdtemp(), images=False)
    >>> _ = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    >>> [entry["step"] for entry in cb.history]  # completed epochs; 0 = before training
    [0, 1, 2]
    >>> sorted(k for k in cb.history[-1] if k.startswith("train_train/cosine/w"))
    ['train_train/cosine/within']
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness.checks import positive_int
from tfstiffness.outputs.atomic import atomic_write
from tfstiffness.probes import ProbeSets

__all__ = ["StiffnessCallback", "load_history"]

# Prefix of every TensorBoard tag the callback writes.
TAG_PREFIX = "stiffness"


class StiffnessCallback(keras.callbacks.Callback):
    """Measures stiffness on fixed probe sets during training; logs to TensorBoard.

    A measurement is taken when training begins (the untrained state), then every
    `every_n_epochs` epochs (or every `every_n_steps` optimizer steps), and once more when
    training ends if the final weights were not measured yet.

    The TensorBoard step of a measurement is:

    - per-epoch mode (default): the number of completed epochs, so 0 is the untrained state
      and 1 is after the first epoch. Note that Keras' own `TensorBoard` callback logs
      `epoch_loss` of the first epoch at step 0: stiffness at step e + 1 belongs to the same
      weights as Keras' epoch metrics at step e.
    - per-step mode (`every_n_steps`): `model.optimizer.iterations`, the number of optimizer
      updates applied so far; this matches the step of Keras' batch-level summaries
      (`update_freq="batch"` or an integer).

    Both numbers are also kept in every history entry (`epoch`, `iteration`), with `step`.

    Attributes:
        history: one dict per measurement, in order. Keys: `step`, `epoch` (completed epochs),
            `iteration` (optimizer iterations), `train_loss` (the loss in Keras' logs at that
            point, a running mean over the epoch; NaN before training), `seconds` (time the
            measurement took), every scalar by its tag without the `stiffness/` prefix (e.g.
            `train_train/cosine/within`; `.../xi_crossing` is NaN when the curve does not
            cross zero, and then `.../xi_crossing_bound` says where xi lies, see
            `measures.CriticalLength`), and
            arrays: `PAIRS/KIND/class_matrix` [K, K] (NaN for class pairs without examples),
            `PAIRS/KIND/curve_means` and `PAIRS/KIND/curve_counts` [distance_bins].
        curve_edges: PAIRS -> [distance_bins + 1] distance bin edges of the curves (input
            distances of a fixed probe do not change, so neither do the edges).
        pair_sets: the pair sets measured, e.g. ("train_train", "train_val", "val_val").

    Example:
        >>> import keras, numpy as np
        >>> rng = np.random.default_rng(1)
        >>> x, y = rng.normal(size=(48, 3)).astype("float32"), np.arange(48) % 3
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
        >>> model.compile("sgd", "sparse_categorical_crossentropy")
        >>> cb = StiffnessCallback(x[:12], y[:12], val_x=x[12:24], val_y=y[12:24],
        ...                        every_n_steps=3, kinds=("cosine",))
        >>> _ = model.fit(x, y, epochs=2, batch_size=12, verbose=0, callbacks=[cb])
        >>> [(e["step"], e["epoch"]) for e in cb.history]  # 4 steps per epoch; 8 at the end
        [(0, 0), (3, 0), (6, 1), (8, 2)]
        >>> cb.pair_sets
        ('train_train', 'train_val', 'val_val')
    """

    def __init__(
        self,
        probe_x: Any,
        probe_y: Any,
        val_x: Any = None,
        val_y: Any = None,
        log_dir: str | os.PathLike | None = None,
        every_n_epochs: int = 1,
        every_n_steps: int | None = None,
        loss: Any = None,
        num_classes: int | None = None,
        fine_to_coarse: Any = None,
        kinds: Sequence[str] = ("sign", "cosine"),
        distance_bins: int = 20,
        by_layer: bool = False,
        method: str = "auto",
        batch_size: int | None = None,
        images: bool = True,
        histograms: bool = True,
        run_name: str = "stiffness",
        bootstrap_samples: int = 0,
        bootstrap_confidence: float = 0.95,
        bootstrap_seed: int = 0,
        representation: Any = None,
    ):
        """Creates the callback; the probe sets are fixed for the whole of training.

        Args:
            probe_x: [N, ...] inputs of the probe set (ideally class-balanced, e.g. about 50
                examples per class): one array, or a list / dict of arrays for a
                multi-input model, as `model.fit` takes them.
            probe_y: [N] integer class labels or [N, K] one-hot labels, as the loss expects.
            val_x: optional [M, ...] inputs of a second probe set (e.g. held-out data). Then
                train-val (every probe example against every val example) and val-val
                stiffness are measured as well.
            val_y: labels of the second probe set, in the same format as `probe_y`.
            log_dir: TensorBoard log directory, e.g. the one given to
                `keras.callbacks.TensorBoard`; None keeps the results in `history` only.
            every_n_epochs: measure after every this many epochs (per-epoch mode).
            every_n_steps: if given, measure every this many optimizer steps instead, and use
                the optimizer's iteration count as the TensorBoard step; `every_n_epochs` is
                then ignored.
            loss: the loss whose per-example gradients are compared: a `keras.losses.Loss`, a
                loss name or a per-example callable `(y_true, y_pred) -> [batch]`; None uses
                the model's compiled loss (made per-example by `gradient_gram`).
            num_classes: number of classes K of the class matrices; default
                `len(fine_to_coarse)` if given, else the largest label + 1.
            fine_to_coarse: optional [K] super-class of each class: adds the super-class
                contrast scalar and groups the class-matrix image by super-class.
            kinds: stiffness kinds to measure, any of "sign" and "cosine".
            distance_bins: number of distance bins of the stiffness-vs-distance curves.
            by_layer: also log, per layer, the mean stiffness of the gradients w.r.t. that
                layer's parameters alone.
            method: `gradient_gram` method ("auto", "ghost", "vmap" or "jacobian").
            batch_size: `gradient_gram` block size; None chooses from memory.
            images: write class-matrix and stiffness-vs-distance images: 2 per kind and pair
                set, so up to 12 per measurement, each rendered by matplotlib in 0.1 to 0.4 s.
            histograms: write histograms of the pairwise stiffness values.
            run_name: subdirectory of `log_dir` for the callback's event files, shown by
                TensorBoard as a run of that name next to Keras' `train` and `validation`
                runs; "" writes into `log_dir` itself.
            bootstrap_samples: bootstrap resamples of the probe examples for the intervals
                (`probes.ProbeSets`); 0 (the default) measures none. 200 resamples add about
                0.3 s per measurement for probes of 100 + 100 examples here.
            bootstrap_confidence: nominal coverage of the intervals.
            bootstrap_seed: seed of the resampling.
            representation: optional `f(model, x) -> [n, d]` features in which the distance
                curves measure distances (`probes.ProbeSets`); None: input space.

        Raises:
            ValueError: inconsistent lengths or shapes, labels that are not classes, an
                unknown kind, a non-positive period or bin count, or `fine_to_coarse` not of
                length `num_classes`.
        """
        super().__init__()
        self.probes = ProbeSets(
            probe_x, probe_y, val_x, val_y, loss=loss, num_classes=num_classes,
            fine_to_coarse=fine_to_coarse, kinds=kinds, distance_bins=distance_bins,
            by_layer=by_layer, method=method, batch_size=batch_size,
            bootstrap_samples=bootstrap_samples, bootstrap_confidence=bootstrap_confidence,
            bootstrap_seed=bootstrap_seed, representation=representation)
        self.every_n_epochs = positive_int(every_n_epochs, "every_n_epochs")
        self.every_n_steps = (None if every_n_steps is None
                              else positive_int(every_n_steps, "every_n_steps"))
        self.kinds, self.num_classes = self.probes.kinds, self.probes.num_classes
        self.fine_to_coarse, self.pair_sets = self.probes.fine_to_coarse, self.probes.pair_sets
        self.images, self.histograms = bool(images), bool(histograms)
        self.log_dir = None if log_dir is None else _checked_log_dir(os.fspath(log_dir))
        self.run_name = run_name
        self.history: list[dict[str, Any]] = []
        self._writer: tf.summary.SummaryWriter | None = None
        self._epoch = 0  # completed epochs
        self._prev_iteration = 0
        self._last_loss = math.nan
        self._initial_pending = False

    # ------------------------------------------------------------------------------------
    # Keras hooks
    # ------------------------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._last_loss = math.nan
        self._prev_iteration = self._iterations()
        if self.every_n_steps is not None:
            self._measure_once(self._prev_iteration)
        else:
            # The completed-epoch count (`initial_epoch`) is only known in on_epoch_begin.
            self._initial_pending = True

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch = epoch
        if self._initial_pending:
            self._initial_pending = False
            self._measure_once(epoch)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.every_n_steps is None:
            return
        self._remember_loss(logs)
        iteration = self._iterations()
        # A crossing test rather than `% n == 0`: with steps_per_execution > 1 the callback
        # sees only every k-th iteration and could step over every multiple of n.
        if iteration // self.every_n_steps > self._prev_iteration // self.every_n_steps:
            self._measure_once(iteration)
        self._prev_iteration = iteration

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._epoch = epoch + 1
        self._remember_loss(logs)
        if self.every_n_steps is None and self._epoch % self.every_n_epochs == 0:
            self._measure_once(self._epoch)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._initial_pending = False
        # The final weights are always recorded, whatever the period.
        self._measure_once(self._current_step())
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ------------------------------------------------------------------------------------
    # Results
    # ------------------------------------------------------------------------------------

    def history_arrays(self) -> dict[str, np.ndarray]:
        """The history as arrays: each key stacked over measurements, plus metadata.

        Returns:
            key -> array with a leading axis over measurements ([T] for numbers,
            [T, K, K] for class matrices, [T, B] for curves), and `meta/...` entries:
            `meta/probe_labels`, `meta/val_labels` (with a val probe),
            `meta/fine_to_coarse` (when given), `meta/kinds`, `meta/pair_sets`,
            `meta/PAIRS/curve_edges`, `meta/step_unit` ("epoch" or "iteration").

        Example:
            >>> cb = StiffnessCallback(np.zeros((4, 2)), np.array([0, 0, 1, 1]))
            >>> cb.history_arrays()["meta/step_unit"]
            array('epoch', dtype='<U5')
        """
        arrays: dict[str, np.ndarray] = {}
        keys = list(dict.fromkeys(k for entry in self.history for k in entry))
        for key in keys:
            arrays[key] = np.stack([np.asarray(entry.get(key, np.nan)) for entry in self.history])
        arrays["meta/probe_labels"] = self.probes.labels
        if self.probes.has_val:
            arrays["meta/val_labels"] = self.probes.val_labels
        if self.fine_to_coarse is not None:
            arrays["meta/fine_to_coarse"] = self.fine_to_coarse
        arrays["meta/kinds"] = np.array(self.kinds)
        arrays["meta/pair_sets"] = np.array(self.pair_sets)
        arrays["meta/step_unit"] = np.array("epoch" if self.every_n_steps is None
                                            else "iteration")
        for pairs, edges in self.curve_edges.items():
            arrays[f"meta/{pairs}/curve_edges"] = edges
        return arrays

    def series(self, pairs: str = "train_train", kind: str = "cosine") -> dict[str, np.ndarray]:
        """One pair set and kind over training, in the form `plots.training_curves` takes.

        Args:
            pairs: "train_train", "train_val" or "val_val".
            kind: "sign" or "cosine".

        Returns:
            "step", "epoch", "iteration", "train_loss", "within", "between", "mean",
            "xi_crossing" (NaN where not crossed), "xi_linear_fit" (NaN without a fitted xi)
            and "xi_linear_fit_extrapolated" -> [T] arrays; "superclass_contrast" with
            fine_to_coarse; with bootstrap intervals also "NAME_low" and "NAME_high" for each
            measure that has one (the bands of `plots.training_curves`).

        Example:
            >>> cb = StiffnessCallback(np.zeros((4, 2)), np.array([0, 0, 1, 1]))
            >>> sorted(cb.series())[:3]
            ['between', 'epoch', 'iteration']
        """
        if pairs not in self.pair_sets or kind not in self.kinds:
            raise ValueError(f"pairs, kind: expected one of {self.pair_sets} and one of "
                             f"{self.kinds}, got {pairs!r}, {kind!r}.")
        names = ["within", "between", "mean", "xi_crossing", "xi_linear_fit",
                 "xi_linear_fit_extrapolated"]
        if self.fine_to_coarse is not None:
            names.append("superclass_contrast")
        out = {k: np.array([e[k] for e in self.history], np.float64)
               for k in ("step", "epoch", "iteration", "train_loss")}
        for name in names:
            key = f"{pairs}/{kind}/{name}"
            out[name] = np.array([e.get(key, np.nan) for e in self.history], np.float64)
            if any(f"{key}_ci_low" in e for e in self.history):
                for end in ("low", "high"):
                    out[f"{name}_{end}"] = np.array(
                        [e.get(f"{key}_ci_{end}", np.nan) for e in self.history], np.float64)
        return out

    def save(self, path: str | os.PathLike) -> str:
        """Writes `history_arrays()` to an .npz file, atomically (temporary file, then rename).

        Args:
            path: destination file; written exactly there (no suffix is added).

        Returns:
            The path written, as a string.

        Example:
            >>> import os, tempfile
            >>> cb = StiffnessCallback(np.zeros((4, 2)), np.array([0, 0, 1, 1]))
            >>> path = cb.save(os.path.join(tempfile.mkdtemp(), "stiffness.npz"))
            >>> sorted(load_history(path))[:2]
            ['meta/kinds', 'meta/pair_sets']
        """
        path = os.fspath(path)
        with atomic_write(path, "wb") as file:
            np.savez(file, **self.history_arrays())
        return path

    # ------------------------------------------------------------------------------------
    # Measurement
    # ------------------------------------------------------------------------------------

    def _iterations(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return 0
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def _current_step(self) -> int:
        return self._iterations() if self.every_n_steps is not None else self._epoch

    def _remember_loss(self, logs: Mapping[str, Any] | None) -> None:
        if logs and "loss" in logs:
            self._last_loss = float(logs["loss"])

    def _measure_once(self, step: int) -> None:
        if self.history and self.history[-1]["step"] == step:
            return  # these weights were measured already (end of the last period)
        self.measure(step)

    def measure(self, step: int) -> dict[str, Any]:
        """Measures stiffness of the current weights now and records it at `step`.

        Called by the Keras hooks; call it directly to measure outside `fit`.

        Args:
            step: the TensorBoard step (and `step` of the history entry).

        Returns:
            The new history entry.
        """
        start = time.perf_counter()
        measurement = self.probes.measure(self.model)
        entry: dict[str, Any] = {"step": int(step), "epoch": int(self._epoch),
                                 "iteration": self._iterations(), "train_loss": self._last_loss,
                                 **measurement.values}
        entry["seconds"] = time.perf_counter() - start
        self.history.append(entry)
        if self.log_dir is not None:
            if self._writer is None:  # opened here, closed at the end of each fit
                path = (os.path.join(self.log_dir, self.run_name) if self.run_name
                        else self.log_dir)
                self._writer = tf.summary.create_file_writer(path)
            self.probes.write(self._writer, measurement, int(step), images=self.images,
                              histograms=self.histograms, prefix=TAG_PREFIX)
        return entry

    @property
    def curve_edges(self) -> dict[str, np.ndarray]:
        """Pair set -> distance bin edges of the curves (fixed: the probe does not change)."""
        return self.probes.curve_edges


def load_history(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a file written by `StiffnessCallback.save` back into a dict of arrays.

    Args:
        path: the .npz file.

    Returns:
        key -> array, as `StiffnessCallback.history_arrays()` returned them.

    Example:
        >>> import os, tempfile
        >>> cb = StiffnessCallback(np.zeros((4, 2)), np.array([0, 0, 1, 1]))
        >>> path = cb.save(os.path.join(tempfile.mkdtemp(), "h.npz"))
        >>> load_history(path)["meta/probe_labels"].tolist()
        [0, 0, 1, 1]
    """
    with np.load(os.fspath(path), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _checked_log_dir(log_dir: str) -> str:
    """`log_dir`, refused at construction (not inside `fit`) when it or its nearest existing
    parent is not a directory."""
    existing = os.path.abspath(log_dir)
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "" if existing == os.path.abspath(log_dir) else f" (its parent {existing})"
        raise ValueError(f"log_dir: {log_dir}{what} is a file, not a directory; give a "
                         "directory for the TensorBoard event files.")
    return log_dir
