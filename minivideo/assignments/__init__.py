"""Classroom assignments from the course notebooks: release student copies, autograde them.

    python -m minivideo.assignments check notebooks/
    python -m minivideo.assignments release notebooks/ release/
    python -m minivideo.assignments grade release/01_attention.ipynb [--source notebooks/] [--json]

The conventions (nbgrader's markers and metadata) are described in `notebook.py` and in
docs/teaching.md.
"""

try:
    from minivideo.assignments.grade import ExerciseResult, GradeReport, grade
    from minivideo.assignments.notebook import (
        GradedCell,
        graded_cell_metadata,
        graded_cells,
        problems,
        solution_cell_metadata,
    )
    from minivideo.assignments.release import Released, release, release_notebook
except ModuleNotFoundError as err:  # Jupyter's libraries come with the dev tools, not the core
    if err.name not in ("nbformat", "nbclient"):
        raise
    raise ImportError(f"minivideo.assignments needs {err.name}: pip install -e '.[dev]'") from err

__all__ = [
    "ExerciseResult",
    "GradeReport",
    "GradedCell",
    "Released",
    "grade",
    "graded_cell_metadata",
    "graded_cells",
    "problems",
    "release",
    "release_notebook",
    "solution_cell_metadata",
]
