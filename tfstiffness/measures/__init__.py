"""Measures on Gram matrices (numpy only; nothing here imports TensorFlow).

- `stiffness`: sign and cosine stiffness, class and super-class matrices.
- `distance_curves`: stiffness against input distance and the critical length.
- `alignment`: m-coherence, gradient diversity and confusion.
- `uncertainty`: bootstrap intervals.
- `neighbourhood`: neighbourhood stiffness and the boundary AUC (Walker 2023).
- `layerwise`: stiffness of each layer's gradients.
- `input_space`: the input distance of STIFFNESS.md.
"""

from tfstiffness.measures.distance_curves import (
    CRITICAL_LENGTH_METHODS,
    CRITICAL_LENGTH_STATUSES,
    PAIR_KINDS,
    CriticalLength,
    StiffnessCurve,
    critical_length,
    stiffness_vs_distance,
)
from tfstiffness.measures.input_space import input_distances
from tfstiffness.measures.stiffness import (
    STIFFNESS_KINDS,
    class_stiffness,
    count_zero_gradients,
    stiffness_matrix,
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
