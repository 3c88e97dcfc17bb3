"""Makes the README's TracIn figures on MNIST-1D (offline, about two minutes on 2 cores).

    python docs/tracin_figures.py

- docs/images/tracin_flipped_labels.png: 10% of the 4,000 training labels flipped, an MLP
  40-100-100-10 trained 60 epochs with plain SGD at 0.05 (batch 32, seed 0), a checkpoint
  after every epoch; share of flipped labels found by self-influence vs by the final loss.
- docs/images/tracin_proponents.png: the same MLP trained on clean labels for 30 epochs,
  checkpoints every 6 epochs; three test sequences with their top proponents and opponents.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras
import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

import tfstiffness as tfs
from tfstiffness import models
from tfstiffness.influence import plots as influence_plots
from tfstiffness.influence.label_noise import flipped_label_experiment
from tfstiffness.training import batch_order

IMAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images")


def main() -> None:
    data = make_dataset(get_dataset_args())
    x, y = data["x"].astype("float32"), data["y"].astype("int64")
    x_test, y_test = data["x_test"].astype("float32"), data["y_test"].astype("int64")
    mean, std = x.mean(0), x.std(0)
    x, x_test = (x - mean) / std, (x_test - mean) / std

    def mlp():
        return models.toy_mlp(40, 10, (100, 100))

    flips = flipped_label_experiment(x, y, mlp, fraction=0.1, epochs=60, learning_rate=0.05,
                                     optimizer="sgd", seed=0)
    print(f"flipped labels: self-influence AUC {flips.auc:.3f}, final-loss AUC "
          f"{flips.loss_auc:.3f}, found in the top 10%: {flips.found_in_top(0.1):.3f}")
    influence_plots.flipped_label_detection(
        flips.self_influence, flips.flipped, flips.final_loss,
        path=os.path.join(IMAGES, "tracin_flipped_labels.png"))

    keras.utils.set_random_seed(0)
    model = mlp()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss)
    accumulator = tfs.TracInAccumulator(x, y, x_test[:100], y_test[:100], loss=loss, top_k=10)
    for epoch in range(1, 31):
        order = batch_order(len(y), 0, epoch)
        model.fit(x[order], y[order], batch_size=32, epochs=1, shuffle=False, verbose=0)
        if epoch % 6 == 0:
            accumulator.add(model, 0.05)
    result = accumulator.result()
    proponents, _, opponents, _ = result.top(10)
    print(f"share of top-10 proponents with the test example's label: "
          f"{np.mean(y[proponents] == y_test[:100, None]):.3f}; opponents: "
          f"{np.mean(y[opponents] == y_test[:100, None]):.3f}")
    influence_plots.proponents_opponents(result, x, y, x_test[:100], y_test[:100], [0, 1, 2],
                                         k=4, path=os.path.join(IMAGES, "tracin_proponents.png"))


if __name__ == "__main__":
    main()
