"""The package's layers: a module imports only from its own package or from packages listed
before it; the commands at the top of tfnmt/ import the library, never each other; library
code imports tfnmt modules at module level only (a function-local import hid a cycle)."""

import ast
import pathlib

import pytest

import tfnmt

ROOT = pathlib.Path(tfnmt.__file__).parent
LAYERS = ["core", "data", "layers", "models", "decoding", "methods", "runs", "inference",
          ("training", "serving"), "evaluation", "cli"]
RANK = {name: rank for rank, layer in enumerate(LAYERS)
        for name in (layer if isinstance(layer, tuple) else (layer,))}
COMMANDS = len(LAYERS)


def package_of(module):
    """'tfnmt.decoding.search' -> 'decoding'; a command ('tfnmt.train') -> None."""
    parts = module.split(".")
    if len(parts) == 2 and (ROOT / f"{parts[1]}.py").exists():
        return None
    return parts[1] if len(parts) > 1 else None


def rank_of(package):
    return COMMANDS if package is None else RANK[package]


def imports(path):
    """(module imported, line, whether at module level) for every tfnmt import in `path`."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfnmt"):
            names = [f"{node.module}.{a.name}" if node.module == "tfnmt" else node.module
                     for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("tfnmt")]
        else:
            continue
        for name in names:
            yield name, node.lineno, id(node) in top


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        yield ".".join(p for p in parts if p != "__init__"), path


def test_every_package_has_a_layer():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(RANK)


@pytest.mark.parametrize("module,path", list(modules()), ids=lambda v: str(v))
def test_no_import_runs_up_the_layers(module, path):
    mine = package_of(module)
    problems = []
    for imported, line, module_level in imports(path):
        theirs = package_of(imported)
        if imported == "tfnmt.cli" and mine is None:
            continue  # every command imports it first (quiet TensorFlow start-up)
        if theirs is None and imported != "tfnmt":
            problems.append(f"line {line}: {imported} is a command")
        elif theirs != mine and rank_of(theirs) >= rank_of(mine):
            problems.append(f"line {line}: {imported} is not below {mine or 'the commands'}")
        if mine is not None and not module_level:
            problems.append(f"line {line}: function-local import of {imported}")
    assert not problems, f"{path}: " + "; ".join(problems)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rule fails where it should: models importing decoding, and a local import."""
    bad = tmp_path / "bad.py"
    bad.write_text("from tfnmt.decoding.search import decode\n"
                   "def f():\n    from tfnmt.data import corpus\n")
    found = list(imports(bad))
    assert [(m, top) for m, _, top in found] == [("tfnmt.decoding.search", True),
                                                 ("tfnmt.data", False)]
    assert rank_of(package_of("tfnmt.decoding.search")) > rank_of(package_of("tfnmt.models.nat"))
