"""tfstiffness: stiffness (per-example gradient alignment) of TensorFlow 2 / Keras 3 models.

The core: `gradient_gram` computes exact Gram matrices of per-example loss gradients; the
measures turn them into sign and cosine stiffness, class matrices, distance curves and the
critical length; `alignment` reads the gradient-alignment family (m-coherence, gradient
diversity and confusion) from the same matrices and `uncertainty` gives bootstrap intervals.
Submodules: `models`, `data`, `synthetic`, `plots`, `summary`.
"""

import importlib

from tfstiffness.alignment import (
    AlignmentStatistics,
    alignment_statistics,
    class_m_coherence,
    gradient_confusion,
    gradient_diversity,
    m_coherence,
    train_val_alignment,
)
from tfstiffness.callback import StiffnessCallback, load_history
from tfstiffness.gram import GradientGram, gradient_gram
from tfstiffness.influence import TracInAccumulator, TracInResult, tracin
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
from tfstiffness.streaming import StiffnessSummary, stiffness_summary
from tfstiffness.uncertainty import BootstrapInterval, bootstrap

__version__ = "0.1.0"

# Imported on first use: tensorflow-datasets and matplotlib are slow to import.
_SUBMODULES = ("cifar100_labels", "data", "experiment", "models", "plots", "summary",
               "synthetic", "walker")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"tfstiffness.{name}")
    raise AttributeError(f"module 'tfstiffness' has no attribute {name!r}")


__all__ = [
    "AlignmentStatistics",
    "BootstrapInterval",
    "CriticalLength",
    "GradientGram",
    "LayerStiffness",
    "NeighbourhoodStiffness",
    "StiffnessCallback",
    "StiffnessCurve",
    "StiffnessSummary",
    "TracInAccumulator",
    "TracInResult",
    "alignment_statistics",
    "bootstrap",
    "cifar100_labels",
    "class_m_coherence",
    "class_stiffness",
    "count_zero_gradients",
    "critical_length",
    "data",
    "experiment",
    "gradient_confusion",
    "gradient_diversity",
    "gradient_gram",
    "input_distances",
    "layerwise_stiffness",
    "load_history",
    "m_coherence",
    "models",
    "neighbourhood_stiffness",
    "plots",
    "stiffness_matrix",
    "stiffness_summary",
    "stiffness_vs_distance",
    "summary",
    "superclass_contrast",
    "superclass_matrix",
    "superclass_order",
    "synthetic",
    "tracin",
    "train_val_alignment",
    "walker",
    "within_between",
]
