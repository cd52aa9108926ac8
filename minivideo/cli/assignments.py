"""`python -m minivideo assignments {check,mark,release,grade} ...`: the teacher's commands.

    python -m minivideo assignments check notebooks/              # list exercises, check markers
    python -m minivideo assignments mark notebooks/NN_x.ipynb      # add missing nbgrader metadata
    python -m minivideo assignments release notebooks/ release/   # student versions
    python -m minivideo assignments grade submissions/ada/01_attention.ipynb
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nbformat

from minivideo.assignments.grade import grade
from minivideo.assignments.notebook import (
    add_missing_metadata,
    graded_cells,
    problems,
    read_notebook,
)
from minivideo.assignments.release import release
from minivideo.cli.common import UsageError, user_input


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _notebooks(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(path.glob("*.ipynb"))
    if path.is_file():
        return [path]
    raise UsageError(f"no notebook or folder at {path}")


def run_check(args: argparse.Namespace) -> int:
    """List each notebook's exercises and any malformed marker or metadata; 1 if any."""
    status = 0
    for path in _notebooks(args.path):
        nb = read_notebook(path)
        cells = graded_cells(nb)
        print(f"{path.name}: {len(cells)} exercise(s), "
              f"{_num(sum(c.points for c in cells))} point(s)")
        for cell in cells:
            print(f"  {cell.grade_id} ({_num(cell.points)} point(s), cell {cell.index})")
        for problem in problems(nb):
            print(f"  problem: {problem}")
            status = 1
    return status


def run_mark(args: argparse.Namespace) -> int:
    """Add nbgrader metadata to exercise cells that lack it, in place (outputs untouched)."""
    for path in _notebooks(args.path):
        nb = read_notebook(path)
        marked = add_missing_metadata(nb, path.stem.split("_")[0], points=args.points)
        if marked:
            nbformat.write(nb, path)
        print(f"{path.name}: {marked} cell(s) marked")
    return 0


def run_release(args: argparse.Namespace) -> int:
    """Write student versions and say what each holds."""
    for item in release(args.source, args.outdir, overwrite=args.force):
        print(f"{item.path}: {item.exercises} exercise(s), {_num(item.points)} point(s)")
    return 0


def run_grade(args: argparse.Namespace) -> int:
    """Grade one student notebook; prints a table, or JSON with --json."""
    report = grade(args.student, args.source, timeout=args.timeout, mode=args.mode,
                   executed_path=args.executed)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text())
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One sub-command per verb."""
    commands = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    check = commands.add_parser("check", help="list exercises and check markers and metadata")
    check.add_argument("path", type=Path, help="a notebook or a folder of notebooks")
    check.set_defaults(verb_run=run_check)

    mark = commands.add_parser("mark", help="add nbgrader metadata to exercise cells lacking it")
    mark.add_argument("path", type=Path, help="a notebook or folder (edited in place)")
    mark.add_argument("--points", type=float, default=1, help="points of each new test cell")
    mark.set_defaults(verb_run=run_mark)

    rel = commands.add_parser("release", help="write student versions of the notebooks")
    rel.add_argument("source", type=Path, help="the teacher's notebook or folder (with solutions)")
    rel.add_argument("outdir", type=Path, help="folder for the student versions")
    rel.add_argument("--force", action="store_true", help="overwrite notebooks already there")
    rel.set_defaults(verb_run=run_release)

    gr = commands.add_parser("grade", help="run a student's notebook with the hidden tests")
    gr.add_argument("student", type=Path, help="the student's .ipynb")
    gr.add_argument("--source", type=Path, default=None,
                    help="the teacher's notebook, or the folder holding it (default: the course "
                         "notebook of the same name in the repository's notebooks/)")
    gr.add_argument("--json", action="store_true", help="print the report as JSON")
    gr.add_argument("--timeout", type=float, default=600, help="seconds allowed per cell")
    gr.add_argument("--mode", choices=("fast", "full"), default="fast",
                    help="MINIVIDEO_MODE for the run (default: fast)")
    gr.add_argument("--executed", type=Path, default=None,
                    help="also save the executed notebook here, outputs and errors included")
    gr.set_defaults(verb_run=run_grade)


def run(args: argparse.Namespace) -> int:
    """Run the chosen verb; a notebook that cannot be read is the user's error."""
    with user_input("notebook"):
        return int(args.verb_run(args) or 0)


