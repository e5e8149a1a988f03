"""The score engine's SoundFont as a user meets it: a bank that is not a whole SF2 is refused in one
sentence before any work, and the licence recorded for a bank comes from its bytes, not its name."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dub_cli import dub_env, run_dub
from dubber.backends.score.render import (SoundFont, SoundFontError, default_soundfont_path, load_soundfont,
                                          synthesize)


@pytest.fixture(scope="module")
def default_bank_bytes() -> bytes:
    return default_soundfont_path().read_bytes()


def _without_pdta(data: bytes) -> bytes:
    """The bank cut before its preset list, with the RIFF size rewritten to match: whole by its
    header, yet no synthesizer can play it."""
    at = 12   # past "RIFF", the size and "sfbk": walk the top-level chunks to the preset list
    while data[at + 8:at + 12] != b"pdta":
        at += 8 + int.from_bytes(data[at + 4:at + 8], "little")
    cut = data[:at]
    return cut[:4] + (len(cut) - 8).to_bytes(4, "little") + cut[8:]


def test_a_truncated_bank_or_a_folder_is_refused_in_one_sentence_before_the_analysis(
        tmp_path, sample_24p, default_bank_bytes):
    truncated = tmp_path / "trunc.sf2"
    truncated.write_bytes(default_bank_bytes[:100_000])
    folder = tmp_path / "banks"
    folder.mkdir()
    cache = tmp_path / "dub-cache"
    for bank, says in ((truncated, f"damaged or incomplete (RIFF size {len(default_bank_bytes) - 8}, file 100000 bytes)"),
                       (folder, "is a folder, not an .sf2 file")):
        out = tmp_path / "out.mp4"
        done = run_dub([sample_24p[0], "--backend", "score", "--soundfont", bank, "-o", out], dub_env(tmp_path))
        assert done.returncode == 2, done.stderr
        assert says in done.stderr and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not out.exists()
        assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*")), "the video was analysed first"


def test_a_bank_without_its_preset_list_is_refused_when_the_options_are_checked(tmp_path, default_bank_bytes):
    from dubber.api import DubOptions, check_options
    from dubber.errors import InputError

    bank = tmp_path / "nopresets.sf2"
    bank.write_bytes(_without_pdta(default_bank_bytes))
    with pytest.raises(InputError, match=r"nopresets\.sf2 is damaged or incomplete \(no LIST pdta chunk\)"):
        check_options(DubOptions(backend="score", soundfont=str(bank)))


def test_a_bank_the_synthesizer_cannot_play_is_a_user_error_not_a_crash(default_bank_bytes):
    """The last line of defence, for a bank that changes after it was checked."""
    from dubber.backends.score.render import smf_bytes
    from dubber.backends.score.notation import Note, Part
    from dubber.errors import is_user_error

    broken = SoundFont("/banks/broken.sf2", "broken.sf2", "unknown", default_bank_bytes[:100_000], "0" * 64)
    midi = smf_bytes([Note(Part(0, "music"), 60, 0.0, 0.5, 100, "test")], [], 1.0)
    with pytest.raises(SoundFontError) as caught:
        synthesize(midi, broken)
    assert is_user_error(caught.value)
    assert "/banks/broken.sf2" in str(caught.value) and "--soundfont" in str(caught.value)


def test_the_licence_comes_from_the_banks_bytes_not_its_name(tmp_path, default_bank_bytes):
    """A renamed copy of the GPL-2.0 default bank is still GPL-2.0, whatever its name; another
    bank named like a known one gets that licence only as a guess, and says so."""
    from dubber.cli.doctor import _soundfont_status

    assert load_soundfont().licence == "GPL-2.0"
    assert _soundfont_status().startswith("TimGM6mb.sf2, licence GPL-2.0, in ")
    for name in ("FluidR3_GM.sf2", "My Bank.sf2"):
        copy = tmp_path / name
        copy.write_bytes(default_bank_bytes)
        assert load_soundfont(copy).facts()["licence"] == "GPL-2.0", name
    other = bytearray(default_bank_bytes)
    other[len(other) // 2] ^= 0xFF   # one sample byte changed: another bank, by its bytes
    (tmp_path / "other").mkdir()
    for name, licence in (("FluidR3_GM.sf2", "MIT (by its file name; check the bank's own notice)"),
                          ("TimGM6mb.sf2", "GPL-2.0 (by its file name; check the bank's own notice)"),
                          ("Strings.sf2", "unknown (see the bank's own notice)")):
        bank = tmp_path / "other" / name
        bank.write_bytes(bytes(other))
        assert load_soundfont(bank).licence == licence, name


def test_the_manifest_of_a_dub_with_a_renamed_default_bank_records_gpl(tmp_path, sample_24p, default_bank_bytes):
    import dubber

    bank = tmp_path / "FluidR3_GM.sf2"
    bank.write_bytes(default_bank_bytes)
    clip = Path(shutil.copyfile(sample_24p[0], tmp_path / "clip.mp4"))
    result = dubber.dub(clip, tmp_path / "out.mp4", dubber.DubOptions(
        backend="score", soundfont=str(bank), cache_dir=str(tmp_path / "cache")))
    recorded = json.loads(Path(result.outputs["manifest"]).read_text())["render"]["sound_bank"]
    assert recorded["name"] == "FluidR3_GM.sf2" and recorded["licence"] == "GPL-2.0"
