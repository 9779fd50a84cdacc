"""The package's import graph flows one way: every import of a ``deposit_token`` module by another is checked
against the allowed direction between its sub-packages (the layers), and the sub-packages have no cycle.

    cli  ->  sim  ->  ops  ->  chain  ->  domain
                  \\-> audit -/
    cli  ->  gateway  ->  chain, domain
    cli  ->  web  ->  audit, chain, domain
    (cli may import every layer; sim: ops, audit, chain, domain; ops, audit and gateway (the JSON-RPC gateway):
     chain, domain; web (the auditors' console and public portal): audit, chain, domain; chain: domain; domain:
     nothing of ours.) ``deposit_token`` itself (the version),
    ``deposit_token.paths`` (the project folder), ``deposit_token.errors`` (the exception root) and
    ``deposit_token.processes`` (process and port helpers) are the base, importable from every layer; they import
    nothing of ours.

Imports inside functions count too (a lazy import is still a dependency). A ``__main__`` module is an entry
point, run and never imported: it belongs to no layer and may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "deposit_token"
BASE = {"deposit_token", "deposit_token.paths", "deposit_token.errors", "deposit_token.processes"}
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "chain": {"domain"},
    "ops": {"chain", "domain"},
    "audit": {"chain", "domain"},
    "sim": {"ops", "audit", "chain", "domain"},
    "gateway": {"chain", "domain"},
    "web": {"audit", "chain", "domain"},
    "cli": {"sim", "ops", "audit", "gateway", "web", "chain", "domain"},
}
# (importing module, imported module): reason. Empty on purpose; an entry here needs a reason and an issue.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str | None = None) -> set[str]:
    """Every deposit_token module that `path` (module `name`) imports (``from pkg import sub`` counts as
    importing sub)."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(
                f"{target}.{alias.name}"
                for alias in node.names
                if (PACKAGE.parent / f"{target}.{alias.name}".replace(".", "/")).is_dir()
                or (PACKAGE.parent / (f"{target}.{alias.name}".replace(".", "/") + ".py")).is_file()
            )
    return {target for target in found if target == "deposit_token" or target.startswith("deposit_token.")}


def layer_of(module: str) -> str | None:
    if module in BASE:
        return None
    return module.split(".")[1]


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if "migrations" not in path.parts}


def test_every_module_is_in_a_layer():
    stray = [name for name in modules() if name not in BASE and layer_of(name) not in ALLOWED]
    assert not stray, f"modules outside every layer (put them in one of {sorted(ALLOWED)}): {stray}"


def violations(found: dict[str, Path]) -> list[str]:
    wrong = []
    for name, path in found.items():
        if name.endswith(".__main__"):
            continue
        here = layer_of(name)
        for target in imports_of(path, name):
            there = layer_of(target)
            if there is None or there == here:
                continue
            if here is None:
                wrong.append(f"{name} (base) imports {target}")
            elif there not in ALLOWED[here] and (name, target) not in KNOWN_EXCEPTIONS:
                wrong.append(f"{name} ({here}) imports {target} ({there})")
    return wrong


def test_imports_follow_the_layers():
    wrong = violations(modules())
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_cycle_between_sub_packages():
    """Between the sub-packages one level down (chain, audit.sync, audit.db, ops, ...), imports form no cycle."""

    def unit(module: str) -> str:
        parts = module.split(".")
        if len(parts) > 2 and (PACKAGE.parent / "/".join(parts[:3])).is_dir():
            return ".".join(parts[:3])
        return ".".join(parts[:2])

    graph: dict[str, set[str]] = {}
    for name, path in modules().items():
        if name in BASE or name.endswith(".__main__"):
            continue
        for target in imports_of(path):
            if target not in BASE and unit(target) != unit(name):
                graph.setdefault(unit(name), set()).add(unit(target))
    # sub-packages whose own package imports them (audit -> audit.db) are fine; cycles among siblings are not
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            raise AssertionError("import cycle between sub-packages: " + " -> ".join(cycle))


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The checker itself: a domain module importing chain, even lazily and relatively, is found."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from ..chain import submit\n    from deposit_token.ops.wallet import why_not\n")
    wrong = violations({"deposit_token.domain.bad": module})
    assert any("chain.submit" in line for line in wrong) and any("ops.wallet" in line for line in wrong)


def test_tests_share_helpers_through_support_only():
    """Test modules import no other test module and no conftest: shared helpers live in tests/support/."""
    tests = PACKAGE.parent / "tests"
    wrong = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            wrong += [
                f"{path.relative_to(tests)} imports {name}"
                for name in names
                if name.split(".")[0] == "conftest" or name.split(".")[0].startswith("test_")
            ]
    assert not wrong, "\n".join(wrong)
