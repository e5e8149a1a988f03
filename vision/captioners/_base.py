"""The `Captioner` plug-in contract (re-exported by `vision.captioners`)."""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ..types import ShotCaption, VideoAnalysis


class Captioner(ABC):
    """Writes one sound-relevant caption (with vocabulary tags) per shot of an analysed video.

    Subclasses set `NAME` and `Options` (a frozen dataclass of their settings) and implement
    `caption`. Construction must be cheap and must fail early on a missing model; weights load on
    the first `caption` call.
    """

    NAME: ClassVar[str]
    Options: ClassVar[type]
    # The short side (px) the captioner reads its keyframes at; None: the analysis default (what
    # image encoders take). Keyframes stay in memory for the whole analysis: three a shot of a
    # two-hour film are thousands of pictures, so a captioner that needs less says so.
    KEYFRAME_SHORT_SIDE: ClassVar[int | None] = None

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()
        if not isinstance(self.options, self.Options):
            raise TypeError(f"{type(self).__name__} takes {self.Options.__name__}, not {type(options).__name__}")

    @abstractmethod
    def caption(self, analysis: VideoAnalysis) -> tuple[ShotCaption, ...]:
        """One ShotCaption per shot of `analysis`, in shot order.

        `analysis.keyframes`, `shots`, `events` and `motion` are filled; `captions` is empty.
        """

    def settings(self) -> dict[str, Any]:
        """The choices that change this captioner's output, for the analysis settings and cache key."""
        return {"captioner": self.NAME, **dataclasses.asdict(self.options)}
