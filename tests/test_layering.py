"""The package's layering, read from the source: no module imports a higher layer.

The table is CONTRIBUTING.md's "Layout" (lowest layer first). Every import counts, the ones
inside functions too, so a lazy import cannot hide an upward dependency. The registry's
"module:attribute" strings are checked as imports of the front door that resolves them.
"""

import ast
from pathlib import Path

import pytest

from minivideo import registry

PACKAGE = Path(__file__).resolve().parent.parent / "minivideo"

# layer → the top-level modules or subpackages of minivideo/ in it, lowest first
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("utils", "registry", "attention", "masks", "kernels")),
    ("data", ("data", "viz")),
    ("training", ("train", "checkpoints", "pretrained")),
    ("tokenizer", ("vqvae", "codebook", "adversarial")),
    ("prior", ("transformer", "sampling", "editing")),
    ("recipes", ("models",)),
    ("evaluation", ("metrics",)),
    ("front door", ("cli", "assignments", "__main__", "__init__")),
]
# `demo` is `sample cogvideo` with friendly defaults: it runs that command
ALLOWED_CLI = {("minivideo.cli.demo", "minivideo.cli.sample")}


def layer(module: str) -> int:
    """The layer index of a dotted minivideo module name."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and CONTRIBUTING.md")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """(imported minivideo module, line) for every import statement, at any depth."""
    found = []
    source = path.read_text() if source is None else source
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "minivideo":  # `from minivideo import registry`
                found += [(f"minivideo.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((node.module, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "minivideo"]


MODULES = sorted(PACKAGE.rglob("*.py"))


def upward_imports(path: Path, source: str | None = None) -> list[str]:
    me = module_name(path)
    bad = []
    for name, line in imports(path, source):
        if layer(name) > layer(me):
            bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} {me} "
                       f"({LAYERS[layer(me)][0]}) imports {name} ({LAYERS[layer(name)][0]})")
        elif (me.startswith("minivideo.cli.") and name.startswith("minivideo.cli.")
              and name != "minivideo.cli.common" and (me, name) not in ALLOWED_CLI):
            bad.append(f"{me}:{line} imports the command {name}: share code via cli/common.py")
    return bad


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    assert upward_imports(path) == []


def test_the_check_catches_an_upward_import():
    fake = PACKAGE / "data" / "_fake_for_test.py"  # parsed only, never written
    source = "def f():\n    from minivideo.models.videogpt import VideoGPT\n"
    problems = upward_imports(fake, source)
    assert len(problems) == 1 and "(data) imports minivideo.models.videogpt (recipes)" in problems[0]


def test_every_module_is_in_a_layer():
    for path in MODULES:
        layer(module_name(path))


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_registry_strings_point_down_from_the_front_door(name):
    row = registry.MODELS[name]
    for spec in filter(None, (row.target, row.evaluation)):
        module = spec.partition(":")[0]
        assert (PACKAGE.parent / (module.replace(".", "/") + ".py")).is_file() or \
            (PACKAGE.parent / module.replace(".", "/") / "__init__.py").is_file(), spec
        assert layer(module) < layer("minivideo.cli"), spec


def test_contributing_lists_every_layer_in_order():
    text = (PACKAGE.parent / "CONTRIBUTING.md").read_text()
    positions = [text.index(f"| {name} |") for name, _ in LAYERS]
    assert positions == sorted(positions)
    for _, members in LAYERS:
        for member in members:
            if member not in ("__init__", "__main__"):
                assert f"`{member}" in text, member
