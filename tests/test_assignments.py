"""Assignments: releasing student notebooks and autograding them, end to end.

The structural tests run without a kernel. The round trip (teacher releases notebook 01, the
student runs it unanswered, then answers it; the grader scores both) runs real kernels, and so do
the command-line tests: `release notebooks/ OUTDIR/` on the whole course, each released notebook
run up to its first exercise, and `grade` (without --source) on notebook 03.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from minivideo.assignments import (
    grade,
    graded_cell_metadata,
    graded_cells,
    problems,
    release,
    release_notebook,
    solution_cell_metadata,
)
from minivideo.assignments.__main__ import main
from minivideo.assignments.grade import course_notebooks
from minivideo.assignments.notebook import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    add_missing_metadata,
    marker_regions,
)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
COURSE = sorted(NOTEBOOKS.glob("*.ipynb"))

SQUARE_SOLUTION = '''def square(x):
    """x squared."""
    ### BEGIN SOLUTION
    # HINT: multiply x by itself
    return x * x
    ### END SOLUTION'''
SQUARE_TESTS = '''assert square(3) == 9, f"square(3) should be 9, got {square(3)}"
### BEGIN HIDDEN TESTS
assert square(-4) == 16, f"square(-4) should be 16, got {square(-4)}"
### END HIDDEN TESTS'''
TOTAL_SOLUTION = '''### BEGIN SOLUTION
total = sum(range(10))
### END SOLUTION'''
TOTAL_TESTS = '''assert isinstance(total, int), "total must be an int"
### BEGIN HIDDEN TESTS
assert total == 45, f"total should be 45, got {total}"
### END HIDDEN TESTS'''


def toy_notebook() -> nbformat.NotebookNode:
    """Two exercises (1 and 2 points) after an import cell, like a course notebook."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    nb.cells = [
        new_markdown_cell("# Toy"),
        new_code_cell("import math\nprint(math.sqrt(4))"),
        new_code_cell(SQUARE_SOLUTION, metadata={"nbgrader": solution_cell_metadata("square")}),
        new_code_cell(SQUARE_TESTS, metadata={"nbgrader": graded_cell_metadata("square-tests", 1)}),
        new_code_cell(TOTAL_SOLUTION, metadata={"nbgrader": solution_cell_metadata("total")}),
        new_code_cell(TOTAL_TESTS, metadata={"nbgrader": graded_cell_metadata("total-tests", 2)}),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="2.0\n")]
    return nb


def hint_of(source: str) -> str:
    """The hint a released stub should raise: the `# HINT:` lines of the teacher's solution."""
    return " ".join(line.strip().removeprefix("# HINT:").strip() for line in source.splitlines()
                    if line.strip().startswith("# HINT:"))


def run_cli(*args: object, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m minivideo.assignments ARGS` in a child process at the repository root."""
    return subprocess.run([sys.executable, "-m", "minivideo.assignments", *map(str, args)],
                          cwd=REPO, env={**os.environ, "MINIVIDEO_MODE": "fast"},
                          capture_output=True, text=True, timeout=timeout)


def solution_body(source: str) -> str:
    """What a student who solved the exercise would leave: the solution without its markers."""
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in (BEGIN_SOLUTION, END_SOLUTION)
                     and not line.strip().startswith("# HINT:"))


# --------------------------------------------------------------------------- release
def test_release_turns_solutions_into_hinted_stubs_and_drops_hidden_tests():
    nb = toy_notebook()
    original = copy.deepcopy(nb)
    student = release_notebook(nb, "toy.ipynb")
    assert nb == original, "release_notebook must not modify the teacher's notebook"
    square, square_tests = student.cells[2].source, student.cells[3].source
    assert square.splitlines() == [
        "def square(x):", '    """x squared."""', "    # YOUR CODE HERE",
        "    raise NotImplementedError('multiply x by itself')",
    ]
    assert "x * x" not in square and "BEGIN" not in square_tests
    assert square_tests == 'assert square(3) == 9, f"square(3) should be 9, got {square(3)}"'
    assert "raise NotImplementedError('write your solution here')" in student.cells[4].source
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert student.metadata["minivideo"] == {"assignment": "toy.ipynb"}
    assert [g.grade_id for g in graded_cells(student)] == ["square-tests", "total-tests"]


def test_hint_can_come_from_metadata():
    nb = toy_notebook()
    nb.cells[4].metadata["minivideo"] = {"hint": "sum the numbers 0 to 9"}
    assert "NotImplementedError('sum the numbers 0 to 9')" in release_notebook(nb).cells[4].source


@pytest.mark.parametrize("edit, message", [
    (lambda nb: nb.cells[2].__setitem__("source", SQUARE_SOLUTION.replace("### END SOLUTION", "")), "never closed"),
    (lambda nb: nb.cells[3].__setitem__("source", "### END HIDDEN TESTS"), "without"),
    (lambda nb: nb.cells[2].metadata.pop("nbgrader"), "no metadata.nbgrader.solution"),
    (lambda nb: nb.cells[3].metadata.pop("nbgrader"), "is not a test cell"),
    (lambda nb: nb.cells[5].metadata["nbgrader"].__setitem__("grade_id", "square-tests"), "used twice"),
    (lambda nb: nb.cells[5].metadata["nbgrader"].pop("points"), "needs positive metadata.nbgrader.points"),
    (lambda nb: nb.cells[4].metadata["nbgrader"].__setitem__("schema_version", 1), "schema_version"),
])
def test_malformed_exercises_are_refused_with_the_cell_named(edit, message):
    nb = toy_notebook()
    edit(nb)
    assert any(message in p for p in problems(nb)), problems(nb)
    with pytest.raises(ValueError, match="toy.ipynb cannot be released"):
        release_notebook(nb, "toy.ipynb")


def test_release_refuses_to_overwrite_the_solutions(tmp_path):
    nbformat.write(toy_notebook(), tmp_path / "toy.ipynb")
    with pytest.raises(ValueError, match="overwrite the solutions"):
        release(tmp_path, tmp_path)
    out = tmp_path / "out"
    assert [r.points for r in release(tmp_path, out)] == [3.0]
    with pytest.raises(ValueError, match="would overwrite"):
        release(tmp_path, out)
    release(tmp_path, out, overwrite=True)
    with pytest.raises(FileNotFoundError):
        release(tmp_path / "missing", out)


@pytest.mark.parametrize("path", COURSE, ids=[p.stem for p in COURSE])
def test_every_course_notebook_has_a_well_formed_exercise(path):
    nb = nbformat.read(path, as_version=4)
    assert problems(nb) == []
    cells = graded_cells(nb)
    assert cells and all(c.points > 0 for c in cells), f"{path.name} needs at least one graded exercise"
    student = release_notebook(nb, path.name)
    nbformat.validate(student)  # JupyterLab and nbgrader open it
    for cell in student.cells:
        assert "### BEGIN" not in cell.source and "### END" not in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == []
            ast.parse(cell.source)  # the stubs leave valid Python behind
    stubs = [c for c in student.cells if "raise NotImplementedError(" in c.source]
    assert len(stubs) >= len(cells)
    for g in cells:  # the grader's extra checks: every test cell holds a non-empty hidden region
        lines = nb.cells[g.index].source.splitlines()
        regions = marker_regions(lines, BEGIN_HIDDEN, END_HIDDEN)
        assert regions, f"{path.name}: test cell {g.grade_id!r} has no {BEGIN_HIDDEN!r} region"
        hidden = [line for first, last in regions for line in lines[first + 1 : last]
                  if line.strip() and not line.strip().startswith("#")]
        assert hidden, f"{path.name}: the hidden tests of {g.grade_id!r} are empty"


def test_mark_adds_the_metadata_an_author_forgot():
    nb = toy_notebook()
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    assert len(problems(nb)) == 4
    assert add_missing_metadata(nb, "07", points=2) == 4
    assert problems(nb) == []
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells[2:]]
    assert ids == ["07-square-solution", "07-square-tests", "07-cell4-solution", "07-cell4-tests"]
    assert [(g.grade_id, g.points) for g in graded_cells(nb)] == [("07-square-tests", 2), ("07-cell4-tests", 2)]
    assert add_missing_metadata(nb, "07") == 0  # cells with metadata are left alone

# --------------------------------------------------------------------------- grade
def test_grading_a_toy_assignment(tmp_path):
    """Solutions pass with full points; an unanswered copy fails with its hints; tampering fails."""
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    nbformat.write(toy_notebook(), teacher / "toy.ipynb")
    report = grade(teacher / "toy.ipynb", teacher / "toy.ipynb", timeout=60)
    assert [(r.passed, r.points) for r in report.results] == [(True, 1), (True, 2)]
    assert report.score == report.max_score == 3

    release(teacher, tmp_path / "student")
    submitted = tmp_path / "student" / "toy.ipynb"
    nb = nbformat.read(submitted, as_version=4)
    # The student answers `square` with code that passes the visible test only, deletes the
    # visible assert of `total` (the grader restores it), and leaves `total` unanswered.
    nb.cells[2].source = 'def square(x):\n    return 9 if x == 3 else x'
    nb.cells[5].source = "pass"
    nbformat.write(nb, submitted)
    report = grade(submitted, teacher, timeout=60)  # a folder: found by the released name
    square, total = report.results
    assert not square.passed and square.reason == "AssertionError: square(-4) should be 16, got -4"
    assert not total.passed and total.reason == ("NotImplementedError: write your solution here "
                                             "(raised in the solution cell 'total')")
    assert report.score == 0 and report.max_score == 3

    nb.cells.pop(3)  # a student who deletes a test cell loses that exercise
    nbformat.write(nb, submitted)
    result = grade(submitted, teacher, timeout=60).results[0]
    assert result.reason == "the test cell 'square-tests' is missing from the notebook"


def test_bare_assert_reports_the_failing_line(tmp_path):
    nb = toy_notebook()
    nb.cells[5].source = "assert total == 46\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS"
    nbformat.write(nb, tmp_path / "toy.ipynb")
    report = grade(tmp_path / "toy.ipynb", tmp_path / "toy.ipynb", timeout=60)
    assert report.results[1].reason == "AssertionError at: assert total == 46"


def test_grade_rejects_bad_input(tmp_path):
    nbformat.write(toy_notebook(), tmp_path / "toy.ipynb")
    with pytest.raises(ValueError, match="mode must be"):
        grade(tmp_path / "toy.ipynb", tmp_path, mode="slow")
    with pytest.raises(FileNotFoundError, match="no notebook or folder"):
        grade(tmp_path / "toy.ipynb", tmp_path / "missing")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(FileNotFoundError, match="no toy.ipynb in"):
        grade(tmp_path / "toy.ipynb", tmp_path / "elsewhere")
    plain = toy_notebook()
    plain.cells = plain.cells[:2]
    nbformat.write(plain, tmp_path / "plain.ipynb")
    with pytest.raises(ValueError, match="no graded test cells"):
        grade(tmp_path / "toy.ipynb", tmp_path / "plain.ipynb")

@pytest.mark.slow
def test_round_trip_on_notebook_01(tmp_path, capsys):
    """Teacher releases 01; the unanswered copy runs up to the exercise and fails there with its
    hint; the answered copy earns every point. Through the command line, as a teacher types it."""
    source = NOTEBOOKS / "01_attention.ipynb"
    assert main(["release", str(source), str(tmp_path / "release")]) == 0
    assert "01_attention.ipynb: 1 exercise(s), 3 point(s)" in capsys.readouterr().out
    released = tmp_path / "release" / "01_attention.ipynb"

    executed = tmp_path / "executed.ipynb"
    assert main(["grade", str(released), "--source", str(NOTEBOOKS), "--json",
                 "--executed", str(executed)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["score"] == 0 and report["max_score"] == 3
    (result,) = report["exercises"]
    assert result["reason"].startswith("NotImplementedError: scores = q @ kᵀ · scale")
    # The only error of the run is the stub, raised from the first exercise's test cell.
    ran = nbformat.read(executed, as_version=4)
    errors = [i for i, c in enumerate(ran.cells) if c.cell_type == "code"
              and any(o.output_type == "error" for o in c.outputs)]
    assert errors == [graded_cells(ran)[0].index]

    teacher = nbformat.read(source, as_version=4)
    student = nbformat.read(released, as_version=4)
    for cell, original in zip(student.cells, teacher.cells, strict=True):
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = solution_body(original.source)
    nbformat.write(student, released)
    assert main(["grade", str(released), "--source", str(source)]) == 0
    text = capsys.readouterr().out
    assert "PASS  01-attention-tests" in text and "score: 3/3" in text



@pytest.mark.slow
def test_a_hanging_notebook_is_stopped_and_scored(tmp_path):
    nb = toy_notebook()
    nb.cells[4].source = "### BEGIN SOLUTION\nimport time\ntime.sleep(60)\n### END SOLUTION"
    nbformat.write(nb, tmp_path / "toy.ipynb")
    square, total = grade(tmp_path / "toy.ipynb", tmp_path / "toy.ipynb", timeout=3).results
    assert square.passed and square.points == 1
    assert not total.passed and total.reason.startswith("the notebook stopped: CellTimeoutError")


def test_check_and_mark_from_the_command_line(tmp_path, capsys):
    nb = toy_notebook()
    nb.cells[2].metadata.pop("nbgrader")
    nbformat.write(nb, tmp_path / "05_toy.ipynb")
    assert main(["check", str(tmp_path)]) == 1
    assert "cell 2: has '### BEGIN SOLUTION' but no metadata" in capsys.readouterr().out
    assert main(["mark", str(tmp_path / "05_toy.ipynb")]) == 0
    assert main(["check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "05_toy.ipynb: 1 cell(s) marked" in out and "05_toy.ipynb: 2 exercise(s), 3 point(s)" in out
    with pytest.raises(SystemExit) as err:
        main(["release", str(tmp_path / "missing"), str(tmp_path / "out")])
    assert err.value.code == 2


def test_grade_defaults_to_the_course_notebook_of_the_same_name(tmp_path, capsys):
    assert course_notebooks() == NOTEBOOKS
    nbformat.write(toy_notebook(), tmp_path / "toy.ipynb")
    with pytest.raises(FileNotFoundError, match=r"no course notebook toy\.ipynb in .*--source"):
        grade(tmp_path / "toy.ipynb")
    with pytest.raises(SystemExit) as err:
        main(["grade", str(tmp_path / "toy.ipynb")])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert f"no course notebook toy.ipynb in {NOTEBOOKS}" in message and "--source" in message
    # Other layouts still work: --source names the teacher's copy.
    assert main(["grade", str(tmp_path / "toy.ipynb"), "--source", str(tmp_path)]) == 0
    assert "score: 3/3" in capsys.readouterr().out


# --------------------------------------------------------------------------- the whole course
@pytest.fixture(scope="module")
def released_course(tmp_path_factory) -> tuple[Path, str]:
    """The folder `python -m minivideo.assignments release notebooks/ OUTDIR/` wrote, and stdout."""
    out = tmp_path_factory.mktemp("course") / "release"
    proc = run_cli("release", "notebooks/", f"{out}/", timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


@pytest.mark.parametrize("path", COURSE, ids=[p.stem for p in COURSE])
def test_released_course_notebook_hides_solutions_and_hidden_tests(released_course, path):
    out, stdout = released_course
    teacher = nbformat.read(path, as_version=4)
    student = nbformat.read(out / path.name, as_version=4)
    points = sum(g.points for g in graded_cells(teacher))
    assert f"{out / path.name}: {len(graded_cells(teacher))} exercise(s), {points:g} point(s)" in stdout
    assert len(student.cells) == len(teacher.cells)
    for i, (t, s) in enumerate(zip(teacher.cells, student.cells, strict=True)):
        info = t.metadata.get("nbgrader", {})
        lines, kept = t.source.splitlines(), s.source.splitlines()
        begin, end = (BEGIN_SOLUTION, END_SOLUTION) if info.get("solution") else (BEGIN_HIDDEN, END_HIDDEN)
        inside = {j for first, last in marker_regions(lines, begin, end) for j in range(first, last + 1)}
        outside = [line for j, line in enumerate(lines) if j not in inside]
        secret = {lines[j] for j in inside if lines[j].strip()} - set(outside)
        if info.get("solution") or info.get("grade"):
            assert secret, f"{path.name} cell {i}: an exercise cell with nothing to hide"
        assert not secret & set(kept), f"{path.name} cell {i} leaks {sorted(secret & set(kept))}"
        assert [x for x in kept if x.strip() and "NotImplementedError" not in x
                and x.strip() != "# YOUR CODE HERE"] == [x for x in outside if x.strip()]
        if info.get("solution"):
            hint = hint_of(t.source)
            assert hint, f"{path.name} cell {i}: the solution has no # HINT: line"
            assert f"raise NotImplementedError({hint!r})" in s.source
        if s.cell_type == "code":
            assert s.outputs == [] and s.execution_count is None


@pytest.mark.slow
@pytest.mark.parametrize("path", COURSE, ids=[p.stem for p in COURSE])
def test_released_exercise_fails_only_with_its_hint(released_course, path):
    """The released stub and test cells, run after the notebook's set-up cell, fail only with
    the stub's hint.

    Faithful without re-running the notebook: every other cell of the released copy is the
    teacher's (test_released_course_notebook_hides_solutions_and_hidden_tests), and the teacher's
    notebook runs under strict nbval in the same suite. It also holds the course to
    self-contained exercises, which is what lets `assignments grade` report each one on its own.
    """
    out, _ = released_course
    student = nbformat.read(out / path.name, as_version=4)
    first = graded_cells(student)[0]
    solution = max(j for j, c in enumerate(student.cells[: first.index])
                   if c.metadata.get("nbgrader", {}).get("solution"))
    setup = next(j for j, c in enumerate(student.cells) if c.cell_type == "code")
    student.cells = [student.cells[j] for j in (setup, solution, first.index)]
    kernel = student.metadata.get("kernelspec", {}).get("name", "python3")
    client = NotebookClient(student, timeout=300, kernel_name=kernel, allow_errors=True,
                            resources={"metadata": {"path": str(out)}})
    client.execute(env={**os.environ, "MINIVIDEO_MODE": "fast"})
    errors = [(j, o.ename, o.evalue) for j, c in enumerate(student.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0][0] in (1, 2), errors  # the stub cell or its test
    hint = hint_of(nbformat.read(path, as_version=4).cells[solution].source)
    assert errors[0][1:] == ("NotImplementedError", hint)


@pytest.mark.slow
def test_grading_notebook_03_from_the_command_line(released_course, tmp_path):
    """Without --source: an unanswered copy fails with its hint, the solution notebook passes."""
    out, _ = released_course
    name = "03_flash_attention.ipynb"
    teacher = nbformat.read(NOTEBOOKS / name, as_version=4)
    submitted = tmp_path / "ada_flash.ipynb"  # a student's file name: the metadata names the notebook
    submitted.write_bytes((out / name).read_bytes())
    proc = run_cli("grade", submitted, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert Path(report["source"]) == NOTEBOOKS / name
    cells = graded_cells(teacher)
    assert [e["grade_id"] for e in report["exercises"]] == [g.grade_id for g in cells]
    assert report["score"] == 0 and report["max_score"] == sum(g.points for g in cells) == 3
    hints = [hint_of(c.source) for c in teacher.cells if c.metadata.get("nbgrader", {}).get("solution")]
    for exercise, hint in zip(report["exercises"], hints, strict=True):
        assert not exercise["passed"] and exercise["points"] == 0
        assert exercise["reason"].startswith(f"NotImplementedError: {hint}"), exercise["reason"]

    proc = run_cli("grade", f"notebooks/{name}")
    assert proc.returncode == 0, proc.stderr
    assert "PASS  03-online-softmax-tests  3/3" in proc.stdout and "score: 3/3" in proc.stdout
    assert "FAIL" not in proc.stdout
