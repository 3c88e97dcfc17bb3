"""TracIn influence along training (Pruthi et al. 2020), through the stiffness engine.

- `tracin`: `tracin` scores from checkpoints, `TracInAccumulator`, `TracInResult`.
- `checkpoints`: checkpoints checked and loaded (`architecture`, `checked_checkpoints`,
  `load_checkpoints`, `checked_learning_rates`).
- `callback`: `TracInCallback`, checkpoints taken during `fit`.
- `label_noise`: the flipped-label experiment.
- `plots`: its figures.
"""

from tfstiffness.influence.checkpoints import architecture
from tfstiffness.influence.tracin import KINDS, TracInAccumulator, TracInResult, tracin

__all__ = ["KINDS", "TracInAccumulator", "TracInResult", "architecture", "tracin"]
