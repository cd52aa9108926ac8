"""Autograding: run a student's notebook with the teacher's tests put back, score each exercise.

The student's solution cells and everything else they wrote are kept; every test cell is
replaced by the teacher's version of it (matched by grade_id), which restores the hidden tests
and undoes any edit to the visible ones. The notebook then runs top to bottom in a fresh kernel
(fast mode by default) and an exercise scores its points when its test cell raises nothing.

Hidden tests cannot be kept secret inside a notebook handed to students (its metadata is
readable), so they are read from the teacher's copy: `grade(student, source=...)`, by default
the course notebook of the same name in the repository's notebooks/ folder.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

import minivideo
from minivideo.assignments.notebook import graded_cells, grading_info, problems, read_notebook

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class ExerciseResult:
    """The outcome of one test cell."""

    grade_id: str
    points: float
    max_points: float
    passed: bool
    reason: str  # "" when passed; the exception (assertion message) otherwise


@dataclass
class GradeReport:
    """Per-exercise results of grading one notebook."""

    notebook: str
    source: str
    results: list[ExerciseResult] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Points earned."""
        return sum(r.points for r in self.results)

    @property
    def max_score(self) -> float:
        """Points available."""
        return sum(r.max_points for r in self.results)

    def to_dict(self) -> dict:
        """Plain data for --json."""
        return {"notebook": self.notebook, "source": self.source, "score": self.score,
                "max_score": self.max_score, "exercises": [asdict(r) for r in self.results]}

    def to_text(self) -> str:
        """A table a student can read: one line per exercise, then the reason for each failure."""
        width = max([len(r.grade_id) for r in self.results] + [8])
        lines = [f"{self.notebook} (tests from {self.source})"]
        for r in self.results:
            mark = "PASS" if r.passed else "FAIL"
            lines.append(f"  {mark}  {r.grade_id:<{width}}  {_num(r.points)}/{_num(r.max_points)}")
            if not r.passed:
                lines.append(f"        {r.reason}")
        lines.append(f"  score: {_num(self.score)}/{_num(self.max_score)}")
        return "\n".join(lines)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def course_notebooks() -> Path:
    """The repository's notebooks/ folder, next to the installed package: the default source."""
    return Path(minivideo.__file__).resolve().parents[1] / "notebooks"


def find_source(student: NotebookNode, student_path: Path, source: Path | None) -> Path:
    """The teacher's notebook: `source`, its namesake in the folder `source`, or the course's."""
    name = student.metadata.get("minivideo", {}).get("assignment", student_path.name)
    if source is None:
        candidate = course_notebooks() / name
        if not candidate.is_file():
            raise FileNotFoundError(
                f"no course notebook {name} in {candidate.parent} to take the hidden tests from: "
                "pass the teacher's notebook, or the folder holding it, with --source "
                "(source= in Python)")
        return candidate
    if source.is_file():
        return source
    if not source.is_dir():
        raise FileNotFoundError(f"no notebook or folder at {source}")
    candidate = source / name
    if not candidate.is_file():
        raise FileNotFoundError(f"no {name} in {source}: pass the teacher's notebook as source")
    return candidate


def _failure_reason(output: NotebookNode) -> str:
    """`Name: message` of an error output, with the failing line when the message is empty."""
    reason = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".rstrip(": ")
    if output.get("evalue"):
        return reason
    # A bare `assert x` has no message: quote the line the traceback points at instead.
    for frame in reversed(output.get("traceback", [])):
        for line in _ANSI.sub("", frame).splitlines():
            if line.lstrip().startswith("---->"):
                code = re.sub(r"^\d+\s+", "", line.split("---->", 1)[1].strip())  # line number
                return f"{reason} at: {code}"
    return reason


def _assemble(student: NotebookNode, source: NotebookNode) -> tuple[NotebookNode, dict[str, int]]:
    """The notebook to run (student's cells, teacher's tests) and where each test cell sits."""
    teacher_tests = {g.grade_id: source.cells[g.index] for g in graded_cells(source)}
    run = copy.deepcopy(student)
    positions = {}
    for i, cell in enumerate(run.cells):
        grade_id = grading_info(cell).get("grade_id")
        if grade_id in teacher_tests and cell.cell_type == "code":
            cell.source = teacher_tests[grade_id].source
            cell.metadata["nbgrader"] = copy.deepcopy(teacher_tests[grade_id].metadata["nbgrader"])
            positions[grade_id] = i
    for cell in run.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return run, positions


def grade(
    student_path: str | Path,
    source: str | Path | None = None,
    *,
    timeout: float = 600,
    mode: str = "fast",
    cwd: str | Path | None = None,
    executed_path: str | Path | None = None,
) -> GradeReport:
    """Run a student's notebook with the teacher's tests and score every exercise.

    source: the teacher's notebook, or a folder holding it under the released name; by default
    the course notebook of that name in the repository's notebooks/ folder (course_notebooks()).
    timeout: seconds allowed per cell. mode: MINIVIDEO_MODE for the run ("fast" or "full").
    cwd: where the kernel runs (default: the teacher's notebook's folder, as in the course).
    executed_path: if given, the executed notebook is saved there (to show a student).
    """
    if mode not in ("fast", "full"):
        raise ValueError(f"mode must be 'fast' or 'full', got {mode!r}")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
    student_path = Path(student_path)
    student = read_notebook(student_path)
    source_path = find_source(student, student_path, None if source is None else Path(source))
    teacher = read_notebook(source_path)
    found = problems(teacher)
    if found:
        raise ValueError(f"{source_path} is not a valid source notebook:\n  " + "\n  ".join(found))
    if not graded_cells(teacher):
        raise ValueError(f"{source_path} has no graded test cells (metadata.nbgrader.grade)")

    run, positions = _assemble(student, teacher)
    kernel = teacher.metadata.get("kernelspec", {}).get("name", "python3")
    workdir = Path(cwd) if cwd is not None else source_path.parent
    client = NotebookClient(run, timeout=timeout, kernel_name=kernel, allow_errors=True,
                            resources={"metadata": {"path": str(workdir)}})
    env = {**os.environ, "MINIVIDEO_MODE": mode}
    stopped = ""
    try:
        client.execute(env=env)
    except (CellTimeoutError, DeadKernelError, TimeoutError) as err:
        # The cells after this one never ran; their exercises fail with this reason.
        first_line = (str(err).splitlines() or [""])[0]
        stopped = f"the notebook stopped: {type(err).__name__}: {first_line}"
    if executed_path is not None:
        nbformat.write(run, executed_path)
    # The cell that was running when the kernel stopped, and every later one, did not finish.
    ran = [i for i, c in enumerate(run.cells) if c.get("execution_count") is not None]
    unfinished_from = (ran[-1] if ran else 0) if stopped else len(run.cells)

    report = GradeReport(str(student_path), str(source_path))
    previous = -1  # the test cell before the current one: its exercise's cells come after it
    for g in graded_cells(teacher):
        if g.grade_id not in positions:
            reason = f"the test cell {g.grade_id!r} is missing from the notebook"
            report.results.append(ExerciseResult(g.grade_id, 0.0, g.points, False, reason))
            continue
        position = positions[g.grade_id]
        cell = run.cells[position]
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        # A stub or a bug at the top level of a solution cell raises there, and the test cell
        # then fails with a NameError; the solution cell's error is the one worth reading.
        solution_errors = [
            (grading_info(c).get("grade_id"), o)
            for c in run.cells[previous + 1 : position] if grading_info(c).get("solution")
            for o in c.get("outputs", []) if o.get("output_type") == "error"
        ]
        previous = position
        if errors and solution_errors:
            grade_id, output = solution_errors[0]
            reason = f"{_failure_reason(output)} (raised in the solution cell {grade_id!r})"
        elif errors:
            reason = _failure_reason(errors[0])
        elif positions[g.grade_id] >= unfinished_from:
            reason = stopped
        elif cell.execution_count is None:
            reason = "the test cell did not run"
        else:
            reason = ""
        passed = not reason
        report.results.append(
            ExerciseResult(g.grade_id, g.points if passed else 0.0, g.points, passed, reason)
        )
    return report
