"""Finding captioner weights on disk and choosing where they run; shared by `clip` and `vlm`.

Weights come from a local folder or from the Hugging Face Hub cache. By default nothing is
downloaded during an analysis: a missing model is one `ModelUnavailable` sentence that names the
command fetching it. `allow_download=True` lets the Hub client fetch it, unless `HF_HUB_OFFLINE`
is set. Environment variables are read at call time so tests and the CLI can set them late.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelIncomplete, ModelUnavailable, VideoError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# The weights each learned captioner uses unless told otherwise (Hugging Face repo ids).
DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_VLM_MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"
DEFAULT_MODELS: dict[str, str] = {"clip": DEFAULT_CLIP_MODEL, "vlm": DEFAULT_VLM_MODEL}

# Other frameworks' weight formats: never needed, often large.
IGNORE_PATTERNS = ["*.h5", "*.msgpack", "*.onnx", "onnx/*", "*.tflite", "*.ot", "openvino/*", "*.mlmodel"]
_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


class DeviceUnavailable(VideoError):
    """A captioner was asked to run on a device or in a precision this machine cannot give."""


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    # huggingface_hub reads these once at import; read them per call so a late setting counts.
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return Path(home) / "hub"


def looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return (len(parts) == 2 and all(parts) and not text.startswith((".", "~"))
            and not os.path.isabs(text))


# How the captioners name their weights in messages, and the `dub models download` word for each.
_CAPTIONER_BY_WHAT = {"CLIP model": "clip", "vision-language model": "vlm"}


def download_command(repo_id: str, what: str = "") -> str:
    """How to fetch `repo_id`: the product's `dub models download` first when a captioner uses
    it, with the Hugging Face client's command as the alternative."""
    hub = f"`hf download {repo_id}`"
    name = next((n for n, repo in DEFAULT_MODELS.items() if repo == repo_id), _CAPTIONER_BY_WHAT.get(what))
    if name is None:
        return hub
    model = "" if DEFAULT_MODELS.get(name) == repo_id else f" --model {repo_id}"
    return f"`dub models download {name}{model}` (or {hub})"


def resolve_model_dir(model: str, *, what: str, example: str, allow_download: bool = False) -> Path:
    """A local folder holding `model`'s config and weights.

    Args:
        model: a local folder, or a Hub repo id ("owner/name") looked up in the Hub cache.
        what: how messages name the model ("CLIP model").
        example: a Hub id that messages give as an example.
        allow_download: fetch a Hub model that is not cached (ignored when HF_HUB_OFFLINE is set).

    Raises:
        ModelUnavailable: the folder does not exist, holds no config.json, or the repo is not
            cached and may not or cannot be downloaded.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelUnavailable(
                f"The {what} folder {path} holds no config.json; point the captioner at a folder "
                "saved with `save_pretrained` or at a Hugging Face Hub id.")
        missing = missing_parts(path)
        if missing:
            raise ModelIncomplete(f"The {what} folder {path} is incomplete ({', '.join(missing)} missing); save the "
                                   "model and its processor there again with `save_pretrained`.")
        return path
    if not looks_like_repo_id(model):
        raise ModelUnavailable(
            f"The {what} folder {path} does not exist; pass an existing model folder or a "
            f"Hugging Face Hub id such as {example}.")
    snapshot = _snapshot(model, what=what, allow_download=allow_download)
    missing = missing_parts(snapshot)
    if missing:   # an interrupted download: present is not usable
        raise ModelIncomplete(f"The {what} {model} in the Hugging Face cache is incomplete ({', '.join(missing)} "
                               f"missing); run {download_command(model, what)} again.")
    return snapshot


# What a captioner's folder holds once whole: its config, weights in one of transformers'
# layouts, the image processor's settings and a tokenizer. A download cut short has the small
# files first and lacks the rest.
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_TOKENIZERS = ("tokenizer.json", "vocab.json", "tokenizer.model", "spiece.model")


def missing_parts(folder: Path) -> list[str]:
    """The parts a model folder lacks to load (empty when it is whole), named for a person."""
    has = lambda name: (folder / name).is_file()  # noqa: E731
    missing = [] if has("config.json") else ["config.json"]
    if not any(has(name) for name in _WEIGHTS):
        missing.append("the weights (model.safetensors)")
    if not (has("preprocessor_config.json") or has("processor_config.json")):   # older and newer transformers
        missing.append("preprocessor_config.json")
    if not any(has(name) for name in _TOKENIZERS):
        missing.append("the tokenizer (tokenizer.json)")
    return missing


def _snapshot(repo_id: str, *, what: str, allow_download: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    local_only = hub_offline() or not allow_download
    try:
        return Path(snapshot_download(repo_id, cache_dir=hub_cache_dir(), local_files_only=local_only,
                                      ignore_patterns=IGNORE_PATTERNS))
    except (LocalEntryNotFoundError, HfHubHTTPError, HFValidationError, OSError) as err:
        raise ModelUnavailable(_missing_message(repo_id, what, local_only, err)) from err


def _missing_message(repo_id: str, what: str, local_only: bool, err: Exception) -> str:
    fetch = download_command(repo_id, what)
    if not local_only:
        return (f"The {what} {repo_id} could not be downloaded ({type(err).__name__}); check the id and "
                f"the connection, or run {fetch} on a machine with internet access.")
    if hub_offline():
        return (f"The {what} {repo_id} is not in the Hugging Face cache ({hub_cache_dir()}) and HF_HUB_OFFLINE "
                f"is set; unset it where there is a connection, or run {fetch} on a machine with one and copy its "
                "Hugging Face cache here, then try again.")
    return f"The {what} {repo_id} is not in the Hugging Face cache; run {fetch} to fetch it, then try again."


def load_or_explain(load, model_dir: Path, *args, what: str):
    """`load(model_dir, *args)`, with a model folder that will not load (a damaged or cut-short
    file: transformers, safetensors and torch's reader say so as an OSError, ValueError,
    SafetensorError or RuntimeError) turned into one sentence naming it."""
    from safetensors import SafetensorError

    try:
        return load(model_dir, *args)
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ModelUnavailable(f"The {what} in {model_dir} could not be loaded ({reason}); download it again "
                               "or point the captioner at a complete model folder.") from err


def fetch_model(repo_id: str) -> Path:
    """Download (or find in the cache) a Hub model for later offline use; returns its folder.

    Raises:
        ModelUnavailable: offline, no network, or no such repo.
    """
    log.info("Fetching %s from the Hugging Face Hub.", repo_id)
    return _snapshot(repo_id, what="model", allow_download=True)


def resolve_placement(device: str, dtype: str) -> tuple["torch.device", "torch.dtype"]:
    """The torch device and dtype a captioner runs in.

    Args:
        device: "cpu", "cuda" or "cuda:N".
        dtype: "float32" (default everywhere), or "float16"/"bfloat16" on CUDA only.

    Raises:
        DeviceUnavailable: CUDA asked for but absent, or half precision asked for on the CPU.
        ValueError: unknown device or dtype name.
    """
    import torch

    name = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(sorted(_DTYPES))}.")
    try:
        dev = torch.device(str(device).lower())
    except RuntimeError as err:
        raise ValueError(f"Unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'.") from err
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"Unsupported device {device!r}; use 'cpu', 'cuda' or 'cuda:N'.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"The captioner was asked to run on {device!r} but this machine has no CUDA GPU; use device 'cpu'.")
    if dev.type == "cpu" and name != "float32":
        raise DeviceUnavailable(
            f"{name} captioning needs a CUDA GPU; drop the dtype option to run in float32 on the CPU.")
    return dev, getattr(torch, name)

