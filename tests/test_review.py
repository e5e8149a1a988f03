"""`dub review OUT.json` and `dub --review`: one self-contained page per dub."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from dub_cli import dub_env, run_dub
from dubber.review import spectrogram_png

SR = 48_000


@pytest.fixture(scope="module")
def dubbed(demo_sample, tmp_path_factory):
    """The demo video dubbed by the score engine with stems and the review page, through the CLI."""
    video, truth = demo_sample
    folder = tmp_path_factory.mktemp("review")
    src = folder / video.name
    shutil.copy(video, src)
    proc = run_dub([src, "-o", folder / "out.mp4", "--backend", "score", "--stems", folder / "stems", "--review"],
                   dub_env(folder), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return folder, truth


def _page(folder) -> str:
    return (folder / "out.review.html").read_text(encoding="utf-8")


def test_page_is_self_contained(dubbed):
    page = _page(dubbed[0])
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)       # every resource inline
    assert "http://" not in page and "https://" not in page


def test_each_shot_has_thumbnails_spectrogram_caption_prompt_and_sync_figures(dubbed):
    folder, truth = dubbed
    page = _page(folder)
    shots = re.findall(r'<section class="shot" id="shot-(\d+)">(.*?)</section>', page, flags=re.S)
    manifest = json.loads((folder / "out.json").read_text())
    assert len(shots) == len(manifest["analysis"]["shots"]) >= len(truth["shots"])
    for _, body in shots:
        assert body.count('class="thumb"') >= 2 and 'src="data:image/jpeg;base64,' in body
        assert "Caption:" in body and "Prompt:" in body and "tom and jerry" in body.lower()
        assert re.search(r"\d+ of \d+ events hit within a frame, \d+ within 0.1 s; \d+ of \d+ onsets match", body)
        png = re.search(r'class="spectrogram"[^>]*src="data:image/png;base64,([^"]+)"', body).group(1)
        image = Image.open(io.BytesIO(base64.b64decode(png)))
        assert image.format == "PNG" and image.width >= 64 and image.height > 100
    for cue in manifest["plan"]["cues"]:
        assert cue["caption"].split(";")[0][:30] in page


def test_players_for_the_mix_and_each_stem_and_the_bank_named(dubbed):
    page = _page(dubbed[0])
    for role in ("mix", "stem:music", "stem:fx"):
        assert re.search(rf"<p>{re.escape(role)}<br><audio controls[^>]*src=\"data:audio/mpeg;base64,", page), role
    assert "TimGM6mb" in page and "hit_rate" in page and "chance_rate" in page


def test_dub_review_command_and_bad_manifests(dubbed, tmp_path):
    folder, _ = dubbed
    again = run_dub(["review", folder / "out.json", "-o", tmp_path / "page.html"], dub_env(tmp_path), timeout=300)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "page.html").read_text(encoding="utf-8").count('<section class="shot"') >= 3
    not_json = tmp_path / "x.json"
    not_json.write_text("{ nope")
    for bad in (not_json, tmp_path / "missing.json"):
        proc = run_dub(["review", bad], dub_env(tmp_path))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_spectrogram_marks_land_where_asked():
    audio = np.zeros((2, 4 * SR), dtype=np.float32)
    png = spectrogram_png(audio, SR, cuts_s=[1.0], events=[(3.0, "impact")], onsets_s=[2.0], height=100)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    width = image.shape[1]
    x_cut, x_event, x_onset = (round(t / 4.0 * (width - 1)) for t in (1.0, 3.0, 2.0))
    assert (image[50, x_cut - 1:x_cut + 2] == 255).all(axis=1).any()           # white cut line, full height
    assert image[2, x_event, 0] > 200 and image[2, x_event, 1] < 100            # red impact marker at the top
    assert image[95, x_onset, 1] > 200 and image[50, x_onset, 1] < 100          # onset tick only at the bottom
    assert not (image[50, x_event - 20] == 255).all()


def test_review_without_the_stem_files_plays_the_videos_own_track(dubbed, tmp_path):
    folder, _ = dubbed
    for name in ("out.json", "out.mp4"):   # the manifest still names the mix and stems, now absent
        shutil.copy(folder / name, tmp_path / name)
    from dubber.review import write_review

    page = write_review(tmp_path / "out.json", tmp_path / "page.html").read_text(encoding="utf-8")
    assert re.search(r"<p>mix \(from the video\)<br><audio controls[^>]*src=\"data:audio/mpeg;base64,", page)
    assert "<p>mix<br>" not in page and "<p>stem:" not in page


def test_figures_and_picture_read_from_disk_are_those_of_the_whole_track(tmp_path):
    """The page reads the mix a block at a time (a film's mix does not fit in memory): the
    onsets, sync figures and overview picture come out as from the whole track at once, here
    across two-and-a-bit blocks of a 137 s track with bursts at random times."""
    import soundfile

    from dubber import sound_measures as sm
    from dubber import wav_measures
    from dubber.review import track_spectrogram_png
    from dubber.wav_measures import WavTrack

    rng = np.random.default_rng(0)
    n = int(137.3 * SR)
    audio = np.zeros((2, n), np.float32)
    for start in (rng.uniform(0, 137, 300) * SR).astype(int):
        m = min(n - start, SR // 3)
        k = np.arange(m)
        audio[:, start:start + m] += (np.sin(2 * np.pi * rng.uniform(100, 2000) * k / SR)
                                      * np.exp(-k / (0.05 * SR)) * rng.uniform(0.1, 0.5)).astype(np.float32)
    path = tmp_path / "mix.wav"
    soundfile.write(str(path), audio.T, SR, subtype="FLOAT")
    events, cuts = [1.0, 5.0, 60.2, 120.5], [3.0, 59.9]
    whole = sm.measure(audio, SR, events, marks_s=cuts)
    with WavTrack(path) as track:
        streamed = wav_measures.measure(track, events, marks_s=cuts)
        picture = track_spectrogram_png(track, cuts_s=cuts, onsets_s=whole.onsets_s)
    assert len(whole.onsets_s) > 200 and streamed.to_dict() == whole.to_dict()
    assert picture == spectrogram_png(audio, SR, cuts_s=cuts, onsets_s=whole.onsets_s)
