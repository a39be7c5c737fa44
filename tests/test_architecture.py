"""The shape of the code: the engine has no import cycle (imports inside functions included), never
imports Streamlit, defines its names once, and builds networks from settings in one place."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from conftest import REPO

ENGINE = REPO / "stca_engine"


def _modules() -> dict[str, Path]:
    out = {}
    for p in ENGINE.rglob("*.py"):
        parts = list(p.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(mod: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every engine module ``mod`` imports, at the top or inside a function (resolved to module names)."""
    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
                if node.level
                else node.module
            )
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != mod:
                found.add(t)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_the_engine_counting_imports_inside_functions():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert len(graph) > 30 and graph["stca_engine.trainer"]  # the walk sees the engine
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_hidden_inside_a_function(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    probe = tmp_path / "checkpoint.py"
    probe.write_text("def f():\n    from .trainer import Trainer\n")
    mods = {"stca_engine.checkpoint": probe, "stca_engine.trainer": ENGINE / "trainer.py"}
    assert _imports("stca_engine.checkpoint", probe, mods) == {"stca_engine.trainer"}


def test_the_engine_never_imports_streamlit():
    for p in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] == "streamlit" for n in names), p


def test_task_objective_and_dtype_names_are_defined_once():
    from stca_engine import checkpoint, cli, config, losses, names
    from stca_engine.data import sources

    for mod in (config, checkpoint, losses, sources):
        for attr in ("TASKS", "OBJECTIVES"):
            if hasattr(mod, attr):
                assert getattr(mod, attr) is getattr(names, attr), (mod.__name__, attr)
    assert config.DTYPES is checkpoint.DTYPES and tuple(config.DTYPES) == names.DTYPE_NAMES
    assert cli.TASKS is names.TASKS
    sys.path.insert(0, str(REPO / "app"))
    import state

    assert tuple(state.TASKS) == names.TASKS and tuple(state.OBJECTIVES) == names.OBJECTIVES
    # no module writes the tuples out again
    for p in [*ENGINE.rglob("*.py"), REPO / "app" / "engine_runs.py", REPO / "app" / "training_worker.py"]:
        if p.name == "names.py":
            continue
        text = p.read_text()
        for literal in ('("detect", "classify")', '("stca", "tdp1", "margin")', '["detect", "classify"]'):
            assert literal not in text, (p, literal)


def _calls(path: Path, name: str) -> int:
    return sum(
        1
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
    )


def test_cli_trainer_and_app_build_networks_with_the_one_factory():
    for p in (ENGINE / "cli.py", ENGINE / "trainer.py", REPO / "app" / "engine_runs.py"):
        assert _calls(p, "build_network") >= 1, p
        assert _calls(p, "SNN") == 0, p


def test_build_network_follows_the_settings():
    import torch

    from stca_engine.config import NeuronConfig, TrainConfig
    from stca_engine.network import build_network

    tc = TrainConfig(
        task="classify", objective="margin", hidden=[7, 5], seed=3, init_std=0.2, dtype="float64"
    ).validate()
    net = build_network(tc, NeuronConfig(), 11, 4, device="cpu")
    assert net.sizes == [11, 7, 5, 4] and net.dtype == torch.float64 and not net.output_spiking
    assert abs(float(net.weights[0].detach().std()) - 0.2) < 0.08
    again = build_network(tc, NeuronConfig(), 11, 4, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(net.weights, again.weights))  # same seed, same start
    assert build_network(tc, NeuronConfig(), 11, 4, device="cpu", init_std=0.0).weights[0].detach().abs().max() == 0
