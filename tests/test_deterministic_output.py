"""The same inputs and seed give the same output bytes, in every container we write."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from dubber.api import DubOptions, dub
from dubber.media.ffmpeg import run_ffmpeg
from dubber.media.mux import mux
from vision.probe import probe

SR = 48000


def _dub_wav(path: Path, samples: int) -> Path:
    t = np.arange(samples) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(str(path), np.stack([tone, 0.5 * tone], axis=1).astype(np.float32), SR, subtype="PCM_24")
    return path


def _audio_labels(path: Path) -> list[tuple[str | None, str | None]]:
    with av.open(str(path)) as container:
        return [(s.metadata.get("title") or s.metadata.get("handler_name"), s.metadata.get("language"))
                for s in container.streams.audio]


@pytest.fixture(scope="module")
def english_source(sample_24p, tmp_path_factory) -> Path:
    """The 24p sample with its sound tagged English (copied, nothing re-encoded)."""
    source = tmp_path_factory.mktemp("det") / "english.mp4"
    run_ffmpeg(["-i", str(sample_24p[0]), "-map", "0", "-c", "copy", "-metadata:s:a:0", "language=eng",
                str(source)], what="tagging the sample")
    return source


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".mov"])
def test_two_muxes_of_the_same_inputs_are_byte_identical_and_keep_their_labels(english_source, tmp_path, suffix):
    info = probe(english_source)
    wav = _dub_wav(tmp_path / "dub.wav", info.total_samples(SR))
    first, second = tmp_path / f"first{suffix}", tmp_path / f"second{suffix}"
    mux(english_source, wav, first, original_audio=True, video_info=info)
    mux(english_source, wav, second, original_audio=True, video_info=info)
    assert first.read_bytes() == second.read_bytes()
    # The labels a player lists are set on purpose and survive; .mov keeps no languages.
    labels = _audio_labels(first)
    assert [title for title, _ in labels] == ["Dub", "Original"]
    if suffix != ".mov":
        assert [language for _, language in labels] == ["zxx", "eng"]


def test_two_dubs_to_mkv_with_one_seed_are_byte_identical(sample_30p_silent, tmp_path):
    options = DubOptions(backend="score", captioner="motion", seed=7, cache_dir=str(tmp_path / "cache"))
    first, second = tmp_path / "first.mkv", tmp_path / "second.mkv"
    dub(sample_30p_silent[0], first, options)
    dub(sample_30p_silent[0], second, options)
    assert first.read_bytes() == second.read_bytes()
