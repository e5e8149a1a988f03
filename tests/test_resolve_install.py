"""Installing the Resolve script and its settings: a reinstall keeps the user's settings, a broken
or unusable dub_resolve.json is one sentence (from the command line and from Resolve's menu), a
missing `dub` command too; dub's notices reach the user; where Resolve keeps its scripts on each
system; the installed copy run as Resolve's menu runs it; and the progress window.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.resolve_helpers import EXPECTED_RECORD_OFFSETS, audio_items, dr, make_setup, rb, runner


def test_reinstall_keeps_the_users_settings(tmp_path, capsys):
    from integrations.install import install

    scripts = tmp_path / "Utility"
    install("resolve", scripts)
    config_path = scripts / "dub_resolve.json"
    first = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**first, "dub": ["/old/env/bin/dub"], "style": "noir", "lufs": "ebu",
                                       "backend": "score"}))
    capsys.readouterr()
    install("resolve", scripts)
    assert json.loads(config_path.read_text()) == {**first, "style": "noir", "lufs": "ebu", "backend": "score"}
    said = capsys.readouterr().err
    assert said == f'dub: kept your settings in {config_path}: style="noir", lufs="ebu", backend="score"\n'


def test_reinstall_over_a_broken_config_changes_nothing(tmp_path):
    from integrations.install import IntegrationError, install

    scripts = tmp_path / "Utility"
    scripts.mkdir()
    config_path = scripts / "dub_resolve.json"
    config_path.write_text('{"style": "noir",}')   # a hand edit with a trailing comma
    with pytest.raises(IntegrationError, match="cannot be read as JSON .*; fix or delete it, then install again.$"):
        install("resolve", scripts)
    assert config_path.read_text() == '{"style": "noir",}'
    assert not (scripts / "Dub Shot Audio.py").exists()


BROKEN_CONFIG = '{"style": "noir",\n "lufs": "ebu",}'   # a hand edit with a trailing comma


def broken_config_sentence(path: Path) -> str:
    return (f"The settings file {path} is not valid JSON at line 2, column 16 (expecting property name "
            "enclosed in double quotes); fix it, or delete it and run `dub integrations install resolve` again.")


def test_malformed_settings_file_is_one_sentence_from_the_command_line(tmp_path):
    import subprocess

    config_path = tmp_path / "dub_resolve.json"
    config_path.write_text(BROKEN_CONFIG)
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"never read")
    env = {**os.environ, "DUB_RESOLVE_CONFIG": str(config_path)}
    proc = subprocess.run([sys.executable, str(Path(dr.__file__)), str(source)], capture_output=True, text=True,
                          env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stdout == broken_config_sentence(config_path) + "\n"
    assert proc.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "dub_resolve.json"]


def test_malformed_settings_file_is_one_sentence_from_the_resolve_menu(tmp_path, capsys):
    """The installed copy, run the way Resolve's menu does: it says what is wrong with the
    settings instead of failing to find the bridge or raising."""
    import runpy

    from integrations.install import install

    scripts = tmp_path / "Utility"
    installed = install("resolve", scripts)
    config_path = scripts / "dub_resolve.json"
    config_path.write_text(BROKEN_CONFIG)
    resolve, timeline, _, _ = make_setup(tmp_path, "25")
    capsys.readouterr()
    runpy.run_path(str(installed), init_globals={"resolve": resolve}, run_name="__resolve_menu__")
    assert capsys.readouterr().out == broken_config_sentence(config_path) + "\n"
    assert timeline.GetTrackCount("audio") == 1


@pytest.mark.parametrize("text, said", [
    ("[1, 2]", "does not hold a JSON object of settings"),
    (b"\xff\xfe{", "cannot be read"),
])
def test_unusable_settings_file_is_one_sentence(tmp_path, monkeypatch, capsys, text, said):
    config_path = tmp_path / "dub_resolve.json"
    config_path.write_bytes(text.encode() if isinstance(text, str) else text)
    monkeypatch.setenv("DUB_RESOLVE_CONFIG", str(config_path))
    assert dr.main([str(tmp_path / "clip.mp4")]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"The settings file {config_path} {said}") and out.count("\n") == 1
    assert out.endswith("; fix it, or delete it and run `dub integrations install resolve` again.\n")


def test_missing_dub_command_is_one_sentence(tmp_path, monkeypatch, capsys):
    _, _, _, source = make_setup(tmp_path, "24")
    config_path = tmp_path / "dub_resolve.json"
    config_path.write_text(json.dumps({"dub": ["/nonexistent/dub"]}))
    monkeypatch.setattr(rb, "connect", lambda resolve=None: None)
    monkeypatch.setenv("DUB_RESOLVE_CONFIG", str(config_path))
    assert dr.main([str(source)]) == 2
    assert capsys.readouterr().out == (
        "The dub command /nonexistent/dub could not be started (No such file or directory); set \"dub\" in "
        "dub_resolve.json or run `dub integrations install resolve` again.\n")
    assert not (source.parent / "clip_dub").exists()


NOTICE = "score backend: no CUDA GPU is available, so the orchestral score engine writes this dub."


def test_notice_is_described_in_words():
    assert rb.describe({"event": "notice", "message": NOTICE}) == f"dub: {NOTICE}"
    assert rb.describe({"event": "notice", "message": ""}) == "dub: working"


def test_dub_notices_are_printed(tmp_path, monkeypatch, capsys):
    _, _, config, source = make_setup(tmp_path, "24", notice=NOTICE)
    config_path = tmp_path / "dub_resolve.json"
    config_path.write_text(json.dumps(config))
    monkeypatch.setattr(rb, "connect", lambda resolve=None: None)
    monkeypatch.setenv("DUB_RESOLVE_CONFIG", str(config_path))
    assert dr.main([str(source)]) == 0
    assert f"dub: {NOTICE}" in capsys.readouterr().out.splitlines()


def test_progress_window_prints_dub_notices(tmp_path, capsys):
    resolve, _, config, _ = make_setup(tmp_path, "25", notice=NOTICE)
    window, _ = window_setup()
    capsys.readouterr()
    dr.dub_into_timeline(resolve, config, window)
    assert capsys.readouterr().out.splitlines() == [f"dub: {NOTICE}"]


@pytest.mark.parametrize("setting, flag", [(None, False), (False, False), (True, True), ("yes", True)])
def test_keep_original_setting_reaches_dub_and_its_notice_names_the_setting(tmp_path, setting, flag):
    """dub says how to keep the source's sound by its command-line flag, which the script passes
    from `"keep_original": true` in dub_resolve.json; the user is told about that setting instead."""
    resolve, _, config, source = make_setup(tmp_path, "25", source_has_audio=True)
    if setting is not None:
        config["keep_original"] = setting
    assert ("--keep-original" in dr.build_args(config, source, tmp_path / "clip_dub")) is flag
    events = []
    dr.dub_into_timeline(resolve, config, runner(events.append))
    said = [rb.describe(e) for e in events if e.get("event") == "notice"]
    assert said == ([] if flag else [
        "dub: the source's audio track is not in the output, only the dub; "
        'set "keep_original": true in dub_resolve.json to keep it after the dub'])


@pytest.mark.parametrize("system, expected", [
    ("Linux", "/home/ed/.local/share/DaVinciResolve/Fusion/Scripts/Utility"),
    ("Darwin", "/home/ed/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility"),
    ("Windows", "/appdata/Blackmagic Design/DaVinci Resolve/Support/Fusion/Scripts/Utility"),
])
def test_resolve_scripts_folder_per_os(system, expected):
    from integrations.install import resolve_scripts_dir

    found = resolve_scripts_dir(system, home=Path("/home/ed"), environ={"APPDATA": "/appdata"})
    assert found.as_posix() == expected


def test_installed_launcher_runs_from_resolve_menu(tmp_path):
    """Install into a scripts folder, then run the copy the way Resolve's menu does: a fresh
    namespace with `resolve` injected, far from the package."""
    import runpy

    from integrations.install import install

    scripts = tmp_path / "Fusion" / "Scripts" / "Utility"
    installed = install("resolve", scripts)
    assert installed == scripts / "Dub Shot Audio.py"
    assert installed.read_text() == Path(dr.__file__).read_text()
    config = json.loads((scripts / "dub_resolve.json").read_text())
    assert Path(config["bridge_dir"], "resolve_bridge.py").is_file()
    assert Path(config["dub"][0]).name in ("dub", "python", "python3") or config["dub"][-1] == "dubber.cli"
    resolve, timeline, fake_config, _ = make_setup(tmp_path, "25")
    (scripts / "dub_resolve.json").write_text(json.dumps({**fake_config, "bridge_dir": config["bridge_dir"]}))
    runpy.run_path(str(installed), init_globals={"resolve": resolve}, run_name="__resolve_menu__")
    items = audio_items(timeline, 2)
    assert [i.GetStart() for i in items] == [90000 + o for o in EXPECTED_RECORD_OFFSETS]


def test_unknown_integration_is_one_sentence():
    from integrations.install import IntegrationError, install

    with pytest.raises(IntegrationError, match="^Unknown integration 'premiere'; choose one of: resolve, blender.$"):
        install("premiere")


class FakeUIManager:
    """Fusion's UIManager, only the calls listed under "ui" in api_surface.json."""

    def VGroup(self, children):
        return children

    def Label(self, props):
        return SimpleNamespace(**props)

    def Button(self, props):
        return SimpleNamespace(**props)


class FakeEvents:
    def __getattr__(self, name):
        handlers = SimpleNamespace()
        object.__setattr__(self, name, handlers)
        return handlers


class FakeWindow:
    def __init__(self, items):
        self.items, self.On, self.shown = {i.ID: i for i in items}, FakeEvents(), None
        self.texts = []

    def Find(self, name):
        return self.items[name]

    def Show(self):
        self.shown = True

    def Hide(self):
        self.shown = False


class FakeDispatcher:
    def __init__(self, ui):
        self.exit = threading.Event()

    def AddWindow(self, props, items):
        self.window = FakeWindow(items)
        return self.window

    def RunLoop(self):
        assert self.exit.wait(30), "ExitLoop never came"

    def ExitLoop(self):
        self.exit.set()


def window_setup():
    dispatchers = []
    bmd = SimpleNamespace(UIDispatcher=lambda ui: dispatchers.append(FakeDispatcher(ui)) or dispatchers[-1])
    return dr.ProgressWindow(SimpleNamespace(UIManager=FakeUIManager()), bmd), dispatchers


def test_progress_window_shows_stages_and_returns_outputs(tmp_path):
    resolve, timeline, config, _ = make_setup(tmp_path, "25")
    window, dispatchers = window_setup()
    message = dr.dub_into_timeline(resolve, config, window)
    assert message == "Placed 6 dub clips on 2 new audio track(s)."
    status = dispatchers[0].window.Find("Status")
    assert status.Text == "dub: finished" and dispatchers[0].window.shown is False


def test_progress_window_cancel_button_kills_dub(tmp_path):
    resolve, timeline, config, _ = make_setup(tmp_path, "25", sleep_s=5)
    window, dispatchers = window_setup()
    clicker = threading.Timer(0.5, lambda: dispatchers[0].window.On.Cancel.Clicked(None))
    clicker.start()
    began = time.monotonic()
    with pytest.raises(rb.DubScriptError, match="cancelled"):
        dr.dub_into_timeline(resolve, config, window)
    assert time.monotonic() - began < 4 and timeline.GetTrackCount("audio") == 1
