"""Captioners: rule wording of `motion`, and `clip`/`vlm` end to end on tiny random-weight models.

The learned captioners run on models built here from configs (a few thousand weights, saved with
their tokenizer, image processor and chat template), so no test downloads anything: the Hub is
switched off and its cache pointed at an empty folder.
"""
from __future__ import annotations

import json
import string
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vision.captioners import (CAPTIONER_CHOICES, CAPTIONERS, TAG_NAMES, VOCABULARY, DeviceUnavailable,
                               available_captioners, get_captioner, resolve_captioner)
from vision.captioners.vlm import ShotRequest, clean_caption, user_prompt
from vision.captioners.vocabulary import tags_in_text
from vision.errors import ModelUnavailable
from vision.types import MediaInfo, Shot, ShotKeyframes, VideoAnalysis, VisualEvent

FPS = Fraction(24)
BLUE, ORANGE, RED, GREY, BLACK = (20, 40, 230), (250, 140, 20), (220, 20, 30), (128, 128, 128), (5, 5, 5)


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))


# ---------------------------------------------------------------------------------------------
# Synthetic analyses


def solid(rgb, h=36, w=64) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def analysis_of(shots: list[tuple[int, float, list]], events=(), frames_per_shot=48) -> VideoAnalysis:
    """shots: (length in frames, motion level, keyframe images) each; frames are back to back."""
    start, shot_objs, motion, keyframes = 0, [], [], []
    for i, (length, level, images) in enumerate(shots):
        shot_objs.append(Shot(i, start, start + length))
        motion += [level] * length
        if images:
            picks = tuple(start + k * length // len(images) for k in range(len(images)))
            keyframes.append(ShotKeyframes(i, picks, tuple(images)))
        start += length
    media = MediaInfo(path="toon.mp4", duration_s=float(start / FPS), fps=FPS, frame_count=start,
                      width=64, height=36)
    return VideoAnalysis(media, tuple(shot_objs), tuple(events), tuple(motion), (), keyframes=tuple(keyframes))


# ---------------------------------------------------------------------------------------------
# Registry


def test_importing_captioners_does_not_import_torch():
    code = ("import vision.captioners, sys; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


def test_registry_lists_names_and_rejects_unknown_ones():
    assert set(CAPTIONERS) == {"motion", "clip", "vlm"}
    assert CAPTIONER_CHOICES == ("auto", "motion", "clip", "vlm")
    assert "motion" in available_captioners()
    with pytest.raises(ValueError, match="auto, motion, clip, vlm"):
        get_captioner("blip")
    with pytest.raises(ValueError, match="calm_below"):
        get_captioner("motion", calmness=3)
    with pytest.raises(ValueError):
        get_captioner("motion", calm_below=0.9, frantic_from=0.3)


def test_auto_picks_motion_without_vlm_weights_and_vlm_when_they_are_here(tmp_path):
    # The Hub cache is empty (autouse fixture): no vlm weights, so "auto" means "motion".
    assert resolve_captioner("auto") == "motion"
    assert get_captioner("auto", model=str(tmp_path / "missing")).NAME == "motion"
    assert resolve_captioner("clip") == "clip"
    # A whole local model folder is weights found on this machine...
    folder = tmp_path / "qwen-vl"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"):
        (folder / name).write_text("{}")
    assert resolve_captioner("auto", model=str(folder)) == "vlm"
    # ...a download cut short is not: auto keeps to motion rather than fail every dub.
    (folder / "preprocessor_config.json").unlink()
    assert resolve_captioner("auto", model=str(folder)) == "motion"
    with pytest.raises(ModelUnavailable, match="incomplete .preprocessor_config.json missing"):
        get_captioner("vlm", model=str(folder))
    code = ("import sys, vision.captioners as c; assert c.resolve_captioner('auto') == 'motion'; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


def test_vocabulary_is_cartoon_sized_and_finds_words_in_text():
    assert 30 <= len(VOCABULARY) <= 40
    for expected in ("footsteps", "crash", "slide whistle", "door slam", "running", "splash", "glass breaking",
                     "explosion", "boing", "whoosh", "piano", "tiptoe", "cat screech"):
        assert expected in TAG_NAMES
    assert tags_in_text("The cat skids, bounces off a door and crashes into the piano.") == (
        "skid", "crash", "door slam", "boing", "piano", "cat screech")
    assert tags_in_text("He tries to catch the category.") == ()


# ---------------------------------------------------------------------------------------------
# motion captioner


def test_motion_caption_mentions_an_impact_with_its_time():
    hit = VisualEvent(frame=48 + 36, kind="impact", strength=0.9, end_frame=48 + 37)   # 1.5 s into shot 1
    analysis = analysis_of([(48, 0.05, [solid(BLUE)]), (48, 0.3, [solid(BLUE)])], events=[hit])
    calm, busy = get_captioner("motion").caption(analysis)
    assert "crash" not in calm.text
    assert "a crash at 1.5 s" in busy.text
    assert busy.tags[0] == "crash" and busy.scores[0] == pytest.approx(0.9)
    assert busy.captioner == "motion"


def test_event_times_and_shot_length_follow_variable_frame_rate_timestamps():
    # Frames 0-119 last 1/60 s and frames 120-239 1/24 s. The second shot lasts 5 s and frame
    # 156 is 1.5 s into it; counting frames at the average 240/7 fps would say 3.5 s and 1.05 s.
    pts = tuple(range(0, 240, 2)) + tuple(240 + 5 * k for k in range(120))   # ticks of 1/120 s
    media = MediaInfo(path="vfr.mp4", duration_s=7.0, fps=Fraction(240, 7), frame_count=240, width=64,
                      height=36, time_base=Fraction(1, 120), is_vfr=True, frame_pts=pts)
    analysis = VideoAnalysis(media, (Shot(0, 0, 120), Shot(1, 120, 240)),
                             (VisualEvent(156, "impact", 0.9, 157),), (0.3,) * 240, ())
    _, caption = get_captioner("motion").caption(analysis)
    assert "a crash at 1.5 s" in caption.text
    assert user_prompt(analysis, analysis.shots[1], 1).startswith("This frame comes from one 5.0-second")


COLOUR_WORDS = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink", "grey", "colour", "hue")


def test_motion_captions_name_no_colours_and_say_how_still_or_busy_it_is():
    analysis = analysis_of([(24, 0.05, [solid(BLUE)] * 2), (24, 0.05, [solid(ORANGE)]),
                            (24, 0.3, [solid(RED)]), (24, 0.6, [solid(GREY)]), (24, 0.0, [solid(BLACK)])])
    texts = [c.text for c in get_captioner("motion").caption(analysis)]
    assert texts[0] == texts[1] == "Soft, tiptoeing movement."   # same motion, other colours: same words
    assert texts[2] == "Bustling, lively action." and texts[3] == "Frantic, hectic action."
    assert texts[4] == "A hushed, still moment."
    assert not [w for t in texts for w in COLOUR_WORDS if w in t.lower()]


def test_the_pace_word_follows_how_much_really_moves_not_the_films_own_scale():
    """One curve (relative to its video) says different things about a film whose busiest
    moment is a slow walk and one whose busiest moment is a brawl."""
    from dataclasses import replace

    relative = analysis_of([(48, 0.9, [])])
    texts = {scale: get_captioner("motion").caption(replace(relative, settings={"motion_scale": scale}))[0].text
             for scale in (0.0005, 0.002, 0.01, 0.03)}
    assert texts == {0.0005: "A hushed, still moment.", 0.002: "Soft, tiptoeing movement.",
                     0.01: "Bustling, lively action.", 0.03: "Frantic, hectic action."}
    # An analysis that does not know its curve's scale reads the curve's own level, as before.
    assert get_captioner("motion").caption(relative)[0].text == "Frantic, hectic action."


def test_a_slow_walk_under_film_flicker_is_not_called_busy(tmp_path):
    """A character walking a pixel a frame under old-film flicker is the busiest thing in its
    clip, and still only a tiptoe."""
    import vision
    from samples.phenomena import write

    write("flicker", tmp_path / "flicker.mp4")
    analysis = vision.analyze(tmp_path / "flicker.mp4", captioner="motion")
    assert [c.text for c in analysis.captions] == ["Soft, tiptoeing movement."]


def test_motion_caption_tells_timed_events_in_order_and_what_comes_after():
    fps = 24
    events = [VisualEvent(int(2.3 * fps), "impact", 0.9, int(2.3 * fps) + 1),
              VisualEvent(int(4.1 * fps), "landing", 0.8, int(4.1 * fps) + 1),
              VisualEvent(int(0.5 * fps), "run", 0.7, int(2.0 * fps))]
    motion = [0.6] * int(4.2 * fps) + [0.05] * int(1.8 * fps)   # a chase, then tiptoeing
    media = MediaInfo(path="toon.mp4", duration_s=6.0, fps=Fraction(fps), frame_count=len(motion), width=64, height=36)
    analysis = VideoAnalysis(media, (Shot(0, 0, len(motion)),), tuple(events), tuple(motion), ())
    (cap,) = get_captioner("motion").caption(analysis)
    assert cap.text == ("A frantic chase; running feet from 0.5 s to 2.0 s, a crash at 2.3 s, "
                        "a heavy fall at 4.1 s, tiptoeing after.")
    assert {"crash", "thud", "running"} <= set(cap.tags)


def test_motion_caption_counts_events_and_picks_sound_tags():
    events = [VisualEvent(10, "impact", 0.8, 11), VisualEvent(30, "impact", 0.7, 31),
              VisualEvent(30, "flash", 0.9, 31), VisualEvent(40, "whoosh", 0.6, 70)]
    analysis = analysis_of([(96, 0.6, [solid(ORANGE)])], events=events)
    (cap,) = get_captioner("motion").caption(analysis)
    # frantic, but nobody runs (a whoosh is a swing): no chase
    assert cap.text.startswith("Frantic, hectic action; a crash at 0.4 s")
    assert "a bright zing at 1.2 s" in cap.text and "a whoosh at 1.7 s" in cap.text
    assert {"crash", "explosion", "zing", "whoosh"} <= set(cap.tags)
    assert list(cap.scores) == sorted(cap.scores, reverse=True)
    assert len(cap.tags) <= 5


def test_motion_caption_names_the_strongest_events_and_counts_the_rest():
    events = [VisualEvent(4 * k + 2, "impact", 0.1 + 0.1 * k, 4 * k + 3) for k in range(8)]
    analysis = analysis_of([(48, 0.3, [])], events=events)
    (cap,) = get_captioner("motion").caption(analysis)
    assert cap.text.count(" at ") == 5 and "three more hits" in cap.text
    assert "a bonk at 0.1 s" not in cap.text   # the weakest ones are only counted
    assert "punch" in cap.tags   # a flurry of blows


def test_a_flash_in_the_dark_is_thunder():
    events = [VisualEvent(5, "flash", 0.3, 6), VisualEvent(20, "impact", 0.3, 21), VisualEvent(30, "whoosh", 0.5, 34)]
    dark = analysis_of([(48, 0.2, [solid(BLACK)])], events=events)
    light = analysis_of([(48, 0.2, [solid(GREY)])], events=events)
    (night,), (day,) = get_captioner("motion").caption(dark), get_captioner("motion").caption(light)
    assert "a thunder clap at 0.2 s" in night.text and "thunder" in night.tags
    positions = [day.text.index(p) for p in ("a faint zing at 0.2 s", "a bonk at 0.8 s", "a whoosh at 1.2 s")]
    assert positions == sorted(positions)
    assert {"bonk", "whoosh", "zing"} <= set(day.tags) and "crash" not in day.tags


def test_motion_captions_are_deterministic_and_work_without_keyframes():
    events = [VisualEvent(3, "impact", 0.5, 4)]
    analysis = analysis_of([(24, 0.2, []), (24, 0.02, [solid(BLUE)])], events=events)
    first = get_captioner("motion").caption(analysis)
    assert first == get_captioner("motion").caption(analysis)
    assert first[0].text == "Bustling, lively action; a bonk at 0.1 s."
    assert [c.shot_index for c in first] == [0, 1]


# ---------------------------------------------------------------------------------------------
# Tiny models


def tiny_clip_tokenizer():
    """A character-level CLIP tokenizer: every prompt word gets distinct, in-vocabulary tokens."""
    from transformers import CLIPTokenizer

    letters = string.ascii_lowercase + ".,-'"
    tokens = ["<|startoftext|>", "<|endoftext|>"] + list(letters) + [c + "</w>" for c in letters]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[]), len(tokens)


def build_tiny_clip(folder: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer, n_tokens = tiny_clip_tokenizer()
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = CLIPConfig(
        text_config=dict(vocab_size=n_tokens, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=128, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ p['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_tiny_qwen_vl(folder: Path, silent: bool = False) -> Path:
    """A 2-layer Qwen2.5-VL with a byte-level tokenizer; `silent` zeroes the final norm so every
    logit ties and greedy decoding picks id 0, <|endoftext|>, at once."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    vocab = {t: i for i, t in enumerate(QWEN_SPECIALS + sorted(ByteLevel.alphabet()))}
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], additional_special_tokens=QWEN_SPECIALS[1:])
    ids = {t: vocab[t] for t in QWEN_SPECIALS}
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 1, 1], "rope_theta": 1e4},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[1], window_size=56, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    if silent:
        with torch.no_grad():
            model.model.language_model.norm.weight.zero_()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    Qwen2VLImageProcessorPil().save_pretrained(folder)
    # Written as the published Qwen2.5-VL repos write it (names of the torchvision classes).
    processor_config = json.loads((folder / "preprocessor_config.json").read_text())
    processor_config.update(image_processor_type="Qwen2VLImageProcessor", processor_class="Qwen2_5_VLProcessor",
                            min_pixels=3136, max_pixels=12845056)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor_config))
    # Like the published Qwen2.5-VL repos: the template sits beside the processor files.
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> Path:
    return build_tiny_qwen_vl(tmp_path_factory.mktemp("tiny-qwen-vl"))


def four_shot_analysis() -> VideoAnalysis:
    hit = VisualEvent(50, "impact", 0.9, 51)
    return analysis_of([(24, 0.1, [solid(BLUE), solid(RED), solid(GREY)]), (48, 0.3, [solid(ORANGE)] * 2),
                        (24, 0.5, []), (24, 0.05, [solid(RED)])], events=[hit])


# ---------------------------------------------------------------------------------------------
# clip captioner


def test_clip_tags_every_shot_from_the_vocabulary(tiny_clip):
    analysis = four_shot_analysis()
    captions = get_captioner("clip", model=str(tiny_clip), top_k=4, batch_size=2).caption(analysis)
    assert [c.shot_index for c in captions] == [0, 1, 2, 3]
    for cap in (captions[0], captions[1], captions[3]):
        assert cap.captioner == "clip" and len(cap.tags) == 4 and set(cap.tags) <= set(TAG_NAMES)
        assert list(cap.scores) == sorted(cap.scores, reverse=True) and 0 < cap.scores[-1] <= cap.scores[0] < 1
        phrase = next(t.phrase for t in VOCABULARY if t.name == cap.tags[0])
        assert cap.text.startswith("A cartoon scene with " + phrase)
    # The shot without keyframes keeps the rule-based wording instead of an invented one.
    assert captions[2].captioner == "motion"


def test_clip_scores_are_a_softmax_that_batching_does_not_change(tiny_clip):
    clip = get_captioner("clip", model=str(tiny_clip), batch_size=1)
    shots = [(solid(BLUE), solid(RED)), (solid(ORANGE),), (solid(ORANGE), solid(ORANGE))]
    one_by_one = clip.score_shots(shots)
    together = get_captioner("clip", model=str(tiny_clip), batch_size=16).score_shots(shots)
    assert one_by_one.shape == (3, len(VOCABULARY))
    np.testing.assert_allclose(one_by_one.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(one_by_one, together, rtol=1e-4, atol=1e-6)
    # Averaging keyframes: two copies of a frame score like the frame alone.
    np.testing.assert_allclose(one_by_one[1], one_by_one[2], rtol=1e-4, atol=1e-6)
    assert not np.allclose(one_by_one[0], one_by_one[1])


def test_siglip_models_score_each_tag_with_its_own_sigmoid(tmp_path):
    import torch
    from transformers import SiglipConfig, SiglipModel, SiglipProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tokenizer, n_tokens = tiny_clip_tokenizer()
    config = SiglipConfig(
        text_config=dict(vocab_size=n_tokens, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=128, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8))
    torch.manual_seed(0)
    SiglipModel(config).save_pretrained(tmp_path)
    SiglipProcessor(image_processor=SiglipImageProcessorPil(size={"height": 32, "width": 32}),
                    tokenizer=tokenizer).save_pretrained(tmp_path)
    siglip = get_captioner("clip", model=str(tmp_path), top_k=3)
    scores = siglip.score_shots([(solid(BLUE),), (solid(RED), solid(ORANGE))])
    assert scores.shape == (2, len(VOCABULARY)) and ((scores > 0) & (scores < 1)).all()
    assert not np.allclose(scores.sum(axis=1), 1.0)
    (cap,) = siglip.caption(analysis_of([(24, 0.1, [solid(BLUE)])]))
    assert cap.captioner == "clip" and len(cap.tags) == 3 and cap.scores[0] == pytest.approx(scores[0].max(), abs=1e-4)


def test_clip_embeds_the_prompts_once_per_captioner(tiny_clip):
    clip = get_captioner("clip", model=str(tiny_clip))
    clip.score_shots([(solid(BLUE),)])
    model = clip._loaded.model
    calls = []
    original = model.get_text_features
    model.get_text_features = lambda *a, **k: calls.append(1) or original(*a, **k)
    clip.caption(four_shot_analysis())
    clip.caption(four_shot_analysis())
    assert calls == []


def test_clip_loads_a_hub_id_from_the_cache_offline(tiny_clip, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--toons--tiny-clip" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for f in tiny_clip.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (cache / "models--toons--tiny-clip" / "refs").mkdir()
    (cache / "models--toons--tiny-clip" / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    (cap,) = get_captioner("clip", model="toons/tiny-clip").caption(analysis_of([(24, 0.1, [solid(BLUE)])]))
    assert cap.captioner == "clip" and len(cap.tags) == 5


def test_missing_models_give_one_sentence_naming_the_fix(tmp_path):
    for name, model in (("clip", "toons/no-such-clip"), ("vlm", None)):
        options = {"model": model} if model else {}
        with pytest.raises(ModelUnavailable) as err:
            get_captioner(name, **options)
        message = str(err.value)
        repo = model or "Qwen/Qwen2.5-VL-3B-Instruct"
        assert f"`hf download {repo}`" in message and "HF_HUB_OFFLINE" in message
        assert message.endswith(".") and message.count(". ") == 0 and "\n" not in message
    with pytest.raises(ModelUnavailable, match="does not exist"):
        get_captioner("clip", model=str(tmp_path / "nowhere" / "clip"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelUnavailable, match="no config.json"):
        get_captioner("vlm", model=str(empty))


def test_a_damaged_model_file_is_one_sentence_not_a_traceback(tiny_clip, tmp_path):
    import shutil

    damaged = shutil.copytree(tiny_clip, tmp_path / "clip")
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])   # a download cut short
    captioner = get_captioner("clip", model=str(damaged))
    with pytest.raises(ModelUnavailable) as err:
        captioner.caption(four_shot_analysis())
    message = str(err.value)
    assert str(damaged) in message and "download it again" in message and "\n" not in message


def test_learned_captioners_refuse_devices_this_machine_lacks(tiny_clip, tiny_vlm):
    import torch

    with pytest.raises(DeviceUnavailable, match="float32"):
        get_captioner("clip", model=str(tiny_clip), dtype="float16")
    with pytest.raises(ModelUnavailable, match="Qwen2.5-VL"):
        get_captioner("vlm", model=str(tiny_clip))
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match="no CUDA GPU"):
            get_captioner("vlm", model=str(tiny_vlm), device="cuda")


# ---------------------------------------------------------------------------------------------
# vlm captioner


def test_clean_caption_keeps_one_tidy_sentence():
    assert clean_caption('"a cat skids across the floor and crashes. Then silence."') == \
        "A cat skids across the floor and crashes."
    assert clean_caption("Caption: **Footsteps patter down a hall**") == "Footsteps patter down a hall."
    assert clean_caption("  \x1b\ufffd  boing!  the ball bounces") == "Boing."
    assert clean_caption("\ufffd\x00 4 .") is None
    assert clean_caption("") is None
    long = clean_caption("word " * 100, max_chars=30)
    assert len(long) <= 31 and long.endswith("word.")


def test_vlm_prompt_carries_shot_length_and_events():
    hit = VisualEvent(36, "impact", 0.9, 37)
    analysis = analysis_of([(24, 0.1, [solid(BLUE)]), (48, 0.3, [solid(BLUE)])], events=[hit])
    text = user_prompt(analysis, analysis.shots[1], 1)
    assert text.startswith("This frame comes from one 2.0-second cartoon shot.")
    assert "Visual analysis found a crash at 0.5 s." in text and "No dialogue" in text


def test_vlm_captions_every_shot_and_batching_does_not_change_them(tiny_vlm):
    analysis = four_shot_analysis()
    batched = get_captioner("vlm", model=str(tiny_vlm), batch_size=3, max_new_tokens=8).caption(analysis)
    single = get_captioner("vlm", model=str(tiny_vlm), batch_size=1, max_new_tokens=8).caption(analysis)
    assert batched == single
    assert [c.shot_index for c in batched] == [0, 1, 2, 3]
    assert batched[2].captioner == "motion"                       # no keyframes
    for cap in (batched[0], batched[1], batched[3]):
        if cap.captioner == "vlm":                               # the random model wrote words
            assert cap.text.endswith(".") and cap.text.isprintable() and len(cap.text) <= 201
            assert cap.tags == tags_in_text(cap.text)
        else:                                                    # it wrote no words: rule wording
            assert cap.text.startswith(("A ", "Soft", "Bustling", "Frantic"))


def test_vlm_reply_without_words_falls_back_to_motion_wording(tmp_path):
    silent = build_tiny_qwen_vl(tmp_path / "silent-qwen-vl", silent=True)
    analysis = four_shot_analysis()
    vlm = get_captioner("vlm", model=str(silent))
    shot = analysis.shots[0]
    assert vlm.generate([ShotRequest(shot, analysis.keyframes[0].images, user_prompt(analysis, shot, 3))]) == [""]
    captions = vlm.caption(analysis)
    assert [c.captioner for c in captions] == ["motion"] * 4
    assert captions == get_captioner("motion").caption(analysis)


def test_a_shake_right_after_a_crash_is_told_with_it():
    events = [VisualEvent(24, "impact", 0.9, 25), VisualEvent(25, "shake", 0.8, 31), VisualEvent(40, "shake", 0.5, 44)]
    analysis = analysis_of([(48, 0.3, [])], events=events)
    (cap,) = get_captioner("motion").caption(analysis)
    assert cap.text == "Bustling, lively action; a crash at 1.0 s that shakes everything, a rumbling shake from 1.7 s."


def test_the_command_line_captions_with_weights_kept_in_a_local_folder(tiny_clip, sample_30p_silent, tmp_path):
    from dub_cli import dub_env, run_dub

    video, _ = sample_30p_silent
    env = dub_env(tmp_path)
    out = tmp_path / "a.json"
    proc = run_dub(["analyze", video, "--captioner", "clip", "--captioner-model", tiny_clip, "-o", out], env,
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {c["captioner"] for c in json.loads(out.read_text())["captions"]} == {"clip"}
    wrong = run_dub(["analyze", video, "--captioner", "motion", "--captioner-model", tiny_clip, "-o", out,
                     "--overwrite"], env)
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1 and "motion" in wrong.stderr
