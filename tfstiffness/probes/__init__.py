"""The one measuring path: stiffness of fixed probe sets, as numbers and as TensorBoard summaries.

Modules: `probe_sets` (`ProbeSets`: the settings, the measuring and the writing), `values`
(`Measurement`, the value names, the numbers derived from a stiffness matrix), `inputs` (the
checks of the probe inputs and labels), `random_state` (`random_state_preserved`).

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

Adding a measure: compute it in `ProbeSets._pair_values` (in `probe_sets`; it sees one pair
set's stiffness matrix, its Gram block, labels and distances) and return it under a new name.
It then reaches the callback's history, the studies' checkpoints and results, and TensorBoard
(when it is a number) without another change.

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

from tfstiffness.probes.probe_sets import ProbeSets
from tfstiffness.probes.random_state import random_state_preserved
from tfstiffness.probes.values import (
    INTERVAL_STATISTICS,
    XI_ESTIMATORS,
    XI_STATUSES,
    Measurement,
    scalar_values,
)

__all__ = ["INTERVAL_STATISTICS", "XI_ESTIMATORS", "XI_STATUSES", "Measurement", "ProbeSets",
           "random_state_preserved", "scalar_values"]
