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


def run_child(script: str, *args: str) -> dict:
    """Runs `script args` in a fresh Python; returns its last JSON line plus its peak RSS."""
    proc = subprocess.Popen([sys.executable, script, *args], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} exited with {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_gb"] = usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
    return result
