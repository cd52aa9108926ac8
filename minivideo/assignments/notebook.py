"""The exercise conventions of the course notebooks (nbgrader's), read and checked.

An exercise is two code cells:

* a **solution cell** (``metadata.nbgrader.solution = true``) whose answer lies between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION``; ``# HINT: ...`` lines inside that region
  (or ``metadata.minivideo.hint``) become the message of the student's stub;
* a **test cell** (``metadata.nbgrader.grade = true`` with ``points``) with visible asserts and
  the hidden ones between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``.

The metadata is nbgrader's (schema 3), so a teacher can also hand the notebooks to nbgrader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
HINT_PREFIX = "# HINT:"
SCHEMA_VERSION = 3
DEFAULT_HINT = "write your solution here"
_GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # nbgrader uses grade_id in file and table names


@dataclass(frozen=True)
class GradedCell:
    """One test cell of a notebook: what it is worth and where it sits."""

    grade_id: str
    points: float
    index: int  # position among the notebook's cells


def solution_cell_metadata(grade_id: str) -> dict:
    """nbgrader metadata for a cell holding a solution region (for notebook-writing scripts)."""
    _check_grade_id(grade_id)
    return {"grade": False, "grade_id": grade_id, "locked": False,
            "schema_version": SCHEMA_VERSION, "solution": True, "task": False}


def graded_cell_metadata(grade_id: str, points: float) -> dict:
    """nbgrader metadata for an autograded test cell worth `points`."""
    _check_grade_id(grade_id)
    if isinstance(points, bool) or not isinstance(points, int | float) or points <= 0:
        raise ValueError(f"points must be a positive number, got {points!r}")
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
            "schema_version": SCHEMA_VERSION, "solution": False, "task": False}


def _check_grade_id(grade_id: object) -> None:
    if not isinstance(grade_id, str) or not _GRADE_ID.match(grade_id):
        raise ValueError(f"grade_id must be letters, digits, '-' or '_', got {grade_id!r}")


def read_notebook(path: str | Path) -> NotebookNode:
    """Read a notebook (nbformat 4), with a clear error for a missing or non-notebook file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    if path.suffix != ".ipynb":
        raise ValueError(f"expected an .ipynb file, got {path}")
    return nbformat.read(path, as_version=4)


def grading_info(cell: NotebookNode) -> dict:
    """The cell's nbgrader metadata ({} when it has none)."""
    return dict(cell.get("metadata", {}).get("nbgrader", {}))


def is_test_cell(cell: NotebookNode) -> bool:
    """True for an autograded test cell (code, nbgrader grade=true, not a solution)."""
    info = grading_info(cell)
    return cell.cell_type == "code" and bool(info.get("grade")) and not info.get("solution")


def marker_regions(lines: list[str], begin: str, end: str) -> list[tuple[int, int]]:
    """(first, last) line indices of each begin/end region; ValueError if unbalanced."""
    regions, start = [], None
    for i, line in enumerate(lines):
        text = line.strip()
        if text == begin:
            if start is not None:
                raise ValueError(f"line {i + 1}: {begin!r} inside a region opened on line "
                                 f"{start + 1}")
            start = i
        elif text == end:
            if start is None:
                raise ValueError(f"line {i + 1}: {end!r} without {begin!r}")
            regions.append((start, i))
            start = None
    if start is not None:
        raise ValueError(f"line {start + 1}: {begin!r} is never closed by {end!r}")
    return regions


def graded_cells(nb: NotebookNode) -> list[GradedCell]:
    """The notebook's autograded test cells, in order."""
    return [GradedCell(grading_info(c)["grade_id"], float(grading_info(c).get("points", 0)), i)
            for i, c in enumerate(nb.cells) if is_test_cell(c)]


def problems(nb: NotebookNode) -> list[str]:
    """Everything that would stop a notebook from being released or graded ([] when fine)."""
    found, seen = [], set()
    for i, cell in enumerate(nb.cells):
        where = f"cell {i}"
        info = grading_info(cell)
        lines = cell.source.splitlines()
        try:
            solutions = marker_regions(lines, BEGIN_SOLUTION, END_SOLUTION)
            hidden = marker_regions(lines, BEGIN_HIDDEN, END_HIDDEN)
        except ValueError as err:
            found.append(f"{where}: {err}")
            continue
        if solutions and not info.get("solution"):
            found.append(f"{where}: has {BEGIN_SOLUTION!r} but no "
                         "metadata.nbgrader.solution = true (see solution_cell_metadata, or run "
                         "`python -m minivideo.assignments mark NOTEBOOK`)")
        if hidden and not is_test_cell(cell):
            found.append(f"{where}: has {BEGIN_HIDDEN!r} but is not a test cell "
                         "(metadata.nbgrader.grade = true; see graded_cell_metadata, or run "
                         "`python -m minivideo.assignments mark NOTEBOOK`)")
        if info.get("solution") and not solutions and cell.cell_type == "code":
            found.append(f"{where}: is a solution cell without a {BEGIN_SOLUTION!r} region")
        if not info:
            continue
        if info.get("schema_version") != SCHEMA_VERSION:
            found.append(f"{where}: metadata.nbgrader.schema_version must be {SCHEMA_VERSION}")
        grade_id = info.get("grade_id")
        if not isinstance(grade_id, str) or not _GRADE_ID.match(grade_id):
            found.append(f"{where}: metadata.nbgrader.grade_id must be letters, digits, '-' or '_'"
                         f", got {grade_id!r}")
        elif grade_id in seen:
            found.append(f"{where}: grade_id {grade_id!r} is used twice")
        seen.add(grade_id)
        points = info.get("points")
        if is_test_cell(cell) and (not isinstance(points, int | float) or points <= 0):
            found.append(f"{where}: test cell {grade_id!r} needs positive metadata.nbgrader.points")
    return found


def add_missing_metadata(nb: NotebookNode, prefix: str, points: float = 1) -> int:
    """Give nbgrader metadata to exercise cells that have markers but none; returns how many.

    A solution cell's grade_id is `PREFIX-NAME-solution`, NAME being the first function or class
    it defines; the test cell after it gets `PREFIX-NAME-tests`, worth `points`. Cells that
    already carry metadata are left alone, so authors can set points by hand afterwards.
    """
    _check_grade_id(prefix)
    used = {grading_info(c).get("grade_id") for c in nb.cells}

    def unique(grade_id: str) -> str:
        candidate, n = grade_id, 2
        while candidate in used:
            candidate, n = f"{grade_id}-{n}", n + 1
        used.add(candidate)
        return candidate

    marked, base = 0, None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        if grading_info(cell):
            base = None
        elif marker_regions(lines, BEGIN_SOLUTION, END_SOLUTION):
            name = re.search(r"^\s*(?:def|class)\s+(\w+)", cell.source, re.MULTILINE)
            base = f"{prefix}-{name.group(1) if name else f'cell{i}'}"
            cell.metadata["nbgrader"] = solution_cell_metadata(unique(f"{base}-solution"))
            marked += 1
        elif marker_regions(lines, BEGIN_HIDDEN, END_HIDDEN):
            grade_id = unique(f"{base or f'{prefix}-cell{i}'}-tests")
            cell.metadata["nbgrader"] = graded_cell_metadata(grade_id, points)
            marked, base = marked + 1, None
    return marked
