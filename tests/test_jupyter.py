"""JupyterLab opens the course: `./course lab` starts the server from the installed environment
(as root too) and serves the notebooks, and every notebook's first code cell (its imports) runs
on its own."""

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


def course_env(tmp_path: Path, venv: Path, **extra: str) -> dict[str, str]:
    """Environment for `./course` that uses `venv` as it is (no install) and keeps the user's
    Jupyter settings out of the way."""
    return {**os.environ, "MINIVIDEO_VENV": str(venv), "MINIVIDEO_NO_INSTALL": "1",
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), **extra}


@pytest.mark.slow
def test_course_lab_serves_the_notebooks(tmp_path):
    """`./course lab ARGS` itself, as the user running the tests (root in CI containers)."""
    venv = Path(sys.executable).parent.parent  # the environment the course installs
    assert (venv / "bin" / "jupyter").exists(), (
        f"no jupyter in {venv}: install with pip install -e '.[dev]'")
    port, token = free_port(), "minivideo-test-token"
    command = ["bash", str(ROOT / "course"), "lab", "--no-browser", f"--port={port}",
               "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
               f"--IdentityProvider.token={token}"]
    out, log = tmp_path / "course.out", tmp_path / "server.log"  # files: a full pipe would block
    server = subprocess.Popen(command, env=course_env(tmp_path, venv), stdout=out.open("w"),
                              stderr=log.open("w"))  # the script execs jupyter: same process
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        listed: set[str] = set()
        while time.monotonic() < deadline and server.poll() is None:
            status, body = get(f"{base}/api/contents?token={token}")  # root: notebooks/
            if status == 200:
                listed = {item["name"] for item in json.loads(body)["content"]}
                break
            time.sleep(0.5)
        assert server.poll() is None, "./course lab exited: " + log.read_text()[-2000:]
        assert listed, f"./course lab did not serve /api/contents within {STARTUP_LIMIT_S} s"
        assert {p.name for p in NOTEBOOKS} <= listed
        status, page = get(f"{base}/lab?token={token}")
        assert status == 200 and b"JupyterLab" in page, "the lab page itself is not served"
        assert get(f"{base}/api/contents")[0] == 403, "the server must require the token"
        as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        assert ("adding --allow-root" in out.read_text()) == as_root, out.read_text()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.parametrize(("uid", "args", "expected"), [
    ("0", [], ["--allow-root"]),
    ("0", ["--no-browser", "--port", "8890"], ["--no-browser", "--port", "8890", "--allow-root"]),
    ("0", ["--allow-root"], ["--allow-root"]),
    ("1000", [], []),
    ("1000", ["--no-browser", "--ServerApp.ip=0.0.0.0"], ["--no-browser", "--ServerApp.ip=0.0.0.0"]),
])
def test_course_lab_passes_its_arguments_and_handles_root(tmp_path, uid, args, expected):
    """What `./course lab ARGS` hands to jupyter, as root and as a user: a stand-in `jupyter`
    prints its arguments, a stand-in `id` plays the user."""
    venv, tools = tmp_path / "venv", tmp_path / "tools"
    (venv / "bin").mkdir(parents=True)
    tools.mkdir()
    for path, body in [(venv / "bin" / "python", "exit 0"),
                       (venv / "bin" / "jupyter", 'printf "%s\\n" "$@"'),
                       (tools / "id", f"echo {uid}")]:
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(0o755)
    env = course_env(tmp_path, venv, PATH=f"{tools}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["bash", str(ROOT / "course"), "lab", *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    passed = [line for line in result.stdout.splitlines() if not line.startswith("==> ")]
    assert passed == ["lab", "notebooks", *expected]
    assert ("==> running as root: adding --allow-root" in result.stdout) == (
        uid == "0" and "--allow-root" not in args)


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
