"""tfstiffness: stiffness (per-example gradient alignment) of TensorFlow 2 / Keras 3 models.

The core: `gradient_gram` computes exact Gram matrices of per-example loss gradients; the
measures turn them into sign and cosine stiffness, class matrices, distance curves and the
critical length. Submodules: `models`, `data`, `synthetic`, `plots`, `summary`.
"""

import importlib

from tfstiffness.callback import StiffnessCallback, load_history
from tfstiffness.gram import GradientGram, gradient_gram
from tfstiffness.layerwise import LayerStiffness, layerwise_stiffness
from tfstiffness.measures import (
    CriticalLength,
    StiffnessCurve,
    class_stiffness,
    count_zero_gradients,
    critical_length,
    input_distances,
    stiffness_matrix,
    stiffness_vs_distance,
    superclass_contrast,
    superclass_matrix,
    superclass_order,
    within_between,
)
from tfstiffness.neighbourhood import NeighbourhoodStiffness, neighbourhood_stiffness
from tfstiffness.rules import register_rule
from tfstiffness.streaming import StiffnessSummary, stiffness_summary

__version__ = "0.1.0"

# Imported on first use: tensorflow-datasets and matplotlib are slow to import.
_SUBMODULES = ("cifar100_labels", "data", "experiment", "models", "plots", "summary",
               "synthetic", "walker")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"tfstiffness.{name}")
    raise AttributeError(f"module 'tfstiffness' has no attribute {name!r}")


__all__ = [
    "CriticalLength",
    "GradientGram",
    "LayerStiffness",
    "NeighbourhoodStiffness",
    "StiffnessCallback",
    "StiffnessCurve",
    "StiffnessSummary",
    "cifar100_labels",
    "class_stiffness",
    "count_zero_gradients",
    "critical_length",
    "data",
    "experiment",
    "gradient_gram",
    "input_distances",
    "layerwise_stiffness",
    "load_history",
    "models",
    "neighbourhood_stiffness",
    "plots",
    "register_rule",
    "rules",
    "stiffness_matrix",
    "stiffness_summary",
    "stiffness_vs_distance",
    "summary",
    "superclass_contrast",
    "superclass_matrix",
    "superclass_order",
    "synthetic",
    "walker",
    "within_between",
]
