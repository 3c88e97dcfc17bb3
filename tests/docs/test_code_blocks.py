"""Every ```python and ```bash block of the README, the science page and the guides.

Fast: each Python block parses and reads no name it does not bind or import (a block that
uses the reader's `x_train` fails here), every block's mark is known, and the README's quick
start runs. Slow: every page's blocks run in order, as pasted, in a scratch directory.
"""

import re

import pytest

from tests.docs._pages import ROOT, blocks

PAGES = blocks.pages()
ALL = [b for page in PAGES for b in blocks.extract(page)]


def test_the_pages_exist_and_have_blocks():
    names = {p.name for p in PAGES}
    assert {"README.md", "science.md", "custom-rules.md", "scale.md", "tracin.md"} <= names
    assert sum(b.lang == "python" for b in ALL) >= 10


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "python"], ids=lambda b: b.label)
def test_python_block_is_self_contained(block):
    compile(block.body, block.label, "exec")
    assert blocks.undefined_names(block.body) == set(), (
        f"{block.label} reads names it never defines: paste-and-run fails")


def test_the_self_containment_check_can_fail():
    assert blocks.undefined_names("import numpy as np\nprint(np.mean(x_train))") == {"x_train"}
    assert blocks.undefined_names("def f(a):\n    return [b for b in a]\nf([1])") == set()


def test_marks_are_read_from_the_comment_before_the_fence(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("text\n\n<!-- block: network -->\n```bash\ncurl x\n```\n\n```python\n"
                    "print(1)\n```\n", encoding="utf-8")
    first, second = blocks.extract(page)
    assert (first.marks, second.marks) == (("network",), ())
    page.write_text("<!-- block: nosuch -->\n```bash\nls\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="nosuch"):
        blocks.extract(page)


def test_the_readme_blocks_not_run_are_the_installing_ones():
    readme = [b for b in ALL if b.path == "README.md"]
    assert "install" in readme[0].marks and "## Two commands" in (ROOT / "README.md").read_text(
        encoding="utf-8").split("\n" + "`" * 3)[0]
    for b in readme:
        assert ("install" in b.marks) == ("pip install" in b.body), b.label
        assert not set(b.marks) & {"network", "template"}, b.label


def test_network_blocks_are_the_ones_that_download():
    for b in ALL:
        commands = " ".join(line.split("#")[0] for line in b.body.splitlines())
        downloads = bool(re.search(r"--dataset (mnist|fashion_mnist|cifar|glue|imdb)\b",
                                   commands))
        assert downloads == ("network" in b.marks), b.label


def test_readme_quick_start_runs(tmp_path):
    quick = next(b for b in ALL if b.path == "README.md" and "tfs.gradient_gram" in b.body
                 and b.lang == "python")
    proc = blocks.run(quick, tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "xi" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_blocks_run_as_pasted(page, capsys):
    failures = blocks.run_page(page, slow=True)
    assert failures == [], capsys.readouterr().out[-6000:]
