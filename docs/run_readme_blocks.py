"""Extracts and runs the ```bash and ```python blocks of README.md and the docs' guides.

A page's blocks run in order, each in its own process, in one scratch directory per page
(a shell block may use the file a Python block before it wrote). A block may be marked by
an HTML comment on the line before its fence (invisible on GitHub and on the site):

    <!-- block: network -->    needs the network (a real tfds download): never run here
    <!-- block: template -->   not runnable as it stands (the two-machine TF_CONFIG template)
    <!-- block: install -->    installs the package (the README's "Two commands"): not run
    <!-- block: slow -->       run only with --slow (pytest: the slow tests)

tests/docs/test_code_blocks.py runs these through the same functions. From the command line:

    python docs/run_readme_blocks.py README.md docs/guides/*.md [--slow]
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKS = ("network", "template", "install", "slow")
NEVER_RUN = ("network", "template", "install")
_FENCE = re.compile(r"^```(bash|python)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_MARK = re.compile(r"<!-- block: ([a-z, ]+) -->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    path: str
    line: int
    lang: str
    body: str
    marks: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.path}:{self.line} ({self.lang})"


def pages() -> list[Path]:
    """README.md, the science page and every guide: the pages whose blocks are checked."""
    return [ROOT / "README.md", ROOT / "docs" / "science.md",
            *sorted((ROOT / "docs" / "guides").glob("*.md"))]


def extract(path: str | os.PathLike) -> list[Block]:
    """The page's ```bash and ```python blocks, with the marks of the comment before each."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        shown = str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        shown = str(path)
    blocks = []
    for m in _FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found = _MARK.search(before)
        marks = tuple(w.strip() for w in found.group(1).split(",")) if found else ()
        unknown = set(marks) - set(MARKS)
        if unknown:
            raise ValueError(f"{shown}: unknown block mark(s) {sorted(unknown)}; known: {MARKS}")
        blocks.append(Block(shown, text[:m.start()].count("\n") + 1, m.group(1), m.group(2),
                            marks))
    return blocks


def undefined_names(source: str) -> set[str]:
    """Names a Python block reads but never binds or imports (scopes ignored: conservative)."""
    tree = ast.parse(source)
    bound, read = set(dir(builtins)), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return read - bound


def run(block: Block, cwd: str | os.PathLike, timeout: float = 900) -> subprocess.CompletedProcess:
    """Runs one block in ``cwd`` with this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("MPLBACKEND", "Agg")
    command = (["bash", "-ec", block.body] if block.lang == "bash"
               else [sys.executable, "-c", block.body])
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout, check=False)


def run_page(path: str | os.PathLike, slow: bool = False, out=sys.stdout) -> list[str]:
    """Runs a page's blocks in order in a scratch directory; returns the failures' labels."""
    failures = []
    with tempfile.TemporaryDirectory(prefix="blocks-") as cwd:
        for block in extract(path):
            skip = [m for m in block.marks if m in NEVER_RUN or (m == "slow" and not slow)]
            if skip:
                print(f"== {block.label}: skipped ({', '.join(skip)})", file=out, flush=True)
                continue
            start = time.time()
            proc = run(block, cwd)
            status = "ok" if proc.returncode == 0 else f"FAILED rc={proc.returncode}"
            print(f"== {block.label}: {status} in {time.time() - start:.0f}s", file=out)
            if proc.returncode:
                failures.append(block.label)
                for tail in (proc.stdout + proc.stderr).strip().splitlines()[-12:]:
                    print("   | " + tail[:220], file=out, flush=True)
    return failures


def main(argv: list[str]) -> int:
    slow = "--slow" in argv
    paths = [a for a in argv if not a.startswith("--")] or [str(p) for p in pages()]
    failures = [f for p in paths for f in run_page(p, slow=slow)]
    print(f"{len(failures)} failed" + (": " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
