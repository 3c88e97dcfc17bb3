"""Thin wrapper of `tfstiffness.cli.cifar100_superclass`
(installed as `tfstiffness-cifar100-superclass`).

    python experiments/cifar100_superclass.py --help
"""

import os
import sys

# Run from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfstiffness.cli.cifar100_superclass import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
