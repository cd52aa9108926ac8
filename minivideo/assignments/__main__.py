"""`python -m minivideo.assignments ...`: the same as `python -m minivideo assignments ...`.

Kept because teachers' scripts and docs/teaching.md use it; the commands live in
`minivideo/cli/assignments.py`.
"""

from __future__ import annotations

import sys

from minivideo.__main__ import main as minivideo_main


def main(argv: list[str] | None = None) -> int:
    """`python -m minivideo assignments ARGS`."""
    return minivideo_main(["assignments", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
