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

from dub_cli import dub_env, ffmpeg, run_dub
from dubber.spectrogram import spectrogram_png

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
    # The legend names every kind of event the pictures draw, in the colour it is drawn in.
    from dubber.spectrogram import EVENT_COLOURS

    legend = re.search(r"<p class='legend'>(.*?)</p>", page, flags=re.S).group(1)
    for kind in {e["kind"] for e in manifest["analysis"]["events"]} | {"impact", "flash", "shake", "run"}:
        assert f"color:rgb{EVENT_COLOURS[kind]}'>&#9660;</b>&nbsp;{kind}" in legend, kind


def test_players_for_the_mix_and_each_stem_and_the_bank_named(dubbed):
    page = _page(dubbed[0])
    for role in ("mix", "stem:music", "stem:fx"):
        assert re.search(rf"<p>{re.escape(role)}<br><audio controls[^>]*src=\"data:audio/mpeg;base64,", page), role
    assert "TimGM6mb" in page
    assert "<th>share of the events with an onset within 0.1 s</th><td>" in page
    assert "<th>chance: share of random instants with an onset within 0.1 s</th><td>0." in page
    assert "None" not in re.search(r"<table>.*?</table>", page, flags=re.S).group(0)


def test_a_dub_without_visual_events_reads_n_a_for_its_hit_rate(dubbed, tmp_path):
    from dubber.review import write_review

    folder = tmp_path / "copy"
    shutil.copytree(dubbed[0], folder)
    manifest = json.loads((folder / "out.json").read_text())
    manifest["analysis"]["events"] = []
    (folder / "out.json").write_text(json.dumps(manifest))
    page = write_review(folder / "out.json", folder / "still.html").read_text(encoding="utf-8")
    assert "<th>share of the events with an onset within 0.1 s</th><td>n/a</td>" in page
    assert "<th>visual events</th><td>0</td>" in page


def test_a_manifest_of_another_version_is_reviewed_with_a_notice(dubbed, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(dubbed[0], folder)
    manifest = json.loads((folder / "out.json").read_text())
    manifest["schema"] = "dubber.manifest/2"
    (folder / "out.json").write_text(json.dumps(manifest))
    proc = run_dub(["review", folder / "out.json", "-o", tmp_path / "page.html"], dub_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "dubber.manifest/2" in proc.stderr and "another version of dub" in proc.stderr
    assert (tmp_path / "page.html").read_text(encoding="utf-8").count('<section class="shot"') >= 3
    same = run_dub(["review", dubbed[0] / "out.json", "-o", tmp_path / "same.html"], dub_env(tmp_path), timeout=300)
    assert same.returncode == 0 and "another version" not in same.stderr


def test_making_a_page_says_how_far_it_is_from_start_to_end(dubbed, tmp_path):
    """A feature film's page takes minutes (a decode for the thumbnails, then every shot): its
    progress counts the frames decoded, then the shots, and ends at its total."""
    from dubber.review import PROGRESS_EVERY_FRAMES, write_review

    folder, _ = dubbed
    heard: list[tuple[str, int, int]] = []
    write_review(folder / "out.json", tmp_path / "page.html", progress=lambda *event: heard.append(event))
    analysis = json.loads((folder / "out.json").read_text())["analysis"]
    shots = len(analysis["shots"])
    [total] = {t for _, _, t in heard}
    assert {stage for stage, _, _ in heard} == {"review"}
    assert heard[0][1] == 0 and heard[-1][1] == total
    done = [d for _, d, _ in heard]
    assert done == sorted(done)
    frames = total - shots
    assert analysis["media"]["frame_count"] - 30 <= frames <= analysis["media"]["frame_count"]   # to the last thumbnail
    assert len([d for d in done if 0 < d < frames]) >= frames // PROGRESS_EVERY_FRAMES - 1   # during the decode
    assert len([d for d in done if d > frames]) == shots                                      # one a shot


def test_thumbnails_of_a_rotated_video_stand_upright_as_players_show_it(dubbed, tmp_path):
    """A phone's video stored sideways with rotation metadata: the analysis knows its rotation, and
    the page's thumbnails are turned as a player turns the picture, not left lying on their side."""
    from dubber.review import thumbnails

    folder = tmp_path / "copy"
    shutil.copytree(dubbed[0], folder)
    video = folder / "out.mp4"
    flat = Image.open(io.BytesIO(base64.b64decode(thumbnails(video, [0])[0].split(",", 1)[1])))
    turned = Image.open(io.BytesIO(base64.b64decode(thumbnails(video, [0], rotation=90)[0].split(",", 1)[1])))
    assert flat.width > flat.height and turned.height > turned.width and turned.height == flat.height
    # counter-clockwise, as the analysis turns its keyframes: the picture's top row becomes its left column
    upright = np.asarray(turned.convert("L"), dtype=float)
    expected = np.asarray(flat.convert("L").rotate(90, expand=True).resize(turned.size), dtype=float)
    assert np.abs(upright - expected).mean() < 12
    manifest = json.loads((folder / "out.json").read_text())
    manifest["analysis"]["media"]["rotation"] = 90
    (folder / "out.json").write_text(json.dumps(manifest))
    proc = run_dub(["review", folder / "out.json", "-o", tmp_path / "page.html"], dub_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    sources = re.findall(r'class="thumb" alt="frame \d+" src="data:image/jpeg;base64,([^"]+)"',
                         (tmp_path / "page.html").read_text(encoding="utf-8"))
    sizes = {Image.open(io.BytesIO(base64.b64decode(data))).size for data in sources}
    assert sources and all(h > w for w, h in sizes), sizes


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
    # as long as the film, not the encoder's padding of the last AAC packet longer
    length = json.loads((tmp_path / "out.json").read_text())["analysis"]["media"]["duration_s"]
    assert f"length (s)</th><td>{length:.3f}<" in page, re.search(r"length \(s\)</th><td>[^<]*", page).group(0)


def test_figures_and_picture_read_from_disk_are_those_of_the_whole_track(tmp_path):
    """The page reads the mix a block at a time (a film's mix does not fit in memory): the
    onsets, sync figures and overview picture come out as from the whole track at once, here
    across two-and-a-bit blocks of a 137 s track with bursts at random times."""
    import soundfile

    from dubber import sound_measures as sm
    from dubber import wav_measures
    from dubber.spectrogram import track_spectrogram_png
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


# ----------------------------------------------------------------- pages of hand-made manifests
def _dub_folder(folder, *, sample_rate=SR, channels=2, seconds=3.0, subtype="PCM_24", stems=None):
    """A dub's folder as `dub` leaves it: a mix WAV (a tone with a knock every second), stems,
    and the manifest naming them; returns the manifest's path."""
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.5 * (t % 1.0 < 0.01) * np.sin(2 * np.pi * 90 * t)
    audio = np.tile(tone[:, None], (1, channels)).astype(np.float32)
    outputs = {"mix": "mix.wav"}
    soundfile.write(str(folder / "mix.wav"), audio, sample_rate, subtype=subtype)
    for role, name in (stems or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(folder / name), audio, sample_rate)
        outputs[f"stem:{role}"] = name
    frames = int(seconds * 24)
    manifest = {"schema": "dubber.manifest/1", "outputs": outputs,
                "analysis": {"media": {"fps": "24", "path": "in.mp4"},
                             "shots": [{"index": 0, "start_frame": 0, "end_frame": frames // 2},
                                       {"index": 1, "start_frame": frames // 2, "end_frame": frames}],
                             "events": [{"frame": 24, "kind": "impact", "strength": 0.8}]},
                "plan": {"cues": [{"shot_index": 0, "prompt": "a knock"}]}, "render": {"backend": "score"}}
    path = folder / "out.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def _players(page: str) -> dict[str, str]:
    return dict(re.findall(r'<p>([^<]+)<br><audio controls[^>]*src="([^"]*)"', page))


@pytest.mark.parametrize("sample_rate,channels", [(96_000, 2), (88_200, 1), (192_000, 2), (48_000, 6)])
def test_a_mix_at_a_studio_rate_or_in_surround_still_plays_on_the_page(tmp_path, sample_rate, channels):
    """MP3 holds at most two channels at 48 kHz or under: a 96 kHz master or a 5.1 mix still
    gets a player on the page (a preview, resampled or folded down), not a crash."""
    import soundfile

    from dubber.review import write_review

    page = write_review(_dub_folder(tmp_path, sample_rate=sample_rate, channels=channels)).read_text(encoding="utf-8")
    source = _players(page)["mix"]
    assert source.startswith("data:audio/mpeg;base64,")
    heard, rate = soundfile.read(io.BytesIO(base64.b64decode(source.split(",", 1)[1])), always_2d=True)
    assert rate in (44_100, 48_000) and heard.shape[1] <= 2
    assert abs(len(heard) / rate - 3.0) < 0.1 and np.abs(heard).max() > 0.1   # the whole 3 s, not silence


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "FLOAT"])
def test_mono_and_8_to_32_bit_mixes_give_the_same_figures(tmp_path, subtype):
    from dubber.review import write_review

    page = write_review(_dub_folder(tmp_path, channels=1, subtype=subtype)).read_text(encoding="utf-8")
    assert "1 of 1 events hit within a frame" in page and _players(page)["mix"].startswith("data:audio/mpeg;base64,")


def test_a_mix_of_no_sound_at_all_still_gives_a_page(tmp_path):
    from dubber.review import write_review

    page = write_review(_dub_folder(tmp_path, seconds=0.0)).read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Whole soundtrack" in page


def test_long_sound_is_linked_so_that_it_opens_from_a_page_written_elsewhere(tmp_path, monkeypatch):
    """A page written to another folder links the long stems by paths relative to the page,
    escaped so that names with spaces, '#', '%' and accents still point at the file."""
    import urllib.parse

    from dubber import review

    monkeypatch.setattr(review, "EMBED_AUDIO_MAX_S", 1.0)
    name = "stems/fx #1 at 100% été.wav"
    manifest = _dub_folder(tmp_path / "dub folder", stems={"fx": name})
    (tmp_path / "pages").mkdir()
    page_path = review.write_review(manifest, tmp_path / "pages" / "for the client" / "page.html")
    links = _players(page_path.read_text(encoding="utf-8"))
    for role, real in (("mix", manifest.parent / "mix.wav"), ("stem:fx", manifest.parent / name)):
        url = urllib.parse.urljoin(page_path.resolve().as_uri(), links[role])
        assert urllib.parse.urlparse(url).scheme == "file" and not urllib.parse.urlparse(url).fragment
        assert urllib.parse.unquote(urllib.parse.urlparse(url).path) == str(real.resolve())


def test_review_never_writes_over_the_manifest_or_the_files_it_names(tmp_path):
    """`dub review out.json -o out.json` (or -o the mix) would replace the user's files with a
    web page: one sentence, exit 2, and every file as it was."""
    manifest = _dub_folder(tmp_path)
    before = {p: p.read_bytes() for p in (manifest, tmp_path / "mix.wav")}
    for target in before:
        proc = run_dub(["review", manifest, "-o", target], dub_env(tmp_path))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert all(p.read_bytes() == data for p, data in before.items())


def test_an_existing_page_is_replaced_only_with_force(sample_24p, tmp_path):
    """A file where the page would go (the user's notes, a page kept from another take) is never
    replaced silently: `dub --review` refuses before any work and `dub review` refuses too, one
    sentence each; --force replaces it, and `dub --json-progress` lists the page among its outputs."""
    video, _ = sample_24p   # any short clip with sound: what is checked is which files are written
    src = tmp_path / video.name
    shutil.copy(video, src)
    notes = tmp_path / "cut.review.html"
    notes.write_text("MY NOTES\n")
    env = dub_env(tmp_path)
    refused = run_dub([src, "-o", tmp_path / "cut.mp4", "--backend", "score", "--review"], env, timeout=300)
    assert refused.returncode == 2 and "already exists" in refused.stderr and "Traceback" not in refused.stderr
    assert notes.read_text() == "MY NOTES\n" and not (tmp_path / "cut.mp4").exists()
    notes.unlink()
    done = run_dub([src, "-o", tmp_path / "cut.mp4", "--backend", "score", "--review", "--json-progress"], env,
                   timeout=300)
    assert done.returncode == 0, done.stderr
    finished = json.loads(done.stdout.strip().splitlines()[-1])
    assert finished["outputs"]["review"] == str(notes)
    notes.write_text("MY NOTES\n")
    again = run_dub(["review", tmp_path / "cut.json"], env, timeout=300)
    assert again.returncode == 2 and "--overwrite" in again.stderr and notes.read_text() == "MY NOTES\n"
    forced = run_dub(["review", tmp_path / "cut.json", "--force"], env, timeout=300)
    assert forced.returncode == 0 and notes.read_text(encoding="utf-8").startswith("<!DOCTYPE")


def test_a_folder_as_the_page_puts_the_page_inside_it(tmp_path):
    from dubber.review import write_review

    manifest = _dub_folder(tmp_path / "dub")
    (tmp_path / "pages").mkdir()
    page = write_review(manifest, tmp_path / "pages")
    assert page == tmp_path / "pages" / "out.review.html" and page.read_text(encoding="utf-8").startswith("<!DOCTYPE")
    # A folder not there yet, written as one (a trailing slash): made, with the page inside, not a
    # file of that name with no extension.
    page = write_review(manifest, f"{tmp_path / 'new pages'}/")
    assert page == tmp_path / "new pages" / "out.review.html" and page.is_file()


def test_a_dub_whose_video_is_gone_shows_thumbnails_of_the_source(dubbed, tmp_path):
    folder, _ = dubbed
    shutil.copy(folder / "out.json", tmp_path / "out.json")   # stems and mix still where it names them
    shutil.copytree(folder / "stems", tmp_path / "stems")
    from dubber.review import write_review

    page = write_review(tmp_path / "out.json", tmp_path / "page.html").read_text(encoding="utf-8")
    assert page.count('class="thumb"') >= 2 * page.count('<section class="shot"') > 0


def test_a_damaged_mix_or_a_manifest_without_its_analysis_is_one_clear_sentence(tmp_path):
    from dubber.errors import InputError
    from dubber.review import write_review

    manifest = _dub_folder(tmp_path)
    data = json.loads(manifest.read_text())
    (tmp_path / "mix.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(InputError, match="mix.wav"):
        write_review(manifest)
    (tmp_path / "mix.wav").write_bytes(b"")
    with pytest.raises(InputError, match="mix.wav"):
        write_review(manifest)
    import soundfile   # a FLAC mix cut off half way: its header still gives the full length

    soundfile.write(str(tmp_path / "mix.flac"), np.random.default_rng(0).uniform(-0.3, 0.3, (4 * SR, 2)), SR)
    whole = (tmp_path / "mix.flac").read_bytes()
    (tmp_path / "mix.flac").write_bytes(whole[:len(whole) // 2])
    manifest.write_text(json.dumps({**data, "outputs": {"mix": "mix.flac"}}))
    with pytest.raises(InputError, match="mix.flac.*damaged"):
        write_review(manifest)
    for broken in ({k: v for k, v in data.items() if k != "analysis"}, {**data, "outputs": ["mix.wav"]},
                   {**data, "analysis": {**data["analysis"], "shots": "none"}},
                   {**data, "analysis": {**data["analysis"], "events": [{"frame": 3}]}},
                   {**data, "plan": {"cues": [{}]}}):
        manifest.write_text(json.dumps(broken))
        with pytest.raises(InputError, match="out.json"):
            write_review(manifest)
    assert not (tmp_path / "out.review.html").exists()


def test_a_dub_with_neither_stems_nor_sound_in_its_video_is_one_clear_sentence(tmp_path):
    """No stems kept and a video without an audio track (or not a video at all): nothing to
    listen to, said in one sentence, and no page written."""
    from samples.phenomena import write

    from dubber.errors import InputError
    from dubber.review import write_review

    manifest = _dub_folder(tmp_path)
    (tmp_path / "mix.wav").unlink()
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "outputs": {"video": "out.mp4", "stem:fx": "gone.wav"}}))
    (tmp_path / "clip").mkdir()
    write("contact", tmp_path / "clip" / "out.mp4")   # a silent video (its truth JSON stays in clip/)
    (tmp_path / "clip" / "out.mp4").rename(tmp_path / "out.mp4")
    with pytest.raises(InputError, match="no audio track"):
        write_review(manifest)
    (tmp_path / "out.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(InputError, match="out.mp4 cannot be decoded"):
        write_review(manifest)
    assert not (tmp_path / "out.review.html").exists()


def test_a_short_flac_or_aiff_stem_is_embedded_like_a_wav_one(tmp_path):
    """Stems re-exported as FLAC or AIFF still play from the page alone when they are short."""
    from dubber.review import write_review

    manifest = _dub_folder(tmp_path, stems={"music": "stems/music.flac", "fx": "stems/fx.aiff"})
    players = _players(write_review(manifest).read_text(encoding="utf-8"))
    assert players["stem:music"].startswith("data:audio/mpeg;base64,")
    assert players["stem:fx"].startswith("data:audio/mpeg;base64,")


def test_a_variable_frame_rate_dub_is_reviewed_at_each_frames_own_time(demo_sample, tmp_path):
    """A phone video's frames are not evenly spaced (here the demo's first 150 frames at 23.976 fps,
    the rest held three times as long): the page puts each shot where its sound is in the mix (the
    plan's samples), and the per-shot counts of onsets that match nothing add up to the count for
    the whole dub."""
    src = tmp_path / "phone.mp4"
    ffmpeg("-i", str(demo_sample[0]), "-an", "-vf", "setpts='if(lt(N,150),N,150+(N-150)*3)*1001/24000/TB'",
           "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src))
    proc = run_dub([src, "-o", tmp_path / "out.mp4", "--backend", "score", "--review"], dub_env(tmp_path),
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out.json").read_text())
    assert manifest["analysis"]["media"]["frame_pts"]   # the clip really is variable-rate
    page = _page(tmp_path)
    shown = {int(n) - 1: (float(a), float(b))
             for n, a, b in re.findall(r"<h2>Shot (\d+): ([\d.]+)s to ([\d.]+)s", page)}
    rate = manifest["plan"]["sample_rate"]
    starts: dict[int, float] = {}
    for cue in manifest["plan"]["cues"]:
        starts.setdefault(cue["shot_index"], cue["start_sample"] / rate)
    assert len(shown) == len(starts) >= 2
    for index, start_s in starts.items():
        assert shown[index][0] == pytest.approx(start_s, abs=0.006), index
    per_shot = sum(int(n) for n in re.findall(r"(\d+) of \d+ onsets match no event or cut", page))
    total = int(re.search(r"<th>onsets that match no event or cut</th><td>(\d+)</td>", page).group(1))
    assert per_shot == total


def test_an_output_folder_moved_without_its_shared_stems_still_finds_them(sample_24p, tmp_path):
    """Stems written to a fixed shared folder outside the project: the manifest also keeps where
    they are, so the output folder moved on its own still plays them."""
    project, shared = tmp_path / "project", tmp_path / "shared stems"
    project.mkdir()
    src = project / "demo.mp4"
    shutil.copy(sample_24p[0], src)   # any short clip: what is checked is where the stems are found
    proc = run_dub([src, "-o", project / "out" / "demo.dub.mp4", "--backend", "score", "--stems", shared],
                   dub_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "delivered" / "to the client").mkdir(parents=True)
    moved = tmp_path / "delivered" / "to the client" / "out"   # one level deeper: "../../shared stems" misses
    (project / "out").rename(moved)
    again = run_dub(["review", moved / "demo.dub.json"], dub_env(tmp_path))
    assert again.returncode == 0 and "not found" not in again.stderr, again.stderr
    page = (moved / "demo.dub.review.html").read_text(encoding="utf-8")
    for role in ("stem:music", "stem:fx"):
        assert f"<p>{role}<br><audio" in page, role


def test_a_project_moved_whole_keeps_its_stems_on_a_page_written_after_the_move(sample_24p, tmp_path):
    """Stems in a folder beside the output's: the manifest names them relative to itself, so after
    the project folder is moved, `dub review` still finds and plays every stem."""
    project = tmp_path / "project"
    (project / "out").mkdir(parents=True)
    src = project / "demo.mp4"
    shutil.copy(sample_24p[0], src)   # any short clip: what is checked is where the stems are found
    proc = run_dub([src, "-o", project / "out" / "demo.dub.mp4", "--backend", "score", "--stems", project / "stems"],
                   dub_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr
    moved = tmp_path / "elsewhere" / "project"
    moved.parent.mkdir()
    project.rename(moved)
    manifest = json.loads((moved / "out" / "demo.dub.json").read_text())
    assert all(not path.startswith("/") for path in manifest["outputs"].values()), manifest["outputs"]
    again = run_dub(["review", moved / "out" / "demo.dub.json"], dub_env(tmp_path))
    assert again.returncode == 0, again.stderr
    page = (moved / "out" / "demo.dub.review.html").read_text(encoding="utf-8")
    for role in ("stem:music", "stem:fx"):
        assert f"<p>{role}<br><audio" in page, role
    assert "not found" not in again.stderr
    # the output folder moved without the stems: the page is written without their players, and says so
    alone = tmp_path / "alone"
    (moved / "out").rename(alone)
    lost = run_dub(["review", alone / "demo.dub.json", "-o", alone / "again.html"], dub_env(tmp_path))
    assert lost.returncode == 0, lost.stderr
    said = [line for line in lost.stderr.splitlines() if "not found" in line]
    assert said == ["dub: not found beside demo.dub.json, so left off the page: mix (../stems/demo.dub.mix.wav), "
                    "stem:fx (../stems/demo.dub.fx.wav), stem:music (../stems/demo.dub.music.wav)"], lost.stderr


def test_the_page_of_dub_review_is_listed_in_the_manifest_and_goes_with_its_dub(sample_24p, tmp_path):
    """Tools reading the manifest find the page `dub --review` wrote among its outputs, by the role
    "review" and relative to the manifest like the other files; `dub review` still replaces that
    page, and a dub replacing this one without a page removes the page and its listing."""
    from dubber.export.deliverables import read_recorded_outputs

    video, _ = sample_24p   # any short clip with sound: what is checked is the manifest's listing
    src = tmp_path / video.name
    shutil.copy(video, src)
    env = dub_env(tmp_path)
    out, manifest, page = tmp_path / "cut.mp4", tmp_path / "cut.json", tmp_path / "cut.review.html"
    done = run_dub([src, "-o", out, "--backend", "score", "--review"], env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(manifest.read_text())["outputs"]["review"] == "cut.review.html"
    assert read_recorded_outputs(manifest)["review"] == page and page.is_file()
    page.write_text("AN OLDER PAGE\n")
    again = run_dub(["review", manifest, "--force"], env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE")
    assert json.loads(manifest.read_text())["outputs"]["review"] == "cut.review.html"
    replaced = run_dub([src, "-o", out, "--backend", "score", "--force"], env, timeout=300)
    assert replaced.returncode == 0, replaced.stderr
    assert not page.exists() and "review" not in json.loads(manifest.read_text())["outputs"]


# Loaded by Python at start-up from PYTHONPATH: the process is killed (as by kill -9 or a power cut)
# the moment it starts to draw the review page, after its dub is in place.
_KILLED_AT_THE_PAGE = '''
import importlib.machinery, os, signal, sys

class KillAtThePage:
    def find_spec(self, name, path=None, target=None):
        if name != "dubber.review":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.review_html = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, KillAtThePage())
'''


def test_the_same_command_again_finishes_a_dub_killed_while_drawing_its_page(sample_24p, tmp_path):
    """Killed after its dub was in place but before its review page: the same command writes the
    page and lists it, touching nothing else; another command still meets the finished dub."""
    video, _ = sample_24p
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_KILLED_AT_THE_PAGE)
    out, manifest, page = tmp_path / "cut.mp4", tmp_path / "cut.json", tmp_path / "cut.review.html"
    command = [video, "-o", out, "--backend", "score", "--stems", tmp_path / "stems", "--review"]
    killed = run_dub(command, dub_env(tmp_path, PYTHONPATH=str(hook)), timeout=300)
    assert killed.returncode == -9 and out.is_file() and not page.exists()
    dubbed = out.read_bytes()
    env = dub_env(tmp_path)
    assert run_dub([*command, "--seed", "3"], env, timeout=300).returncode == 2   # not the same dub
    again = run_dub([*command, "--json-progress"], env, timeout=300)
    assert again.returncode == 0, again.stderr
    done = json.loads(again.stdout.splitlines()[-1])   # the same `done` a whole run ends with
    assert (done["event"], done["output"], done["outputs"]["review"]) == ("done", str(out), str(page))
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE")
    assert json.loads(manifest.read_text())["outputs"]["review"] == "cut.review.html"
    assert out.read_bytes() == dubbed
    assert run_dub(command, env, timeout=300).returncode == 2   # now finished whole: refused as before


def test_a_sound_just_before_a_cut_hits_the_event_on_the_cut_in_its_shots_figures_too(tmp_path):
    """An event on a shot's first frame and its sound detected a few milliseconds before the cut
    (the detector's frames straddle it): the whole dub counts it hit, and so does its shot's row,
    so the shots' figures add up to the dub's."""
    import soundfile

    from dubber import wav_measures
    from dubber.review import write_review
    from dubber.wav_measures import WavTrack

    folder = _dub_folder(tmp_path).parent
    t = np.arange(3 * SR) / SR
    knock = np.where((t >= 1.988) & (t < 2.05), np.sin(2 * np.pi * 90 * t) * np.exp(-(t - 1.988) / 0.02), 0.0)
    audio = np.tile((0.05 * np.sin(2 * np.pi * 440 * t) + 0.6 * knock)[:, None], (1, 2)).astype(np.float32)
    soundfile.write(str(folder / "mix.wav"), audio, SR, subtype="PCM_24")
    manifest = json.loads((folder / "out.json").read_text())
    manifest["analysis"]["shots"] = [{"index": 0, "start_frame": 0, "end_frame": 48},
                                     {"index": 1, "start_frame": 48, "end_frame": 72}]
    manifest["analysis"]["events"] = [{"frame": 48, "kind": "impact", "strength": 0.8}]
    (folder / "out.json").write_text(json.dumps(manifest))
    with WavTrack(folder / "mix.wav") as track:
        whole = wav_measures.measure(track, [2.0])
    assert whole.hit_rate == 1.0 and any(1.95 < o < 2.0 for o in whole.onsets_s), whole.onsets_s
    page = write_review(folder / "out.json").read_text(encoding="utf-8")
    second = re.search(r'<section class="shot" id="shot-1">(.*?)</section>', page, flags=re.S).group(1)
    assert "1 of 1 events hit within a frame, 1 within 0.1 s" in second, second[-300:]


def test_a_manifest_moved_alone_gets_one_sentence_not_a_notice_and_an_error(tmp_path):
    from dubber.errors import InputError
    from dubber.review import write_review

    manifest = _dub_folder(tmp_path / "dub")
    (tmp_path / "lonely").mkdir()
    alone = tmp_path / "lonely" / "out.json"
    alone.write_bytes(manifest.read_bytes())
    said = []
    with pytest.raises(InputError, match="^Neither the mix WAV nor the dubbed video"):
        write_review(alone, on_notice=said.append)
    assert said == [] and not (tmp_path / "lonely" / "out.review.html").exists()
