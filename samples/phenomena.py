"""Short synthetic clips of what real hand-drawn cartoons do to a cut detector, with exact truth.

Each clip is a few seconds of one or two drawn sets (textured shapes on a background) with a
character, and exactly one phenomenon planted on known frames:

- smear: the character is drawn as a long streak for two frames mid-move, then is whole again;
- splash: a spray of particles fills much of the picture for four frames and clears;
- pose_jump: the character leaps to a new place and pose in one frame and stays there;
- shake: the whole picture shakes (the camera jolts) for ten frames;
- flicker: every frame's brightness jumps by up to 15 levels, as on old film;
- occlusion: a dark wing covers the whole lens for twelve frames, then the same shot is back;
- same_palette_cut: a hard cut between two sets drawn in one palette;
- grey_cut: a hard cut between two black-and-white sets of close grey levels, with flicker;
- dissolve: the first set blends linearly into the second over twelve frames;
- fade_out: the set fades linearly to black over ten frames and stays black;
- fade_in: black, then the set fades in linearly over ten frames;
- flash_cut: a hard cut whose first new frame is washed out white, as film cuts often are.
- iris_out: a circle closes on the set (black outside it) over twelve frames, down to black,
  while the character walks on inside it; iris_in: black, then a circle opens on the set.
- wipe: an upright edge sweeps left to right over twelve frames, the second set behind it.
- contact: a dark ball flies in fast and stops dead against a post (the contact drawing at the
  event frame, then held); the post gives under the blow for the two frames after it, as a
  struck thing does in a cartoon. The character walks on in another part of the picture.
- fall: a heavy ball drops from above the picture, faster and faster, and lands on the ground at
  the event frame (held there) and kicks up a puff of dust beside it for two frames, while the
  character walks on elsewhere: a landing.
- held_pose: a gloved fist on an arm shoots out as fast as a punch and stops dead in mid-air at
  the event frame, held there: a gesture ending in a pose. Nothing is struck, so there is no hit.
- punch: a fist on an arm shoots out, lands on a post at the event frame and pulls back at once
  (no held contact drawing); the post jolts a few pixels for two frames.
- dust_burst: a puff of small pale specks appears at one point on the ground at the event frame
  and flies apart radially, fading, over six frames; nothing else moves but the character.
- cut_to_black: a hard cut to black that stays to the end (an act or a film ending on black);
  cut_to_card: the same to a flat pale card (a title card before its lettering, a white-out).
- blackout: a hard cut to black for one second, then a hard cut back to the same scene.
- run_across: a second character stands high on the left, then runs right across the picture
  for one second (legs scissoring, body bobbing) and eases to a halt on the right: running
  feet. flail: the same character in the middle of the picture kicks its legs as in the run
  and whirls both arms round for one second, then stands: as much motion, but it goes
  nowhere (a tantrum, a dance, a song's gestures), so no feet.
- edge_exit: a dark bird bobs near the right edge of the picture; its wing, folded on its back,
  beats out to the right and leaves the picture through its edge, two frames fast, gone from
  the event frame on (the beat goes on where the camera does not see it). Nothing is struck:
  the wing's cell at the edge goes quiet because the wing left, not because it stopped.
- edge_contact: a small dark ball flies in and stops dead against a wall at the picture's right
  edge at the event frame (held there), knocking a puff of dust off the wall below it for two
  frames: a contact in the same edge cell, which is a hit.
- run_out: the runner stands on the right, then dashes out of the picture through its right
  edge, gone within a few frames: the picture stops moving because the runner left it, which
  is no contact.
- telecine: the contact clip as a film transferred to 30 fps video by 3:2 pulldown (top field
  first): of every five frames, two weave the fields of two film pictures line by line. The
  contact picture first shows in the bottom field of such a mixed frame.

`render(name)` gives the frames and the truth; `write(name, path)` encodes them (H.264, 24 fps)
and writes the truth next to the video as JSON. Truth: "cut_frames" (first frames of new
shots), "transitions" (kind, start_frame, end_frame exclusive), "hit_frames" (frames of
contact a sound should land on) and "run_frames" (first and end, exclusive, of running feet).

    python -m samples.phenomena dissolve out.mp4
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dubber.atomic import atomic_output, atomic_write_text
from samples.synth import _ffmpeg_exe

WIDTH, HEIGHT = 192, 144  # px
FPS = 24
TELECINE_FPS = 30  # frames a second of the telecined clip (NTSC's 30000/1001 reads the same)
TELECINE_LEAD = 2
FRAMES = 72  # 3 s
EVENT_FRAME = 36  # where every planted phenomenon starts
PHENOMENA = ("smear", "splash", "pose_jump", "shake", "flicker", "occlusion", "same_palette_cut", "grey_cut",
             "dissolve", "fade_out", "fade_in", "iris_out", "iris_in", "wipe", "flash_cut", "contact", "fall",
             "punch", "dust_burst", "held_pose", "cut_to_black", "cut_to_card", "blackout", "telecine",
             "run_across", "flail", "edge_exit", "edge_contact", "run_out")
DISSOLVE_FRAMES = 12
WIPE_FRAMES = 12  # iris and wipe
FADE_FRAMES = 10
BLACKOUT_FRAMES = 24  # one second of black
# The ball of `contact`: it flies right at BALL_SPEED px a frame and reaches the post at
# BALL_STOP_X on EVENT_FRAME, high in the picture, far from the walking character.
BALL_SPEED = 9
BALL_STOP_X, BALL_Y, BALL_RADIUS = 150, 45, 14
POST_GIVE = 3  # px the post gives under the ball
PUFF_RADIUS = 5  # px, the dust the landing ball kicks up beside it for two frames
# The ball of `fall`: FALL_X across, let go FALL_FRAMES frames before EVENT_FRAME, it falls with
# FALL_PULL px a frame squared (gravity: each frame further than the one before) and rests on the
# ground (the ground's top at FLOOR_Y) from EVENT_FRAME on.
FALL_X, FLOOR_Y, FALL_FRAMES, FALL_PULL = 160, 122, 7, 3.0
# The fist of `punch`: it moves FIST_SPEED px a frame out from FIST_REST_X, touches the post at
# FIST_REACH_X on EVENT_FRAME and snaps back from the next frame on, as fast at first and easing
# into its rest (FIST_BACK: px a frame on the way back), as a hand pulled back does.
FIST_SPEED, FIST_REST_X, FIST_REACH_X, FIST_Y, FIST_RADIUS = 16, 70, 134, 45, 9
FIST_BACK = (16, 14, 12, 10, 8, 4)  # adds up to FIST_REACH_X - FIST_REST_X
GLOVE_RADIUS = 14  # the fist of `held_pose`: a gloved cartoon hand, as big as the ball
POST_X = FIST_REACH_X + FIST_RADIUS  # the post's left face
# The puff of `dust_burst`: DUST_SPECKS specks leave DUST_CENTRE at 2 to 5 px a frame for
# DUST_FRAMES frames, fading from DUST_GREY towards the ground.
DUST_SPECKS, DUST_FRAMES, DUST_CENTRE, DUST_GREY = 48, 6, (140, 110), 225
# The runner of `run_across` and `flail`: it stands at RUNNER_X (flail: FLAILER_X), RUNNER_Y
# down, from EVENT_FRAME runs right RUNNER_SPEED px a frame, then eases to a stop (RUNNER_EASE:
# px a frame over its last frames), RUNNER_FRAMES frames in all; `flail` whirls its arms
# (ARM_LENGTH px) ARM_TURN degrees a frame as long, slowing as the run would.
RUNNER_X, FLAILER_X, RUNNER_Y, RUNNER_SPEED, RUNNER_FRAMES = 30, 96, 42, 6, 24
RUNNER_EASE = (4, 3, 2, 1)
ARM_LENGTH, ARM_TURN = 30, 50
# The bird of `edge_exit`: its body bobs at BIRD_X, BALL_Y (BIRD_BOB px up and down, a frame
# each way); its wing (WING_LENGTH px long) lies along its back, then beats out to the right,
# WING_SPEED px a frame from EVENT_FRAME - WING_FRAMES on, and is out of the picture from
# EVENT_FRAME on (the beat goes on past the picture's edge).
BIRD_X, BIRD_RADIUS, BIRD_BOB = 146, 10, 2
WING_LENGTH, WING_SPEED, WING_FRAMES = 14, 16, 2
# The runner of `run_out` stands at RUN_OUT_X and from EVENT_FRAME dashes right, RUN_OUT_SPEED
# px a frame, out of the picture within a few frames, and on beyond it.
RUN_OUT_X, RUN_OUT_SPEED = 130, 16
# The ball of `edge_contact` (as small as a fist) flies in as in `contact` and stops at
# EDGE_STOP_X, against a wall in the picture's last eighth.
EDGE_STOP_X = WIDTH - 14


def _set(seed: int, palette: list[tuple[int, int, int]], margin: int = 12) -> np.ndarray:
    """A drawn set: a background and a dozen shapes from `palette`, larger than the frame by
    `margin` px on each side so the camera can shake."""
    rng = np.random.default_rng(seed)
    h, w = HEIGHT + 2 * margin, WIDTH + 2 * margin
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = palette[0]
    for k in range(14):
        colour = palette[1 + k % (len(palette) - 1)]
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if k % 3 == 0:
            cv2.circle(canvas, (x, y), int(rng.integers(8, 26)), colour, -1)
        elif k % 3 == 1:
            cv2.rectangle(canvas, (x, y), (x + int(rng.integers(14, 60)), y + int(rng.integers(10, 40))), colour, -1)
        else:
            cv2.line(canvas, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), colour, 3)
    return canvas


ORANGE = [(230, 140, 40), (200, 110, 30), (250, 170, 70), (170, 90, 20), (240, 200, 120)]
GREYS = [(120, 120, 120), (95, 95, 95), (150, 150, 150), (80, 80, 80), (170, 170, 170)]


def _view(canvas: np.ndarray, dx: int = 0, dy: int = 0, margin: int = 12) -> np.ndarray:
    return canvas[margin + dy:margin + dy + HEIGHT, margin + dx:margin + dx + WIDTH].copy()


def _character(img: np.ndarray, x: float, y: float, stretch: float = 1.0) -> None:
    """A round body with eyes; `stretch` > 1 draws it as a horizontal smear streak."""
    r = 14
    axes = (int(r * stretch), r if stretch == 1.0 else max(3, int(r / 2)))
    cv2.ellipse(img, (int(x), int(y)), axes, 0, 0, 360, (250, 250, 245), -1)
    cv2.ellipse(img, (int(x), int(y)), axes, 0, 0, 360, (20, 20, 20), 2)
    if stretch == 1.0:
        for ex in (-5, 5):
            cv2.circle(img, (int(x) + ex, int(y) - 3), 3, (20, 20, 20), -1)


def _walk(t: int) -> float:
    return 40 + 1.0 * t  # px: a slow walk, one pixel a frame


def render(name: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The RGB frames of phenomenon `name` and its truth."""
    if name not in PHENOMENA:
        raise ValueError(f"unknown phenomenon {name!r}; choose one of {', '.join(PHENOMENA)}")
    palette = GREYS if name == "grey_cut" else ORANGE
    first, second = _set(1, palette), _set(2, palette)
    rng = np.random.default_rng(3)
    frames, cuts, transitions = [], [], []
    for t in range(FRAMES):
        frames.append(_frame("contact" if name == "telecine" else name, t, first, second, rng))
    if name == "telecine":
        frames, shown_at = _telecine(frames)
        truth = {"phenomenon": name, "fps": f"{TELECINE_FPS}/1", "frame_count": len(frames), "width": WIDTH,
                 "height": HEIGHT, "cut_frames": [], "transitions": [], "event_frame": shown_at[EVENT_FRAME],
                 "hit_frames": [shown_at[EVENT_FRAME]], "run_frames": []}
        return frames, truth
    if name in ("same_palette_cut", "grey_cut", "flash_cut", "cut_to_black", "cut_to_card"):
        cuts = [EVENT_FRAME]
    elif name == "blackout":
        cuts = [EVENT_FRAME, EVENT_FRAME + BLACKOUT_FRAMES]
    elif name == "dissolve":
        transitions = [{"kind": "dissolve", "start_frame": EVENT_FRAME, "end_frame": EVENT_FRAME + DISSOLVE_FRAMES}]
        cuts = [EVENT_FRAME + DISSOLVE_FRAMES // 2]
    elif name in ("fade_out", "fade_in"):
        transitions = [{"kind": name, "start_frame": EVENT_FRAME, "end_frame": EVENT_FRAME + FADE_FRAMES}]
        cuts = [EVENT_FRAME + FADE_FRAMES // 2]
    elif name in ("iris_out", "iris_in", "wipe"):
        kind = "wipe" if name == "wipe" else "iris"
        transitions = [{"kind": kind, "start_frame": EVENT_FRAME, "end_frame": EVENT_FRAME + WIPE_FRAMES}]
        cuts = [EVENT_FRAME + WIPE_FRAMES // 2]
    truth = {"phenomenon": name, "fps": f"{FPS}/1", "frame_count": FRAMES, "width": WIDTH, "height": HEIGHT,
             "cut_frames": cuts, "transitions": transitions, "event_frame": EVENT_FRAME,
             "hit_frames": [EVENT_FRAME] if name in ("contact", "fall", "punch", "dust_burst", "edge_contact") else [],
             # the frames the runner moves into, the first (EVENT_FRAME + 1) to the last
             "run_frames": [EVENT_FRAME + 1, EVENT_FRAME + RUNNER_FRAMES + 1] if name == "run_across" else []}
    return frames, truth


def _frame(name: str, t: int, first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Frame `t` of phenomenon `name`: the drawn scene, what moves or bursts in it, then what
    happens to the whole picture (a transition, a flicker, a cover over the lens). The random
    draws come in that order, so each phenomenon's pictures stay the same."""
    k = t - EVENT_FRAME
    img = _scene(name, t, first, second, rng)
    _draw_props(img, name, k, rng)
    return _over_the_picture(img, name, k, second, rng)


def _scene(name: str, t: int, first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The set and the character in it, cut, shaken or posed as `name` wants."""
    after = t >= EVENT_FRAME
    k = t - EVENT_FRAME
    if name in ("same_palette_cut", "grey_cut", "flash_cut") and after:
        img = _view(second)
        _character(img, 150 - 0.5 * k, 60)
    elif name == "shake" and 0 <= k < 10:
        img = _view(first, int(rng.integers(-8, 9)), int(rng.integers(-6, 7)))
        _character(img, _walk(t), 90)
    elif name == "pose_jump" and after:
        img = _view(first)
        _character(img, 150, 40)
    else:
        img = _view(first)
        _character(img, _walk(t), 90, stretch=4.0 if name == "smear" and 0 <= k < 2 else 1.0)
    return img


def _draw_props(img: np.ndarray, name: str, k: int, rng: np.random.Generator) -> None:
    """What moves, hits or bursts in the scene, `k` frames from the event."""
    if name == "contact":
        # The post it hits, then the ball: in flight before the event frame, against the post from it on.
        give = POST_GIVE if k in (1, 2) else 0  # the post gives under the blow for the two frames after it
        cv2.rectangle(img, (BALL_STOP_X + BALL_RADIUS + give, 15), (BALL_STOP_X + BALL_RADIUS + give + 6, 75),
                      (60, 40, 20), -1)
        x = BALL_STOP_X - BALL_SPEED * max(0, -k)
        if x + BALL_RADIUS >= 0:
            cv2.circle(img, (x, BALL_Y), BALL_RADIUS, (25, 25, 30), -1)
    if name == "fall":
        cv2.rectangle(img, (0, FLOOR_Y), (WIDTH - 1, HEIGHT - 1), (110, 80, 50), -1)
        fallen = min(FALL_FRAMES, max(0, FALL_FRAMES + k))  # frames since it was let go
        height = 0.5 * FALL_PULL * (FALL_FRAMES ** 2 - fallen ** 2)  # above the ground
        cv2.circle(img, (FALL_X, int(round(FLOOR_Y - BALL_RADIUS - height))), BALL_RADIUS, (25, 25, 30), -1)
        if k in (1, 2):  # a puff of dust kicked up beside it
            cv2.circle(img, (FALL_X - BALL_RADIUS - 10, FLOOR_Y - PUFF_RADIUS), PUFF_RADIUS, (235, 235, 225), -1)
    if name == "edge_contact":
        cv2.rectangle(img, (EDGE_STOP_X + FIST_RADIUS, 15), (WIDTH - 1, 75), (60, 40, 20), -1)
        x = EDGE_STOP_X - BALL_SPEED * max(0, -k)
        cv2.circle(img, (x, BALL_Y), FIST_RADIUS, (25, 25, 30), -1)
        if k in (1, 2):  # dust knocked off the wall below it
            cv2.circle(img, (EDGE_STOP_X, BALL_Y + 2 * FIST_RADIUS), PUFF_RADIUS, (235, 235, 225), -1)
    if name == "edge_exit":
        _bird(img, k)
    if name == "punch":
        _punch(img, k)
    if name == "held_pose":
        _arm(img, max(FIST_REST_X, min(FIST_REACH_X, FIST_REACH_X + FIST_SPEED * k)), GLOVE_RADIUS)
    if name == "dust_burst" and 0 <= k < DUST_FRAMES:
        _dust(img, k)
    if name == "run_across":
        _runner(img, RUNNER_X + _run_distance(k), legs=k if 0 <= k < RUNNER_FRAMES else None)
    if name == "run_out":
        _runner(img, RUN_OUT_X + RUN_OUT_SPEED * max(0, k), legs=k if k >= 0 else None)
    if name == "flail":
        _runner(img, FLAILER_X, legs=k if 0 <= k < RUNNER_FRAMES else None, arms=_arm_turn(k))
    if name == "splash" and 0 <= k < 4:
        for _ in range(160):
            cv2.circle(img, (int(rng.integers(0, WIDTH)), int(rng.integers(20, HEIGHT))), int(rng.integers(2, 6)),
                       (235, 245, 255), -1)


def _over_the_picture(img: np.ndarray, name: str, k: int, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What happens to the whole picture `k` frames from the event."""
    after = k >= 0
    if name == "occlusion" and 0 <= k < 12:
        # A dark wing over the lens: a soft shading that slides on, so no two frames repeat.
        ramp = 18.0 + 14.0 * ((np.arange(WIDTH) + 9 * k) % WIDTH) / WIDTH
        img[:] = np.repeat(ramp[None, :, None], HEIGHT, axis=0).astype(np.uint8)
    if name in ("flicker", "grey_cut"):
        img = np.clip(img.astype(np.int16) + int(rng.integers(-15, 16)), 0, 255).astype(np.uint8)
    if name == "dissolve" and after:
        share = min(1.0, (k + 1) / (DISSOLVE_FRAMES + 1))
        img = cv2.addWeighted(img, 1.0 - share, _view(second), share, 0.0)
    if name == "fade_out" and after:
        share = max(0.0, 1.0 - (k + 1) / (FADE_FRAMES + 1))
        img = (img.astype(np.float32) * share).round().astype(np.uint8)
    if name == "fade_in":
        share = 0.0 if k < 0 else min(1.0, (k + 1) / (FADE_FRAMES + 1))
        img = (img.astype(np.float32) * share).round().astype(np.uint8)
    if name == "iris_out":
        img[_new_part(name, k)] = 0
    if name == "iris_in":
        img[~_new_part(name, k)] = 0
    if name == "wipe" and after:
        new = _view(second)
        _character(new, 150 - 0.5 * k, 60)
        part = _new_part(name, k)
        img[part] = new[part]
    if name == "flash_cut" and k == 0:
        img = cv2.addWeighted(img, 0.3, np.full_like(img, 255), 0.7, 0.0)
    if (name == "cut_to_black" and after) or (name == "blackout" and 0 <= k < BLACKOUT_FRAMES):
        img = np.zeros_like(img)
    if name == "cut_to_card" and after:
        img = np.full_like(img, 235)
    return img


def _new_part(name: str, k: int) -> np.ndarray:
    """Where frame EVENT_FRAME + k of a wipe or an iris shows the new shot (bool, HEIGHT x WIDTH).

    Frame EVENT_FRAME + k is (k + 1) / (WIPE_FRAMES + 1) of the way, so the first frame of the
    span already differs and frame EVENT_FRAME + WIPE_FRAMES is wholly new. An iris out closes
    a circle on the old shot (black outside it is new); an iris in opens one on the new shot."""
    way = min(1.0, max(0.0, (k + 1) / (WIPE_FRAMES + 1)))
    if name == "wipe":
        part = np.zeros((HEIGHT, WIDTH), bool)
        part[:, :int(round(WIDTH * way))] = True
        return part
    circle = np.zeros((HEIGHT, WIDTH), np.uint8)
    radius = (way if name == "iris_in" else 1.0 - way) * np.hypot(WIDTH, HEIGHT) / 2
    cv2.circle(circle, (WIDTH // 2, HEIGHT // 2), int(round(radius)), 255, -1)
    return circle > 0 if name == "iris_in" else circle == 0


def _punch(img: np.ndarray, k: int) -> None:
    """The post and a fist on an arm, `k` frames from the contact (negative: before it)."""
    jolt = 3 if k in (0, 1) else 0  # the post gives under the blow for two frames
    cv2.rectangle(img, (POST_X + jolt, 15), (POST_X + jolt + 8, 80), (60, 40, 20), -1)
    if k <= 0:
        x = max(FIST_REST_X, FIST_REACH_X + FIST_SPEED * k)
    else:
        x = FIST_REACH_X - sum(FIST_BACK[:k])
    _arm(img, x)


def _bird(img: np.ndarray, k: int) -> None:
    """The bird of `edge_exit`, `k` frames from the frame its wing is out of the picture."""
    y = BALL_Y + (BIRD_BOB if k % 2 else -BIRD_BOB)
    cv2.circle(img, (BIRD_X, y), BIRD_RADIUS, (25, 25, 30), -1)
    out = min(WING_FRAMES, max(0, k + WING_FRAMES))   # frames the wing has been beating out
    centre = BIRD_X + BIRD_RADIUS + WING_LENGTH // 2 + WING_SPEED * out
    cv2.ellipse(img, (centre, y - 4), (WING_LENGTH // 2 + 4, 6), 0, 0, 360, (25, 25, 30), -1)


def _arm(img: np.ndarray, x: int, radius: int = FIST_RADIUS) -> None:
    """An arm from the left edge with its fist (of `radius` px) at `x`."""
    cv2.rectangle(img, (20, FIST_Y - 4), (x, FIST_Y + 4), (120, 60, 40), -1)
    cv2.circle(img, (x, FIST_Y), radius, (40, 30, 90), -1)


def _run_distance(k: int) -> float:
    """How far (px) the runner of `run_across` has come `k` frames from the start of its run."""
    steady = RUNNER_FRAMES - len(RUNNER_EASE)
    frames = max(0, min(k, RUNNER_FRAMES))
    return RUNNER_SPEED * min(frames, steady) + sum(RUNNER_EASE[:max(0, frames - steady)])


def _arm_turn(k: int) -> float:
    """The angle (degrees) of the flailing arms `k` frames from the start: turning ARM_TURN a
    frame, then slowing like the run (RUNNER_EASE), then still."""
    steady = RUNNER_FRAMES - len(RUNNER_EASE)
    frames = max(0, min(k, RUNNER_FRAMES))
    eased = sum(RUNNER_EASE[:max(0, frames - steady)]) / RUNNER_SPEED
    return ARM_TURN * (min(frames, steady) + eased)


def _runner(img: np.ndarray, x: float, legs: int | None = None, arms: float = 0.0) -> None:
    """A standing figure with its feet at RUNNER_Y + 22 px: a body, two legs (scissoring, a
    stride a frame apart, when `legs` counts the frames of a run) and two arms at `arms` degrees
    (0: hanging down)."""
    bob = 2 if legs is not None and legs % 2 else 0
    cx, cy = int(round(x)), RUNNER_Y - bob
    for side in (-1, 1):
        swing = 0 if legs is None else side * (8 if legs % 2 else -8)
        cv2.line(img, (cx, cy + 8), (cx + swing, cy + 22), (30, 30, 60), 4)
        angle = np.radians(side * arms)   # the two arms whirl opposite ways
        tip = (int(round(cx + side * 4 + ARM_LENGTH * np.sin(angle))), int(round(cy - 2 + ARM_LENGTH * np.cos(angle))))
        cv2.line(img, (cx + side * 4, cy - 2), tip, (30, 30, 60), 4)
    cv2.ellipse(img, (cx, cy), (9, 12), 0, 0, 360, (250, 250, 245), -1)
    cv2.ellipse(img, (cx, cy), (9, 12), 0, 0, 360, (20, 20, 20), 2)


def _dust(img: np.ndarray, k: int) -> None:
    """The dust puff `k` frames after it appears: the same specks every frame, further out and fainter."""
    rng = np.random.default_rng(7)
    angles = rng.uniform(np.pi, 2 * np.pi, DUST_SPECKS)  # up and sideways from the ground
    speeds = rng.uniform(2.0, 5.0, DUST_SPECKS)
    sizes = rng.integers(1, 3, DUST_SPECKS)
    fade = 1.0 - k / DUST_FRAMES
    cx, cy = DUST_CENTRE
    for angle, speed, size in zip(angles, speeds, sizes):
        x, y = int(round(cx + np.cos(angle) * speed * (k + 1))), int(round(cy + np.sin(angle) * speed * (k + 1)))
        under = img[min(HEIGHT - 1, max(0, y)), min(WIDTH - 1, max(0, x))].astype(np.float32)
        colour = under + fade * (DUST_GREY - under)
        cv2.circle(img, (x, y), int(size), tuple(int(v) for v in colour), -1)


def _telecine(film: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """24p film pictures as 30 fps frames by 3:2 pulldown, top field first, and for each film
    picture the first frame that shows it (in either field). TELECINE_LEAD copies of the first
    picture go before the film, so the pulldown's phase puts the contact picture in the bottom
    field of a mixed frame."""
    pictures = [film[0]] * TELECINE_LEAD + film
    frames = []
    for g in range(0, len(pictures) - 3, 4):
        a, b, c, d = pictures[g:g + 4]
        frames += [a, b, _weave(b, c), _weave(c, d), d]
    first = [5 * (j // 4) + j % 4 for j in range(len(pictures))]  # A, B whole; C, D in a bottom field
    return frames, first[TELECINE_LEAD:]


def _weave(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """A frame whose even lines come from `top` and odd lines from `bottom`."""
    frame = top.copy()
    frame[1::2] = bottom[1::2]
    return frame


def write(name: str, path: str | os.PathLike) -> dict[str, Any]:
    """Encode phenomenon `name` to `path` (H.264 mp4) and its truth to the .json beside it."""
    frames, truth = render(name)
    path = Path(path)
    with atomic_output(path) as tmp:
        cmd = [_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{WIDTH}x{HEIGHT}", "-framerate", truth["fps"], "-i", "pipe:0", "-c:v", "libx264",
               "-preset", "veryfast", "-crf", "16", "-pix_fmt", "yuv420p", "-f", "mp4", str(tmp)]
        subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True, timeout=120)
    atomic_write_text(path.with_suffix(".json"), json.dumps(truth, indent=1) + "\n")
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samples.phenomena", description=__doc__.split("\n")[0])
    parser.add_argument("phenomenon", choices=PHENOMENA)
    parser.add_argument("out", help="output .mp4 (truth goes next to it as .json)")
    args = parser.parse_args(argv)
    truth = write(args.phenomenon, args.out)
    print(f"{args.out}: {truth['frame_count']} frames, cuts {truth['cut_frames']}, transitions {truth['transitions']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
