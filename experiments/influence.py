"""Thin wrapper of `tfstiffness.cli.influence`
(installed as `tfstiffness-influence`).

    python experiments/influence.py --help
"""

import os
import sys

# Run from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfstiffness.cli.influence import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
