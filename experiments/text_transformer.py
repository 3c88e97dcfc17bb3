"""Thin wrapper of `tfstiffness.cli.text_transformer`
(installed as `tfstiffness-text-transformer`).

    python experiments/text_transformer.py --help
"""

import os
import sys

# Run from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfstiffness.cli.text_transformer import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
