"""TracIn influence along training (Pruthi et al. 2020), through the stiffness engine.

- `tracin`: `tracin` scores from checkpoints, `TracInAccumulator`, `TracInResult`.
- `callback`: `TracInCallback`, checkpoints taken during `fit`.
- `label_noise`: the flipped-label experiment.
- `plots`: its figures.
"""

from tfstiffness.influence.tracin import (
    KINDS,
    TracInAccumulator,
    TracInResult,
    architecture,
    tracin,
)

__all__ = ["KINDS", "TracInAccumulator", "TracInResult", "architecture", "tracin"]
