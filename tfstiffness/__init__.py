"""tfstiffness: stiffness (per-example gradient alignment) of TensorFlow 2 / Keras 3 models.

The core: `gradient_gram` computes exact Gram matrices of per-example loss gradients; the
measures turn them into sign and cosine stiffness, class matrices, distance curves and the
critical length; `alignment` reads the gradient-alignment family (m-coherence, gradient
diversity and confusion) from the same matrices, `uncertainty` gives bootstrap intervals and
`influence` TracIn scores along training. Submodules: `models`, `data`, `synthetic`, `plots`, `summary`, `probes`,
`studies`.

Every name is imported on first use (PEP 562): ``import tfstiffness`` does not import
TensorFlow, so the command-line binaries can quieten TensorFlow's start-up logging before
it loads, and tensorflow-datasets and matplotlib load only when needed.
"""

import importlib

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
    "roc_auc": "neighbourhood",
    "StiffnessSummary": "streaming",
    "stiffness_summary": "streaming",
    "AlignmentStatistics": "alignment",
    "alignment_statistics": "alignment",
    "class_m_coherence": "alignment",
    "gradient_confusion": "alignment",
    "gradient_diversity": "alignment",
    "m_coherence": "alignment",
    "train_val_alignment": "alignment",
    "BootstrapInterval": "uncertainty",
    "bootstrap": "uncertainty",
    "TracInAccumulator": "influence",
    "TracInCallback": "influence_callback",
    "TracInResult": "influence",
    "tracin": "influence",
    "register_rule": "rules",
}

# Submodules reachable as attributes (`tfs.data`, `tfs.plots`, ...).
_SUBMODULES = ("cifar100_labels", "data", "experiment", "models", "plots", "probes", "rules",
               "studies", "summary", "synthetic")


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


__all__ = [*_EXPORTS, *_SUBMODULES]  # noqa: PLE0604 (strings: the keys above)
