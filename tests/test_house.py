"""The shape of the house: every module imports, no two modules import each other (directly or
round a loop), and one job probes its input once and writes each of its files once."""
from __future__ import annotations

import ast
import importlib
import shutil
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("dubber", "vision", "audiostory_core")
# Third-party packages only some installs have (the studio's and the batch pool's extras).
OPTIONAL = {"gradio", "ray"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


class _Imports(ast.NodeVisitor):
    """Every module of ours that `module` imports, at the top or inside a function (a lazy import
    still ties the two together); imports only for type checkers do not count."""

    def __init__(self, module: str, is_package: bool):
        self.module, self.is_package = module, is_package
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _add(self, name: str) -> None:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != self.module:
            self.found.add(name)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
            base = base[:len(base) - node.level + 1]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        for alias in node.names:
            submodule = f"{origin}.{alias.name}"
            self._add(submodule if submodule in MODULES else origin)


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        visitor = _Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        graph[name] = visitor.found
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_the_import_graph_finds_a_known_loop():
    """The checker itself: a two-module loop is reported, a chain is not."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_two_modules_import_each_other():
    graph = _graph()
    assert graph["dubber.media.mux"] >= {"dubber.atomic", "dubber.media.ffmpeg"}   # the graph sees imports
    assert _cycles(graph) == []


def test_the_library_never_imports_the_command_line():
    graph = _graph()
    library = [name for name in graph if not name.startswith("dubber.cli") and name != "dubber.studio"]
    assert [name for name in library if any(t.startswith("dubber.cli") for t in graph[name])] == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name not in OPTIONAL:
            raise
        pytest.skip(f"{name} needs the optional {err.name} package")


# ----------------------------------------------------------------------------- one job, once each

def test_a_job_probes_once_and_writes_each_file_once(sample_24p, tmp_path, monkeypatch):
    import sys

    import dubber
    import dubber.atomic as atomic
    from dubber.media import audio_io

    probe_module = sys.modules[importlib.import_module("vision.probe").__name__]
    scans: list[str] = []
    real_scan = probe_module._scan_packets
    monkeypatch.setattr(probe_module, "_scan_packets", lambda c, s, p: scans.append(str(p)) or real_scan(c, s, p))
    created: list[str] = []
    real_create = atomic._create_temp
    monkeypatch.setattr(atomic, "_create_temp", lambda target: created.append(target) or real_create(target))
    wavs: list[str] = []
    real_wav = audio_io.write_wav

    def counting_wav(path, *args, **kwargs):
        wavs.append(atomic.public_path(Path(path)).name)
        return real_wav(path, *args, **kwargs)

    monkeypatch.setattr(audio_io, "write_wav", counting_wav)
    clip = Path(shutil.copyfile(sample_24p[0], tmp_path / "clip.mp4"))
    options = dubber.DubOptions(backend="score", cache_dir=str(tmp_path / "cache"), stems_dir=str(tmp_path / "st"),
                                timeline=True)
    result = dubber.dub(clip, tmp_path / "out" / "v.mp4", options)
    assert scans == [str(clip)]                                     # one probe for the whole job
    published = {Path(p).name for p in result.outputs.values()}
    cache = tmp_path / "cache"
    job_files = Counter(t.name for t in created if cache not in t.parents and not t.name.endswith(".commit"))
    assert set(job_files) == published and set(job_files.values()) == {1}   # each file written once
    assert Counter(wavs) == Counter({"v.mix.wav": 1, "v.music.wav": 1, "v.fx.wav": 1})   # the mix once, not twice


def test_a_command_line_job_checks_each_thing_once(sample_24p, tmp_path, monkeypatch, capsys):
    from dubber import api
    from dubber.cli.main import main

    calls: Counter = Counter()
    for name in ("check_input_file", "check_options", "plan_destinations", "resolve_backend"):
        real = getattr(api, name)
        monkeypatch.setattr(api, name, lambda *a, _real=real, _name=name, **k: calls.update([_name]) or _real(*a, **k))
    monkeypatch.setenv("DUB_CACHE_DIR", str(tmp_path / "cache"))
    clip = Path(shutil.copyfile(sample_24p[0], tmp_path / "clip.mp4"))
    assert main([str(clip), "--backend", "score", "-o", str(tmp_path / "out.mp4")]) == 0
    assert calls == Counter({"check_input_file": 1, "check_options": 1, "plan_destinations": 1, "resolve_backend": 1})
