"""Imports docs/run_readme_blocks.py and the docs hook (they live under docs/, not in a package)."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load(relative: str):
    name = "tfstiffness_docs_" + Path(relative).stem
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


blocks = load("docs/run_readme_blocks.py")
api_reference = load("docs/_hooks/api_reference.py")
