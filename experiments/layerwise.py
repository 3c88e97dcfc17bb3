"""Thin wrapper: the binary lives in `tfstiffness.cli.layerwise`
(installed as `tfstiffness-layerwise`).

    python experiments/layerwise.py --help
"""

import os
import sys

# Run from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags

from tfstiffness.cli import layerwise as binary
from tfstiffness.cli.layerwise import main, run

flags.adopt_module_key_flags(binary)  # So that --help lists the binary's flags.

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
