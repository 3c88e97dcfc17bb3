"""The docs site's sources: the API reference covers `tfs.__all__`, the README is a front page,
relative links resolve. (The build itself: `mkdocs build --strict`, see BUILD_NOTES.md.)"""

import re

import pytest

import tfstiffness as tfs
from tests.docs._pages import ROOT, api_reference, blocks


def test_api_reference_has_a_page_for_every_public_name():
    entries = api_reference.api_entries()
    assert [e.name for e in entries] == list(tfs.__all__)
    assert len({e.uri.lower() for e in entries}) == len(entries)  # no clash on any file system


def test_api_pages_document_each_export_where_it_is_defined():
    import importlib

    for e in api_reference.api_entries():
        module, _, name = e.target.rpartition(".")
        if e.kind == "export":
            assert getattr(importlib.import_module(module), name) is getattr(tfs, e.name)
        else:
            assert importlib.import_module(e.target).__name__ == e.target


def test_api_reference_follows_a_move(tmp_path):
    package = tmp_path / "tfstiffness"
    package.mkdir()
    text = (ROOT / "tfstiffness" / "__init__.py").read_text(encoding="utf-8")
    moved, count = re.subn(r'"stiffness_vs_distance": "[\w.]+"',
                           '"stiffness_vs_distance": "measures.moved_here"', text)
    assert count == 1
    (package / "__init__.py").write_text(moved, encoding="utf-8")
    entry = next(e for e in api_reference.api_entries(tmp_path)
                 if e.name == "stiffness_vs_distance")
    assert entry.target == "tfstiffness.measures.moved_here.stiffness_vs_distance"
    page = api_reference.page(entry, {}, [entry])
    assert "::: tfstiffness.measures.moved_here.stiffness_vs_distance" in page


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    for section in ("## Two commands", "## Quick start", "## What is in it",
                    "## Supported environments", "## How to cite"):
        assert section in text
    assert text.count("![") >= 1


def _links(path):
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", [*blocks.pages(), *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for link in _links(page):
        if re.match(r"[a-z]+:", link) or link.startswith("#"):
            continue
        target = link.split("#")[0]
        if target.startswith(("api/", "../api/")) or "/api/" in target:
            continue  # generated at build time
        assert (page.parent / target).exists(), f"{page.name}: {link}"


def test_tutorial_links_resolve():
    import json

    for nb in sorted((ROOT / "docs" / "tutorials").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        for cell in cells:
            if cell["cell_type"] != "markdown":
                continue
            for link in re.findall(r"\]\(([^)\s]+)\)", "".join(cell["source"])):
                target = link.split("#")[0]
                if target.startswith("../api/"):
                    continue
                assert (nb.parent / target).exists(), f"{nb.name}: {link}"


def test_tutorial_links_become_site_urls():
    html = ('<a href="../guides/custom-rules.md#the-contract">a</a> <a href="../api/index.md">b</a>'
            ' <a href="../science.md">c</a> <a href="https://x.org/a.md">d</a>')
    assert api_reference.notebook_links(html) == (
        '<a href="../../guides/custom-rules/#the-contract">a</a> <a href="../../api/">b</a>'
        ' <a href="../../science/">c</a> <a href="https://x.org/a.md">d</a>')


def test_every_guide_and_tutorial_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = [*sorted((ROOT / "docs" / "guides").glob("*.md")),
             *sorted((ROOT / "docs" / "tutorials").glob("*.ipynb")), ROOT / "docs" / "science.md"]
    for path in pages:
        assert str(path.relative_to(ROOT / "docs")) in nav, f"{path.name} is not in mkdocs.yml's nav"


@pytest.mark.slow
def test_site_builds_strict_with_the_arguments_of_the_core_functions(tmp_path):
    import inspect
    import os
    import subprocess
    import sys

    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "--site-dir", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                          text=True, check=False, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("gradient_gram", "stiffness_summary"):
        html = (tmp_path / "site" / "api" / name / "index.html").read_text(encoding="utf-8")
        table = html.split("Parameters", 1)[1]
        for parameter in inspect.signature(getattr(tfs, name)).parameters:
            assert f"<code>{parameter}</code>" in table, (name, parameter)
