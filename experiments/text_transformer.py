"""Thin wrapper: the binary lives in `tfstiffness.cli.text_transformer`
(installed as `tfstiffness-text-transformer`).

    python experiments/text_transformer.py --help
"""

import os
import sys

# Run from a checkout without installing: make the package next to this folder importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags

from tfstiffness.cli import text_transformer as binary
from tfstiffness.cli.text_transformer import main, run

flags.adopt_module_key_flags(binary)  # So that --help lists the binary's flags.

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
