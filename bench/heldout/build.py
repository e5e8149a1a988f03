"""Build the second labelled set of real footage: five more excerpts of the 1936 Fleischer short
*Popeye the Sailor Meets Sindbad the Sailor*, none of whose frames are in ../shared/realclips, with
hand labels (`labels.json` beside this script, same schema and conventions as realclips').

    python bench/heldout/build.py SHOWORDER OUT_DIR
    python bench/realclips.py --clips OUT_DIR
    python bench/sound.py --realclips OUT_DIR --seeds 3 --events both --second-reading

SHOWORDER is a clone of github.com/robmikh/showorder (commit c0a66d0d4f3c1f92e7483681f93f1f3b3eae1687
holds the film as four 60 s MKV titles under data/popeye/mkv/pgs/), or a bare git directory of it.
Each clip is cut at exact source frames (24 fps), scaled to 640 wide and encoded as H.264; the
labels are copied beside the clips.

The set is mostly the film's song: few blows (7, 5 of them approximate) among many gestures,
dance steps, wing beats and pans, which no detector should hit. It measures how the detectors and
the score fare on footage nobody tuned them on.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from dubber.media.ffmpeg import ffmpeg_exe  # noqa: E402

LABELS = Path(__file__).with_name("labels.json")
SOURCE_FPS = 24


def source_file(showorder: Path, commit: str, path: str, scratch: Path) -> Path:
    """The title's MKV: from a checkout's work tree, else out of a bare git directory."""
    checked_out = showorder / path
    if checked_out.is_file():
        return checked_out
    if not (showorder / "HEAD").is_file():
        raise SystemExit(f"{showorder} is neither a checkout holding {path} nor a git directory")
    target = scratch / Path(path).name
    with target.open("wb") as out:
        subprocess.run(["git", f"--git-dir={showorder}", "show", f"{commit}:{path}"], stdout=out, check=True)
    return target


def encode(source: Path, start_s: float, end_s: float, out: Path) -> None:
    first, last = round(start_s * SOURCE_FPS), round(end_s * SOURCE_FPS)
    picture = (f"trim=start_frame={first}:end_frame={last},setpts=N/({SOURCE_FPS}*TB),"
               "scale=640:-2:flags=lanczos,format=yuv420p")
    partial = out.with_name(f".{out.name}.partial.mp4")
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-i", str(source), "-map", "0:v:0", "-an", "-sn", "-dn",
                    "-vf", picture, "-r", str(SOURCE_FPS), "-fps_mode", "cfr", "-c:v", "libx264", "-preset", "slow",
                    "-crf", "23", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-map_metadata", "-1",
                    str(partial)], check=True)
    partial.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("showorder", type=Path, help="clone (or bare git directory) of robmikh/showorder")
    parser.add_argument("out_dir", type=Path, help="folder for the clips and labels.json")
    args = parser.parse_args(argv)
    clips = json.loads(LABELS.read_text())["clips"]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name, clip in clips.items():
            source = clip["source"]
            mkv = source_file(args.showorder, source["commit"], source["path"], Path(scratch))
            encode(mkv, source["start_s"], source["end_s"], args.out_dir / name)
            print(f"{args.out_dir / name}: {clip['frames']} frames, {len(clip['events'])} labelled blows")
    shutil.copyfile(LABELS, args.out_dir / "labels.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
