"""The import graph of `skyshard/`: every package imports only packages in lower layers (so the
packages form no cycle), and the domain core imports neither Dagster nor the Dagster modules nor
test support. The layer order is documented in docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "skyshard"

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"lazy"}),
    frozenset({"db", "config", "columns"}),
    frozenset({"storage"}),
    frozenset({"ledger", "transport", "forecast", "placement", "sim", "demo_kv"}),
    frozenset({"runtime", "scoring"}),
    frozenset({"trust"}),
    frozenset({"plans"}),
    frozenset({"broker"}),
    frozenset({"sources", "embedded_hosts"}),
    frozenset({"cli"}),
)
"""Lowest first. A package may import packages of strictly lower layers only."""

LAYER_OF = {package: level for level, packages in enumerate(LAYERS) for package in packages}
FORBIDDEN_IN_CORE = ("dagster", "dagster_dbt", "dagster_duckdb", "assets", "sensors")
FORBIDDEN_IN_CORE += ("orchestration", "tests")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path`, including function-level ones."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            module = node.module or ""
            if module == "skyshard":
                found += [(node.lineno, f"skyshard.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def core_package(core: Path, path: Path) -> str:
    """`skyshard/<package>/...` or `skyshard/<module>.py` → the package's (or module's) name."""
    return path.relative_to(core).with_suffix("").parts[0]


def upward_imports(core: Path) -> list[str]:
    """Every import of a package at the same or a higher layer, as `importer → imported at
    file:line`."""
    found = []
    for path in sorted(core.rglob("*.py")):
        source = core_package(core, path)
        for line, module in imported_modules(path):
            parts = module.split(".")
            if parts[0] != "skyshard" or len(parts) < 2 or parts[1] == source:
                continue
            target = parts[1]
            if source in LAYER_OF and target in LAYER_OF and LAYER_OF[target] >= LAYER_OF[source]:
                found.append(
                    f"{source} (layer {LAYER_OF[source]}) imports {target} "
                    f"(layer {LAYER_OF[target]}) at {path.relative_to(core.parent)}:{line}"
                )
    return found


def test_every_package_has_a_layer():
    packages = {core_package(CORE, p) for p in CORE.rglob("*.py")} - {"__init__"}
    missing = sorted(packages - LAYER_OF.keys())
    assert not missing, f"skyshard packages without a layer in {__file__}: {missing}"


def test_packages_import_only_lower_layers():
    upward = upward_imports(CORE)
    assert not upward, "\n".join(upward)


def test_core_imports_no_dagster_and_no_outer_package():
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(CORE.rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in FORBIDDEN_IN_CORE
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "expected", "line"),
    [
        ("from skyshard.cli import main\n", "config (layer 1) imports cli (layer 9)", 1),
        ("from skyshard import cli\n", "config (layer 1) imports cli (layer 9)", 1),
        ("def f():\n    import skyshard.plans\n", "config (layer 1) imports plans (layer 6)", 2),
        ("from skyshard.db import connect\n", "config (layer 1) imports db (layer 1)", 1),
    ],
)
def test_an_import_of_the_same_or_a_higher_layer_is_reported(tmp_path, source, expected, line):
    package = tmp_path / "skyshard" / "config"
    package.mkdir(parents=True)
    (package / "x.py").write_text(source)
    assert upward_imports(tmp_path / "skyshard") == [f"{expected} at skyshard/config/x.py:{line}"]


GLOBALS = {"current_sky", "resolve_home"}
"""What Dagster modules reach through the `sky` and `ledger` resources instead."""


def global_use(node: ast.AST) -> str | None:
    """`current_sky`, `resolve_home` or `Ledger.open` where `node` names one, else None."""
    if isinstance(node, ast.Name) and node.id in GLOBALS:
        return node.id
    is_ledger = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    if is_ledger and node.value.id == "Ledger" and node.attr == "open":
        return "Ledger.open"
    return None


def test_dagster_bodies_use_resources_not_globals():
    outer = [ROOT / "assets", ROOT / "sensors", ROOT / "orchestration"]
    # The code locations' loaders and the resources read the environment; bodies must not.
    allowed = {
        ROOT / "orchestration" / name for name in ("definitions.py", "scale_out.py", "resources.py")
    }
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} uses {global_use(node)}"
        for path in sorted(p for folder in outer for p in folder.rglob("*.py") if p not in allowed)
        for node in definitions_of(path)
        if global_use(node)
    ]
    assert not found, "\n".join(found)


def definitions_of(path: Path) -> list[ast.AST]:
    """Every node of `path` except a `if __name__ == "__main__":` script block."""
    script = "__name__ == '__main__'"
    top = ast.parse(path.read_text(), str(path)).body
    kept = [n for n in top if not (isinstance(n, ast.If) and ast.unparse(n.test) == script)]
    return [node for statement in kept for node in ast.walk(statement)]


def test_a_global_in_a_dagster_body_is_found(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "def body(sky):\n    current_sky()\n    Ledger.open()\n    sky.load()\n"
        "if __name__ == '__main__':\n    Ledger.open()\n"
    )
    uses = [global_use(node) for node in definitions_of(module)]
    assert [u for u in uses if u] == ["current_sky", "Ledger.open"]
