"""How the `dub` command shows progress: a rich display per stage on a terminal, nothing when
stderr is not a terminal, or one JSON object per event (`--json-progress`) for scripts.

Every reporter is a ProgressFn: `reporter(stage, done, total)`.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Mapping, TextIO

from ..errors import one_line


def _result_event(result: Any, reason: str) -> dict[str, Any]:
    return {"event": "done", "output": str(result.output), "outputs": dict(result.outputs),
            "backend": result.backend, "reason": reason, "cues": result.cues,
            "cues_from_cache": result.cues_from_cache, "total_samples": result.total_samples,
            "sample_rate": result.sample_rate, "integrated_lufs": _finite(result.integrated_lufs),
            "true_peak_dbtp": _finite(result.true_peak_dbtp),
            "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
            "notes": list(result.notes), "warnings": list(result.warnings)}


def _finite(value: float) -> float | None:
    import math

    return round(float(value), 2) if math.isfinite(float(value)) else None


class Reporter:
    """Quiet reporter: keeps notices for when their stage starts, prints only the result path."""

    def __init__(self) -> None:
        self._pending: dict[str, str] = {}
        self._seen: set[str] = set()

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self._seen:
            self._seen.add(stage)
            if stage in self._pending:
                self.notice(self._pending.pop(stage))
        self.update(stage, done, total)

    def notice_on_stage(self, stage: str, message: str) -> None:
        """Show `message` once `stage` starts (so a run that fails earlier prints only its error)."""
        self._pending[stage] = message

    def update(self, stage: str, done: int, total: int) -> None:
        pass

    def notice(self, message: str) -> None:
        print(f"dub: {one_line(message)}", file=sys.stderr)

    def done(self, result: Any, reason: str) -> None:
        for warning in result.warnings:
            self.notice(warning)
        self.finish(_result_event(result, reason), str(result.output))

    def finish(self, event: Mapping[str, Any], human: str) -> None:
        if human != "-":
            print(human)


class RichReporter(Reporter):
    """One progress bar per stage on stderr; notices printed above the bars."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        # Elapsed, then what is left of the stage at its pace so far (a film's analysis takes minutes).
        self._progress = Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TimeRemainingColumn(elapsed_when_finished=False),
                                  console=Console(stderr=True), transient=False)
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> "RichReporter":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self._tasks:   # starting where the stage is: its pace counts only what is done here
            self._tasks[stage] = self._progress.add_task(_label(stage, self._tasks), total=max(total, 1),
                                                         completed=done)
        self._progress.update(self._tasks[stage], completed=done, total=max(total, 1))

    def notice(self, message: str) -> None:
        # soft_wrap: a long path or command stays whole instead of being broken at the bar width.
        self._progress.console.print(f"dub: {one_line(message)}", markup=False, highlight=False, soft_wrap=True)

    def done(self, result: Any, reason: str) -> None:
        for warning in result.warnings:
            self.notice(warning)
        self._progress.console.print(
            f"dub: wrote {result.output} ({result.cues} cues, {result.backend}, "
            f"{result.integrated_lufs:.1f} LUFS)", markup=False, highlight=False, soft_wrap=True)
        # stdout carries the path for scripts; on a terminal the line above already shows it.
        if not sys.stdout.isatty():
            print(result.output)


def _label(stage: str, shown: Mapping[str, Any]) -> str:
    """A display label: a sub-stage ("analyze/decode") is indented under its stage's bar, or
    stands alone where that stage has no bar of its own (`dub analyze`)."""
    parent, _, sub = stage.partition("/")
    if not sub:
        return parent
    return f"  {sub}" if parent in shown else sub


class JsonReporter(Reporter):
    """One JSON object per line: progress, notice and done events (errors: see `dubber.cli.main`)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._t0 = time.monotonic()
        self._stage_start: dict[str, tuple[float, int]] = {}   # (time, done) of a stage's first event

    def _emit(self, event: Mapping[str, Any]) -> None:
        self._stream.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._stream.flush()

    def update(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        started, done_at_start = self._stage_start.setdefault(stage, (now, done))
        # What is left of the stage at its pace since its first event, over what was done since:
        # what a stage already had then (a batch's jobs done by an earlier run) took no time here.
        # None until the stage has made progress over a measured interval.
        measured = done - done_at_start
        remaining = (now - started) * (total - done) / measured if 0 < measured and done <= total else None
        self._emit({"event": "progress", "stage": stage, "done": done, "total": total,
                    "message": f"{stage} {done}/{total}", "elapsed_s": round(now - self._t0, 3),
                    "remaining_s": None if remaining is None else round(remaining, 1)})

    def notice(self, message: str) -> None:
        self._emit({"event": "notice", "message": message})

    def finish(self, event: Mapping[str, Any], human: str) -> None:
        self._emit(event)


def make_reporter(json_progress: bool, stdout_free: bool = True) -> Reporter:
    """The reporter for this invocation. JSON goes to stdout unless stdout carries a document."""
    if json_progress:
        return JsonReporter(sys.stdout if stdout_free else sys.stderr)
    if sys.stderr.isatty():
        return RichReporter()
    return Reporter()
