"""Shared helpers for the benchmark scripts: steady-state timing and per-process peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def timed(fn, repeats: int = 1) -> float:
    """Best wall time of `repeats` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM) in GiB.

    Read by the process itself: `ru_maxrss` from `wait4` also counts the pre-exec copy of a
    large parent, which inflated early measurements here.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    raise RuntimeError("VmHWM not found in /proc/self/status")


def report(result: dict) -> None:
    """Prints a child's result, with its peak RSS, as the JSON line `run_child` reads."""
    print(json.dumps({**result, "peak_rss_gb": peak_rss_gb()}), flush=True)


def run_child(script: str, *args: str) -> dict:
    """Runs `script args` in a fresh Python and returns the JSON line it `report`ed last."""
    out = subprocess.run([sys.executable, script, *args], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), check=True).stdout
    return json.loads(out.strip().splitlines()[-1])
