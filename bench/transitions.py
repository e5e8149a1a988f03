"""Benchmark of gradual transitions (dissolves, fades, irises, wipes) and hard cuts on labelled clips.

    python bench/transitions.py                            # the clips in ../extra_clips (bench/heldout/build.py)
    python bench/transitions.py --clips DIR --json out.json

The folder holds short clips and `labels.json` in the format of the realclips set (see its
README), where each clip may also list `transitions`: `kind` (dissolve, fade_out, fade_in, iris,
wipe), `start_frame` (the first frame that differs from the old shot) and `end_frame` (the first
frame wholly of the new shot). In one run, per clip and in total:

- hard cuts: precision, recall and F1 at the labels' tolerance (0.1 s), scored as
  bench/realclips.py scores them, for this project and for PySceneDetect's ContentDetector and
  AdaptiveDetector with their default settings. A detected cut inside a labelled transition
  (give or take the tolerance) counts neither way here: it is scored as a transition below;
- transitions found by this project: a detected transition matches a labelled one of any kind
  when their frame spans overlap (one-to-one, largest overlap first); recall, precision, and
  kind agreement over the matched pairs. Unmatched detections are listed with what they overlap
  (a labelled hard cut, an ambiguous span), since that says why they were read as a transition;
- cut at the middle: the cue boundary a transition gets (the shot start inside the detected or
  the labelled span nearest the labelled middle) against the labelled span's middle frame,
  start + (end - start) // 2, in frames; a found transition with no cut inside is counted apart;
- PySceneDetect: a labelled transition is found when one of the detector's cuts lies anywhere
  inside it (start_frame .. end_frame); its error is that cut against the labelled middle.
  PySceneDetect reports no transitions, so it has no transition precision.

`--synthetic DIR` first writes the synthetic clips of samples/phenomena.py that hold a transition
(and a few that hold none: a hard cut, a flash cut, an occlusion) into DIR with their exact truth
as labels.json, then scores that folder: a check of the scoring with known answers.

This is a benchmark, not a test: it decodes every clip three times (ours and two PySceneDetect
detectors); the 110 s of four 640 px clips take about 10 s on two shared cores.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_CLIPS = REPO_ROOT.parent / "extra_clips"  # beside the checkout: footage stays out of the repository
DETECTORS = ("dubber", "content", "adaptive")
SYNTHETIC = ("dissolve", "fade_out", "fade_in", "iris_out", "iris_in", "wipe", "same_palette_cut", "flash_cut",
             "occlusion")

sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH_DIR))
from realclips import Counts, _fmt, _jsonable, read_labels, score  # noqa: E402  (the hard-cut rules are shared)


@dataclass(frozen=True)
class Span:
    """Frames [start, end) of a transition; `end` is the first frame wholly of the new shot."""

    kind: str
    start: int
    end: int

    @property
    def middle(self) -> int:
        return self.start + (self.end - self.start) // 2

    def overlap(self, other: "Span") -> int:
        return max(0, min(self.end, other.end) - max(self.start, other.start))

    def holds(self, frame: int) -> bool:
        return self.start <= frame <= self.end


@dataclass
class TransitionScore:
    """Detected transitions against labelled ones, for one detector."""

    labelled: int = 0
    detected: int | None = 0  # None: the detector reports no transitions (PySceneDetect)
    found: int = 0
    same_kind: int = 0
    middle_errors: list[int] = field(default_factory=list)  # detected cut minus labelled middle, frames
    no_cut: int = 0  # found transitions with no cut inside them (no cue boundary there at all)
    missed: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)

    def add(self, other: "TransitionScore") -> None:
        self.labelled += other.labelled
        self.detected = None if self.detected is None or other.detected is None else self.detected + other.detected
        self.found += other.found
        self.same_kind += other.same_kind
        self.middle_errors += other.middle_errors
        self.no_cut += other.no_cut
        self.missed += other.missed
        self.false += other.false

    @property
    def recall(self) -> float | None:
        return self.found / self.labelled if self.labelled else None

    @property
    def precision(self) -> float | None:
        return self.found / self.detected if self.detected else None

    @property
    def kind_agreement(self) -> float | None:
        return self.same_kind / self.found if self.found and self.detected is not None else None

    @property
    def mean_abs_error(self) -> float | None:
        return sum(abs(e) for e in self.middle_errors) / len(self.middle_errors) if self.middle_errors else None

    @property
    def max_abs_error(self) -> int | None:
        return max(abs(e) for e in self.middle_errors) if self.middle_errors else None

    def summary(self) -> dict:
        return {**asdict(self), "recall": self.recall, "precision": self.precision,
                "kind_agreement": self.kind_agreement, "mean_abs_middle_error_frames": self.mean_abs_error,
                "max_abs_middle_error_frames": self.max_abs_error}


def labelled_spans(labels: dict) -> list[Span]:
    return [Span(t["kind"], int(t["start_frame"]), int(t["end_frame"])) for t in labels.get("transitions", [])]


def score_ours(detected: list[Span], cuts: list[int], labelled: list[Span], hard_cuts: list[int],
               ambiguous: list[tuple[int, int]]) -> TransitionScore:
    """Match detected spans to labelled ones by overlap, one-to-one, largest overlap first."""
    result = TransitionScore(labelled=len(labelled), detected=len(detected))
    pairs = sorted(((d.overlap(t), i, j) for i, d in enumerate(detected) for j, t in enumerate(labelled)
                    if d.overlap(t) > 0), reverse=True)
    used_d: dict[int, int] = {}
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i not in used_d and j not in used_t:
            used_d[i] = j
            used_t.add(j)
    for i, j in sorted(used_d.items()):
        d, t = detected[i], labelled[j]
        result.found += 1
        result.same_kind += d.kind == t.kind
        # The cue boundary the plan will use: the shot start inside either span.
        inside = [c for c in cuts if d.holds(c) or t.holds(c)]
        if inside:
            result.middle_errors.append(min(inside, key=lambda c: abs(c - t.middle)) - t.middle)
        else:
            result.no_cut += 1
    for j, t in enumerate(labelled):
        if j not in used_t:
            result.missed.append(f"{t.kind} [{t.start}, {t.end})")
    for i, d in enumerate(detected):
        if i not in used_d:
            notes = [f"hard cut {c}" for c in hard_cuts if d.holds(c)]
            notes += [f"ambiguous [{a}, {b}]" for a, b in ambiguous if a <= d.end and d.start <= b]
            result.false.append(f"{d.kind} [{d.start}, {d.end})" + (f" over {', '.join(notes)}" if notes else ""))
    return result


def score_cuts_as_transitions(cuts: list[int], labelled: list[Span]) -> TransitionScore:
    """A detector without transitions finds one when any of its cuts lies inside it."""
    result = TransitionScore(labelled=len(labelled), detected=None)
    for t in labelled:
        inside = [c for c in cuts if t.holds(c)]
        if inside:
            result.found += 1
            result.middle_errors.append(min(inside, key=lambda c: abs(c - t.middle)) - t.middle)
        else:
            result.missed.append(f"{t.kind} [{t.start}, {t.end})")
    return result


# ----------------------------------------------------------------------------- detectors


def ours(path: Path) -> tuple[list[int], list[Span]]:
    """Shot starts (frames) and transitions of `vision.analyze` with no captioner."""
    import vision

    analysis = vision.analyze(path, captioner=None, keyframes_per_shot=0)
    return ([s.start_frame for s in analysis.shots[1:]],
            [Span(t.kind, t.start_frame, t.end_frame) for t in analysis.transitions])


def pyscenedetect_cuts(path: Path, name: str) -> list[int]:
    """Cut frames of a PySceneDetect detector with its default settings."""
    import scenedetect
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    detector = {"content": ContentDetector, "adaptive": AdaptiveDetector}[name]()
    return [start.frame_num for start, _ in scenedetect.detect(str(path), detector)[1:]]


# ----------------------------------------------------------------------------- one clip


def evaluate_clip(folder: Path, name: str, labels: dict, tolerance_s: float) -> dict:
    path = folder / name
    fps = Fraction(labels["fps"])
    seconds = lambda frame: float(Fraction(frame) / fps)  # noqa: E731
    frame_of = lambda t: int(round(t * fps))  # noqa: E731
    spans = labelled_spans(labels)
    ambiguous_s = [(a["t"], a["t_end"]) for a in labels.get("ambiguous", [])]
    # Hard cuts: labelled transitions are as neutral as ambiguous spans (scored apart, below).
    neutral_s = ambiguous_s + [(seconds(t.start), seconds(t.end)) for t in spans]
    hard_cut_frames = [frame_of(t) for t in labels["cuts"]]
    ambiguous = [(frame_of(a), frame_of(b)) for a, b in ambiguous_s]
    our_cuts, our_spans = ours(path)
    cuts = {"dubber": our_cuts, **{d: pyscenedetect_cuts(path, d) for d in ("content", "adaptive")}}
    return {
        "clip": name,
        "duration_s": seconds(int(labels["frames"])),
        "cuts": {d: score([seconds(c) for c in frames], labels["cuts"], neutral_s, tolerance_s)
                 for d, frames in cuts.items()},
        "transitions": {
            "dubber": score_ours(our_spans, our_cuts, spans, hard_cut_frames, ambiguous),
            **{d: score_cuts_as_transitions(cuts[d], spans) for d in ("content", "adaptive")},
        },
        "cut_frames": cuts,
        "our_transitions": [asdict(s) for s in our_spans],
    }


def write_synthetic(folder: Path) -> None:
    """The phenomena clips with a transition, and three without one, plus their labels.json."""
    from samples import phenomena

    folder.mkdir(parents=True, exist_ok=True)
    clips = {}
    for name in SYNTHETIC:
        truth = phenomena.write(name, folder / f"{name}.mp4")
        fps = Fraction(truth["fps"])
        # Truth lists a transition's middle among its cut frames; only hard cuts go in "cuts" here.
        hard = [] if truth["transitions"] else truth["cut_frames"]
        clips[f"{name}.mp4"] = {"fps": truth["fps"], "frames": truth["frame_count"],
                                "cuts": [round(float(Fraction(f) / fps), 3) for f in hard],
                                "ambiguous": [], "transitions": truth["transitions"]}
    labels = {"version": 1, "tolerance_s": 0.1, "clips": clips}
    tmp = folder / ".labels.json.tmp"
    tmp.write_text(json.dumps(labels, indent=1) + "\n")
    tmp.replace(folder / "labels.json")


# ----------------------------------------------------------------------------- report


def totals(results: list[dict]) -> dict:
    cuts = {d: Counts() for d in DETECTORS}
    transitions = {d: TransitionScore(detected=None if d != "dubber" else 0) for d in DETECTORS}
    for r in results:
        for d in DETECTORS:
            cuts[d].add(r["cuts"][d])
            transitions[d].add(r["transitions"][d])
    return {"cuts": cuts, "transitions": transitions}


def print_report(results: list[dict], total: dict, tolerance_s: float) -> None:
    rows = [*((r["clip"][:-4], r) for r in results), ("ALL", total)]
    print(f"hard cuts at {tolerance_s} s (ambiguous spans and labelled transitions count neither way)")
    print(f"{'clip':28s} {'detector':9s} {'lab':>4s} {'det':>4s} {'hit':>4s} {'fp':>4s} {'neu':>4s} "
          f"{'prec':>5s} {'rec':>5s} {'F1':>5s}")
    for label, r in rows:
        for d in DETECTORS:
            c = r["cuts"][d]
            print(f"{label:28s} {d:9s} {c.labelled:4d} {c.detected:4d} {c.hits:4d} {c.false_positives:4d} "
                  f"{c.neutral:4d} {_fmt(c.precision)} {_fmt(c.recall)} {_fmt(c.f1)}")
    print("\ntransitions (spans overlap = found; PySceneDetect: a cut inside the span = found)")
    print(f"{'clip':28s} {'detector':9s} {'lab':>4s} {'det':>4s} {'found':>5s} {'prec':>5s} {'rec':>5s} "
          f"{'kind':>5s} {'|err|':>5s} {'max':>4s}")
    for label, r in rows:
        for d in DETECTORS:
            t = r["transitions"][d]
            detected = "   -" if t.detected is None else f"{t.detected:4d}"
            worst = "   -" if t.max_abs_error is None else f"{t.max_abs_error:4d}"
            print(f"{label:28s} {d:9s} {t.labelled:4d} {detected} {t.found:5d} {_fmt(t.precision)} "
                  f"{_fmt(t.recall)} {_fmt(t.kind_agreement)} {_fmt(t.mean_abs_error)} {worst}")
    print("\n|err|: mean absolute frames between the cut a detector puts in a transition and the labelled "
          "middle frame; kind: share of found transitions whose kind agrees")
    for r in results:
        ours_score = r["transitions"]["dubber"]
        for text in ours_score.false:
            print(f"{r['clip'][:-4]:28s} false transition: {text}")
        for text in ours_score.missed:
            print(f"{r['clip'][:-4]:28s} missed transition: {text}")
        if ours_score.no_cut:
            print(f"{r['clip'][:-4]:28s} {ours_score.no_cut} found transition(s) with no cut inside")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder with labels.json and the clips")
    parser.add_argument("--only", nargs="*", default=None, help="clip file names to run (default: all)")
    parser.add_argument("--verbose", action="store_true", help="print every detector's cut frames")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--synthetic", type=Path, default=None, metavar="DIR",
                        help="write the synthetic transition clips and their labels to DIR and score those")
    args = parser.parse_args(argv)
    if args.synthetic is not None:
        write_synthetic(args.synthetic)
        args.clips = args.synthetic
    labels = read_labels(args.clips)
    if labels is None:
        return 2
    tolerance_s = float(labels.get("tolerance_s", 0.1))
    names = [n for n in labels["clips"] if args.only is None or n in args.only]
    results = [evaluate_clip(args.clips, n, labels["clips"][n], tolerance_s) for n in names]
    if args.verbose:
        for r in results:
            print(r["clip"], "cuts", r["cut_frames"], "transitions", r["our_transitions"])
    total = totals(results)
    print_report(results, total, tolerance_s)
    if args.json is not None:
        payload = json.dumps(_jsonable({"results": results, "total": total}), indent=1, default=_summary)
        tmp = args.json.with_name(f".{args.json.name}.tmp")
        tmp.write_text(payload)
        tmp.replace(args.json)
    return 0


def _summary(value):
    if isinstance(value, TransitionScore):
        return value.summary()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


if __name__ == "__main__":
    sys.exit(main())
