"""Memory budgets from the device the computation runs on, not fixed constants.

Two budgets size the engine's work: the band of cached row factors (`tiling.gram_blocks`) and
the generic paths' blocks of materialised per-example gradients. Each is a share of the
memory still free where the computation runs, capped at the size measured best on the
development machine (1 GiB and 256 MiB; BUILD_NOTES.md), so a large host keeps today's
behaviour and a small device gets smaller bands and blocks:

- on a GPU: its memory limit (a `tf.config.LogicalDeviceConfiguration` limit if one is set,
  else the card's total from `nvidia-smi`) minus what TensorFlow already holds there
  (`tf.config.experimental.get_memory_info`);
- on a CPU: the host's available memory (`MemAvailable`).

Only the CPU branch has run here (no GPU was lent to this project): the GPU branch is
written from TensorFlow's documented API and tested with that API simulated.
"""

from __future__ import annotations

import os
import shutil
import subprocess

FACTOR_CACHE_CAP = 1 << 30
GENERIC_BLOCK_CAP = 256 << 20
# Shares of the free memory: the cache lives through a whole run; a generic block exists
# several times over while `tf.vectorized_map` runs (about 3 x block x P floats).
CACHE_SHARE = 1 / 8
BLOCK_SHARE = 1 / 32
_FLOOR = 16 << 20  # never plan in less: a budget this small means the device is full


def host_available_bytes() -> int | None:
    """The host's available memory in bytes (`MemAvailable`), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_available_bytes(device: str | None = None) -> int | None:
    """Bytes the computation may still use on `device` ("GPU:0", "CPU:0"; default: the first
    GPU TensorFlow sees, else the CPU), or None when unknown."""
    import tensorflow as tf

    if device is None:
        gpus = tf.config.list_logical_devices("GPU")
        device = gpus[0].name if gpus else "CPU:0"
    if "GPU" not in device.upper():
        return host_available_bytes()
    limit = gpu_memory_limit(device)
    if limit is None:
        return None
    held = tf.config.experimental.get_memory_info(device)["current"]
    return max(limit - int(held), 0)


def gpu_memory_limit(device: str) -> int | None:
    """A GPU's memory limit in bytes: the logical device's configured limit, else the card's
    total memory from nvidia-smi, else None."""
    import tensorflow as tf

    index = int(device.rsplit(":", 1)[-1]) if ":" in device else 0
    physical = tf.config.list_physical_devices("GPU")
    if index < len(physical):
        configs = tf.config.get_logical_device_configuration(physical[index]) or []
        limits = [c.memory_limit for c in configs if getattr(c, "memory_limit", None)]
        if limits:
            return int(limits[0]) << 20  # configured in MiB
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        command = ["nvidia-smi", "--query-gpu=memory.total",
                   "--format=csv,noheader,nounits", f"--id={index}"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=10,
                             check=True).stdout
        return int(out.split()[0]) << 20  # MiB
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def factor_cache_bytes(available: int | None) -> int:
    """The budget of cached row factors for `available` free bytes (None: unknown)."""
    return _share(available, CACHE_SHARE, FACTOR_CACHE_CAP)


def generic_block_bytes(available: int | None) -> int:
    """The budget of one generic block's per-example gradients for `available` free bytes."""
    return _share(available, BLOCK_SHARE, GENERIC_BLOCK_CAP)


def _share(available: int | None, share: float, cap: int) -> int:
    if available is None:
        return cap
    return int(max(_FLOOR, min(cap, available * share)))
