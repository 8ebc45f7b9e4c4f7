"""The import direction of DESIGN.md, and heavy libraries kept out of light imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("identity", "llm_prompting", "imagine", "api")
MAY_IMPORT = {
    "identity": set(),
    "llm_prompting": set(),
    "imagine": {"identity", "llm_prompting"},
    "api": {"identity", "llm_prompting", "imagine"},
}
HEAVY = ("torch", "diffusers", "transformers", "dlib", "insightface", "onnxruntime", "cv2")
HEAVY += ("nudenet", "c2pa")  # the output checker and the C2PA SDK (a native library)
HEAVY += ("boto3", "botocore")  # S3 image storage (api/s3_storage.py)


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_downstream(package):
    bad = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = imported_packages(path) - MAY_IMPORT[package] - {package}
        if wrong:
            bad[str(path.relative_to(ROOT))] = sorted(wrong)
    assert not bad, f"{package} may import only {sorted(MAY_IMPORT[package])}: {bad}"


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, with relative imports resolved; ``from a import b``
    counts as both ``a`` and ``a.b``, since ``b`` may be a module."""
    package = path.relative_to(ROOT).parent.parts  # ("imagine", "batch")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


CLI_HOMES = ("imagine/cli/", "api/cli/")  # the commands, and the service that mounts them


def test_library_does_not_import_its_cli():
    """The CLI sits on top of the library: the commands call the library, never the reverse."""
    bad = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            if where.startswith(CLI_HOMES):
                continue
            cli = sorted(
                m for m in imported_modules(path) if m.split(".")[:2] == ["imagine", "cli"]
            )
            if cli:
                bad[where] = cli
    assert not bad, f"only {CLI_HOMES} may import imagine.cli: {bad}"


def test_light_imports_do_not_load_heavy_libraries():
    code = (
        "import sys, api, api.cli, api.storage, imagine.cli, imagine.settings, "
        "identity.enrollment, identity.analyzer, llm_prompting, imagine.provenance, "
        "imagine.safety, imagine.outputs\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_reading_model_defaults_does_not_import_the_loader():
    """Profiles and defaults (``imagine.models.config``) are read by the API, settings and
    the CLI; finding files, loading and the speed switches are modules of their own."""
    code = (
        "import sys, imagine.models.config, imagine.request, imagine.settings\n"
        "heavy = ('imagine.models.', 'imagine.pipeline')\n"
        "loaded = [m for m in sys.modules if m.startswith(heavy)]\n"
        "print(sorted(set(loaded) - {'imagine.models.config'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
