"""Class stiffness through training (Fort et al. 2019).

Trains a classifier with Adam at a constant learning rate (mini-batches, reshuffled each epoch)
and, at chosen epochs, measures on fixed class-balanced probes of the training and validation
splits: class stiffness matrices of train-train, train-val and val-val pairs (sign and cosine),
within- and between-class stiffness, stiffness against input distance with its critical length
xi by two estimators (where the curve crosses zero; where a fitted line reaches zero, flagged
when extrapolated), the gradient-alignment family (m-coherence, gradient diversity and
confusion, train-val alignment), bootstrap 95% intervals over the probe examples, and loss and
accuracy. Default data: MNIST-1D (4,000 / 1,000 signals of length 40, generated offline), the
paper's fully-connected net (--model cnn: the MNIST-1D Conv1D net); about 1.5 minutes on 2 CPU
cores. --dataset hierarchical_images is a synthetic image hierarchy (10 classes in 5
super-classes); mnist, fashion_mnist, cifar10 or cifar100 reads a TensorFlow Datasets set from
--data_dir. --seeds 0,1,2 repeats the study per seed and reports the mean with an interval.

Writes config.json, summary.json, results.npz, figures/*.png and tensorboard/ (runs stiffness,
train, validation, written live) under --output_dir. Rerunning the same command resumes after
the last finished epoch.

Example:
  python -m tfstiffness.cli.class_stiffness --model cnn --seeds 0,1,2 \\
      --output_dir runs/class_stiffness_cnn
  python -m tfstiffness.cli.class_stiffness --dataset mnist --epochs 20 \\
      --data_dir ~/tensorflow_datasets --output_dir runs/class_stiffness_mnist
"""

from __future__ import annotations

from tfstiffness import cli
from tfstiffness.cli import _flags
from tfstiffness.studies import class_stiffness as study

FLAGS, main, run = cli.study_binary(
    study.ClassStiffnessConfig, study.run_class_stiffness, "class_stiffness", __doc__,
    define=lambda fv: _flags.define_hierarchy_flags(
        fv, study.DATA_DEFAULTS["hierarchical_images"], "higher is harder"),
    options=_flags.data_options("hierarchical_images", _flags.HIERARCHY_FLAGS))

if __name__ == "__main__":
    run()
