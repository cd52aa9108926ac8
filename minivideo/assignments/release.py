"""Student versions of the notebooks: solutions become stubs, hidden tests disappear.

A solution region of a code cell becomes, at the indentation of its ``### BEGIN SOLUTION``
line, ``# YOUR CODE HERE`` and ``raise NotImplementedError(HINT)``; a hidden-tests region is
deleted; outputs are cleared. The stub raises only when it runs, so a released notebook runs
without errors up to the first exercise a student has not done.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from minivideo.assignments.notebook import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    DEFAULT_HINT,
    END_HIDDEN,
    END_SOLUTION,
    HINT_PREFIX,
    graded_cells,
    grading_info,
    marker_regions,
    problems,
    read_notebook,
)

MARKDOWN_STUB = "YOUR ANSWER HERE"


@dataclass(frozen=True)
class Released:
    """What one released notebook holds."""

    path: Path
    exercises: int
    points: float


def _hint(region: list[str], cell: NotebookNode) -> str:
    """The stub's message: the region's `# HINT:` lines, else metadata.minivideo.hint."""
    lines = [line.strip()[len(HINT_PREFIX):].strip() for line in region
             if line.strip().startswith(HINT_PREFIX)]
    if lines:
        return " ".join(lines)
    return str(cell.get("metadata", {}).get("minivideo", {}).get("hint", DEFAULT_HINT))


def clear_solutions(cell: NotebookNode) -> str:
    """The cell's source with each solution region replaced by a stub (code) or a prompt (text)."""
    lines = cell.source.splitlines()
    regions = marker_regions(lines, BEGIN_SOLUTION, END_SOLUTION)
    for first, last in reversed(regions):  # from the end, so earlier indices stay valid
        begin = lines[first]
        indent = begin[: len(begin) - len(begin.lstrip())]
        if cell.cell_type == "code":
            hint = _hint(lines[first:last + 1], cell)
            stub = [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError({hint!r})"]
        else:
            stub = [f"{indent}{MARKDOWN_STUB}"]
        lines[first:last + 1] = stub
    return "\n".join(lines)


def remove_hidden_tests(source: str) -> str:
    """The source without its hidden-test regions (markers included)."""
    lines = source.splitlines()
    for first, last in reversed(marker_regions(lines, BEGIN_HIDDEN, END_HIDDEN)):
        del lines[first:last + 1]
    while lines and not lines[-1].strip():  # no dangling blank lines where the region was
        lines.pop()
    return "\n".join(lines)


def release_notebook(nb: NotebookNode, name: str = "notebook") -> NotebookNode:
    """A student copy of nb (nb is not modified); ValueError listing any malformed exercise."""
    found = problems(nb)
    if found:
        raise ValueError(f"{name} cannot be released:\n  " + "\n  ".join(found))
    student = copy.deepcopy(nb)
    for cell in student.cells:
        info = grading_info(cell)
        if info.get("solution"):
            cell.source = clear_solutions(cell)
        if info.get("grade") and cell.cell_type == "code":
            cell.source = remove_hidden_tests(cell.source)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)  # timestamps of the teacher's run
    # The grader uses this to find the teacher's notebook inside a --source folder.
    student.metadata["minivideo"] = {"assignment": name}
    return student


def release(source: str | Path, outdir: str | Path, overwrite: bool = False) -> list[Released]:
    """Write student versions of a notebook, or of every notebook in a folder, into outdir."""
    source, outdir = Path(source), Path(outdir)
    if source.is_dir():
        paths = sorted(source.glob("*.ipynb"))
        if not paths:
            raise FileNotFoundError(f"no .ipynb files in {source}")
    elif source.is_file():
        paths = [source]
    else:
        raise FileNotFoundError(f"no notebook or folder at {source}")
    if outdir.exists() and not outdir.is_dir():
        raise ValueError(f"outdir must be a folder, got the file {outdir}")
    if outdir.resolve() in {p.parent.resolve() for p in paths}:
        raise ValueError(f"outdir {outdir} is the source folder: releasing there would overwrite "
                         "the solutions; pick another folder")
    targets = [outdir / p.name for p in paths]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise ValueError(f"would overwrite {', '.join(existing)}; pass overwrite=True (--force)")
    # Build every student copy before writing any, so one bad notebook leaves outdir untouched.
    students = [release_notebook(read_notebook(p), p.name) for p in paths]
    outdir.mkdir(parents=True, exist_ok=True)
    released = []
    for target, student in zip(targets, students, strict=True):
        nbformat.write(student, target)
        cells = graded_cells(student)
        released.append(Released(target, len(cells), sum(c.points for c in cells)))
    return released
