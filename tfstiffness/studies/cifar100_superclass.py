"""CIFAR-100 super-classes (Fort et al. 2019, Sec. 4.2): do classes of one super-class become
stiffer to each other as training goes on?

The class study (`class_stiffness.class_study`) on a data set with 100 classes in 20
super-classes: ``cifar100``, whose fine-to-coarse table comes from
`tfstiffness.data.cifar100_labels`, or the synthetic ``hierarchical_images``, which uses the same
label convention. Probes of the paper's 30 examples per class (3,000). On top of the class
study's outputs: the 100 x 100 class matrix ordered by super-class
(``figures/class_matrix.png``, thin lines between super-classes), the 20 x 20 super-class
matrix (``figures/superclass_matrix.png``; its diagonal is the stiffness between DIFFERENT
classes of one super-class, same-class pairs excluded) and the super-class contrast (mean
stiffness between distinct classes of one super-class minus that between classes of
different super-classes) through training, with the final values in
``summary.json["results"]["superclass_contrast"][pair][kind]``.

Default data: ``hierarchical_images`` (20 x 5 classes, 32x32x3, standardised like the real
image sets) with 50 examples per class and split (5,000 training images) and pixel noise 16:
a hard set, like CIFAR-100. Measured (seed 0, probes of 30 per class, 6 epochs; train
accuracy 56 %, validation 24 % at the end): the train-train cosine contrast is +0.002,
+0.035, +0.056 at epochs 0, 1, 2, while super-classes are being learned, then -0.039 and
-0.054 at epochs 4 and 6, as the classes of one super-class separate and become anti-stiff
(bootstrap 95 % intervals about +-0.005). With noise 4 the classes separate within an epoch
(validation accuracy 67 % after one, 94 % after six) and the contrast is negative from
epoch 1 on (-0.15 to -0.12, probes of 10 per class). See the README.

Example:
    >>> import tempfile
    >>> s = run_cifar100_superclass(
    ...     tempfile.mkdtemp(), epochs=1, probe_per_class=2, eval_epochs=(),
    ...     data_options={"num_per_class": 3, "image_shape": (8, 8, 1)}, verbose=False)
    >>> s["results"]["num_classes"], s["results"]["num_superclasses"]
    (100, 20)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from tfstiffness.studies import runner
from tfstiffness.studies import seeds as seeds_lib
from tfstiffness.studies.class_stiffness import (
    BOOTSTRAP_SAMPLES,
    class_study,
    seed_figures,
    seed_headline,
    seed_tensorboard,
)

__all__ = ["DATASETS", "run_cifar100_superclass"]

#: Data sets with CIFAR-100's 100 classes in 20 super-classes.
DATASETS = ("hierarchical_images", "cifar100")
DATA_DEFAULTS = {"hierarchical_images": {"num_per_class": 50, "noise": 16.0}}


def run_cifar100_superclass(
    output_dir: str,
    dataset: str = "hierarchical_images",
    model: str = "cnn",
    epochs: int = 6,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    probe_per_class: int = 30,
    eval_epochs: Sequence[int] | str | None = "log",
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    data_dir: str | None = None,
    method: str = "auto",
    max_train_examples: int | None = None,
    max_val_examples: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    bins: int = 20,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    verbose: bool = True,
    tensorboard_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The super-class study; arguments as `class_stiffness.run_class_stiffness`.

    Raises:
        runner.StudyInputError: `dataset` has no super-classes (not one of `DATASETS`), or
            as `run_class_stiffness`.
    """
    if dataset not in DATASETS:
        raise runner.StudyInputError(f"dataset: expected one with super-classes {DATASETS}, "
                                     f"got {dataset!r}")
    kwargs = {"dataset": dataset, "model": model, "epochs": epochs, "learning_rate": learning_rate,
              "batch_size": batch_size, "probe_per_class": probe_per_class,
              "eval_epochs": eval_epochs, "data_dir": data_dir, "method": method,
              "max_train_examples": max_train_examples, "max_val_examples": max_val_examples,
              "data_options": data_options, "bins": bins, "bootstrap_samples": bootstrap_samples}
    if seeds is not None:
        return seeds_lib.run_seeds(run_cifar100_superclass, output_dir, seeds,
                                   study="cifar100_superclass", kwargs=kwargs,
                                   figures=seed_figures, tensorboard=seed_tensorboard,
                                   headline=seed_headline, verbose=verbose)
    return class_study(
        "cifar100_superclass", output_dir, **{**kwargs, "data_options": runner.merged_options(
            DATA_DEFAULTS, dataset, data_options)}, seed=seed, model_options=None,
        verbose=verbose, tensorboard_dir=tensorboard_dir)
