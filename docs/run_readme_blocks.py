"""Runs every ```bash and ```python block of README.md in order, in the current directory.

Each block runs in its own process; the two-machine TF_CONFIG template (it names host1) is
skipped. Prints each block's status, wall time and last lines. Used for the clean-clone
check recorded in BUILD_NOTES.md.

Usage:
    python docs/run_readme_blocks.py README.md [--skip-first]   # --skip-first: not the
                                                                 # two-commands block
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path


def main(path: str, skip_first: bool) -> int:
    text = Path(path).read_text(encoding="utf-8")
    blocks = [(m.group(1), m.group(2), text[:m.start()].count("\n") + 1)
              for m in re.finditer(r"```(bash|python)\n(.*?)```", text, re.DOTALL)]
    failed = 0
    for i, (lang, body, line) in enumerate(blocks):
        if "host1" in body or (skip_first and i == 0):
            print(f"== block {i} (line {line}, {lang}): skipped", flush=True)
            continue
        start = time.time()
        command = ["bash", "-ec", body] if lang == "bash" else [sys.executable, "-c", body]
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        failed += proc.returncode != 0
        status = "ok" if proc.returncode == 0 else f"FAILED rc={proc.returncode}"
        print(f"== block {i} (line {line}, {lang}): {status} in {time.time() - start:.0f}s")
        for tail in (proc.stdout + proc.stderr).strip().splitlines()[-6:]:
            print("   | " + tail[:220], flush=True)
    print(f"{len(blocks)} blocks, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--skip-first" in sys.argv))
