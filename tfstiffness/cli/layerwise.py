"""Walker's layer-wise stiffness (2023): stiffness through the layers, untrained vs trained.

For each hidden-widths x activation MLP, measures the cosine stiffness of the gradients with
respect to each layer's parameters alone (within- and between-class, on a fixed
class-balanced probe) before and after training with plain SGD (mini-batches, reshuffled each
epoch). Default data: the two-arcs 50 x 50 grid, offline; --dataset mnist (fashion_mnist,
cifar10, cifar100) reads a TensorFlow Datasets set from --data_dir, flattened.

Writes config.json, summary.json, results.npz, figures/layerwise.png, stages/ and tensorboard/
(one run per model) under --output_dir. Rerunning the same command resumes after the last
finished model.

Example:
  python -m tfstiffness.cli.layerwise --hidden_widths 64-8-4,8-64-8 \\
      --activations tanh,leaky_relu --output_dir runs/layerwise_two
"""

from __future__ import annotations

from typing import Any

from absl import flags

from tfstiffness import cli
from tfstiffness.studies import layerwise as study


def _grid_only_for_two_arcs(fv: flags.FlagValues) -> dict[str, Any]:
    if fv["dataset"].value != "two_arcs" and fv["grid_n"].present:
        raise cli.CommandError("--grid_n applies to --dataset two_arcs only")
    return {}


FLAGS, main, run = cli.study_binary(study.LayerwiseConfig, study.run_layerwise, "layerwise",
                                    __doc__, options=_grid_only_for_two_arcs)

if __name__ == "__main__":
    run()
