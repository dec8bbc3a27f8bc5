"""The fixed design: front ends reach the engine only through its door, and the engine knows no front end."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOOR = {"engine.events", "engine.config", "engine.errors", "engine.workbench"}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from engine import x` names a module x of the engine
            names = [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "engine" else []
            modules.update(names or [node.module])
    return modules


def test_front_ends_import_only_the_door():
    outside = {f"{path.relative_to(ROOT)}: {module}"
               for path in sorted((ROOT / "tui").rglob("*.py"))
               for module in imported_modules(path)
               if (module == "engine" or module.startswith("engine.")) and module not in DOOR}
    assert not outside


def test_the_engine_imports_no_front_end():
    front = {f"{path.relative_to(ROOT)}: {module}"
             for path in sorted((ROOT / "engine").rglob("*.py"))
             for module in imported_modules(path)
             if module.split(".")[0] in ("tui", "textual", "textual_plotext", "argparse")}
    assert not front
