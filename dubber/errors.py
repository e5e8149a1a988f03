"""Errors a user can cause. The CLI prints `str(err)` (one sentence) and exits with code 2.

Bugs are not `DubError`s: they keep their traceback and exit 1.
"""

import errno

EXIT_USER_ERROR = 2


class DubError(Exception):
    """Base of every user-facing error; the message names the fix."""


class InputError(DubError):
    """The input video (or plan/analysis file) is missing, unreadable or unsuitable."""


class OutputError(DubError):
    """The output location cannot be written, or would overwrite something it must not."""


class BackendUnavailable(DubError):
    """The chosen render backend cannot run here (no weights, no GPU, missing package)."""


class PlanError(DubError):
    """A plan file is malformed or does not match the video."""


def is_user_error(err: BaseException) -> bool:
    """Whether `err` is one a user can fix (its message is one sentence naming the fix): the
    product's, the video reader's and the model's error families. `vision` and `audiostory_core`
    cannot import dubber, so their families are named here, where the CLI and the watch folder look."""
    from audiostory_core.errors import AudioStoryError   # light: no torch
    from vision.errors import VideoError

    return isinstance(err, (DubError, VideoError, AudioStoryError))


def unusable_path_error(err: BaseException) -> "InputError | None":
    """The user's error behind a system error that only a path given on the command line can
    cause: a name longer than the file system allows, or a NUL character in it. None otherwise."""
    if isinstance(err, OSError) and err.errno == errno.ENAMETOOLONG:
        name = str(err.filename or "")
        shown = name if len(name) <= 80 else f"{name[:40]}...{name[-30:]}"
        return InputError(f"The path {shown} is too long for the file system (255 bytes a name, 4096 a path); "
                          "give a shorter name or path.")
    if isinstance(err, ValueError) and "null byte" in str(err):
        return InputError("A path given holds a NUL character; give the file's real name.")
    return None


def one_line(err: BaseException | str) -> str:
    """An error message as one line (whitespace collapsed), ending with a full stop."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if text.endswith((".", "!", "?")) else text + "."
