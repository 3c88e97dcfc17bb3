"""The tutorials run top to bottom (nbclient), offline, and carry their executed outputs."""

import json
import os
import time

import pytest

from tests.docs._pages import ROOT

NOTEBOOKS = sorted((ROOT / "docs" / "tutorials").glob("*.ipynb"))
MAX_SECONDS = 600  # each is meant to take under 3 minutes here; a loaded machine is slower


def test_the_four_tutorials_are_there_with_stored_outputs():
    assert [n.stem[:2] for n in NOTEBOOKS] == ["01", "02", "03", "04"]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{path.name}: not executed"
        errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{path.name}: stored outputs hold an error"
        assert any("image/png" in o.get("data", {}) for c in code for o in c["outputs"]), (
            f"{path.name}: no figure stored")
        assert path.stat().st_size < 600_000, f"{path.name}: keep PNG outputs small"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT),
                                                                   os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(path, as_version=4)
    start = time.time()
    nbclient.NotebookClient(notebook, timeout=MAX_SECONDS, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert time.time() - start < MAX_SECONDS
