"""Errors a user can cause when loading or running AudioStory.

`str(err)` is one plain sentence that names the fix. `audiostory_core` may not import `dubber`,
so the product's CLI maps these onto its own error classes. Bugs are not `AudioStoryError`s.
"""
from __future__ import annotations

from typing import Sequence


class AudioStoryError(Exception):
    """Base of every user-facing AudioStory error."""


# Why weights were not found, as codes a caller branches on (WeightsNotFound.reason).
NOT_CACHED = "weights_not_cached"            # a Hub repo id with nothing in the local cache
FOLDER_MISSING = "weights_folder_missing"    # a folder path that does not exist
INCOMPLETE = "weights_incomplete"            # a folder (or snapshot) lacking a required part
DOWNLOAD_FAILED = "weights_download_failed"  # the Hub could not be reached or has no such repo
UNREADABLE = "weights_unreadable"            # a file or folder of it that this user may not read


class WeightsNotFound(AudioStoryError):
    """The checkpoint (or one of its parts) is neither on disk nor downloadable here, or this
    user may not read it (UNREADABLE).

    `reason` is one of the codes above; `detail` is the sentence without its fix, for callers
    that word the fix themselves.
    """

    def __init__(self, message: str, *, reason: str = INCOMPLETE, detail: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.detail = detail if detail is not None else message

    @property
    def fix(self) -> str:
        """What the message says to do (the part after `detail`; "" when it has no separate fix),
        for callers that show the cause and the fix apart."""
        message = str(self)
        return message[len(self.detail):].lstrip("; ").rstrip(".") if message.startswith(self.detail) else ""


class DeviceUnavailable(AudioStoryError):
    """A device or precision was requested that this machine cannot provide."""


class InvalidRequest(AudioStoryError, ValueError):
    """Arguments of a generate call are out of range or inconsistent."""


class GenerationFailed(AudioStoryError):
    """The language model's output did not contain a usable clip plan."""


class CheckpointDamaged(AudioStoryError):
    """A checkpoint file is there but cannot be used as it is: cut short or corrupt, not valid
    JSON or YAML, or a pickle that holds Python objects instead of plain tensors.

    `path` is the file, `problem` what the sentence says of it, `fix` what to do about it.
    """

    def __init__(self, path: object, problem: str, fix: str = "download it again"):
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"The file {path} {problem}; {fix}.")


class CheckpointMismatch(AudioStoryError):
    """A state dict does not match the model it is loaded into.

    The message names the first problem and counts the rest; the full lists are kept on the
    instance for logs and tests.
    """

    def __init__(
        self,
        source: str,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        mismatched: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
        hint: str = "",
        problem: str = "",
        noun: str = "key",
    ):
        self.source = source
        self.missing = tuple(sorted(missing))
        self.unexpected = tuple(sorted(unexpected))
        # (key, shape found in the file, shape the model expects)
        self.mismatched = tuple(sorted(mismatched))
        self.hint = hint or "re-download it or point to the official TencentARC/AudioStory-3B files"
        self.noun = noun   # what the listed names are ("key", "token"), for the count
        self._problem = problem
        super().__init__(self._sentence())

    @property
    def first_problem(self) -> str:
        """The first missing, then mis-shaped, then unexpected key, as a clause."""
        if self._problem:
            return self._problem
        if self.missing:
            return f"{self.missing[0]} is missing"
        if self.mismatched:
            key, got, want = self.mismatched[0]
            return f"{key} is {list(got)} where {list(want)} is expected"
        return f"{self.unexpected[0]} is not part of the model"

    def _sentence(self) -> str:
        # A full-size mismatch lists thousands of keys: the sentence names one and counts the rest.
        more = len(self.missing) + len(self.unexpected) + len(self.mismatched) - 1
        rest = ""
        if more == 1:
            rest = f", and 1 more {self.noun} differs"
        elif more > 1:
            rest = f", and {more} more {self.noun}s differ"
        return (f"The checkpoint {self.source} does not match the AudioStory model: "
                f"{self.first_problem}{rest}; {self.hint}.")


class CacheUnwritable(AudioStoryError):
    """The folder that holds the safetensors copies of pickled weights cannot be written."""

    def __init__(self, folder: object, err: OSError):
        import errno

        if isinstance(err, PermissionError):
            why = "permission denied"
        elif err.errno in (errno.ENOSPC, errno.EDQUOT):
            why = "its disk is full"
        else:
            why = (err.strerror or type(err).__name__).lower()
        self.folder = str(folder)
        super().__init__(f"The folder {folder} for converted AudioStory weights cannot be written ({why}); set "
                         "AUDIOSTORY_CACHE to a folder this user can write, with room for the weights.")
