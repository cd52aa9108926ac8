"""Every nbval marker in the notebooks is one nbval recognises.

nbval reads a marker only from a comment line that is exactly the marker (`# NBVAL_IGNORE_OUTPUT`);
text after it on the same line switches the marker off without a word, and the cell's outputs are
then compared byte for byte (issue 17: sampled GIFs that differ on another CPU).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbval.plugin import comment_markers, metadata_tags

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def recognised(line: str) -> bool:
    """Whether nbval reads `line` as a marker: its own rule (nbval.plugin.find_comment_markers)."""
    line = line.strip()
    return line.startswith("#") and line.lstrip("#").strip() in comment_markers


def bad_markers(nb: nbformat.NotebookNode) -> list[str]:
    """'cell N: line' for each line or tag that mentions NBVAL_ but is not a marker nbval reads."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            if "NBVAL_" in line and not recognised(line):
                problems.append(f"cell {index}: {line.strip()!r}")
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith("nbval") and tag not in metadata_tags:
                problems.append(f"cell {index}: tag {tag!r}")
    return problems


def test_the_rule_tells_a_marker_from_a_look_alike():
    good = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\n# (sampled codes)\nprint(1)"),
        nbformat.v4.new_code_cell("x = 1\n#  NBVAL_SKIP  "),
        nbformat.v4.new_markdown_cell("NBVAL_IGNORE_OUTPUT in prose is not a marker"),
    ])
    assert bad_markers(good) == []
    bad = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT  (sampled codes)\nprint(1)"),
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUTS\nprint(2)"),
        nbformat.v4.new_code_cell("print(3)  # NBVAL_IGNORE_OUTPUT"),
        nbformat.v4.new_code_cell("print(4)", metadata={"tags": ["nbval-ignore"]}),
    ])
    assert len(bad_markers(bad)) == 4, bad_markers(bad)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_nbval_marker_is_recognised(path):
    problems = bad_markers(nbformat.read(path, as_version=4))
    assert not problems, (f"{path.name}: nbval ignores these markers (put any explanation on its "
                          f"own comment line): {problems}")
