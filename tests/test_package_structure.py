"""The package's structure: no import cycle, and a resource-only service that never loads the issuer.

The import graph is read from the source with :mod:`ast`, function-local imports included (they
hide cycles from a plain ``import`` at start-up but still tie modules together); only imports
under ``if TYPE_CHECKING:`` are left out, since they never run. The resource side's request path
is imported, and a request made through it, in a subprocess with the resource-only settings of
the example project (``example_project.resource_settings``), which then reports every module
it has loaded.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TypeGuard

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "oauth_cc"

#: Where a module lives says which side it serves. ``oauth_cc.common`` holds what both sides use,
#: ``oauth_cc.issuer`` the issuer's protocol modules and ``oauth_cc.resource`` the resource-only
#: app. At the top level stay only the ``oauth_cc`` Django app's conventional modules (the
#: issuer's: ``apps``, ``models``, ``admin``...) and the names a site writes in its settings
#: (``conf``, ``contrib.rest_framework``, ``scopes``, ``openapi``, ``testing``).
SIDE_PACKAGES = {"oauth_cc.common": "both", "oauth_cc.issuer": "issuer", "oauth_cc.resource": "resource"}
TOP_LEVEL = {
    "oauth_cc": "both",
    "oauth_cc.conf": "both",
    "oauth_cc.contrib": "both",
    "oauth_cc.contrib.rest_framework": "both",
    "oauth_cc.admin": "issuer",
    "oauth_cc.apps": "issuer",
    "oauth_cc.checks": "issuer",
    "oauth_cc.management": "issuer",
    "oauth_cc.migrations": "issuer",
    "oauth_cc.models": "issuer",
    "oauth_cc.openapi": "issuer",
    "oauth_cc.scopes": "issuer",
    "oauth_cc.signals": "issuer",
    "oauth_cc.testing": "issuer",
    "oauth_cc.urls": "issuer",
    "oauth_cc.views": "issuer",
}
#: Third-party packages only the issuer uses.
ISSUER_ONLY_PACKAGES = ("oauth2_provider",)
SIDE_PREFIXES = {"both": "Both sides: ", "issuer": "Issuer side: ", "resource": "Resource side: "}


def side_of(module: str) -> str | None:
    """``"both"``, ``"issuer"`` or ``"resource"`` from where ``module`` lives; None if nowhere known."""
    for package, side in (*SIDE_PACKAGES.items(), *TOP_LEVEL.items()):
        if module == package or module.startswith(package + "."):
            if package == "oauth_cc" and module != "oauth_cc":
                continue
            return side
    return None

BOTH_PREFIX = "Both sides: "


def module_files(package: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """``dotted name -> (file, is a package)`` for every module of ``package``."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


#: Modules that serve only the issuer (the token endpoint, clients and their keys, its database
#: state, admin and command). A resource-only service must never load one: they need the
#: issuer's tables (``oauth_cc.models``) or django-oauth-toolkit, or hold the issuer's state.
ISSUER_ONLY = frozenset(name for name in module_files() if side_of(name) == "issuer")


def _type_checking_only(node: ast.AST) -> TypeGuard[ast.If]:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that can run: the whole tree but the bodies of ``if TYPE_CHECKING:``."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if _type_checking_only(node):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """``module -> {imported module of the package: line of the first such import}``."""
    modules = module_files(package)
    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rsplit(".", 1)[0]
        edges: dict[str, int] = {}

        def add(target: str, line: int, edges: dict[str, int] = edges, name: str = name) -> None:
            if target in modules and target != name:
                edges.setdefault(target, line)

        for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    add(submodule if submodule in modules else source, node.lineno)
        graph[name] = edges
    return graph


def groups(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted, by their first."""
    return sorted(sorted(component) for component in _components(graph))


def _components(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan; the graph has ~70 nodes, recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per group of :func:`groups`, in the same order."""
    found = []
    for component in map(set, groups(graph)):
        start = min(component)
        # Shortest way back to start inside the component (breadth first).
        previous: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in previous:
            following = []
            for node in frontier:
                for target in sorted(graph[node]):
                    if target in component and target not in previous:
                        previous[target] = node
                        following.append(target)
            frontier = following
        path = [start]
        node = previous[start]
        while node != start:
            path.append(node)
            node = previous[node]
        path.append(start)
        found.append(list(reversed(path)))
    return found


def describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(cycle)) + f" -> {cycle[-1]}"


def test_the_cycle_finder_finds_a_cycle_through_a_function_local_import():
    graph = {"a": {"b": 1}, "b": {"c": 3}, "c": {"a": 7}, "d": {"a": 2}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert describe(["a", "b", "c", "a"], graph) == "a (line 1) -> b (line 3) -> c (line 7) -> a"
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_the_graph_holds_function_local_imports_and_not_type_checking_ones(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "low.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from .high import Thing\n"
        "else:\n"
        "    import json\n"
        "def f():\n"
        "    from . import high\n"
    )
    (package / "high.py").write_text("import pkg.low\nfrom .sub import deep\n")
    (package / "sub" / "deep.py").write_text("def g():\n    from ..low import f\n    from pkg import high\n")
    assert import_graph(package) == {
        "pkg": {},
        "pkg.sub": {},
        "pkg.low": {"pkg.high": 7},
        "pkg.high": {"pkg.low": 1, "pkg.sub.deep": 2},
        "pkg.sub.deep": {"pkg.low": 2, "pkg.high": 3},
    }
    assert cycles(import_graph(package)) == [["pkg.high", "pkg.low", "pkg.high"]]


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    found = cycles(graph)
    assert not found, (
        "import cycles in oauth_cc (one per group of modules that import each other):\n"
        + "\n".join(
            f"{describe(cycle, graph)}\n  group: {', '.join(group)}"
            for cycle, group in zip(found, groups(graph), strict=True)
        )
    )


PROBE = """
import json, sys
import django
django.setup()
from django.test import Client
from rest_framework.settings import api_settings
import oauth_cc.contrib.rest_framework
import oauth_cc.common.verification
api_settings.DEFAULT_AUTHENTICATION_CLASSES, api_settings.DEFAULT_PERMISSION_CLASSES
response = Client().get("/api/whoami/", HTTP_AUTHORIZATION="Bearer not.a.token")
print(json.dumps({
    "status": response.status_code,
    "body": response.json(),
    "www_authenticate": response.get("WWW-Authenticate"),
    "modules": sorted(sys.modules),
}))
"""


def test_the_resource_side_loads_no_issuer_module(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "DATABASE_URL") and not key.startswith("OAUTH_CC_")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "example_project.resource_settings",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "RESOURCE_DATABASE_URL": f"sqlite:///{tmp_path / 'resource.sqlite3'}",
            # Nothing listens there, and the first poll would come after the probe has ended.
            "OAUTH_CC_ISSUER": "http://127.0.0.1:9",
            "OAUTH_CC_REVOCATION_FEED_POLL_SECONDS": "600",
            "OAUTH_CC_RESOURCE_CLIENT_ID": "resource-service",
            "OAUTH_CC_RESOURCE_CLIENT_SECRET": "not-used-here",
            "OAUTH_CC_ISSUER_ALLOW_INSECURE": "1",
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # The request went through the resource side's authentication class, which refused the token.
    assert report["status"] == 401
    assert report["body"]["detail"].startswith("The access token is not a well-formed JWT")
    assert 'error="invalid_token"' in report["www_authenticate"]
    modules = set(report["modules"])
    assert {
        "oauth_cc.resource.apps",
        "oauth_cc.resource.sync",
        "oauth_cc.contrib.rest_framework.authentication",
        "oauth_cc.common.verification",
        "oauth_cc.common.tokens",
    } <= modules
    assert "oauth_cc.models" not in modules
    loaded_issuer_modules = sorted(modules & ISSUER_ONLY)
    assert loaded_issuer_modules == []
    assert [name for name in modules if name.split(".")[0] in ISSUER_ONLY_PACKAGES] == []


def test_every_module_lives_where_its_side_says():
    """A new module goes into common, issuer or resource; the top level stays the Django app's."""
    homeless = sorted(name for name in module_files() if side_of(name) is None)
    assert homeless == [], f"modules outside oauth_cc.common/issuer/resource, not top-level names: {homeless}"
    # What the resource probe below relies on: the issuer's modules are found, and none is "both".
    assert {"oauth_cc.models", "oauth_cc.issuer.issuance", "oauth_cc.issuer.client_auth"} <= ISSUER_ONLY
    assert not any(name.startswith(("oauth_cc.common", "oauth_cc.resource")) for name in ISSUER_ONLY)
    assert "oauth_cc.client_keys" not in module_files()  # split into jwks_validation and client_jwks_fetch


def test_side_of_follows_the_package_and_the_top_level_list():
    assert side_of("oauth_cc.common.jws") == "both"
    assert side_of("oauth_cc.issuer.keys") == "issuer"
    assert side_of("oauth_cc.resource.feed") == "resource"
    assert side_of("oauth_cc.models") == "issuer"
    assert side_of("oauth_cc.migrations.0001_initial") == "issuer"
    assert side_of("oauth_cc.contrib.rest_framework.authentication") == "both"
    assert side_of("oauth_cc") == "both"
    assert side_of("oauth_cc.jws") is None  # a protocol module at the top level has no side


def _first_docstring_line(path: Path) -> str:
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    return (docstring or "").splitlines()[0] if docstring else ""


def test_every_module_says_which_side_it_serves():
    wrong = []
    for name, (path, _) in module_files().items():
        if ".migrations" in name:
            continue  # the issuer's migrations: generated code, no docstrings
        line = _first_docstring_line(path)
        side = side_of(name)
        expected = SIDE_PREFIXES[side] if side else "(no side)"
        if not line.startswith(expected):
            wrong.append(f"{name}: first docstring line should start with {expected!r}: {line!r}")
    assert not wrong, "\n".join(wrong)
