"""Stiffness and the critical length xi across learning rates (Fort et al. 2019).

Trains one model per learning rate with Adam (same initial weights and batch order) and
measures, at every epoch by default, stiffness on a fixed class-balanced training probe:
within- and between-class stiffness and the within-class stiffness against input distance
with its critical length xi by two estimators (crossing; linear fit, flagged when
extrapolated), with bootstrap 95% intervals. Compares the rates at equal epoch and at equal
training loss. Default data: MNIST-1D (generated offline), the paper's fully-connected net;
about 2 minutes on 2 CPU cores. --dataset gaussian_blobs is synthetic; mnist (fashion_mnist,
cifar10, cifar100) reads a TensorFlow Datasets set from --data_dir.

Writes config.json, summary.json, xi_table.md (xi per rate at each epoch and loss level),
results.npz, figures/*.png and tensorboard/ (one HParams session per rate, lr=<rate>, with
runs lr=<rate>/stiffness and lr=<rate>/train written live) under --output_dir. Rerunning the
same command resumes after the last finished epoch.

Example:
  python -m tfstiffness.cli.learning_rate_study --learning_rates 1e-4,1e-3,1e-2 --epochs 20 \\
      --output_dir runs/learning_rate_study_20
"""

from __future__ import annotations

from absl import flags

from tfstiffness import cli
from tfstiffness.cli import _flags
from tfstiffness.studies import learning_rate_study as study

_SYNTHETIC = "gaussian_blobs"


def _define_blob_flags(fv: flags.FlagValues) -> None:
    defaults = study.DATA_DEFAULTS[_SYNTHETIC]
    flags.DEFINE_integer("synthetic_per_class", defaults["num_per_class"], "gaussian_blobs: "
                         "points per class and split.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float("synthetic_spread", defaults["spread"], "gaussian_blobs: std of each "
                       "blob (higher overlaps more).", lower_bound=0, flag_values=fv)


FLAGS, main, run = cli.study_binary(
    study.LearningRateStudyConfig, study.run_learning_rate_study, "learning_rate_study",
    __doc__, define=_define_blob_flags,
    options=_flags.data_options(_SYNTHETIC, {"synthetic_per_class": "num_per_class",
                                             "synthetic_spread": "spread"}))

if __name__ == "__main__":
    run()
