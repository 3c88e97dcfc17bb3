"""Finding flipped training labels by TracIn self-influence (Pruthi et al. 2020, section 4.1).

A mislabelled example keeps a large loss gradient through training: the model is pulled
towards its wrong label and back by its correctly labelled neighbours. So its self-influence
`sum_t eta_t |g_t(z)|^2` over the training checkpoints is large, and ranking training examples
by it puts flipped labels first. `flipped_label_experiment` measures how well: it flips a
fraction of the labels (deterministically by seed), trains, records a checkpoint after every
epoch, and returns the ROC AUC of self-influence for the flipped examples, next to the AUC of
the final model's per-example loss (the obvious baseline).

Example:
    >>> import numpy as np
    >>> noisy, flipped = flip_labels(np.arange(20) % 4, 0.25, seed=0)
    >>> int(flipped.sum()), bool(np.all(noisy[flipped] != (np.arange(20) % 4)[flipped]))
    (5, True)
    >>> roc_auc(np.array([0.9, 0.2, 0.8, 0.1]), np.array([True, False, True, False]))
    1.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfstiffness import checks
from tfstiffness.influence.tracin import TracInAccumulator, TracInResult
from tfstiffness.measures.neighbourhood import roc_auc  # The package's one AUC; exported here too.
from tfstiffness.training import batch_order

__all__ = ["FlippedLabelResult", "flip_labels", "flipped_label_experiment", "roc_auc"]

OPTIMIZERS = ("sgd", "adam")


def flip_labels(y: Any, fraction: float, num_classes: int | None = None,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gives `round(fraction * N)` examples, chosen by `seed`, a different label.

    Each chosen example's new label is drawn uniformly from the other classes.

    Args:
        y: integer class labels [N].
        fraction: share of examples to flip, in [0, 1].
        num_classes: K (default: max label + 1); at least 2.
        seed: the same seed flips the same examples to the same labels.

    Returns:
        (noisy labels [N] int64, flipped [N] bool).
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ValueError("y: expected non-negative integer class labels of shape [N].")
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"fraction: expected a number in [0, 1], got {fraction!r}.")
    k = int(num_classes) if num_classes is not None else int(y.max()) + 1
    if k < 2 or (y.size and y.max() >= k):
        raise ValueError(f"num_classes: expected at least 2 classes, all labels below it; "
                         f"got {k} for labels up to {y.max()}.")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(y), size=round(float(fraction) * len(y)), replace=False)
    noisy = y.astype(np.int64)
    noisy[chosen] = (noisy[chosen] + rng.integers(1, k, size=len(chosen))) % k
    flipped = np.zeros(len(y), bool)
    flipped[chosen] = True
    return noisy, flipped


@dataclass
class FlippedLabelResult:
    """What `flipped_label_experiment` measured.

    Attributes:
        auc: ROC AUC of self-influence for finding the flipped examples (0.5: chance).
        loss_auc: the same for the final model's per-example training loss (baseline).
        flipped: [N] bool, the examples whose label was flipped.
        noisy_labels: [N] the labels trained on.
        self_influence: [N] `sum_t eta_t |g_t|^2` over the epoch-end checkpoints.
        final_loss: [N] per-example loss of the trained model on the noisy labels.
        epoch_loss: [epochs] mean training loss of each epoch (as Keras reports it).
        accuracy_noisy, accuracy_clean: final training accuracy against the noisy and the
            original labels.
        tracin: the full `TracInResult` (self-influence only).
    """

    auc: float
    loss_auc: float
    flipped: np.ndarray
    noisy_labels: np.ndarray
    self_influence: np.ndarray
    final_loss: np.ndarray
    epoch_loss: np.ndarray
    accuracy_noisy: float
    accuracy_clean: float
    tracin: TracInResult

    def found_in_top(self, share: float) -> float:
        """Share of the flipped examples among the `share` of training examples with the
        highest self-influence (Pruthi et al.'s "fraction of mislabelled identified")."""
        count = round(float(share) * len(self.flipped))
        top = self.tracin.self_influence_ranking()[:count]
        return float(self.flipped[top].sum() / max(self.flipped.sum(), 1))


def flipped_label_experiment(
    x: Any,
    y: Any,
    build_model: Callable[[], keras.Model],
    *,
    fraction: float = 0.1,
    num_classes: int | None = None,
    epochs: int = 5,
    learning_rate: float = 0.1,
    batch_size: int = 32,
    optimizer: str = "sgd",
    seed: int = 0,
    method: str = "auto",
    block_size: int | None = None,
    verbose: bool | None = None,
) -> FlippedLabelResult:
    """Flips labels, trains, and measures how well TracIn self-influence finds the flips.

    Trains `build_model()` (a classifier returning logits, built after seeding Keras with
    `seed`) on the noisy labels with cross-entropy, `optimizer` at a constant
    `learning_rate`, batches in the order `training.batch_order(N, seed, epoch)`. After each
    epoch the model is a TracIn checkpoint with eta = `learning_rate` (for Adam, eta is its
    step size; the TracIn derivation assumes SGD).

    Args:
        x: training inputs (any structure Keras takes); y: clean integer labels [N].
        build_model: makes the untrained model.
        fraction, num_classes: as for `flip_labels` (seeded by `seed`).
        epochs, learning_rate, batch_size: training.
        optimizer: "sgd" (plain, no momentum) or "adam".
        seed: initial weights, flipped labels and batch order.
        method, block_size, verbose: as for `tracin`.

    Returns:
        A `FlippedLabelResult`.

    Example:
        >>> from tfstiffness import models, synthetic
        >>> x, y = synthetic.gaussian_blobs(3, 40, dim=8, seed=0, spread=0.3)
        >>> result = flipped_label_experiment(x, y, lambda: models.toy_mlp(8, 3, (16,)),
        ...                                   epochs=3, learning_rate=0.1)
        >>> int(result.flipped.sum()), result.auc > 0.5
        (12, True)
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}.")
    checks.positive_int(epochs, "epochs")
    y = np.asarray(y)
    noisy, flipped = flip_labels(y, fraction, num_classes, seed)
    keras.utils.set_random_seed(seed)
    model = build_model()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    opt = (keras.optimizers.SGD(learning_rate) if optimizer == "sgd"
           else keras.optimizers.Adam(learning_rate))
    model.compile(optimizer=opt, loss=loss)
    accumulator = TracInAccumulator(x, noisy, loss=loss, block_size=block_size, method=method,
                                    verbose=verbose)
    epoch_loss = []
    for epoch in range(1, epochs + 1):
        order = batch_order(len(noisy), seed, epoch)
        history = model.fit(_take(x, order), noisy[order], batch_size=batch_size, epochs=1,
                            shuffle=False, verbose=0)
        epoch_loss.append(float(history.history["loss"][-1]))
        accumulator.add(model, learning_rate)
    result = accumulator.result()
    logits = model.predict(x, batch_size=512, verbose=0)
    final_loss = np.asarray(keras.losses.sparse_categorical_crossentropy(
        noisy, logits, from_logits=True), np.float64)
    predicted = np.argmax(logits, axis=-1)
    return FlippedLabelResult(
        auc=roc_auc(result.self_influence, flipped), loss_auc=roc_auc(final_loss, flipped),
        flipped=flipped, noisy_labels=noisy, self_influence=result.self_influence,
        final_loss=final_loss, epoch_loss=np.asarray(epoch_loss),
        accuracy_noisy=float(np.mean(predicted == noisy)),
        accuracy_clean=float(np.mean(predicted == y)), tracin=result)


def _take(x: Any, index: np.ndarray) -> Any:
    return tf.nest.map_structure(lambda a: np.asarray(a)[index], x)
