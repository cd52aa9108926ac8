"""JupyterLab opens the course: the server starts from the installed environment and serves
the notebooks, and every notebook's first code cell (its imports) runs on its own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STARTUP_LIMIT_S = 60


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET (status 0 while nothing answers yet)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def test_jupyter_lab_serves_the_notebooks(tmp_path):
    jupyter = Path(sys.executable).parent / "jupyter"  # the environment the course installs
    assert jupyter.exists(), f"no jupyter next to {sys.executable}: install with pip install -e '.[dev]'"
    port, token = free_port(), "minivideo-test-token"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}  # leave the user's settings alone
    command = [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={ROOT}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers often run as root
        command.append("--allow-root")
    log = tmp_path / "server.log"  # a file, not a pipe: a full pipe would block the server
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=log.open("w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        listed: set[str] = set()
        while time.monotonic() < deadline and server.poll() is None:
            status, body = get(f"{base}/api/contents/notebooks?token={token}")
            if status == 200:
                listed = {item["name"] for item in json.loads(body)["content"]}
                break
            time.sleep(0.5)
        assert server.poll() is None, "jupyter lab exited: " + log.read_text()[-2000:]
        assert listed, f"jupyter lab did not serve /api/contents/notebooks within {STARTUP_LIMIT_S} s"
        assert {p.name for p in NOTEBOOKS} <= listed
        status, page = get(f"{base}/lab?token={token}")
        assert status == 200 and b"JupyterLab" in page, "the lab page itself is not served"
        assert get(f"{base}/api/contents/notebooks")[0] == 403, "the server must require the token"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_code_cell_imports_the_package(path):
    nb = nbformat.read(path, as_version=4)
    first = next(cell for cell in nb.cells if cell.cell_type == "code")
    source = first.source
    assert "import minivideo" in source or "from minivideo" in source, (
        f"{path.name}: the first code cell must import the package")
    # A fresh IPython (magics work as in a kernel) started in notebooks/, where the repository is
    # not on sys.path: the package can only come from the installed environment.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(MINIVIDEO_MODE="fast", MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=NoColor", "-c", source],
        cwd=path.parent, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"{path.name}, first code cell:\n{(result.stdout + result.stderr)[-3000:]}"
