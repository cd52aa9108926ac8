"""Collected by `pytest --nbval notebooks/`: run every notebook in the course's fast mode.

The notebook kernels are child processes and inherit this environment, so a teacher's CI
gets the small configurations without setting anything. A person in JupyterLab gets "full".
"""

import os

os.environ.setdefault("MINIVIDEO_MODE", "fast")
# Plots render to PNG without a display; keeps nbval outputs deterministic.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
