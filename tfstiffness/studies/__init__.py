"""The stiffness studies: one module per study, mirroring `tfstiffness.cli`, over one runner.

- `class_stiffness`: class stiffness through training (the paper's Sec. 4.1-4.2); the class
  study that the next two reuse with their own defaults.
- `cifar100_superclass`: the same on 100 classes in 20 super-classes, with the super-class
  matrix and contrast.
- `text_transformer`: a small transformer on text, distances in its pooled representation.
- `learning_rate_study`: one run per learning rate; xi through training; comparisons at equal
  epoch and at equal training loss.
- `neighbourhoods`: Walker's neighbourhood stiffness on the two-arcs grid.
- `layerwise`: Walker's stiffness through the layers of small MLPs.

`seeds` repeats any of them over seeds (``seeds=[0, 1, 2]``, the binaries' ``--seeds``): one
resumable run per seed and the mean with a Student-t interval across seeds.

Each study's parameters are one dataclass (`config.StudyConfig`: `ClassStiffnessConfig`,
`NeighbourhoodsConfig`, ...), from which its ``run_*`` arguments, its seed loop, its
``config.json`` and its binary's flags derive.

`runner` holds what every study shares: checked arguments and output directory, data and
fixed probes, the resumable measured training loop with live TensorBoard
(`probes.ProbeSets`, the measuring code of `StiffnessCallback` too) and the final files
and lines; beside it `model_factory` (models by name), `results` (summary.json's entries),
`progress` (the time left, number formatting). Each ``run_*`` function writes into one
locked `run_directory.OutputDir` and resumes after an interruption.

Importing this package does not import TensorFlow (the binaries quieten it first).

Example:
    >>> from tfstiffness import studies
    >>> studies.validation_split("mnist")
    'test'
"""

from tfstiffness.errors import StudyInputError
from tfstiffness.studies.cifar100_superclass import run_cifar100_superclass
from tfstiffness.studies.class_stiffness import run_class_stiffness
from tfstiffness.studies.influence import run_influence
from tfstiffness.studies.layerwise import run_layerwise
from tfstiffness.studies.learning_rate_study import (
    at_loss_levels,
    common_loss_levels,
    run_learning_rate_study,
)
from tfstiffness.studies.model_factory import MODELS, build_model
from tfstiffness.studies.neighbourhoods import run_neighbourhoods
from tfstiffness.studies.runner import PAIRS, load_splits, validation_split
from tfstiffness.studies.saved_model import run_summary
from tfstiffness.studies.text_transformer import run_text_transformer

__all__ = [
    "MODELS",
    "PAIRS",
    "StudyInputError",
    "at_loss_levels",
    "build_model",
    "common_loss_levels",
    "load_splits",
    "run_cifar100_superclass",
    "run_class_stiffness",
    "run_influence",
    "run_layerwise",
    "run_learning_rate_study",
    "run_neighbourhoods",
    "run_summary",
    "run_text_transformer",
    "validation_split",
]
