"""What made a stage checkpoint: the run's settings and the digests of its inputs, saved in it.

A stage file of one run copied into another run's directory, or one left behind when
``config.json`` was removed and the run restarted with other flags, would otherwise be resumed
as if this run had made it. `OutputDir.save_stage` stores `record` in every stage;
`OutputDir.done` checks it with `check` and refuses a stage made by other settings or inputs,
naming each difference. Stages written before this record existed carry none: they are
accepted when the directory's ``config.json`` matched this run's settings (it was checked when
the directory was opened), and refused when there was no ``config.json`` to match them to.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tfstiffness.errors import ConfigMismatchError

__all__ = ["KEY", "bytes_digest", "check", "file_digest", "record"]

#: The entry of a stage's ``.npz`` that holds its record.
KEY = "_made_by"


def file_digest(path: str | os.PathLike) -> str:
    """blake2b (128 bits, hex) of a file's contents, read in 1 MiB chunks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bytes_digest(*arrays: Any) -> str:
    """blake2b (128 bits, hex) of arrays' dtypes, shapes and bytes, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def record(config: Mapping[str, Any], inputs: Mapping[str, str]) -> np.ndarray:
    """The 0-d string array a stage stores: the settings (JSON) and the input digests."""
    return np.array(json.dumps({"config": config, "inputs": dict(inputs)}, sort_keys=True))


def check(path: Path, saved: Any, config: Mapping[str, Any], inputs: Mapping[str, str],
          config_matched: bool) -> None:
    """Refuses the stage at `path` unless its record (`saved`, None: none) is this run's.

    Args:
        path: The stage file (named in the message).
        saved: Its `KEY` entry, or None for a stage written before records existed.
        config: This run's settings (as in ``config.json``).
        inputs: This run's input digests (name -> digest).
        config_matched: Whether the directory held a ``config.json`` equal to `config` when
            it was opened (so a stage without a record can be trusted).

    Raises:
        ConfigMismatchError: naming each differing setting or input, the stage's value and
            this run's.
    """
    advice = (f"Delete {path} to redo that stage, or use another output directory for these "
              "settings.")
    if saved is None:
        if config_matched:
            return
        raise ConfigMismatchError(
            f"stage checkpoint {path} records no settings (written by an older version) and "
            f"the directory had no config.json to match it to. {advice}")
    made_by = json.loads(str(saved))
    differences = [f"{key}: stage {made_by['config'].get(key, '<absent>')}, now "
                   f"{config.get(key, '<absent>')}"
                   for key in sorted(set(made_by["config"]) | set(config))
                   if made_by["config"].get(key) != config.get(key)]
    stage_inputs = made_by["inputs"]
    differences += [f"{name}: stage digest {stage_inputs.get(name, '<absent>')}, now "
                    f"{inputs.get(name, '<absent>')}"
                    for name in sorted(set(stage_inputs) | set(inputs))
                    if stage_inputs.get(name) != inputs.get(name)]
    if differences:
        raise ConfigMismatchError(
            f"stage checkpoint {path} was made by other settings or inputs than this run's "
            f"({'; '.join(differences)}); resuming it would mix two runs' numbers. {advice}")
