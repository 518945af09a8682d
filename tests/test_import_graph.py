"""vidbench's imports point down: every module sits on a floor and imports only from lower floors,
and no chain of imports comes back to where it started (shared/STYLE.md, "Floors").

The graph is read from the source with `ast`, so imports inside functions count (a lazy import
hides a tie, it does not remove it), and ``from . import x`` counts as importing the package as
well as ``x``. A module's room is its package under vidbench (``vidbench.bench.sweep`` is in
``bench``), or the top-level module itself (``vidbench.results``); ``vidbench`` is the package's
own ``__init__``. Rooms on one floor do not import each other: what two of them share moves a
floor down.

`FLOORS` is the table docs/architecture.md quotes between its ``floors`` markers; the page must
show exactly `floor_table()` (``python tests/test_import_graph.py`` rewrites it there).
"""
import ast
import re
import sys
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vidbench"
PAGE = REPO / "docs" / "architecture.md"


class Floor(NamedTuple):
    rooms: Tuple[str, ...]
    why: str


# bottom first; a room may import its own modules and the rooms of every floor below its own
FLOORS: Tuple[Floor, ...] = (
    Floor(("errors", "version"), "the user-error types and the version: import nothing of vidbench"),
    Floor(("layers", "results"), "what several models share (the one attention kernel, embeddings, MLP, block); the "
                                 "results store, run lock and atomic writes"),
    Floor(("options",), "the option vocabulary every job declares its fields with (it names the attention backends "
                        "of `layers`)"),
    Floor(("models", "data", "distributed"), "one file per model family and the registry; decoding, annotations, "
                                             "samplers, the clip dataset; torchrun's process group, sharding and "
                                             "reductions (used by `bench` and `train`)"),
    Floor(("checkpoint",), "vidbench's own safetensors checkpoints: rebuilds a model from its registry name"),
    Floor(("weights",), "published checkpoints: safe reading, one converter per format, published entries; "
                        "`convert` writes vidbench checkpoints"),
    Floor(("vidbench",), "the package's front door (`create_model`, `list_models`, `load_pretrained`); nothing "
                         "below imports it"),
    Floor(("bench", "train"), "the harness: measurement (FLOPs, peak memory, step time, MFU, the sweep and its "
                              "worker processes, `compare`); the training core, video training, multi-view evaluation"),
    Floor(("ssl",), "self-supervised pretraining on `train`'s core, kNN and linear-probe evaluation"),
    Floor(("report",), "rows into tables and plots (reads `bench`'s columns); measures nothing"),
    Floor(("suite",), "suite files and the stage runner: calls data, bench, train, ssl, weights and report"),
    Floor(("cli",), "the `vidbench` command, one module per subcommand; nothing but `__main__` imports it"),
    Floor(("__main__",), "`python -m vidbench`"),
)

# Imports known to point the wrong way while someone untangles them, as (importer, imported): let
# through, and a cycle they close is not reported. Empty: keep it so (an entry whose import is gone
# fails test_known_tangles_are_still_there, so none can linger).
KNOWN_TANGLES: Set[Tuple[str, str]] = set()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> Dict[str, Dict[str, int]]:
    """{module: {imported module: line}} for every module of the package under `root`, every
    import statement counted wherever it stands (module level, function, class, `if`)."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: Dict[str, Dict[str, int]] = {}
    for mod, path in files.items():
        edges: Dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{node.module}" if node.module else package
                else:
                    base = node.module or ""
                # the module named after `from` is imported (a package: its __init__), and each
                # name that is a submodule too
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                while name and name not in files:  # a name inside a module: the module
                    name = name.rpartition(".")[0]
                if name and name != mod:
                    edges.setdefault(name, node.lineno)
        graph[mod] = edges
    return graph


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def floor_of() -> Dict[str, int]:
    floors = {}
    for level, floor in enumerate(FLOORS):
        for name in floor.rooms:
            assert name not in floors, f"room {name!r} is on two floors"
            floors[name] = level
    return floors


def cycles(graph: Dict[str, Iterable[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (each holds an import cycle)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def cycle_problems(graph: Dict[str, Dict[str, int]], known: Set[Tuple[str, str]] = frozenset()) -> List[str]:
    kept = {m: [b for b in edges if (m, b) not in known] for m, edges in graph.items()}
    out = []
    for component in cycles(kept):
        inside = set(component)
        ties = [f"{m} -> {b} (line {graph[m][b]})" for m in component for b in kept[m] if b in inside]
        out.append("import cycle among " + ", ".join(component) + ":\n    " + "\n    ".join(ties))
    return out


def floor_problems(graph: Dict[str, Dict[str, int]], floors: Dict[str, int],
                   known: Set[Tuple[str, str]] = frozenset()) -> List[str]:
    out = []
    for mod, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            here, there = room(mod), room(target)
            if here == there or (mod, target) in known:
                continue
            if floors[there] > floors[here]:
                out.append(f"{mod} -> {target} (line {line}): {here} (floor {floors[here]}) imports {there}, a floor "
                           f"above ({floors[there]})")
            elif floors[there] == floors[here]:
                out.append(f"{mod} -> {target} (line {line}): {here} and {there} share floor {floors[here]}; rooms on "
                           "one floor do not import each other (move what they share down)")
    return out


def floor_table() -> str:
    """The Markdown table docs/architecture.md quotes: top floor first."""
    rows = ["| Floor | Rooms | What they hold |", "|---|---|---|"]
    for level in range(len(FLOORS) - 1, -1, -1):
        floor = FLOORS[level]
        rows.append(f"| {level} | {', '.join(f'`{r}`' for r in floor.rooms)} | {floor.why} |")
    return "\n".join(rows)


BEGIN, END = "<!-- floors: generated by tests/test_import_graph.py, do not edit -->", "<!-- /floors -->"


def quoted_table(text: str) -> str:
    found = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert found, f"{PAGE.relative_to(REPO)} lacks the floor table between {BEGIN!r} and {END!r}"
    return found.group(1)


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_room_has_a_floor(graph):
    rooms = {room(m) for m in graph}
    floors = floor_of()
    assert not rooms - set(floors), f"rooms without a floor (add them to FLOORS): {sorted(rooms - set(floors))}"
    assert not set(floors) - rooms, f"floors name rooms that do not exist: {sorted(set(floors) - rooms)}"


def test_no_import_cycle(graph):
    problems = cycle_problems(graph, KNOWN_TANGLES)
    assert not problems, "\n".join(problems)


def test_imports_point_down(graph):
    problems = floor_problems(graph, floor_of(), KNOWN_TANGLES)
    assert not problems, "imports that do not point down:\n  " + "\n  ".join(problems)


def test_known_tangles_are_still_there(graph):
    gone = sorted(edge for edge in KNOWN_TANGLES if edge[1] not in graph.get(edge[0], {}))
    assert not gone, f"untangled: remove {gone} from KNOWN_TANGLES"


def test_architecture_page_quotes_the_floor_table():
    assert quoted_table(PAGE.read_text()) == floor_table(), (
        f"{PAGE.relative_to(REPO)}'s floor table differs from FLOORS: run `python tests/test_import_graph.py`")


def test_the_reader_catches_lazy_imports_package_imports_and_upward_arrows(tmp_path):
    """The checks on a small package: a cycle closed by an import inside a function, a cycle
    through ``from . import x`` (which imports the package), an import from a higher floor and one
    between rooms of one floor are each reported, naming the edge and its line."""
    pkg = tmp_path / "vidbench"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    files = {
        "__init__.py": "",
        "low/__init__.py": "from .a import A\n",
        "low/a.py": "A = 1\n\ndef f():\n    from .b import B  # lazy\n    return B\n",
        "low/b.py": "from .a import A\nB = A\n",
        "low/c.py": "from . import d\n",  # imports the package low, whose __init__ imports a ...
        "low/d.py": "X = 1\n",
        "high/__init__.py": "from ..low import a\n",
        "side.py": "from .low.d import X\n",
        "helper.py": "def g():\n    from .high import h  # upward\n",
        "high/h.py": "",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    (pkg / "low" / "a.py").write_text(files["low/a.py"] + "\ndef h():\n    from .c import X\n")  # ... and a imports c
    graph = import_graph(pkg)
    assert "vidbench.low" in graph["vidbench.low.c"] and "vidbench.low.d" in graph["vidbench.low.c"]
    problems = cycle_problems(graph)
    assert any("vidbench.low.a, vidbench.low.b" in p and "vidbench.low.a -> vidbench.low.b (line 4)" in p
               for p in problems), problems
    assert any("vidbench.low.c -> vidbench.low (line 1)" in p for p in problems), problems
    floors = {"low": 0, "side": 1, "helper": 1, "high": 2, "vidbench": 3}
    upward = floor_problems(graph, floors)
    assert any(p.startswith("vidbench.helper -> vidbench.high.h (line 2): helper (floor 1) imports high")
               for p in upward), upward
    assert not any(p.startswith("vidbench.side") for p in upward)  # side imports below itself
    floors["side"] = 0
    assert any(p.startswith("vidbench.side -> vidbench.low.d (line 1): side and low share floor 0")
               for p in floor_problems(graph, floors))
    known = {("vidbench.low.a", "vidbench.low.b"), ("vidbench.low.a", "vidbench.low.c")}
    assert cycle_problems(graph, known) == []


if __name__ == "__main__":  # rewrite the page's floor table from FLOORS
    text = PAGE.read_text()
    PAGE.write_text(text.replace(quoted_table(text), floor_table()))
    print(f"{PAGE.relative_to(REPO)}: floor table written")
