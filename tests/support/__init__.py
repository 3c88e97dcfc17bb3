"""What the tests share: the brute-force reference, model zoos, subprocess jobs."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
