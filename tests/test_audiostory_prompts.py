"""The exact text (and token ids) AudioStory's language model reads for a plan, in both timings.

The ids are checked against the real Qwen2.5 byte-level BPE tokenizer plus AudioStory's 612 added
tokens, rebuilt offline (`audiostory_core.testing.qwen_tokenizer`).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from audiostory_core import prompts
from dubber.plan import PlanOptions, audiostory_text, load_plan, make_plan, save_plan
from vision.types import MediaInfo, Shot, ShotCaption, VideoAnalysis

CAPTIONS = ("A cat tiptoes across the kitchen.", "A mouse darts into a hole", "The cat crashes into the cupboard!")
INSTRUCTION = ("Generate a classic Tom and Jerry style soundtrack for a moment in the cartoon that includes "
               "a cat tiptoes across the kitchen. A mouse darts into a hole. The cat crashes into the cupboard! "
               "The total duration is 10.0 seconds.")
PROMPT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
          f"<|im_start|>user\n{INSTRUCTION}<|im_end|>\n"
          "<|im_start|>assistant\n<|think|>")
REASONING = ("The caption can be divided into three points:\n\n"
             "1. **[0.0, 2.4]**\n - **Story Details**: A cat tiptoes across the kitchen.\n"
             " - **Sound Effects**: A cat tiptoes across the kitchen.\n\n"
             "2. **[2.4, 5.4]**\n - **Story Details**: A mouse darts into a hole.\n"
             " - **Sound Effects**: A mouse darts into a hole.\n\n"
             "3. **[5.4, 10.0]**\n - **Story Details**: The cat crashes into the cupboard!\n"
             " - **Sound Effects**: The cat crashes into the cupboard!")
CLIPS = ("A cat tiptoes across the kitchen. <timestamp>2.4</timestamp>",
         "A mouse darts into a hole. <timestamp>3.0</timestamp>",
         "The cat crashes into the cupboard! <timestamp>4.6</timestamp>")
# Qwen2.5's ids of "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n".
SYSTEM_IDS = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198]
QUERIES = ("<t5>" + "".join(f"<t5_{k:05d}>" for k in range(64)) + "</t5>"
           + "<aud>" + "".join(f"<aud_{k:05d}>" for k in range(8)) + "</aud>")


def three_shot_analysis() -> VideoAnalysis:
    """10 s at 25 fps: shots of 60, 75 and 115 frames (2.4 s, 3.0 s, 4.6 s)."""
    media = MediaInfo(path="/videos/chase.mp4", duration_s=10.0, fps=Fraction(25), frame_count=250,
                      width=320, height=180)
    shots = (Shot(0, 0, 60), Shot(1, 60, 135), Shot(2, 135, 250))
    caps = tuple(ShotCaption(i, t, captioner="test") for i, t in enumerate(CAPTIONS))
    return VideoAnalysis(media=media, shots=shots, events=(), motion=tuple(0.3 for _ in range(250)), captions=caps)


# --------------------------------------------------------------------------------------------
# Pure text
# --------------------------------------------------------------------------------------------
def test_paper_example_times_add_up_and_points_read_like_the_released_reasoning():
    clips = [prompts.ClipText("A woman chews food slowly and deliberately", "Wet, rhythmic chewing sounds.",
                              "Wet chewing sounds"),
             prompts.ClipText("She examines a package or wrapper briefly.", "Crisp rustling of a plastic bag",
                              "Rustling")]
    # Clip lengths of the paper's Fig. 3 that do not sit on tenths: rounding happens at the boundaries.
    story = prompts.compose_story(clips, [9.81, 2.97], lead=prompts.DEFAULT_LEAD, summary="a woman chews")
    assert story.reasoning == (
        "The caption can be divided into two points:\n\n"
        "1. **[0.0, 9.8]**\n - **Story Details**: A woman chews food slowly and deliberately.\n"
        " - **Sound Effects**: Wet, rhythmic chewing sounds.\n\n"
        "2. **[9.8, 12.8]**\n - **Story Details**: She examines a package or wrapper briefly.\n"
        " - **Sound Effects**: Crisp rustling of a plastic bag.")
    assert story.clips == ("Wet chewing sounds. <timestamp>9.8</timestamp>", "Rustling. <timestamp>3.0</timestamp>")
    assert story.instruction == ("Produce an in-depth, multi-layered audio that portrays a woman chews "
                                 "The total duration is 12.8 seconds.")
    # Independent rounding would have written 9.8 + 3.0 against a total of 12.8 only by luck:
    assert prompts.boundaries_tenths([9.8, 3.0, 12.7, 13.0]) == [0, 98, 128, 255, 385]
    assert prompts.boundaries_tenths([1.26, 1.26, 1.26]) == [0, 13, 25, 38]   # stamps 1.3, 1.2, 1.3


def test_number_words_and_one_decimal_durations():
    assert prompts.count_words(4, "point") == "four points"
    assert prompts.count_words(1, "point") == "one point"
    assert prompts.count_words(21, "point") == "21 points"
    assert [prompts.format_tenths(prompts.tenths(s)) for s in (50, 35.14, 0.25, 1.15, 3.0)] == \
        ["50.0", "35.1", "0.3", "1.2", "3.0"]


# --------------------------------------------------------------------------------------------
# The plan records the text
# --------------------------------------------------------------------------------------------
def test_plan_records_the_exact_text_per_cue_and_before_the_first():
    plan = make_plan(three_shot_analysis(), PlanOptions(style="tom-and-jerry"))
    assert [c.num_samples for c in plan.cues] == [115_200, 144_000, 220_800]
    assert plan.instruction == INSTRUCTION
    assert plan.model_prompt == PROMPT + REASONING + "<|/think|>"
    assert tuple(c.model_text for c in plan.cues) == CLIPS
    # What `dub plan` writes and the manifest embeds: the plan's JSON form.
    data = plan.to_dict()
    assert data["model_prompt"] == plan.model_prompt and [c["model_text"] for c in data["cues"]] == list(CLIPS)


def test_an_edited_plan_records_the_text_of_its_edits(tmp_path):
    plan = make_plan(three_shot_analysis(), PlanOptions(style="tom-and-jerry"))
    path = save_plan(plan, tmp_path / "plan.json")
    text = path.read_text().replace('"The cat crashes into the cupboard! ', '"A piano lands on the cat. ')
    path.write_text(text)
    edited = load_plan(path)
    assert edited.cues[2].model_text == "A piano lands on the cat. <timestamp>4.6</timestamp>"
    assert " - **Sound Effects**: A piano lands on the cat.<|/think|>" in edited.model_prompt
    assert edited.cues[2].caption == "The cat crashes into the cupboard!"   # the label stays


# --------------------------------------------------------------------------------------------
# What the model is given, through the backend, with the real tokenizer
# --------------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def qwen():
    from audiostory_core.testing import qwen_tokenizer

    try:
        return qwen_tokenizer()
    except FileNotFoundError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def real_vocab_pipe(qwen):
    """A tiny random model with the real 152,277-token vocabulary, the released query counts and a
    30 s window (so no cue of the plan is split into parts)."""
    import dataclasses

    from audiostory_core.model import build_audiostory
    from audiostory_core.pipeline import AudioStoryPipeline, debug_config
    from audiostory_core.vae import build_vae

    cfg = debug_config(len(qwen))
    cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, num_t5_tokens=64, num_aud_tokens=8),
                              dit=dataclasses.replace(cfg.dit, audio_seq_len=1920, max_duration=30.0))
    torch.manual_seed(0)
    model = build_audiostory(cfg)
    model.agent.merge_lora_()
    return AudioStoryPipeline.from_model(model, build_vae(cfg.vae), qwen)


def test_the_tokenizer_has_the_released_ids(qwen):
    from audiostory_core import tokenizer as tk

    tk.check_full_size_ids(qwen)
    assert qwen("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
                add_special_tokens=False)["input_ids"] == SYSTEM_IDS


class _Seen(Exception):
    pass


def test_shot_locked_backend_gives_the_model_exactly_the_plan_text(real_vocab_pipe, qwen, monkeypatch):
    from dubber.backends.audiostory import AudioStoryBackend

    analysis = three_shot_analysis()
    plan = make_plan(analysis, PlanOptions(style="tom-and-jerry"))
    seen = []
    agent = real_vocab_pipe.agent
    real = agent.final_hidden_states

    def spy(input_ids):
        seen.append(input_ids[0].tolist())
        return real(input_ids)

    monkeypatch.setattr(agent, "final_hidden_states", spy)
    result = AudioStoryBackend(pipeline=real_vocab_pipe).render(plan, analysis)
    assert [c.stems["dub"].shape for c in result.cues] == [(2, c.num_samples) for c in plan.cues]
    ids = seen[0]
    whole = PROMPT + REASONING + "<|/think|>" + "".join(f"<|gen|>{c}{QUERIES}<|/gen|>" for c in CLIPS)
    # The prefill stops after the last query row: everything but the closing "</aud><|/gen|>".
    assert ids == qwen(whole, add_special_tokens=False)["input_ids"][:-2]
    assert qwen.decode(ids + [151771, 152274]) == whole
    assert ids[:11] == SYSTEM_IDS and ids.count(152275) == 1 and ids.count(152276) == 1
    assert ids.count(152273) == 3 and ids.count(151669) == 3 and ids.count(151665) == 3
    # "<|gen|>… <timestamp>2.4</timestamp><t5><t5_00000>…": digits are single tokens ('0' = 15).
    first = ids.index(151667)
    assert ids[first - 1:first + 7] == [220, 151667, 17, 13, 19, 151668, 151669, 151670]
    gen = [i for i, t in enumerate(ids) if t == 152273]
    assert ids[gen[1] + 1:gen[1] + 3] == qwen("A mouse", add_special_tokens=False)["input_ids"]
    # The recorded text is the text the model read.
    assert audiostory_text(plan).prefix == plan.model_prompt == PROMPT + REASONING + "<|/think|>"


def test_free_backend_gives_the_model_the_plan_instruction_with_its_lead(real_vocab_pipe, qwen, monkeypatch):
    from dubber.backends.audiostory import AudioStoryBackend

    analysis = three_shot_analysis()
    plan = make_plan(analysis, PlanOptions(style="tom-and-jerry"))
    seen = []

    def spy(prompt_ids, *args, **kwargs):
        seen.append(prompt_ids[0].tolist())
        raise _Seen

    monkeypatch.setattr(real_vocab_pipe.agent, "generate", spy)
    from dubber.backends import BackendOptions

    backend = AudioStoryBackend(BackendOptions(timing="free"), pipeline=real_vocab_pipe)
    with pytest.raises(_Seen):
        backend.render(plan, analysis)
    assert seen[0] == qwen(PROMPT, add_special_tokens=False)["input_ids"]
    assert seen[0][:11] == SYSTEM_IDS and seen[0][-1] == 152275
    assert qwen.decode(seen[0]) == PROMPT


def test_identical_audio_for_the_plan_and_its_reloaded_copy(real_vocab_pipe, tmp_path):
    """The recorded text is derived, so a saved and reloaded plan renders bit-identically."""
    from dubber.backends.audiostory import AudioStoryBackend

    analysis = three_shot_analysis()
    plan = make_plan(analysis, PlanOptions(style="tom-and-jerry"))
    again = load_plan(save_plan(plan, tmp_path / "plan.json"))
    assert again == plan
    backend = AudioStoryBackend(pipeline=real_vocab_pipe)
    a, b = backend.render(plan, analysis), backend.render(again, analysis)
    for x, y in zip(a.cues, b.cues):
        np.testing.assert_array_equal(x.stems["dub"], y.stems["dub"])
