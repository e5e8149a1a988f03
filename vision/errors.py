"""Errors a user can cause when handing `vision` a file. Each message is one plain sentence."""


class VideoError(Exception):
    """The input cannot be analysed as a video. `str(err)` is one sentence naming the fix."""


class VideoNotFound(VideoError):
    pass


class NotAVideo(VideoError):
    pass


class VideoUnreadable(VideoError):
    """The file is a video container but is empty, truncated or undecodable."""


class ModelUnavailable(VideoError):
    """A captioner's weights are not on this machine."""


class ModelIncomplete(ModelUnavailable):
    """A captioner's weights are on this machine but lack a part (a download cut short)."""
