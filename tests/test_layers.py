"""The house rules of the tree: layers import downwards only, and the docs name the files there are.

Layers: model <- hdl <- flow <- tb (tests may import anything). The golden model stays
plain Python (no Amaranth), so it can be read and run without the hardware's toolchain.
"""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ["model", "hdl", "flow", "tb"]


def imported_packages(path: Path):
    """Top-level names of every module `path` imports (absolute imports; relative ones stay
    inside the package)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_downwards(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1:])
    if layer == "model":
        above.add("amaranth")
    wrong = [f"{path.relative_to(REPO)}:{line} imports {name}"
             for path in sorted((REPO / layer).rglob("*.py"))
             for name, line in imported_packages(path) if name in above]
    assert not wrong, "\n".join(wrong)


def test_architecture_names_every_block_file():
    """docs/ARCHITECTURE.md lists each source file of hdl/ and names only files that exist."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`(hdl/[\w/]+\.py)`", text))
    present = {str(p.relative_to(REPO)) for p in (REPO / "hdl").rglob("*.py")
               if p.name != "__init__.py"}
    assert not named - present, f"named but missing: {sorted(named - present)}"
    assert not present - named, f"not in docs/ARCHITECTURE.md: {sorted(present - named)}"


def test_readme_layout_names_every_folder():
    """The README's layout table names every top-level package and every folder of hdl/."""
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## Status")]
    for layer in LAYERS + ["tests", "docs"]:
        assert f"| `{layer}/` |" in layout, layer
    for folder in sorted(p.name for p in (REPO / "hdl").iterdir()
                         if p.is_dir() and (p / "__init__.py").exists()):
        assert f"`{folder}/`" in layout, folder
