"""The package's layers, read from its imports: each folder imports only the layers below it, and the
import graph has no cycle. A new import that breaks the layering fails here, with the offending line."""

import ast

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "src" / "capsnet"
# Layer -> the layers (and third-party roots) it may import. `errors` imports nothing.
ALLOWED = {
    "errors": set(),
    "nn": {"nn", "errors"},
    "data": {"data", "errors"},
    "viz": {"viz", "nn"},
    "models": {"models", "nn", "errors"},
    "callbacks": {"callbacks", "models", "nn", "viz", "errors"},
    "ops": {"ops", "models", "errors"},
    "explore": {"explore", "models", "nn", "data", "viz", "errors"},
    "run": {"run", "ops", "callbacks", "models", "nn", "data", "viz", "explore", "errors"},
}
NO_LIGHTNING = {"errors", "nn"}  # plain torch: usable without Lightning


def _layer(module: str) -> str:
    return module.split(".")[1]


def _imports() -> dict[str, list[tuple[str, int]]]:
    """capsnet module -> (imported module, line) for every import in it, top level or not."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("capsnet", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        found = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((node.module, node.lineno))  # and `from package import module`:
                found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
        graph[module] = found
    return graph


GRAPH = _imports()


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.count(".") >= 1))
def test_each_module_imports_only_the_layers_below_it(module):
    layer = _layer(module)
    for imported, line in GRAPH[module]:
        if imported.startswith("capsnet.") and imported.count(".") >= 1:
            assert _layer(imported) in ALLOWED[layer], f"{module}:{line} imports {imported}"
        if layer in NO_LIGHTNING:
            assert not imported.startswith(("lightning", "hydra")), f"{module}:{line} imports {imported}"


def test_the_import_graph_has_no_cycle():
    edges = {m: {i for i, _ in imports if i in GRAPH} for m, imports in GRAPH.items()}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges[module]):
            assert state.get(target) != "open", "cycle: " + " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
