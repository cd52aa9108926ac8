"""The set-up promised by README.md: pyproject, environment.yml, ./course and CI agree."""

import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement  # packaging comes with pytest

try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:  # Python 3.10: the same parser from PyPI (the dev extra installs it)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name
# A marker may also test the platform: a requirement is needed where it holds on any of these.
PLATFORMS = [
    {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"},
    {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix"},
    {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"},
]


def _name_and_spec(requirement: str) -> tuple[str, str]:
    requirement = requirement.split(";")[0].strip()
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    name = match.group(1).lower().replace("_", "-")
    return CONDA_NAMES.get(name, name), match.group(2).replace(" ", "")


def _needed_on(requirement: str, python: str) -> bool:
    """Whether pip installs `requirement` on Python `python` (e.g. "3.11") on some platform."""
    marker = Requirement(requirement).marker
    if marker is None:
        return True
    version = {"python_version": python, "python_full_version": f"{python}.0"}
    return any(marker.evaluate({**platform, **version}) for platform in PLATFORMS)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _environment_python() -> str:
    match = re.search(r"^\s+- python=(\d+\.\d+)\s*$", (ROOT / "environment.yml").read_text(), re.M)
    assert match, "environment.yml must pin python=X.Y"
    return match.group(1)


def _pyproject_requirements(python: str) -> dict[str, str]:
    """Every requirement of pyproject.toml (extras included) that pip installs on `python`."""
    project = _pyproject()
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return dict(_name_and_spec(r) for r in reqs if _needed_on(r, python))


def _environment_requirements() -> dict[str, str]:
    reqs = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        item = re.match(r"^\s+- ([^#]+?)\s*(#.*)?$", line)
        if item is None:
            continue
        text = item.group(1)
        if text in ("pip", "pip:", "-e .") or text.startswith("python="):
            continue
        name, spec = _name_and_spec(text)
        reqs[name] = spec
    return reqs


def test_markers_decide_which_requirements_a_python_needs():
    assert not _needed_on("tomli>=2; python_version < '3.11'", "3.11")
    assert _needed_on("tomli>=2; python_version < '3.11'", "3.10")
    assert _needed_on("triton>=3.0; sys_platform == 'linux'", "3.11")  # Linux only, still needed
    assert not _needed_on("x>=1; python_version >= '3.12' and sys_platform == 'win32'", "3.11")
    assert _needed_on("numpy>=1.24", "3.11")


def test_python_310_gets_a_toml_parser_from_the_dev_extra():
    """requires-python allows 3.10, which has no tomllib: these tests then need tomli."""
    project = _pyproject()
    assert project["requires-python"] == ">=3.10"
    dev = project["optional-dependencies"]["dev"]
    assert [r for r in dev if _name_and_spec(r)[0] == "tomli" and _needed_on(r, "3.10")], dev
    assert not [r for r in dev if _name_and_spec(r)[0] == "tomli" and _needed_on(r, "3.11")], dev


def test_environment_yml_lists_the_same_packages_as_pyproject():
    """Same names and ranges, leaving out what pip would skip on environment.yml's Python."""
    pyproject = _pyproject_requirements(_environment_python())
    conda = _environment_requirements()
    assert set(conda) == set(pyproject), (
        f"only in pyproject.toml: {sorted(set(pyproject) - set(conda))}; "
        f"only in environment.yml: {sorted(set(conda) - set(pyproject))}"
    )
    different = {n: (pyproject[n], conda[n]) for n in pyproject if pyproject[n] != conda[n]}
    assert not different, f"version ranges differ (pyproject, environment.yml): {different}"


def test_environment_yml_installs_the_checkout_with_python_311():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s+- python=3\.11$", text, re.M)
    assert re.search(r"^\s+- -e \.$", text, re.M)


def test_readme_quickstart_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\./course (\w+)", quickstart, re.M)
    assert commands[:2] == ["lab", "test"], f"Quickstart commands: {commands}"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\./course test$", ci, re.M), ".ci/run must run the README's test command"


def test_course_script_rejects_unknown_actions():
    result = subprocess.run(
        ["bash", str(ROOT / "course"), "build"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "usage: ./course lab | ./course test" in result.stderr


def test_ruff_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_readme_figure_exists_and_a_repo_script_writes_it():
    readme = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    images += re.findall(r"`(docs/figures/[^`]+\.(?:png|gif))`", readme)
    assert images, "README.md shows no figures"
    scripts = [p.read_text() for p in [*ROOT.glob("docs/*.py"), *ROOT.glob("benchmarks/*.py")]]
    for image in images:
        assert (ROOT / image).is_file(), f"README.md shows {image}, which does not exist"
        name = Path(image).name
        assert any(name in text or Path(image).stem in text for text in scripts), (
            f"no script in docs/ or benchmarks/ writes {image}")
