"""Walker's neighbourhood stiffness (2023) on the two-arcs grid.

Measures an MLP 2-64-64-2 at initialisation and after training with plain SGD (mini-batches,
reshuffled each epoch) on all points of a 50 x 50 grid on [-1, 1]^2 labelled by two
interlocking arcs: each point's mean cosine stiffness to its neighbours within each radius,
and how well low values pick out the points near the true class boundary (ROC AUC). Offline,
about half a minute on 2 CPU cores.

Writes config.json, summary.json, results.npz, figures/neighbourhoods.png, stages/ and
tensorboard/ (runs stiffness, train, figures) under --output_dir. Rerunning the same command
resumes after the last finished stage.

Example:
  python -m tfstiffness.cli.neighbourhoods --radii 0.05,0.1,0.15 --epochs 30 \\
      --output_dir runs/neighbourhoods_30
"""

from __future__ import annotations

from tfstiffness import cli
from tfstiffness.studies import neighbourhoods as study

FLAGS, main, run = cli.study_binary(study.NeighbourhoodsConfig, study.run_neighbourhoods,
                                    "neighbourhoods", __doc__)

if __name__ == "__main__":
    run()
