"""`TracInCallback`: TracIn recorded during `model.fit`, without saving checkpoints by hand.

At the end of every epoch the callback hands the model to a `influence.TracInAccumulator`
as one TracIn checkpoint (Pruthi et al. 2020, TracInCP), with eta_t the learning rate of
that epoch. What it keeps depends on `top_k`:

- `top_k=None` (the running sum): the checkpoint's contribution is computed at once against
  the fixed test probe set `(x_test, y_test)` and added to the [N, M] scores and the
  self-influences; nothing of the checkpoint is kept. Cheap in memory for a probe of a few
  hundred test examples, and `result()` is ready at any time.
- `top_k=k` (the checkpoints): each epoch's weights are copied (memory: epochs x model
  size) and `result()` streams all of them to each test example's top-k proponents and
  opponents, never forming the [N, M] matrix: for a large training set.

**The learning rate eta_t of an epoch** is the mean of the learning rates of the optimizer
steps taken during that epoch, each read from the optimizer just before its step
(`optimizer.learning_rate`, which evaluates a `LearningRateSchedule` at the step about to be
taken). For a constant rate, or one set per epoch by `keras.callbacks.LearningRateScheduler`,
that is the rate the epoch used; a change made at an epoch's end (`ReduceLROnPlateau`)
counts from the next epoch, whatever the order of the callbacks. With `steps_per_execution`
> 1, Keras calls batch hooks once per execution, so the mean is over those calls. With
Adam or another adaptive optimizer eta_t is its step size, not the step it actually took
(the TracIn derivation assumes SGD); pass `learning_rate` to fix eta yourself.

Measuring never changes training: forward passes run in inference mode, weights and
optimizer are only read (the accumulator restores any weights it sets), and the global
random states are restored after each checkpoint (as `StiffnessCallback` does).

Example:
    >>> import keras, numpy as np
    >>> from tfstiffness.influence.callback import TracInCallback
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(40, 4)).astype("float32"), np.arange(40) % 2
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> model.compile(keras.optimizers.SGD(0.1),
    ...               keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> tracin = TracInCallback(x, y, x[:5], y[:5])
    >>> _ = model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[tracin])
    >>> result = tracin.result()
    >>> result.scores.shape, [round(eta, 3) for eta in tracin.learning_rates]
    ((40, 5), [0.1, 0.1, 0.1])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from tfstiffness.influence.checkpoints import checked_learning_rate
from tfstiffness.influence.tracin import TracInAccumulator, TracInResult
from tfstiffness.probes import random_state_preserved

__all__ = ["TracInCallback"]


class TracInCallback(keras.callbacks.Callback):
    """Adds the model as a TracIn checkpoint at the end of every epoch of `fit`.

    Checkpoints accumulate over every `fit` call the callback is given to (epochs are
    counted in `learning_rates`), so training in several `fit` calls gives one result.

    Args:
        x, y: the training examples whose influence is traced (any input structure the
            engine takes; usually the training set, or a part of it) and their labels.
        x_test, y_test: the fixed test probe set; None: self-influence only.
        loss: the loss whose per-example gradients are traced (a Keras loss, a name or a
            per-example callable); None: the model's compiled loss.
        kind: "dot" or "cosine" (see `tfstiffness.influence`).
        top_k: None: keep the running [N, M] sum; k: keep each epoch's weights and stream
            each test example's k best proponents and opponents in `result()`.
        learning_rate: eta of every epoch; None (default): read from the optimizer, the
            mean rate of the epoch's steps (module docstring).
        block_size, method: as for `tfs.tracin`.
        verbose: the engine's progress line on stderr (default: never).

    Attributes:
        learning_rates: eta_t of each recorded epoch, in order.
        accumulator: the `TracInAccumulator` fed by the callback.

    Raises:
        ValueError: as `TracInAccumulator` (sizes, kind, top_k, block_size), and a
            `learning_rate` that is not a finite number >= 0.
    """

    def __init__(self, x: Any, y: Any, x_test: Any = None, y_test: Any = None, *,
                 loss: Any = None, kind: str = "dot", top_k: int | None = None,
                 learning_rate: float | None = None, block_size: int | None = None,
                 method: str = "auto", verbose: bool = False):
        super().__init__()
        self.accumulator = TracInAccumulator(x, y, x_test, y_test, loss=loss, kind=kind,
                                             top_k=top_k, block_size=block_size,
                                             method=method, verbose=verbose)
        self.fixed_learning_rate = (None if learning_rate is None else
                                    checked_learning_rate(learning_rate, "learning_rate"))
        self.learning_rates: list[float] = []
        self._step_rates: list[float] = []

    # -- Keras hooks -------------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.fixed_learning_rate is None:
            self._current_learning_rate()  # Refuse an optimizer without one before training.

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._step_rates = []

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.fixed_learning_rate is None:
            self._step_rates.append(self._current_learning_rate())

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.fixed_learning_rate is not None:
            eta = self.fixed_learning_rate
        elif self._step_rates:
            eta = float(np.mean(self._step_rates))
        else:  # An epoch without a step (empty data): the rate the next step would use.
            eta = self._current_learning_rate()
        with random_state_preserved():
            self.accumulator.add(self.model, eta)
        self.learning_rates.append(eta)

    # -- results ---------------------------------------------------------------------------

    def result(self) -> TracInResult:
        """TracIn over every epoch recorded so far (see `TracInAccumulator.result`).

        Raises:
            ValueError: no epoch has ended yet.
        """
        return self.accumulator.result()

    def _current_learning_rate(self) -> float:
        optimizer = getattr(self.model, "optimizer", None)
        rate = getattr(optimizer, "learning_rate", None)
        if rate is None:
            raise ValueError("learning_rate: the model's optimizer has no learning_rate to "
                             "read; pass TracInCallback(..., learning_rate=eta).")
        value = float(keras.ops.convert_to_numpy(rate))
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"learning_rate: the optimizer's learning rate is {value!r}; "
                             "expected a finite number >= 0.")
        return value
