"""Strict loading of the AudioStory-3B checkpoint (spec §3).

* The trained weights come as one `pytorch_model.bin` pickle. It is opened only with
  `torch.load(weights_only=True, mmap=True)` and converted once to safetensors in a cache
  folder (atomic write); every later run reads the safetensors file lazily (`weight_files.py`).
* Tied tensors (the LLM's `embed_tokens`/`lm_head`, T5's `shared`/`embed_tokens`) are stored
  once and listed as aliases in the file's metadata.
* Before any tensor is read, the file's key set and shapes are compared with what the model
  built from the config expects (`expected_shapes`, a meta-device build named through
  `keys.py`); any difference raises `CheckpointMismatch` naming the first offending key (the
  error keeps them all). A file that is cut short, corrupt or unreadable is named by `files.py`.
* The model is described by the folder itself: the base LLM's and T5's config.json, the DiT's
  `Flux_detokenizer/config.json`, the VAE's optional `Flux_detokenizer/vae/config.json`,
  config.yaml (LoRA alpha, query counts, feature scale, and an optional `sampling:` section),
  the tokenizer files and the weight shapes (the configs are read by `checkpoint_config.py`).
  The released model's values (spec §3.1, §3.3) are only the defaults for what these files
  leave out, so a checkpoint of any size in the official layout loads the same way.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .checkpoint_config import config_from_files, generation_settings
from .errors import INCOMPLETE, CheckpointMismatch, WeightsNotFound
from .files import read_error, read_json, read_yaml
from .hub import QWEN_DIR_NAME, QWEN_REPO_ID, base_llm_files
from .keys import T5_PREFIX, Shape, check_keys
from .weight_files import as_safetensors, read_shapes, read_tensors

if TYPE_CHECKING:
    import torch

    from .config import AudioStoryConfig, LLMConfig, VAEConfig
    from .device import Placement
    from .hub import CheckpointFiles
    from .model import AudioStory

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Where each key's tensor lives
# --------------------------------------------------------------------------------------------
class WeightIndex:
    """Checkpoint key → (safetensors file, name in that file) and shape, over several files.

    Lets the AudioStory file be read under normalised names (a DistributedDataParallel
    `module.` prefix stripped) and the frozen base-LLM weights it leaves out be taken from the
    base model's own files, without reading any tensor before the strict key check.
    """

    def __init__(self) -> None:
        self.shapes: dict[str, Shape] = {}
        self.where: dict[str, tuple[Path, str]] = {}

    def add(self, st_path: str | os.PathLike, rename: Callable[[str], str | None]) -> int:
        """Index a file's keys under `rename(name)` (None skips a key; the first file wins)."""
        added = 0
        for name, shape in read_shapes(st_path).items():
            key = rename(name)
            if key is not None and key not in self.shapes:
                self.shapes[key], self.where[key] = shape, (Path(st_path), name)
                added += 1
        return added

    def alias(self, key: str, source: str) -> None:
        self.shapes[key], self.where[key] = self.shapes[source], self.where[source]

    def read(self, keys: Iterable[str], dtype: "torch.dtype | None" = None) -> dict[str, "torch.Tensor"]:
        by_file: dict[Path, list[str]] = {}
        for key in keys:
            by_file.setdefault(self.where[key][0], []).append(key)
        out: dict[str, "torch.Tensor"] = {}
        for path, wanted in by_file.items():
            tensors = read_tensors(path, [self.where[k][1] for k in wanted], dtype=dtype)
            out.update({k: tensors[self.where[k][1]] for k in wanted})
        return out


# --------------------------------------------------------------------------------------------
# Loading everything
# --------------------------------------------------------------------------------------------
def expected_shapes(cfg: "AudioStoryConfig") -> dict[str, Shape]:
    """Official checkpoint key → shape for `cfg`, from a meta-device build of the model."""
    from .model import expected_checkpoint_shapes

    return expected_checkpoint_shapes(cfg)


def check_small_files(files: "CheckpointFiles") -> None:
    """Parse every small file of the checkpoint (configs, tokenizer, shard index) before the
    weights are converted: a typo in a YAML file is then said in a second, not after minutes and
    gigabytes spent converting a pickle that the broken config makes useless.

    Raises:
        CheckpointDamaged: a file that is not valid YAML or JSON (see `files.read_json`).
    """
    read_yaml(files.config_yaml)
    small = [files.flux_config, files.vae_config, files.generation_config]
    small += [files.qwen_dir / name for name in ("config.json", "tokenizer_config.json", "tokenizer.json")]
    if files.base_llm_dir is not None:
        small.append(files.base_llm_dir / "model.safetensors.index.json")
    for path in small:
        if path is not None and path.is_file():
            read_json(path)


def load_model(files: "CheckpointFiles", placement: "Placement",
               cache_dir: str | os.PathLike | None = None) -> "AudioStory":
    """Build AudioStory from a checkpoint folder: strict key check, load, merge LoRA, place.

    Accepted as the official loader accepts them: keys under a DistributedDataParallel `module.`
    prefix, and a file without the frozen base-LLM weights (they are read from the
    Qwen2.5-3B-Instruct folder, single file or sharded). Anything else missing, unexpected or
    mis-shaped is refused, naming the first such key.

    Raises:
        CheckpointMismatch: the weights do not match the model the configs describe.
        WeightsNotFound: a needed file is missing.
    """
    import torch

    from .keys import TIED_ALIASES, strip_ddp_prefix
    from .model import build_audiostory

    check_small_files(files)
    weights = WeightIndex()
    weights.add(as_safetensors(files.weights, cache_dir), strip_ddp_prefix)
    for alias, source in TIED_ALIASES:
        if alias not in weights.shapes and source in weights.shapes:
            weights.alias(alias, source)
    cfg = _model_config(files, weights.shapes)
    model = build_audiostory(cfg, device="meta")
    expected = model.checkpoint_shapes()
    _index_base_llm(weights, files, expected)
    t5_keys = {k: v for k, v in expected.items() if k.startswith(T5_PREFIX)}
    t5_outside = bool(t5_keys) and not any(k.startswith(T5_PREFIX) for k in weights.shapes)
    wanted = {k: v for k, v in expected.items() if not (t5_outside and k in t5_keys)}
    check_keys(weights.shapes, wanted, str(files.weights), hint=_missing_hint(weights.shapes, wanted, files))
    state = weights.read([k for k in wanted if not k.startswith(T5_PREFIX)], dtype=placement.dtype)
    # T5 runs once, for T5(""), in the run's precision (below); it is read in float32 first.
    state.update(_t5_state(files, t5_keys, cache_dir) if t5_outside else
                 weights.read([k for k in wanted if k.startswith(T5_PREFIX)], dtype=torch.float32))
    model.load_checkpoint_state_dict(state, source=str(files.weights), assign=True)
    del state
    _freeze_uncond_text(model, placement)
    # LoRA is folded in while the weights are still on the CPU: moving the un-merged layers to the
    # GPU and merging there kept both copies alive at the peak.
    model.agent.merge_lora_()
    model.to(device=placement.device, dtype=placement.dtype)
    return model.eval().requires_grad_(False)


def _model_config(files: "CheckpointFiles", shapes: Mapping[str, Shape]) -> "AudioStoryConfig":
    """`config_from_files` on the folder's files; sizes that cannot fit together are refused."""
    llm_config = files.qwen_dir / "config.json"
    llm_json = _optional_json(llm_config)
    try:
        cfg = config_from_files(read_yaml(files.config_yaml), read_json(files.flux_config), shapes, llm_json,
                                _optional_json(files.t5_dir / "config.json") if files.t5_dir else None,
                                vae_config(files), generation_settings(files.generation_config))
    except ValueError as err:
        raise CheckpointMismatch(str(files.weights), problem=f"its weight shapes do not fit together ({err})"
                                 ) from err
    _check_special_token_ids(cfg.llm, llm_config, from_file=llm_json is not None)
    return cfg


def _check_special_token_ids(llm: "LLMConfig", llm_config: Path, from_file: bool) -> None:
    """Refuse pad/bos/eos ids outside the vocabulary the weights have (the embedding's padding row
    must exist). Without the base model's config.json they are the released model's, which fit
    only a full-size vocabulary.

    Raises:
        WeightsNotFound: config.json is missing and the released ids do not fit.
        CheckpointMismatch: config.json names an id outside the vocabulary.
    """
    outside = [(name, i) for name in ("pad_token_id", "bos_token_id", "eos_token_id")
               for i in _token_ids(getattr(llm, name)) if not 0 <= i < llm.vocab_size]
    if not outside:
        return
    if not from_file:
        raise WeightsNotFound(
            f"The file {llm_config} is missing and the released model's token ids do not fit this checkpoint's "
            f"{llm.vocab_size}-token vocabulary; put the config.json of the base model these weights were "
            f"trained from in that folder.", reason=INCOMPLETE)
    name, token_id = outside[0]
    raise CheckpointMismatch(str(llm_config), problem=f"its {name} {token_id} is outside the weights' "
                             f"{llm.vocab_size}-token vocabulary",
                             hint="use the config.json of the base model these weights were trained from")


def _token_ids(value: Any) -> list[int]:
    # transformers allows one id, a list of ids, or none.
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, int)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


def _index_base_llm(weights: WeightIndex, files: "CheckpointFiles", expected: Mapping[str, Shape]) -> None:
    """Index the frozen base-LLM weights the AudioStory file leaves out, from the base model folder."""
    from .keys import checkpoint_key_of_base, is_frozen_base_key

    missing = {k for k in expected if k not in weights.shapes and is_frozen_base_key(k)}
    if not missing or files.base_llm_dir is None:
        return

    def rename(name: str) -> str | None:
        key = checkpoint_key_of_base(name, expected)
        return key if key in missing else None

    found = sum(weights.add(path, rename) for path in base_llm_files(files.base_llm_dir))
    log.info("Took %d frozen base-LLM weights from %s.", found, files.base_llm_dir)


def _missing_hint(found: Mapping[str, Shape], expected: Mapping[str, Shape], files: "CheckpointFiles") -> str:
    from .keys import is_frozen_base_key

    first = next((k for k in sorted(expected) if k not in found), None)
    if first is None or not is_frozen_base_key(first):
        return ""
    if files.base_llm_dir is None:
        return (f"a fine-tuned checkpoint leaves the frozen base weights out: put the {QWEN_DIR_NAME} folder "
                f"with its safetensors weights (`hf download {QWEN_REPO_ID}`) next to it")
    return f"the base model in {files.base_llm_dir} lacks it too; download {QWEN_REPO_ID} again"


def _freeze_uncond_text(model: "AudioStory", placement: "Placement") -> None:
    """Compute T5("") once and drop the 341 M-parameter encoder.

    It runs in the run's dtype on the run's device, as the official code runs it (it casts the T5
    encoder to fp16 with everything else, spec §8.2-11), so the unconditional branch is the one
    the released model was sampled with.
    """
    det = model.detokenizer
    if det.text_encoder is None:
        return
    det.text_encoder.to(device=placement.device, dtype=placement.dtype)
    det.set_uncond_embeds(det.uncond_embeds(model.cfg.agent.num_t5_tokens).cpu())
    det.text_encoder = None


def _t5_state(files: "CheckpointFiles", expected: Mapping[str, Shape],
              cache_dir: str | os.PathLike | None = None) -> dict:
    """The flan-t5-large encoder weights from their own folder, under checkpoint key names."""
    from . import hub

    t5_dir = files.t5_dir or hub.fetch_t5(local_only=True)   # mid-run: read what is here, never download
    candidates = [t5_dir / "model.safetensors", t5_dir / "pytorch_model.bin"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        # The checkpoint's own folder is used in place of the Hub cache: a download alone would not help.
        fix = (f"put the {hub.T5_DIR_NAME} weights in that folder or remove it" if files.t5_dir is not None
               else f"run `hf download {hub.T5_REPO_ID}`")
        raise WeightsNotFound(f"No flan-t5-large weights were found in {t5_dir}; {fix}.")
    st_path = as_safetensors(path, cache_dir)
    found = {T5_PREFIX + k: v for k, v in read_shapes(st_path).items()}
    wanted = {k for k in found if k in expected}
    found = {k: v for k, v in found.items() if k in wanted}
    if "tangoflux.text_encoder.encoder.embed_tokens.weight" not in found and T5_PREFIX + "shared.weight" in found:
        found["tangoflux.text_encoder.encoder.embed_tokens.weight"] = found[T5_PREFIX + "shared.weight"]
    check_keys(found, expected, str(path))
    import torch

    raw = read_tensors(st_path, [k[len(T5_PREFIX):] for k in wanted], dtype=torch.float32)
    state = {T5_PREFIX + k: v for k, v in raw.items()}
    state.setdefault("tangoflux.text_encoder.encoder.embed_tokens.weight", state.get(T5_PREFIX + "shared.weight"))
    return state


def vae_config(files: "CheckpointFiles") -> "VAEConfig":
    """The VAE's hyper-parameters: `Flux_detokenizer/vae/config.json` (diffusers format) when
    present, else Stable Audio Open's, which the official runner builds (spec §2.5).

    Raises:
        CheckpointDamaged: the file is not valid JSON.
        CheckpointMismatch: the file describes no valid Oobleck VAE.
    """
    from .config import VAEConfig

    path = Path(files.vae_config)
    if not path.is_file():
        return VAEConfig()
    data = read_json(path)
    fix = "fix that entry of vae/config.json, or remove the file to use the released VAE's settings"
    try:
        cfg = VAEConfig.from_dict(data)
    except TypeError as err:
        raise CheckpointMismatch(str(path), problem=f"it is no Oobleck VAE config ({err})", hint=fix) from err
    problems = _vae_config_problems(cfg)
    if problems:
        raise CheckpointMismatch(str(path), unexpected=problems, problem=f"{problems[0]} is not a valid setting",
                                 hint=fix)
    return cfg


def _vae_config_problems(cfg: "VAEConfig") -> list[str]:
    sizes = {"encoder_hidden_size": cfg.encoder_hidden_size, "decoder_channels": cfg.decoder_channels,
             "decoder_input_channels": cfg.decoder_input_channels, "audio_channels": cfg.audio_channels,
             "sampling_rate": cfg.sampling_rate}
    out = [f"{k}={v!r}" for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v <= 0]
    lists = {"downsampling_ratios": cfg.downsampling_ratios, "channel_multiples": cfg.channel_multiples}
    for name, values in lists.items():
        if not isinstance(values, tuple) or not values or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            out.append(f"{name}={values!r}")
    if not out and len(cfg.downsampling_ratios) != len(cfg.channel_multiples):
        out.append("downsampling_ratios and channel_multiples of different lengths")
    return out


def load_vae(files: "CheckpointFiles", placement: "Placement", cfg: "VAEConfig | None" = None):
    """The Oobleck VAE from `Flux_detokenizer/model.safetensors`, loaded strictly against `cfg`
    (default: `vae_config(files)`).

    The VAE stays in float32: it is small and its decode is the numerically sensitive end.
    """
    import torch

    from .vae import build_vae

    with torch.device("meta"):
        vae = build_vae(cfg or vae_config(files))
    expected = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    check_keys(read_shapes(files.vae_weights), expected, str(files.vae_weights))
    vae.load_state_dict(read_tensors(files.vae_weights, dtype=torch.float32), strict=True, assign=True)
    return vae.to(placement.device).eval().requires_grad_(False)


def load_tokenizer(files: "CheckpointFiles", cfg: "AudioStoryConfig"):
    """The base tokenizer + AudioStory's added tokens, as many as the tokenizer files hold
    (the released 612 when they hold none); its length must equal the LLM's vocabulary, and a
    full-size vocabulary must have the released ids (spec §1.3).

    Raises:
        WeightsNotFound: the tokenizer file is missing or this user may not read it.
        CheckpointDamaged: a tokenizer file is not valid JSON or cannot be parsed.
        CheckpointMismatch: wrong length, ids out of order, or (full size) an id that differs.
    """
    from transformers import AutoTokenizer

    from .tokenizer import FULL_VOCAB_LEN, check_full_size_ids, extend_tokenizer

    vocabulary = _tokenizer_vocabulary_file(files.qwen_dir)
    try:
        tok = AutoTokenizer.from_pretrained(str(files.qwen_dir))
    except Exception as err:   # the tokenizers library raises a bare Exception for a file it cannot parse
        raise read_error(vocabulary, err) from err
    tok = extend_tokenizer(tok, *added_token_counts(tok.get_vocab()))
    if len(tok) != cfg.llm.vocab_size:
        raise CheckpointMismatch(f"tokenizer in {files.qwen_dir}",
                                 mismatched=[("len(tokenizer)", (len(tok),), (cfg.llm.vocab_size,))],
                                 problem=f"it has {len(tok)} tokens where the weights have {cfg.llm.vocab_size}",
                                 hint="use the tokenizer of the base model these weights were trained from")
    if cfg.llm.vocab_size == FULL_VOCAB_LEN:
        check_full_size_ids(tok)
    return tok


def added_token_counts(vocab: Mapping[str, int]) -> tuple[int, int]:
    """(`<t5_k>`, `<aud_k>`) tokens a tokenizer already holds, counted from k = 0; the released
    counts (100, 501) for a base tokenizer that holds none of AudioStory's tokens."""
    from . import tokenizer as tk

    if tk.T5_OPEN not in vocab and tk.AUD_OPEN not in vocab:
        return tk.N_T5_VOCAB, tk.N_AUD_VOCAB
    return _run_length(vocab, tk.t5_token), _run_length(vocab, tk.aud_token)


def _run_length(vocab: Mapping[str, int], name) -> int:
    count = 0
    while name(count) in vocab:
        count += 1
    return count


# The tokenizer's vocabulary: transformers' own file, else a slow tokenizer's (with merges.txt).
TOKENIZER_VOCABULARY_FILES = ("tokenizer.json", "vocab.json")
# Every JSON file AutoTokenizer reads from a folder, parsed first so that a damaged one is named.
_TOKENIZER_JSON_FILES = ("tokenizer_config.json", "special_tokens_map.json", "added_tokens.json") \
    + TOKENIZER_VOCABULARY_FILES


def _tokenizer_vocabulary_file(folder: Path) -> Path:
    """The tokenizer's vocabulary file, once every tokenizer JSON file there has parsed.

    Raises:
        WeightsNotFound: there is no vocabulary file (AutoTokenizer would build a tokenizer
            without the base vocabulary), or a file may not be read.
        CheckpointDamaged: a tokenizer JSON file is not valid JSON.
    """
    vocabulary = next((folder / f for f in TOKENIZER_VOCABULARY_FILES if (folder / f).is_file()), None)
    if vocabulary is None:
        raise WeightsNotFound(f"The tokenizer file {folder / TOKENIZER_VOCABULARY_FILES[0]} is missing; put "
                              f"{QWEN_REPO_ID}'s {TOKENIZER_VOCABULARY_FILES[0]} in that folder.", reason=INCOMPLETE)
    for name in _TOKENIZER_JSON_FILES:
        _optional_json(folder / name)
    return vocabulary


def _optional_json(path: Path) -> dict[str, Any] | None:
    return read_json(path) if Path(path).is_file() else None
