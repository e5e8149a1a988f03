"""Finding the AudioStory-3B files on disk or fetching them from the Hugging Face Hub.

The official runner expects (spec §1.1, §3.1):

    audiostory-3B/{config.yaml, pytorch_model.bin}     # all trained weights (one pickle)
    Flux_detokenizer/{config.json, model.safetensors}  # DiT hyper-parameters + the Oobleck VAE
    Flux_detokenizer/vae/config.json                    # optional: the VAE's diffusers config
    Qwen2.5-3B-Instruct/                                # base tokenizer, config.json, generation config,
                                                        # and the frozen base weights a fine-tune leaves out
    flan-t5-large/                                      # only needed if the .bin lacks the T5

These folders may sit side by side or inside the checkpoint folder. Every size is read from
these files (see `checkpoint_config.config_from_files`); the released model's values are only the
defaults for what its files leave out (the VAE config: Stable Audio Open's, as the official
runner builds a default `AutoencoderOobleck`). `HF_HUB_OFFLINE`, `HF_HOME`
and `HF_HUB_CACHE` are read at call time, so a test or CLI can set them after import.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DOWNLOAD_FAILED, FOLDER_MISSING, INCOMPLETE, NOT_CACHED, CheckpointDamaged, WeightsNotFound
from .files import blocked_part, check_complete, read_json, short_reason, stored_names, unreadable
from .keys import T5_PREFIX, is_frozen_base_key, strip_ddp_prefix

log = logging.getLogger(__name__)

REPO_ID = "TencentARC/AudioStory-3B"
QWEN_REPO_ID = "Qwen/Qwen2.5-3B-Instruct"
T5_REPO_ID = "google/flan-t5-large"
DOWNLOAD_HINT = f"run `dub models download` or `hf download {REPO_ID}`"

MODEL_DIR_NAMES = ("audiostory-3B", "audiostory_3b", "AudioStory-3B", "audiostory-3b")
FLUX_DIR_NAME = "Flux_detokenizer"
QWEN_DIR_NAME = "Qwen2.5-3B-Instruct"
T5_DIR_NAME = "flan-t5-large"
VAE_CONFIG_NAME = "vae/config.json"   # inside Flux_detokenizer, next to the VAE weights
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")   # preferred first
BASE_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")   # transformers' layouts
GENERATION_CONFIG_NAME = "generation_config.json"
# The base model is only needed for its tokenizer and generation config.
QWEN_TOKENIZER_PATTERNS = ["*.json", "*.txt", "*.model", "merges.txt"]


@dataclass(frozen=True)
class CheckpointFiles:
    """Paths of every part of an AudioStory-3B checkpoint."""

    model_dir: Path            # holds config.yaml and the trained weights
    weights: Path              # pytorch_model.bin or model.safetensors
    flux_dir: Path             # config.json (DiT) + model.safetensors (VAE)
    qwen_dir: Path             # base tokenizer files
    t5_dir: Path | None        # flan-t5-large, when found
    base_llm_dir: Path | None = None   # Qwen2.5-3B-Instruct with its weights, when found

    @property
    def generation_config(self) -> Path | None:
        """The checkpoint's generation_config.json, else the base model's (as transformers merges
        it into `generate`), else None."""
        for folder in (self.model_dir, self.base_llm_dir, self.qwen_dir):
            if folder is not None and (folder / GENERATION_CONFIG_NAME).is_file():
                return folder / GENERATION_CONFIG_NAME
        return None

    @property
    def config_yaml(self) -> Path:
        return self.model_dir / "config.yaml"

    @property
    def flux_config(self) -> Path:
        return self.flux_dir / "config.json"

    @property
    def vae_weights(self) -> Path:
        return self.flux_dir / "model.safetensors"

    @property
    def vae_config(self) -> Path:
        """The VAE's diffusers `config.json`; absent in the official layout (defaults apply)."""
        return self.flux_dir / VAE_CONFIG_NAME


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return Path(home) / "hub"


def locate(path_or_repo: str | os.PathLike | None = None, *, local_only: bool = False) -> CheckpointFiles:
    """Resolve a local folder or a Hub repo id to the checkpoint's files.

    Args:
        path_or_repo: a folder holding the layout above, a Hub repo id ("owner/name"), or None
            for the official repo.
        local_only: look only in the local Hub cache, never download (for this call alone; the
            process environment is left as it is).

    Raises:
        WeightsNotFound: a required part is absent and cannot be downloaded here, or a folder
            of it may not be read by this user (reason UNREADABLE).
    """
    target = REPO_ID if path_or_repo is None else str(path_or_repo)
    try:
        root = Path(target).expanduser()
        if not root.exists():
            if not _looks_like_repo_id(target):
                detail = f"The AudioStory checkpoint folder {target} does not exist"
                raise WeightsNotFound(f"{detail}; {DOWNLOAD_HINT}.", reason=FOLDER_MISSING, detail=detail)
            root = fetch(target, local_only=local_only)
        return _layout(root, label=target, local_only=local_only)
    except OSError as err:   # a folder of the checkpoint this user may not list or enter
        raise unreadable(err.filename or target, err) from err


def fetch(repo_id: str, allow_patterns: list[str] | None = None, *, local_only: bool = False) -> Path:
    """Download (or find in the Hub cache) one repo snapshot, with progress bars; `local_only`
    (or HF_HUB_OFFLINE) looks in the cache alone.

    Raises:
        WeightsNotFound: offline with nothing cached, no network, or no such repo.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    if local_only or offline():
        log.debug("Looking for %s in the Hugging Face cache (%s).", repo_id, hub_cache_dir())
    else:
        log.info("Fetching %s from the Hugging Face Hub (cache: %s).", repo_id, hub_cache_dir())
    try:
        return Path(snapshot_download(
            repo_id, cache_dir=hub_cache_dir(), local_files_only=local_only or offline(),
            allow_patterns=allow_patterns,
        ))
    except (LocalEntryNotFoundError, HfHubHTTPError, HFValidationError, OSError) as err:
        _refuse_unreadable_cache(repo_id, err)
        hint = DOWNLOAD_HINT if repo_id == REPO_ID else f"run `hf download {repo_id}`"
        if local_only:
            detail = f"The model files of {repo_id} are not in the Hugging Face cache ({hub_cache_dir()})"
            raise WeightsNotFound(f"{detail}; {hint}.", reason=NOT_CACHED, detail=detail) from err
        detail = f"The model files of {repo_id} are not on this machine and {_why_not_fetched(err)}"
        # Files fetched elsewhere reach this machine only as a copy of the cache folder or as a
        # local checkpoint folder: say both, not only the command that just failed here.
        elsewhere = (f"{hint} on a machine with one and copy its Hugging Face cache ({hub_cache_dir()}) here or "
                     "pass the checkpoint folder with --model PATH")
        first = ("unset HF_HUB_OFFLINE where there is a connection" if offline() else
                 "check the connection (a proxy needs HTTPS_PROXY; a mirror, HF_ENDPOINT)")
        raise WeightsNotFound(f"{detail}; {first}, or {elsewhere}.",
                              reason=NOT_CACHED if offline() else DOWNLOAD_FAILED, detail=detail) from err


def _why_not_fetched(err: Exception) -> str:
    """Why the Hub gave no files, in a few words: offline mode, an unreachable Hub, or its answer."""
    if offline():
        return "offline mode is on (HF_HUB_OFFLINE=1)"
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status in (401, 403, 404):
        return f"the Hub has no such repo this machine may read (HTTP {status})"
    if status is not None:
        return f"the Hub answered HTTP {status}"
    if type(err).__name__ == "LocalEntryNotFoundError":   # what the client raises when it cannot connect
        return "the Hugging Face Hub could not be reached"
    return f"the download failed ({short_reason(err)})"


def _refuse_unreadable_cache(repo_id: str, err: Exception) -> None:
    """Raise UNREADABLE when the repo's cache folder is there but this user may not read it: the
    Hub client then reports the files as not cached, and downloading them again would not help."""
    repo_dir = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"
    for part in (repo_dir / "refs" / "main", repo_dir / "snapshots"):
        blocked = blocked_part(part)
        if blocked is not None:
            raise unreadable(blocked) from err


def download(repo_id: str = REPO_ID) -> CheckpointFiles:
    """Fetch everything a run needs (for `dub models download`); returns the located files."""
    files = locate(repo_id)
    log.info("AudioStory checkpoint ready in %s.", files.model_dir)
    return files


def fetch_t5(*, local_only: bool = False) -> Path:
    """The flan-t5-large encoder, for checkpoints whose .bin omits it; `local_only`: from the Hub
    cache alone (a dub never downloads)."""
    return fetch(T5_REPO_ID, allow_patterns=["*.json", "*.safetensors", "spiece.model"], local_only=local_only)


def _looks_like_repo_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "~"))


def _layout(root: Path, label: str, local_only: bool = False) -> CheckpointFiles:
    model_dir = _find_model_dir(root)
    if model_dir is None:
        detail = f"No AudioStory-3B weights (config.yaml with pytorch_model.bin) were found in {label}"
        raise WeightsNotFound(f"{detail}; {DOWNLOAD_HINT}.", reason=INCOMPLETE, detail=detail)
    near = _neighbourhood(root, model_dir)
    flux_dir = _first_with(near, FLUX_DIR_NAME, ("config.json", "model.safetensors"))
    if flux_dir is None:
        raise _flux_folder_incomplete(near, model_dir)
    qwen_dir = _qwen_dir(model_dir, near, local_only)
    t5_dir = _first_with(near, T5_DIR_NAME, ("config.json",))
    weights = next(model_dir / f for f in WEIGHT_FILES if (model_dir / f).is_file())
    for part in (weights, flux_dir / "model.safetensors"):
        _check_complete(part)
    if t5_dir is not None:
        _check_t5_dir(t5_dir, weights)
    base_dir = next((d / QWEN_DIR_NAME for d in near
                     if any((d / QWEN_DIR_NAME / f).is_file() for f in BASE_WEIGHT_FILES)), None)
    _check_base_weights(weights, base_dir, near)
    return CheckpointFiles(model_dir, weights, flux_dir, qwen_dir, t5_dir, base_dir)


def _check_base_weights(weights: Path, base_dir: Path | None, near: list[Path]) -> None:
    """A fine-tune that leaves the frozen base-LLM weights out reads them from the base model
    folder beside it: a shard missing or cut short there, or shards without the index that names
    them, is found when the checkpoint is located (`dub doctor`, `auto`), not after the whole .bin
    was converted. A checkpoint that holds the base LLM itself never reads that folder."""
    names = stored_names(weights)
    if names is None or any(is_frozen_base_key(strip_ddp_prefix(n)) for n in names):
        return
    if base_dir is None:
        loose = next((p for d in near for p in sorted((d / QWEN_DIR_NAME).glob("model-*.safetensors"))), None)
        if loose is not None:
            detail = (f"The base model folder {loose.parent} holds weight shards but no "
                      "model.safetensors.index.json naming them")
            raise WeightsNotFound(f"{detail}; put that file back or download {QWEN_REPO_ID} again.", detail=detail)
        return   # no base model at all: loading names the weights that are missing
    for path in base_llm_files(base_dir):
        _check_complete(path)


def base_llm_files(folder: Path) -> list[Path]:
    """The base LLM's safetensors files: `model.safetensors`, or the shards its
    `model.safetensors.index.json` names (transformers' layouts).

    Raises:
        WeightsNotFound: the index names a shard that is not there.
        CheckpointDamaged: the index is not valid JSON or has no weight_map.
    """
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return [folder / "model.safetensors"]
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict):
        raise CheckpointDamaged(index, "has no weight_map")
    shards = [folder / name for name in sorted(set(map(str, weight_map.values())))]
    absent = [p for p in shards if not p.is_file()]
    if absent:
        raise WeightsNotFound(f"The base model shard {absent[0]} named by {index.name} is missing; "
                              f"download {QWEN_REPO_ID} again.")
    return shards


def _check_complete(path: Path) -> None:
    """A weights file cut short is found when the checkpoint is located (`dub doctor`, `dub models
    download`, the backend's choice), not after a video has been analysed. In the Hub cache the
    snapshot's file links to a blob the Hub client would keep as it is, so the fix deletes that."""
    try:
        check_complete(path)
    except CheckpointDamaged as err:
        real = Path(os.path.realpath(path))
        if hub_cache_dir().resolve() in real.parents:
            raise CheckpointDamaged(path, err.problem, f"delete {real} (the damaged download) and run "
                                                       "`dub models download`") from err
        raise


def _check_t5_dir(t5_dir: Path, weights: Path) -> None:
    """Refuse a flan-t5-large folder without weights when the AudioStory weights lack the T5
    encoder too: loading would take the encoder from that folder (it wins over the Hub cache)
    and fail only then. As `checkpoint.load_model` decides, the T5 is outside when no key of the
    weights starts with its prefix."""
    if any((t5_dir / f).is_file() for f in WEIGHT_FILES):
        return
    names = stored_names(weights)
    if names is None or any(strip_ddp_prefix(n).startswith(T5_PREFIX) for n in names):
        return
    detail = (f"The {T5_DIR_NAME} folder {t5_dir} has no weights ({' or '.join(WEIGHT_FILES)}) "
              f"and {weights.name} does not hold the T5 encoder either")
    raise WeightsNotFound(f"{detail}; put the {T5_DIR_NAME} weights in that folder or remove it.",
                          reason=INCOMPLETE, detail=detail)


def _find_model_dir(root: Path) -> Path | None:
    candidates = [root] + [root / n for n in MODEL_DIR_NAMES] + [root / "ckpt" / n for n in MODEL_DIR_NAMES]
    if root.is_dir():
        candidates += sorted(p for p in root.iterdir() if p.is_dir())
    for d in candidates:
        if (d / "config.yaml").is_file() and any((d / f).is_file() for f in WEIGHT_FILES):
            return d
    return None


def _neighbourhood(root: Path, model_dir: Path) -> list[Path]:
    # Folders that may hold the sibling parts, closest first.
    out = []
    for d in (model_dir, root, root / "ckpt", model_dir.parent):
        if d not in out:
            out.append(d)
    return out


def _flux_folder_incomplete(near: list[Path], model_dir: Path) -> WeightsNotFound:
    """Why no usable Flux_detokenizer folder is beside the checkpoint: none is there, or the
    nearest one lacks a file (the VAE saved as a pickle rather than model.safetensors, say), which
    is named, since downloading the official checkpoint would not mend a folder of one's own."""
    folder = next((d / FLUX_DIR_NAME for d in near if (d / FLUX_DIR_NAME).is_dir()), None)
    if folder is None:
        detail = (f"The {FLUX_DIR_NAME} folder (config.json and the VAE's model.safetensors) was not "
                  f"found next to {model_dir}")
        return WeightsNotFound(f"{detail}; {DOWNLOAD_HINT}.", reason=INCOMPLETE, detail=detail)
    missing = [name for name in ("config.json", "model.safetensors") if not (folder / name).is_file()]
    pickles = sorted(p.name for p in folder.glob("*.bin"))
    detail = f"The {FLUX_DIR_NAME} folder {folder} has no {' and no '.join(missing)}"
    if "model.safetensors" in missing and pickles:
        fix = f"save the VAE weights in {pickles[0]} as model.safetensors in that folder (safetensors only)"
    else:
        fix = f"put {' and '.join(missing)} in that folder, or {DOWNLOAD_HINT}"
    return WeightsNotFound(f"{detail}; {fix}.", reason=INCOMPLETE, detail=detail)


def _first_with(dirs: list[Path], name: str, required: tuple[str, ...]) -> Path | None:
    for d in dirs:
        if all((d / name / f).is_file() for f in required):
            return d / name
    return None


def _qwen_dir(model_dir: Path, near: list[Path], local_only: bool) -> Path:
    # A tokenizer saved with the checkpoint wins over the base model's (spec §1.3).
    if (model_dir / "tokenizer_config.json").is_file():
        return model_dir
    found = _first_with(near, QWEN_DIR_NAME, ("tokenizer_config.json",))
    if found is not None:
        return found
    try:
        return fetch(QWEN_REPO_ID, allow_patterns=QWEN_TOKENIZER_PATTERNS, local_only=local_only)
    except WeightsNotFound as err:
        if err.reason != NOT_CACHED:
            raise
        # The checkpoint itself is here: name the one part that is not (`hf download` of the
        # AudioStory repo alone leaves it out), not "the weights".
        detail = (f"The {QWEN_DIR_NAME} tokenizer that AudioStory reads is neither next to {model_dir} "
                  "nor in the Hugging Face cache")
        fix = (f"run `hf download {QWEN_REPO_ID} --include '*.json' '*.txt'`, or put a {QWEN_DIR_NAME} folder "
               "with its tokenizer files next to the checkpoint")
        raise WeightsNotFound(f"{detail}; {fix}.", reason=INCOMPLETE, detail=detail) from None
