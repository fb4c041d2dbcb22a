"""The package layout rule (DESIGN.md section 2), checked from the file system: package roots hold only Hub-flat
files, which travel to the Hub as remote code and so import nothing but the standard library, torch, numpy, PIL,
transformers (with the config validation it builds on, `huggingface_hub.dataclasses`) and their siblings; a file
both roots import as a sibling lives in `modeling_cast/` with a link in `processing/`; and `import modeling_cast`
loads no tooling."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

PACKAGES = ("modeling_cast", "processing")
ALLOWED_TOP_LEVEL = {"torch", "numpy", "PIL", "transformers"}
# transformers' own configurations are validated by this decorator; a CAST config is one of them
ALLOWED_MODULES = {"huggingface_hub.dataclasses"}
ROOT_FILES = sorted(path for package in PACKAGES for path in (REPO_ROOT / package).glob("*.py"))
HUB_FLAT_FILES = [path for path in ROOT_FILES if path.name != "__init__.py"]


def _module_level_imports(tree: ast.Module):
    """Imports that run when the module is imported: module level and inside functions, but not those guarded by a
    `try` (optional dependencies such as scikit-image are imported that way and fail with an install hint)."""
    guarded = {id(node) for block in ast.walk(tree) if isinstance(block, ast.Try) for stmt in block.body
               for node in ast.walk(stmt)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in guarded:
            yield node


def test_package_roots_hold_only_hub_flat_files():
    assert HUB_FLAT_FILES, "no package-root files found"
    for path in HUB_FLAT_FILES:
        assert path.name.endswith("_cast.py"), f"{path.relative_to(REPO_ROOT)}: package-root files are *_cast.py"


@pytest.mark.parametrize("path", HUB_FLAT_FILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_hub_flat_file_imports_only_allowed_modules_and_siblings(path):
    relative = path.relative_to(REPO_ROOT)
    for node in _module_level_imports(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert node.level == 1 and node.module, f"{relative}:{node.lineno}: only `from .sibling import` is allowed"
            assert (path.parent / f"{node.module}.py").exists(), f"{relative}:{node.lineno}: {node.module} is no sibling"
            continue
        names = [node.module] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
        for name in names:
            top = name.split(".")[0]
            allowed = top in sys.stdlib_module_names or top in ALLOWED_TOP_LEVEL or name in ALLOWED_MODULES
            assert allowed, f"{relative}:{node.lineno} imports {name}, which remote code cannot rely on"


def test_subpackages_are_not_imported_by_package_roots():
    """Subpackages (tooling) may import the roots, never the reverse: checked for every root file, __init__ too."""
    for path in ROOT_FILES:
        if path.name == "__init__.py":
            continue
        for node in _module_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level and node.module:
                assert "." not in node.module, f"{path.relative_to(REPO_ROOT)} imports subpackage .{node.module}"


def test_import_modeling_cast_loads_no_tooling():
    script = (
        "import sys, modeling_cast\n"
        "tooling = ('modeling_cast.conversion', 'modeling_cast.commands', 'processing.evaluation', "
        "'processing.synthetic', 'processing.training')\n"
        "print('\\n'.join(sorted(name for name in sys.modules if name.startswith(tooling))))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"`import modeling_cast` imported tooling modules:\n{result.stdout}"


def test_files_shared_by_both_roots_are_links_to_one_implementation():
    """A file both package roots need as a sibling (the tensor SLIC: the model runs it, the processor offers it, and
    each saved folder must carry it as remote code) exists once, in `modeling_cast/`; the other root holds a link
    to it, so the two can never diverge. Any other name in both roots is an error."""
    names = {package: {path.name for path in (REPO_ROOT / package).glob("*_cast.py")} for package in PACKAGES}
    shared = names["modeling_cast"] & names["processing"]
    for name in shared:
        link = REPO_ROOT / "processing" / name
        assert link.is_symlink(), f"processing/{name} repeats modeling_cast/{name}: make it a link to that file"
        assert link.resolve() == (REPO_ROOT / "modeling_cast" / name).resolve(), f"processing/{name} links elsewhere"
