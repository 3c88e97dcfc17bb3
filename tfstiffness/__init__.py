"""tfstiffness: stiffness (per-example gradient alignment) of TensorFlow 2 / Keras 3 models.

The core: `gradient_gram` computes exact Gram matrices of per-example loss gradients; the
measures turn them into sign and cosine stiffness, class matrices, distance curves and the
critical length. Submodules: `models`, `data`, `synthetic`, `plots`, `summary`, `probes`,
`studies`.

Every name is imported on first use (PEP 562): ``import tfstiffness`` does not import
TensorFlow, so the command-line binaries can quieten TensorFlow's start-up logging before
it loads, and tensorflow-datasets and matplotlib load only when needed.
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "StiffnessCallback": "callback",
    "load_history": "callback",
    "GradientGram": "gram",
    "gradient_gram": "gram",
    "LayerStiffness": "layerwise",
    "layerwise_stiffness": "layerwise",
    "CriticalLength": "measures",
    "StiffnessCurve": "measures",
    "class_stiffness": "measures",
    "count_zero_gradients": "measures",
    "critical_length": "measures",
    "input_distances": "measures",
    "stiffness_matrix": "measures",
    "stiffness_vs_distance": "measures",
    "superclass_contrast": "measures",
    "superclass_matrix": "measures",
    "superclass_order": "measures",
    "within_between": "measures",
    "BoundaryAUC": "neighbourhood",
    "NeighbourhoodStiffness": "neighbourhood",
    "boundary_auc": "neighbourhood",
    "neighbourhood_stiffness": "neighbourhood",
    "StiffnessSummary": "streaming",
    "stiffness_summary": "streaming",
}

# Submodules reachable as attributes (`tfs.data`, `tfs.plots`, ...).
_SUBMODULES = ("cifar100_labels", "data", "experiment", "models", "plots", "probes", "studies",
               "summary", "synthetic")


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"tfstiffness.{_EXPORTS[name]}"), name)
        globals()[name] = value  # Later look-ups skip this function.
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"tfstiffness.{name}")
    raise AttributeError(f"module 'tfstiffness' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))


if TYPE_CHECKING:  # For static analysis and editors; at run time names load on first use.
    from tfstiffness import (
        cifar100_labels,
        data,
        experiment,
        models,
        plots,
        probes,
        studies,
        summary,
        synthetic,
    )
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
    from tfstiffness.neighbourhood import (
        BoundaryAUC,
        NeighbourhoodStiffness,
        boundary_auc,
        neighbourhood_stiffness,
    )
    from tfstiffness.streaming import StiffnessSummary, stiffness_summary

__all__ = [
    "BoundaryAUC",
    "CriticalLength",
    "GradientGram",
    "LayerStiffness",
    "NeighbourhoodStiffness",
    "StiffnessCallback",
    "StiffnessCurve",
    "StiffnessSummary",
    "boundary_auc",
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
    "probes",
    "stiffness_matrix",
    "stiffness_summary",
    "stiffness_vs_distance",
    "studies",
    "summary",
    "superclass_contrast",
    "superclass_matrix",
    "superclass_order",
    "synthetic",
    "within_between",
]
