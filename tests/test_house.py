"""The shape of the house: every module imports, no two modules import each other (directly or
round a loop), and one job probes its input once and writes each of its files once."""
from __future__ import annotations

import ast
import importlib
import shutil
from collections import Counter
from pathlib import Path

import pytest

from dub_cli import placeholder_checkpoint

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

def _record_opens(monkeypatch, path: Path) -> Counter:
    """Which modules open `path` with PyAV (headers or pictures), how often."""
    import sys

    import av

    openers: Counter = Counter()
    real_open = av.open

    def recording_open(file, *args, **kwargs):
        if str(file) == str(path):
            openers.update([sys._getframe(1).f_globals.get("__name__", "?")])
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", recording_open)
    return openers


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
    monkeypatch.setattr(atomic, "_create_temp", lambda target, *temp: created.append(target) or real_create(target, *temp))
    wavs: list[str] = []
    real_wav = audio_io.write_wav_blocks

    def counting_wav(path, *args, **kwargs):
        wavs.append(atomic.public_path(Path(path)).name)
        return real_wav(path, *args, **kwargs)

    monkeypatch.setattr(audio_io, "write_wav_blocks", counting_wav)
    clip = Path(shutil.copyfile(sample_24p[0], tmp_path / "clip.mp4"))
    openers = _record_opens(monkeypatch, clip)
    options = dubber.DubOptions(backend="score", cache_dir=str(tmp_path / "cache"), stems_dir=str(tmp_path / "st"),
                                timeline=True)
    result = dubber.dub(clip, tmp_path / "out" / "v.mp4", options)
    assert scans == [str(clip)]                                     # one probe for the whole job
    assert openers["vision.probe"] == 1 and "dubber.media.mux" not in openers   # the mux reads the probe
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


# ----------------------------------------------------------------------------- typed status, scoped settings

def _checkpoint_folder(root: Path, *, complete: bool) -> Path:
    parts = ["audiostory-3B/config.yaml", "audiostory-3B/pytorch_model.bin", "Qwen2.5-3B-Instruct/tokenizer_config.json"]
    if complete:
        parts += ["Flux_detokenizer/config.json", "Flux_detokenizer/model.safetensors"]
    return placeholder_checkpoint(root, parts)


def test_weights_status_is_a_typed_answer(tmp_path, monkeypatch):
    from audiostory_core.errors import FOLDER_MISSING, INCOMPLETE, NOT_CACHED
    from dubber.backends import READY, weights_availability

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    empty_cache = weights_availability(None)
    assert (empty_cache.available, empty_cache.reason) == (False, NOT_CACHED)
    assert empty_cache.fix == "run `dub models download`" and "(" not in empty_cache.message
    missing = weights_availability(str(tmp_path / "nowhere"))
    assert (missing.available, missing.reason) == (False, FOLDER_MISSING) and str(tmp_path / "nowhere") in missing.message
    half = weights_availability(str(_checkpoint_folder(tmp_path / "half", complete=False)))
    assert (half.available, half.reason) == (False, INCOMPLETE) and "Flux_detokenizer" in half.message
    whole = weights_availability(str(_checkpoint_folder(tmp_path / "whole", complete=True)))
    assert (whole.available, whole.reason, whole.location) == (True, READY, str(tmp_path / "whole" / "audiostory-3B"))


def test_backend_choice_follows_the_status_code_not_its_wording(tmp_path, monkeypatch):
    """A reworded status still gives the same choice and the same user-facing fix."""
    from dubber import api, backends
    from dubber.errors import BackendUnavailable

    reworded = backends.Availability(False, "weights_not_cached", "nothing cached (yet); see below", "run `dub models download`")
    monkeypatch.setattr(backends, "weights_availability", lambda model=None: reworded)
    real_find_spec = backends.importlib.util.find_spec
    monkeypatch.setattr(backends.importlib.util, "find_spec",   # as where torch is installed
                        lambda name, *a: object() if name == "torch" else real_find_spec(name, *a))
    monkeypatch.setattr(backends, "cuda_available", lambda: True)   # ... with a GPU
    assert backends.choose_auto(None) == ("score", "score backend: nothing cached (yet); see below (run `dub models download`)")
    with pytest.raises(BackendUnavailable) as free:
        api.resolve_backend(api.DubOptions(timing="free"))
    assert str(free.value) == ("Free timing needs the audiostory backend, which cannot run here: nothing cached (yet); "
                               "see below; drop --timing free or run `dub models download`.")
    # Weights here but no GPU: `auto` declines the CPU, and the fix says the user may choose it.
    monkeypatch.setattr(backends, "weights_availability", lambda model=None: backends.Availability(True, backends.READY, "found"))
    monkeypatch.setattr(backends, "cuda_available", lambda: False)
    with pytest.raises(BackendUnavailable) as on_cpu:
        api.resolve_backend(api.DubOptions(timing="free"))
    assert "which auto does not choose here" in str(on_cpu.value)
    assert str(on_cpu.value).endswith("or pass --backend audiostory to run it on the CPU (slowly).")
    monkeypatch.setattr(backends, "weights_availability", lambda model=None: reworded)
    monkeypatch.setattr(backends, "cuda_available", lambda: True)
    with pytest.raises(BackendUnavailable) as explicit:
        api.resolve_backend(api.DubOptions(backend="audiostory", model="someone/model"))
    assert str(explicit.value).startswith("The AudioStory weights (someone/model) are not on this machine;")
    # Its fix fetches that repo, not the official one.
    assert "run `hf download someone/model`" in str(explicit.value) and "dub models" not in str(explicit.value)


class _RecordingEnviron(dict):
    """os.environ that remembers every change made to it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.changes: list[str] = []

    def __setitem__(self, key, value):
        self.changes.append(f"set {key}")
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.changes.append(f"del {key}")
        super().__delitem__(key)

    def pop(self, key, *default):
        self.changes.append(f"del {key}")
        return super().pop(key, *default)

    def setdefault(self, key, value=None):
        if key not in self:
            self.changes.append(f"set {key}")
        return super().setdefault(key, value)

    def update(self, *args, **kwargs):
        self.changes.append("update")
        super().update(*args, **kwargs)


def _recorded_hub_lookups(tmp_path: Path, monkeypatch) -> list[bool]:
    """Online (HF_HUB_OFFLINE unset) with an empty Hub cache; every Hub look-up from here on
    appends whether it was local-only by argument."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    lookups: list[bool] = []
    real_download = huggingface_hub.snapshot_download

    def local_lookup(*args, **kwargs):
        lookups.append(kwargs.get("local_files_only"))
        return real_download(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", local_lookup)
    return lookups


def test_a_job_leaves_the_process_environment_to_the_next(sample_24p, tmp_path, monkeypatch):
    """Jobs of one watch folder or batch share a process: choosing a backend looks only in the local
    Hub cache for its own call and never sets HF_HUB_OFFLINE, not even for a moment."""
    import os


    from dubber import api

    lookups = _recorded_hub_lookups(tmp_path, monkeypatch)
    environ = _RecordingEnviron(os.environ)
    monkeypatch.setattr(os, "environ", environ)
    clip = Path(shutil.copyfile(sample_24p[0], tmp_path / "clip.mp4"))
    before = dict(environ)
    for number in (1, 2):
        job = api.prepare(clip, tmp_path / f"out{number}.mp4", api.DubOptions(backend="auto",
                                                                               cache_dir=str(tmp_path / "cache")))
        assert job.backend == "score"
    assert environ.changes == [] and dict(environ) == before
    assert lookups and all(lookups)      # each look-up was local-only by argument


def test_a_checkpoint_without_its_text_encoder_is_never_completed_from_the_hub_mid_run(tmp_path, monkeypatch):
    """A checkpoint whose .bin leaves out the flan-t5-large encoder, with no folder of it beside:
    the run looks for it in the local Hub cache only (a dub never downloads, HF_HUB_OFFLINE or
    not), and says what to fetch."""

    from audiostory_core import checkpoint
    from audiostory_core.errors import WeightsNotFound

    lookups = _recorded_hub_lookups(tmp_path, monkeypatch)
    with pytest.raises(WeightsNotFound, match="flan-t5-large"):
        checkpoint._t5_state(type("Files", (), {"t5_dir": None})(), {})
    assert lookups == [True]


# ----------------------------------------------------------------------------- one atomic writer

def _functions_that_stage_and_rename(path: Path) -> list[str]:
    """Functions of a module that create a temporary file themselves and rename it into place."""
    makers = {"mkstemp", "NamedTemporaryFile"}
    movers = {"replace", "rename"}
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        called = {getattr(c.func, "attr", getattr(c.func, "id", None)) for c in ast.walk(node) if isinstance(c, ast.Call)}
        if called & makers and called & movers:
            found.append(f"{path.relative_to(REPO)}:{node.name}")
    return found


def test_dubber_has_one_atomic_writer():
    """Every file dubber and vision write goes through dubber.atomic (audiostory_core stands alone and
    keeps its own, checked below to behave the same)."""
    writers = [w for package in ("dubber", "vision") for p in sorted((REPO / package).rglob("*.py"))
               if p != REPO / "dubber" / "atomic.py" for w in _functions_that_stage_and_rename(p)]
    assert writers == []
    assert _functions_that_stage_and_rename(REPO / "dubber" / "review.py") == []   # the checker sees functions
    probe = REPO / "tests" / "test_house.py"
    assert _functions_that_stage_and_rename(probe) == []


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def team_umask():
    import os

    old = os.umask(0o022)
    yield 0o644
    os.umask(old)


def test_review_pictures_and_studio_copies_are_written_like_every_output(tmp_path, monkeypatch, team_umask):
    import numpy as np

    import dubber.atomic as atomic
    from dubber.spectrogram import spectrogram_png
    from dubber.studio.project import _link_or_copy

    staged: list[str] = []
    real_create = atomic._create_temp
    monkeypatch.setattr(atomic, "_create_temp", lambda target, *temp: staged.append(target.name) or real_create(target, *temp))
    png = tmp_path / "pages" / "mix.png"
    data = spectrogram_png(np.zeros((2, 4800), np.float32), 48_000, out_path=png)
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"\0" * 1000)
    source.chmod(0o644)
    (tmp_path / "project").mkdir()
    copy = _link_or_copy(source, tmp_path / "project", link=False)
    assert staged == ["mix.png", "clip.mp4"]
    assert png.read_bytes() == data and copy.read_bytes() == source.read_bytes()
    assert (png.stat().st_mode & 0o777, copy.stat().st_mode & 0o777) == (team_umask, team_umask)
    assert _listing(png.parent) == ["mix.png"] and _listing(tmp_path / "project") == ["clip.mp4"]


def test_saved_weights_are_written_like_every_output(tmp_path, team_umask, monkeypatch):
    """The standalone model package's writer: readable by the team, flushed, and nothing left
    behind when the write fails."""
    torch = pytest.importorskip("torch")
    import os

    import safetensors.torch

    from audiostory_core.weight_files import save_safetensors

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    out = save_safetensors({"w": torch.ones(3)}, tmp_path / "weights" / "lora.safetensors")
    assert out.stat().st_mode & 0o777 == team_umask and synced
    assert _listing(out.parent) == ["lora.safetensors"]
    assert torch.equal(safetensors.torch.load_file(str(out))["w"], torch.ones(3))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError):
        save_safetensors({"w": torch.zeros(3)}, out)
    assert _listing(out.parent) == ["lora.safetensors"]
    assert torch.equal(safetensors.torch.load_file(str(out))["w"], torch.ones(3))   # the old file intact


# ----------------------------------------------------------------------------- the mux reads the probe

def test_the_mux_keeps_every_track_and_stream_the_probe_found(sample_24p, tmp_path, monkeypatch):
    """Original tracks (with language and title), subtitles and attachments come from the job's
    one probe, also when that probe was read back from the cache: the mux never reopens the input."""
    import av
    import numpy as np
    import soundfile

    from dubber.media.ffmpeg import run_ffmpeg
    from dubber.media.mux import mux
    from vision.probe import probe
    from vision.types import AudioTrack, MediaInfo

    video, _ = sample_24p
    subtitles = tmp_path / "lines.srt"
    subtitles.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello\n", encoding="utf-8")
    font = tmp_path / "font.ttf"
    font.write_bytes(b"\0" * 64)
    source = tmp_path / "source.mkv"
    run_ffmpeg(["-i", str(video), "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=6",
                "-i", str(subtitles), "-map", "0:v", "-map", "0:a", "-map", "1:a", "-map", "2:s",
                "-c:v", "copy", "-c:a:0", "copy", "-c:a:1", "flac", "-c:s", "srt",
                "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
                "-metadata:s:a:1", "title=Commentary", "-attach", str(font),
                "-metadata:s:t", "mimetype=font/ttf", "-shortest", str(source)], what="making a many-stream source")
    info = MediaInfo.from_dict(probe(source).to_dict())              # as the analysis cache hands it back
    assert info.audio_tracks == (AudioTrack("aac", "eng", None, default=True), AudioTrack("flac", "fra", "Commentary"))
    assert [(e.kind, e.label) for e in info.extra_streams] == [("subtitle", "subtitle (stream 3)"),
                                                                 ("attachment", "attachment font.ttf")]
    assert info.extra_streams[0].codec == "subrip"
    wav = tmp_path / "dub.wav"
    soundfile.write(wav, np.zeros((info.total_samples(48_000), 2), np.float32), 48_000, subtype="PCM_24")
    openers = _record_opens(monkeypatch, source)
    out = tmp_path / "out.mkv"
    assert mux(source, wav, out, original_audio=True, video_info=info) == ()
    assert not openers                                               # ffmpeg alone read the source
    with av.open(str(out)) as result:
        tracks = [(s.metadata.get("title"), s.metadata.get("language")) for s in result.streams.audio]
        kinds = [s.type for s in result.streams]
    assert tracks == [("Dub", "zxx"), ("Original 1", "eng"), ("Original 2: Commentary", "fra")]
    assert kinds.count("subtitle") == 1 and kinds.count("attachment") == 1
