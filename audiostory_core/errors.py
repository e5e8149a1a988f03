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


class WeightsNotFound(AudioStoryError):
    """The checkpoint (or one of its parts) is neither on disk nor downloadable here.

    `reason` is one of the codes above; `detail` is the sentence without its fix, for callers
    that word the fix themselves.
    """

    def __init__(self, message: str, *, reason: str = INCOMPLETE, detail: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.detail = detail if detail is not None else message


class DeviceUnavailable(AudioStoryError):
    """A device or precision was requested that this machine cannot provide."""


class InvalidRequest(AudioStoryError, ValueError):
    """Arguments of a generate call are out of range or inconsistent."""


class GenerationFailed(AudioStoryError):
    """The language model's output did not contain a usable clip plan."""


class CheckpointMismatch(AudioStoryError):
    """A state dict does not match the model it is loaded into.

    The message is one sentence; the full lists are kept on the instance for logs and tests.
    """

    def __init__(
        self,
        source: str,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        mismatched: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
        mismatch_label: str = "key(s) with the wrong shape",
        hint: str = "",
        problem: str = "",
    ):
        self.source = source
        self.missing = tuple(sorted(missing))
        self.unexpected = tuple(sorted(unexpected))
        # (key, shape found in the file, shape the model expects)
        self.mismatched = tuple(sorted(mismatched))
        self.mismatch_label = mismatch_label
        self.hint = hint or "re-download it or point to the official TencentARC/AudioStory-3B files"
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
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s) ({_preview(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s) ({_preview(self.unexpected)})")
        if self.mismatched:
            shown = [f"{k} {list(got)} != expected {list(want)}" for k, got, want in self.mismatched]
            parts.append(f"{len(self.mismatched)} {self.mismatch_label} ({_preview(shown)})")
        listed = f" ({'; '.join(parts)})" if parts else ""
        return (f"The checkpoint {self.source} does not match the AudioStory model: "
                f"{self.first_problem}{listed}; {self.hint}.")


def _preview(items: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    rest = len(items) - limit
    return shown + (f", and {rest} more" if rest > 0 else "")
