"""CIFAR-100 super-classes (Fort et al. 2019): do classes of one super-class become stiffer to
each other through training?

Trains the paper's CNN with Adam at a constant learning rate and, at chosen epochs, measures
class stiffness on fixed probes of 30 examples per class (3,000): the 100 x 100 class matrix
ordered by super-class, the 20 x 20 super-class matrix and the super-class contrast (stiffness
between classes of the same super-class minus between classes of different ones), with
everything the class_stiffness binary measures. Default data: a synthetic hierarchy of 100
image classes in 20 super-classes with CIFAR-100's label convention, no download (about four
minutes on 2 CPU cores). --dataset cifar100 reads CIFAR-100 from --data_dir.

Writes config.json, summary.json, results.npz, figures/*.png and tensorboard/ (runs stiffness,
train, validation, written live) under --output_dir. Rerunning the same command resumes after
the last finished epoch.

Example:
  python -m tfstiffness.cli.cifar100_superclass --dataset cifar100 --epochs 30 \\
      --eval_epochs 1,2,5,10,20 --data_dir ~/tensorflow_datasets \\
      --output_dir runs/cifar100_superclass_real
"""

from __future__ import annotations

from tfstiffness import cli
from tfstiffness.cli import _flags
from tfstiffness.studies import cifar100_superclass as study

FLAGS, main, run = cli.study_binary(
    study.Cifar100SuperclassConfig, study.run_cifar100_superclass, "cifar100_superclass",
    __doc__,
    define=lambda fv: _flags.define_hierarchy_flags(
        fv, study.DATA_DEFAULTS["hierarchical_images"],
        "higher is harder; at 4 the classes separate within an epoch"),
    options=_flags.data_options("hierarchical_images", _flags.HIERARCHY_FLAGS))

if __name__ == "__main__":
    run()
