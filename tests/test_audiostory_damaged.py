"""A damaged, cut-short or unreadable checkpoint is refused in one sentence that names the file.

The product's CLI prints an AudioStoryError as one line and exits 2, and anything else as a
traceback, so every case asserts the error's type, that it names the file or folder, and that it
reads as one short sentence without torch's advice. Checkpoints come from
`audiostory_core.testing` (random tiny weights, the official layout); nothing is downloaded.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from audiostory_core import hub  # noqa: E402
from audiostory_core.errors import (INCOMPLETE, UNREADABLE, AudioStoryError, CheckpointDamaged,  # noqa: E402
                                    CheckpointMismatch, WeightsNotFound)
from audiostory_core.pipeline import AudioStoryPipeline  # noqa: E402
from audiostory_core.testing import write_tiny_checkpoint  # noqa: E402

MAX_MESSAGE_CHARS = 300
TORCH_ADVICE = ("weights_only", "False will likely succeed")
T5_PREFIX = "tangoflux.text_encoder."
QWEN = "Qwen2.5-3B-Instruct"
WEIGHTS = "audiostory-3B/pytorch_model.bin"
SHARD = f"{QWEN}/model-00002-of-00002.safetensors"


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("written")
    return {"plain": write_tiny_checkpoint(root / "plain"),
            "sharded": write_tiny_checkpoint(root / "sharded", base_llm="sharded")}


@pytest.fixture
def scratch(tmp_path_factory) -> Path:
    # A short folder name: the messages name the files, and their length is part of what is checked.
    return tmp_path_factory.mktemp("c")


@pytest.fixture
def plain(written, scratch) -> Path:
    return Path(shutil.copytree(written["plain"], scratch / "ckpt"))


def load(root: Path) -> AudioStoryPipeline:
    return AudioStoryPipeline.from_pretrained(str(root), device="cpu", cache_dir=str(root.parent / "cache"))


def refusal(call) -> AudioStoryError:
    with pytest.raises(AudioStoryError) as err:
        call()
    return err.value


def assert_one_sentence(message: str, *named: object) -> None:
    assert "\n" not in message and len(message) <= MAX_MESSAGE_CHARS, message
    assert message.endswith(".") and not any(advice in message for advice in TORCH_ADVICE), message
    for part in named:
        assert str(part) in message, message


def cut(path: Path, keep_bytes: int) -> None:
    path.write_bytes(path.read_bytes()[:keep_bytes])


def edit_weights(root: Path, edit) -> Path:
    path = root / WEIGHTS
    state = torch.load(path, weights_only=True)
    torch.save(edit(state), path)
    return path


# --------------------------------------------------------------------------------------------
# Cut-short and corrupt files
# --------------------------------------------------------------------------------------------
def test_a_vae_file_cut_in_half_is_named_as_damaged(plain):
    vae = plain / "Flux_detokenizer" / "model.safetensors"
    cut(vae, vae.stat().st_size // 2)
    err = refusal(lambda: load(plain))
    assert isinstance(err, CheckpointDamaged) and err.path == str(vae)
    assert_one_sentence(str(err), f"The file {vae} is damaged or incomplete (", "; download it again.")


def test_a_cut_short_pickle_is_named_as_damaged_and_nothing_is_converted(plain):
    weights = plain / WEIGHTS
    cut(weights, weights.stat().st_size // 2)
    err = refusal(lambda: load(plain))
    assert isinstance(err, CheckpointDamaged)
    assert_one_sentence(str(err), f"The file {weights} is damaged or incomplete (", "; download it again.")
    assert not list((plain.parent / "cache").rglob("*.safetensors"))


def test_a_base_model_shard_short_by_100_bytes_is_named_as_damaged(written, scratch):
    root = Path(shutil.copytree(written["sharded"], scratch / "ckpt"))
    shard = root / SHARD
    cut(shard, shard.stat().st_size - 100)
    err = refusal(lambda: load(root))
    assert isinstance(err, CheckpointDamaged)
    assert_one_sentence(str(err), f"The file {shard} is damaged or incomplete (", "; download it again.")


@pytest.mark.parametrize("part, short_by", [(WEIGHTS, "half"), ("Flux_detokenizer/model.safetensors", 100)])
def test_a_weights_file_cut_short_is_found_where_the_checkpoint_is_located(plain, tmp_path, part, short_by):
    """`dub doctor`, `dub models download` and the backend's choice locate the checkpoint: a file
    cut short is named there, before any video is analysed, and doctor calls it not usable."""
    from dub_cli import dub_env, run_dub

    path = plain / part
    cut(path, path.stat().st_size // 2 if short_by == "half" else path.stat().st_size - short_by)
    err = refusal(lambda: hub.locate(plain))
    assert isinstance(err, CheckpointDamaged) and err.path == str(path)
    assert_one_sentence(str(err), f"The file {path} is damaged or incomplete (", "; download it again.")
    doctor = run_dub(["doctor", "--model", plain], dub_env(tmp_path))
    assert f"not usable: the file {path} is damaged or incomplete" in doctor.stdout, doctor.stdout


def test_a_download_cut_short_in_the_hub_cache_names_the_blob_to_delete(written, scratch, monkeypatch):
    """The Hub client keeps a blob it already has, so "download it again" would go round in a
    circle: the sentence names the blob the snapshot links to."""
    snapshot = _hub_cache_holding(written["plain"], scratch / "hub")
    weights = snapshot / WEIGHTS
    blob = scratch / "hub" / f"models--{hub.REPO_ID.replace('/', '--')}" / "blobs" / "0123abcd"
    blob.parent.mkdir()
    shutil.move(weights, blob)
    weights.symlink_to(blob)
    cut(blob, blob.stat().st_size // 2)
    monkeypatch.setenv("HF_HUB_CACHE", str(scratch / "hub"))
    err = refusal(lambda: hub.locate(None, local_only=True))
    assert isinstance(err, CheckpointDamaged) and "\n" not in str(err)   # long, with two cache paths in it
    assert str(err).startswith(f"The file {weights} is damaged or incomplete (")
    assert str(err).endswith(f"; delete {blob.resolve()} (the damaged download) and run `dub models download`.")


@pytest.mark.parametrize("damage", ["shard cut short", "shard missing", "index missing", "index not json"])
def test_a_fine_tunes_base_model_folder_is_checked_where_the_checkpoint_is_located(written, scratch, damage):
    """A fine-tune reads its frozen base weights from the Qwen folder beside it: a shard cut short
    or missing, or its index missing or broken, is found when the checkpoint is located (`dub
    doctor`, `auto`), before its .bin is converted; a checkpoint that holds the base LLM itself
    passes with the same damage beside it, since it never reads that folder."""
    root = Path(shutil.copytree(written["sharded"], scratch / "ckpt"))
    shard, index = root / SHARD, root / QWEN / "model.safetensors.index.json"
    {"shard cut short": lambda: cut(shard, shard.stat().st_size - 100), "shard missing": shard.unlink,
     "index missing": index.unlink, "index not json": lambda: index.write_text('{"weight_map": ')}[damage]()
    err = refusal(lambda: hub.locate(root))
    named = {"shard cut short": str(shard), "shard missing": str(shard), "index missing": str(index.parent),
             "index not json": str(index)}[damage]
    assert named in str(err) and len(str(err)) <= MAX_MESSAGE_CHARS, str(err)
    assert not (root.parent / "cache").exists()   # nothing converted
    full = Path(shutil.copytree(written["plain"], scratch / "full"))
    shutil.copytree(root / QWEN, full / QWEN, dirs_exist_ok=True)
    assert hub.locate(full).model_dir == full / "audiostory-3B"


def test_a_tokenizer_file_that_is_not_json_is_named(plain):
    tokenizer = plain / QWEN / "tokenizer.json"
    tokenizer.write_text("{oops")
    err = refusal(lambda: load(plain))
    assert isinstance(err, CheckpointDamaged)
    assert str(err) == f"The file {tokenizer} is not valid JSON (line 1); download it again."


# --------------------------------------------------------------------------------------------
# Files and folders this user may not read
# --------------------------------------------------------------------------------------------
SETPRIV = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search",
           "--inh-caps", "-dac_override,-dac_read_search")
CHILD = """
import json, os
from audiostory_core import hub
from audiostory_core.errors import AudioStoryError
from audiostory_core.pipeline import AudioStoryPipeline

def attempt(call):
    try:
        call()
    except AudioStoryError as err:
        return [type(err).__name__, getattr(err, "reason", None), str(err)]
    except Exception as err:
        return ["traceback", type(err).__name__, str(err)[:500]]
    return ["loaded", None, ""]

def may_open(path):
    try:
        os.listdir(path) if os.path.isdir(path) else open(path, "rb").close()
        return True
    except OSError:
        return False

results = {"permissions apply": not may_open(PROBE)}
"""


@pytest.fixture
def lock():
    """chmod 000, undone after the test so the folders can be removed."""
    locked: list[tuple[Path, int]] = []

    def lock_(path: Path) -> Path:
        locked.append((path, path.stat().st_mode & 0o777))
        os.chmod(path, 0)
        return path

    yield lock_
    for path, mode in reversed(locked):
        os.chmod(path, mode)


def attempts_without_privileges(cases: dict[str, tuple[str, dict[str, str]]], probe: Path) -> dict[str, list]:
    """Run each Python expression (with its environment variables set) in one fresh interpreter
    that file permissions apply to, root included (it drops the capabilities that bypass them);
    returns [error type, reason, message] per case. Skips where permissions cannot apply."""
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None or subprocess.run([*SETPRIV, "true"], capture_output=True).returncode:
            pytest.skip("file permissions do not apply to root here (no usable setpriv)")
        prefix = SETPRIV
    lines = [CHILD.replace("PROBE", repr(str(probe)))]
    for name, (expression, env) in cases.items():
        lines.append(f"os.environ.update({env!r}); results[{name!r}] = attempt(lambda: {expression})")
    lines.append("print(json.dumps(results))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([*prefix, sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    if not results.pop("permissions apply"):
        pytest.skip("file permissions are not enforced for this user")
    return results


def _load_expression(root: Path) -> str:
    return f"AudioStoryPipeline.from_pretrained({str(root)!r}, device='cpu', cache_dir={str(root.parent / 'cache')!r})"


def test_a_weight_files_this_user_may_not_read_are_named(written, scratch, lock):
    locked = {}
    for name, source, relative in (("vae", "plain", "Flux_detokenizer/model.safetensors"), ("bin", "plain", WEIGHTS),
                                   ("shard", "sharded", SHARD), ("tokenizer", "plain", f"{QWEN}/tokenizer.json")):
        root = Path(shutil.copytree(written[source], scratch / name / "ckpt"))
        locked[name] = (root, lock(root / relative))
    results = attempts_without_privileges({name: (_load_expression(root), {}) for name, (root, _) in locked.items()},
                                          probe=locked["vae"][1])
    for name, (_, path) in locked.items():
        kind, reason, message = results[name]
        assert (kind, reason) == ("WeightsNotFound", UNREADABLE), (name, results[name])
        assert_one_sentence(message, f"The file {path} cannot be read (permission denied); make it readable")


def _hub_cache_holding(checkpoint_dir: Path, cache: Path) -> Path:
    """A Hugging Face cache whose official-repo snapshot is `checkpoint_dir`; returns the snapshot."""
    repo = cache / f"models--{hub.REPO_ID.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return Path(shutil.copytree(checkpoint_dir, repo / "snapshots" / commit))


def test_b_folders_this_user_may_not_read_are_named(written, scratch, lock, monkeypatch):
    roots = {name: Path(shutil.copytree(written["plain"], scratch / name)) for name in ("model", "qwen", "root")}
    snapshot = _hub_cache_holding(written["plain"], scratch / "hub")
    other_snapshot = _hub_cache_holding(written["plain"], scratch / "other-hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(scratch / "hub"))
    assert hub.locate(None, local_only=True).model_dir == snapshot / "audiostory-3B"   # readable, it is found
    blocked = {"model": lock(roots["model"] / "audiostory-3B"), "qwen": lock(roots["qwen"] / QWEN),
               "root": lock(roots["root"]), "snapshot": lock(snapshot / "audiostory-3B"),
               "cache repo": lock(other_snapshot.parents[1])}
    cases = {name: (f"hub.locate({str(roots[name])!r}, local_only=True)", {}) for name in roots}
    cases["snapshot"] = ("hub.locate(None, local_only=True)", {"HF_HUB_CACHE": str(scratch / "hub")})
    cases["cache repo"] = ("hub.locate(None, local_only=True)", {"HF_HUB_CACHE": str(scratch / "other-hub")})
    results = attempts_without_privileges(cases, probe=blocked["model"])
    for name, folder in blocked.items():
        kind, reason, message = results[name]
        assert (kind, reason) == ("WeightsNotFound", UNREADABLE), (name, results[name])
        assert_one_sentence(message, f"The folder {folder} cannot be read (permission denied); make it readable")


# --------------------------------------------------------------------------------------------
# Configs the loader falls back from
# --------------------------------------------------------------------------------------------
def test_c_missing_base_config_whose_released_ids_do_not_fit_the_vocabulary_is_named(plain):
    config = plain / QWEN / "config.json"
    config.unlink()
    err = refusal(lambda: load(plain))
    assert isinstance(err, WeightsNotFound) and err.reason == INCOMPLETE
    assert_one_sentence(str(err), f"The file {config} is missing", "286-token vocabulary", "put the config.json")


def test_c_base_config_with_a_pad_id_outside_the_vocabulary_is_refused(plain):
    config = plain / QWEN / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "pad_token_id": 151_643}))
    err = refusal(lambda: load(plain))
    assert isinstance(err, CheckpointMismatch)
    assert_one_sentence(str(err), config, "pad_token_id 151643 is outside the weights' 286-token vocabulary")


# --------------------------------------------------------------------------------------------
# Refusals that say what is wrong
# --------------------------------------------------------------------------------------------
class RunsCode:
    """Unpickled unsafely, this would call print."""

    def __reduce__(self):
        return (print, ("this ran",))


def test_d_pickle_holding_code_is_refused_without_torch_advice(plain, capfd):
    weights = edit_weights(plain, lambda state: {**state, "extra": RunsCode()})
    err = refusal(lambda: load(plain))
    assert isinstance(err, CheckpointDamaged)
    assert str(err) == (f"The file {weights} is not a plain weights file (it holds Python objects), so it was "
                        "not loaded; download it again from a source you trust.")
    assert_one_sentence(str(err))
    assert "this ran" not in capfd.readouterr().out


@pytest.mark.parametrize("source, relative, text, line, language", [
    ("plain", "audiostory-3B/config.yaml", "llm_model:\n  vocab_size: 286\n - oops\n", 3, "YAML"),
    ("plain", "Flux_detokenizer/config.json", '{\n  "in_channels": 8,\n  oops\n}\n', 3, "JSON"),
    ("plain", "Flux_detokenizer/vae/config.json", "{", 1, "JSON"),
    ("plain", f"{QWEN}/generation_config.json", '{"eos_token_id": 258,\n\n,}', 3, "JSON"),
    ("sharded", f"{QWEN}/model.safetensors.index.json", '{"weight_map":', 1, "JSON"),
])
def test_d_config_that_does_not_parse_is_named_with_its_line(written, scratch, source, relative, text, line,
                                                             language):
    root = Path(shutil.copytree(written[source], scratch / "ckpt"))
    (root / relative).write_text(text)
    err = refusal(lambda: load(root))
    assert isinstance(err, CheckpointDamaged)
    assert str(err) == f"The file {root / relative} is not valid {language} (line {line}); download it again."
    # found before the weights were converted (minutes and gigabytes for the released pickle)
    assert not list((root.parent / "cache").rglob("*.safetensors"))


def test_d_many_misshaped_keys_give_the_first_and_a_count(plain):
    changed = ("multihead_attention.", "seedx.audio_projector.", "tangoflux.fc.", "tangoflux.transformer.proj_out.")
    edit_weights(plain, lambda state: {k: torch.zeros(3, 1, 1) if k.startswith(changed) else v
                                       for k, v in state.items()})
    err = refusal(lambda: load(plain))
    assert isinstance(err, CheckpointMismatch)
    key, got, want = err.mismatched[0]
    assert len(err.mismatched) == 12 and all(k.startswith(changed) for k, _, _ in err.mismatched)
    assert f": {key} is [3, 1, 1] where {list(want)} is expected, and 11 more keys differ;" in str(err)
    assert str(err).count(key) == 1
    assert_one_sentence(str(err), plain / WEIGHTS)


def test_d_missing_tokenizer_file_is_named(plain):
    tokenizer = plain / QWEN / "tokenizer.json"
    tokenizer.unlink()
    err = refusal(lambda: load(plain))
    assert isinstance(err, WeightsNotFound) and err.reason == INCOMPLETE
    assert_one_sentence(str(err), f"The tokenizer file {tokenizer} is missing")


# --------------------------------------------------------------------------------------------
# The up-front check of the flan-t5-large folder
# --------------------------------------------------------------------------------------------
def test_e_t5_folder_without_weights_beside_weights_without_t5_is_refused_up_front(plain):
    edit_weights(plain, lambda state: {k: v for k, v in state.items() if not k.startswith(T5_PREFIX)})
    t5_dir = plain / "flan-t5-large"
    with pytest.raises(WeightsNotFound) as err:
        hub.locate(plain, local_only=True)
    fix = "put the flan-t5-large weights in that folder or remove it"
    assert err.value.reason == INCOMPLETE and err.value.fix == fix
    assert_one_sentence(str(err.value), f"The flan-t5-large folder {t5_dir} has no weights", fix)
    shutil.rmtree(t5_dir)   # without the folder the encoder comes from the Hub cache, at load time
    assert hub.locate(plain, local_only=True).t5_dir is None


def test_e_t5_in_the_weights_or_in_its_folder_passes_the_up_front_check(written, scratch):
    # The tiny writer's default: the T5 inside the .bin, flan-t5-large/ holding only config.json.
    assert hub.locate(written["plain"], local_only=True).t5_dir == written["plain"] / "flan-t5-large"
    for name, flags in {"beside": {"drop_t5": True}, "prefixed": {"ddp_prefix": True}}.items():
        root = write_tiny_checkpoint(scratch / name, **flags)
        assert hub.locate(root, local_only=True).t5_dir == root / "flan-t5-large", name


def test_a_vae_saved_as_a_pickle_is_named_not_called_a_missing_folder(plain):
    # A checkpoint of one's own whose VAE was saved with torch.save: the folder is there, its
    # safetensors file is not, and fetching the official checkpoint would not mend it.
    flux = plain / "Flux_detokenizer"
    (flux / "model.safetensors").rename(flux / "diffusion_pytorch_model.bin")
    with pytest.raises(WeightsNotFound) as err:
        hub.locate(plain, local_only=True)
    assert err.value.reason == INCOMPLETE
    assert err.value.fix == "save the VAE weights in diffusion_pytorch_model.bin as model.safetensors in that folder " \
                            "(safetensors only)"
    assert_one_sentence(str(err.value), f"The Flux_detokenizer folder {flux} has no model.safetensors")
    (flux / "diffusion_pytorch_model.bin").unlink()
    (flux / "config.json").unlink()
    with pytest.raises(WeightsNotFound) as err:
        hub.locate(plain, local_only=True)
    assert_one_sentence(str(err.value), f"The Flux_detokenizer folder {flux} has no config.json and no "
                                        "model.safetensors", "put config.json and model.safetensors in that folder")
