"""Measures on Gram matrices (numpy only; nothing here imports TensorFlow).

- `stiffness`: sign and cosine stiffness, class and super-class matrices, distance curves and
  the critical length.
- `alignment`: m-coherence, gradient diversity and confusion.
- `uncertainty`: bootstrap intervals.
- `neighbourhood`: neighbourhood stiffness and the boundary AUC (Walker 2023).
- `layerwise`: stiffness of each layer's gradients.
- `input_space`: the input distance of STIFFNESS.md.
"""

from tfstiffness.measures.stiffness import (
    CRITICAL_LENGTH_METHODS,
    CRITICAL_LENGTH_STATUSES,
    PAIR_KINDS,
    STIFFNESS_KINDS,
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

__all__ = [
    "CRITICAL_LENGTH_METHODS", "CRITICAL_LENGTH_STATUSES", "PAIR_KINDS", "STIFFNESS_KINDS",
    "CriticalLength", "StiffnessCurve", "class_stiffness", "count_zero_gradients",
    "critical_length", "input_distances", "stiffness_matrix", "stiffness_vs_distance",
    "superclass_contrast", "superclass_matrix", "superclass_order", "within_between",
]
