"""Thin wrapper: the binary lives in `tfstiffness.cli.neighbourhoods`
(installed as `tfstiffness-neighbourhoods`).

    python experiments/neighbourhoods.py --help
"""

import os
import sys

# Run from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags

from tfstiffness.cli import neighbourhoods as binary
from tfstiffness.cli.neighbourhoods import main, run

flags.adopt_module_key_flags(binary)  # So that --help lists the binary's flags.

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
