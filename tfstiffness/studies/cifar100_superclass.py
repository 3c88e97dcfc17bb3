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

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from tfstiffness.errors import StudyInputError
from tfstiffness.studies import seeds as seeds_lib
from tfstiffness.studies.class_stiffness import (
    ClassStiffnessConfig,
    class_study,
    seed_figures,
    seed_headline,
    seed_tensorboard,
)
from tfstiffness.studies.config import parameter

__all__ = ["DATASETS", "Cifar100SuperclassConfig", "run_cifar100_superclass"]

#: Data sets with CIFAR-100's 100 classes in 20 super-classes.
DATASETS = ("hierarchical_images", "cifar100")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Cifar100SuperclassConfig(ClassStiffnessConfig):
    """The super-class study's parameters: the class study's, with its own defaults."""

    STUDY = "cifar100_superclass"
    DATA_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {"hierarchical_images": {"num_per_class": 50, "noise": 16.0}}

    dataset: str = parameter("hierarchical_images", "hierarchical_images (synthetic, offline) "
                             "or cifar100.", flag="enum", choices=DATASETS)
    model: str = parameter("cnn", flag="model", choices=("cnn", "fc", "resnet20"))
    epochs: int = parameter(6, "Training epochs.", flag="integer", lower_bound=1)
    probe_per_class: int = parameter(30, "Probe examples per class, from the training and "
                                     "from the validation split.", flag="integer",
                                     lower_bound=1)

    def check(self) -> None:
        if self.dataset not in DATASETS:
            raise StudyInputError(f"dataset: expected one with super-classes {DATASETS}, "
                                  f"got {self.dataset!r}")
        super().check()


#: The synthetic hierarchy's default options (`Cifar100SuperclassConfig`).
DATA_DEFAULTS = Cifar100SuperclassConfig.DATA_DEFAULTS


# The entry point, from the config.
run_cifar100_superclass = seeds_lib.study_function(
    Cifar100SuperclassConfig, class_study, name="run_cifar100_superclass",
    description="""The super-class study (see the module docstring): the class study with
    the defaults of `Cifar100SuperclassConfig`; `dataset` must have super-classes (one of
    `DATASETS`).""",
    figures=seed_figures, tensorboard=seed_tensorboard, headline=seed_headline)
