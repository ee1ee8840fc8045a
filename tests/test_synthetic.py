from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest

from research.errors import UserError
from videogen.catalogue import CATALOG, CATEGORIES
from videogen.difficulty import QP_EASY, QP_HARD, apply_overlays, overlay_params
from videogen.writing import FPS_CHOICES, make_video, plan_jobs, read_manifest


def test_layout_and_class_mapping(tiny_videos: Path) -> None:
    rows = read_manifest(tiny_videos)
    assert len(rows) == 4 * 5
    assert sorted(CATEGORIES) == list(CATEGORIES)  # sorted order = the seed's class indices
    for row in rows:
        path = tiny_videos / row["path"]
        _split, category, sub, name = Path(row["path"]).parts
        assert path.is_file() and name.endswith(".mp4")
        assert int(row["label"]) == CATEGORIES.index(category) and row["subcategory"] == sub
    per_split = defaultdict(int)
    for row in rows:
        per_split[row["split"]] += 1
    assert dict(per_split) == {"train": 12, "val": 4, "test": 4}
    for category in CATEGORIES:
        assert len({s.name for s in CATALOG if s.category == category}) >= 3


def test_every_file_decodes_to_its_claimed_frame_count(tiny_videos: Path) -> None:
    sizes, rates = set(), set()
    for row in read_manifest(tiny_videos):
        with av.open(str(tiny_videos / row["path"])) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = list(container.decode(stream))
        assert len(frames) == int(row["frames"]) > 0
        assert frames[0].format.name == "yuv420p"
        assert (frames[0].width, frames[0].height) == (int(row["width"]), int(row["height"]))
        sizes.add((frames[0].width, frames[0].height))
        rates.add(int(row["fps"]))
    assert any(w % 16 or h % 16 for w, h in sizes), "some resolutions must not be multiples of 16"
    assert rates <= set(FPS_CHOICES) and len(sizes) > 1


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    jobs = plan_jobs(videos_per_class=3, seed=3, fractions=(0.34, 0.33, 0.33), min_seconds=1.0, max_seconds=1.5)[::3]
    digests = []
    for run in ("a", "b"):
        for job in jobs:
            make_video(job, tmp_path / run)
        digests.append([hashlib.sha256((tmp_path / run / j.relpath).read_bytes()).hexdigest() for j in jobs])
    assert digests[0] == digests[1]
    other = make_video(plan_jobs(3, 4, (0.34, 0.33, 0.33), 1.0, 1.5)[0], tmp_path / "c")  # another seed differs
    assert hashlib.sha256((tmp_path / "c" / other["path"]).read_bytes()).hexdigest() != digests[0][0]


def _motion(path: Path) -> float:
    """Mean absolute change between consecutive frames (grey, 0-255)."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="gray").astype(np.float32) for f in container.decode(video=0)]
    return float(np.mean([np.abs(a - b).mean() for a, b in itertools.pairwise(frames)]))


def test_categories_differ_in_simple_statistics(tiny_videos: Path) -> None:
    motion = defaultdict(list)
    for row in read_manifest(tiny_videos):
        motion[row["category"]].append(_motion(tiny_videos / row["path"]))
    mean = {k: float(np.mean(v)) for k, v in motion.items()}
    # Slides and spreadsheets barely change; camera footage changes everywhere.
    assert mean["flat_content"] < 0.5 * mean["natural_content"], mean
    assert mean["flat_content"] < mean["gaming"], mean


@pytest.mark.parametrize("sub", CATALOG, ids=lambda s: f"{s.category}/{s.name}")
def test_every_subcategory_renders(sub, tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    frames = list(sub.render(rng, 160, 120, 12, sub.sample_params(rng, 1.0)))  # the hardest confusers
    assert len(frames) == 12
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    assert np.std(frames[0]) > 5, "a frame with no content"


def test_difficulty_is_drawn_from_its_range_and_recorded(tmp_path: Path) -> None:
    jobs = plan_jobs(3, 5, (0.34, 0.33, 0.33), 1.0, 1.2, difficulty=(0.3, 0.4))[::4]
    rows = [make_video(job, tmp_path) for job in jobs]
    assert all(0.3 <= row["difficulty"] <= 0.4 for row in rows)
    assert len({row["difficulty"] for row in rows}) == len(rows)  # continuous: every video its own level
    with pytest.raises(UserError, match="difficulty"):
        plan_jobs(3, 5, (0.34, 0.33, 0.33), 1.0, 1.2, difficulty=(0.8, 0.2))


def test_difficulty_scales_overlays_and_compression() -> None:
    rng = np.random.default_rng(0)
    easy = [overlay_params(rng, 0.0, "gaming") for _ in range(200)]
    hard = [overlay_params(rng, 1.0, "gaming") for _ in range(200)]
    assert all(
        p["qp"] == QP_EASY and not p["subtitle"] and p["logo"] < 0 and p["pip"] is None and p["window"] is None
        for p in easy
    )
    assert all(not p["letterbox"] and not p["noise"] and not p["exposure"] for p in easy)
    assert all(p["qp"] == QP_HARD for p in hard)
    assert all(
        p["subtitle"] and p["logo"] >= 0 and p["letterbox"] and p["pip"] and p["exposure"] and p["window"] for p in hard
    )
    assert all(p["noise"] for p in hard)  # every overlay at the hardest level
    middle = [overlay_params(rng, 0.5, "gaming") for _ in range(300)]
    for key, rate in (
        ("subtitle", 0.3),
        ("letterbox", 0.2),
        ("pip", 0.25),
        ("noise", 0.2),
        ("exposure", 0.2),
        ("window", 0.2),
    ):
        seen = np.mean([bool(p[key]) for p in middle])
        assert abs(seen - rate) < 0.09, (key, seen)  # the base rates at 0.5
    natural = overlay_params(np.random.default_rng(3), 1.0, "natural_content")
    assert natural["noise"] == 0.0  # camera footage has its own sensor noise; overlays add none


def test_overlays_are_drawn() -> None:
    rng = np.random.default_rng(0)
    params = {"qp": 30, "subtitle": 7, "logo": 0, "letterbox": 0.1, "noise": 0.0, "exposure": 0.0}
    params["pip"] = {"kind": "photo", "photo": 0, "scale": 0.3, "corner": 3}
    grey = (np.full((120, 160, 3), 128, np.uint8) for _ in range(3))
    frames = list(apply_overlays(grey, rng, params, 160, 120))
    first = frames[0]
    assert (first[:12] == 0).all() and (first[-12:] == 0).all()  # letterbox bars
    assert first[60:100, 100:150].std() > 10  # the photograph in the bottom-right window
    assert (first[14:30, 4:20] > 128).any()  # the logo brightens its corner
    assert (first[80:108, 8:100] == (255, 255, 230)).all(-1).any()  # subtitle text above the lower bar


def test_contact_sheet_shows_every_category(tiny_videos: Path, tmp_path: Path) -> None:
    """The README's ``--contact-sheet`` command: a grid, one row per category, one middle frame per subcategory."""
    import numpy as np
    from PIL import Image

    from videogen.__main__ import main as videogen_main

    out = tmp_path / "sheet.png"
    with pytest.raises(SystemExit) as done:
        videogen_main(["--out", str(tiny_videos), "--contact-sheet", str(out)])
    assert done.value.code == 0
    sheet = np.asarray(Image.open(out).convert("L"))
    widest = max(len([s for s in CATALOG if s.category == c]) for c in CATEGORIES)
    assert sheet.shape == (len(CATEGORIES) * (128 + 18), 130 + widest * (128 + 4))
    for row in range(len(CATEGORIES)):  # the first thumbnail of every row is a real frame, not the white page
        assert np.std(sheet[row * 146 : row * 146 + 128, 130 : 130 + 128]) > 5


def test_board_games_draw_the_mouse_moving_between_moves() -> None:
    """Between two moves the board is still: only the pointer, easing onto the last move's cell, changes."""
    import numpy as np

    from videogen.gaming.casual import render_board_game

    params = {"kind": "reversi", "move_every": 4, "dialog": False}
    frames = list(render_board_game(np.random.default_rng(0), 160, 120, 8, params))
    changed = np.any(frames[5] != frames[6], axis=-1)  # the move was at frame 4, the next is at 8
    assert changed.any(), "the pointer is not drawn"
    ys, xs = np.nonzero(changed)
    assert np.ptp(ys) < 30 and np.ptp(xs) < 30, "more than a pointer changed"


def test_ray_tracer_hits_spheres_and_turning_boxes_and_casts_shadows() -> None:
    from videogen.animation import raytrace

    eye, ahead = np.zeros(3, np.float32), np.array([[0, 0, -1.0], [0, 1.0, 0]], np.float32)  # one ray ahead, one up
    t = raytrace._hit_sphere(eye, ahead, np.array([0, 0, -5.0]), 1.0)
    assert abs(t[0] - 4.0) < 1e-4 and t[1] == raytrace._FAR  # a unit sphere 5 away is met at 4; the other ray misses
    half = np.ones(3, np.float32)
    t, axis, sign = raytrace._hit_box(eye, ahead, np.array([0, 0, -5.0]), half, raytrace._yaw(0.0))
    assert abs(t[0] - 4.0) < 1e-4 and axis[0] == 2 and sign[0] == 1 and t[1] == raytrace._FAR  # the face towards us
    t, *_ = raytrace._hit_box(eye, ahead, np.array([0, 0, -5.0]), half, raytrace._yaw(np.pi / 4))
    assert abs(t[0] - (5 - np.sqrt(2))) < 1e-4  # turned 45 degrees: the edge comes first
    centre, sun = np.array([0, 1.5, 0], np.float32), raytrace._SUN.astype(np.float32)
    under = centre - sun * (centre[1] / sun[1])  # the floor point whose ray to the sun passes through the centre
    beside = under + np.array([3, 0, 0], np.float32)
    blocked = raytrace._hit_sphere(np.stack([under, beside]), np.stack([sun, sun]), centre, 1.0) < raytrace._FAR
    assert blocked.tolist() == [True, False]


def test_ray_traced_worlds_render_on_twos() -> None:
    from videogen.animation import raytrace

    for world in raytrace.WORLDS:
        params = {"world": world, "camera": "orbit", "objects": 3, "creatures": 0.5, "photo_ground": None, "grain": 0.0}
        frames = list(raytrace.render_scene3d(np.random.default_rng(1), 96, 72, 6, params))
        assert len(frames) == 6 and all(f.shape == (72, 96, 3) for f in frames)
        assert (frames[0] == frames[1]).all() and (frames[2] == frames[3]).all()  # each render shown twice
        assert not (frames[0] == frames[2]).all(), f"{world}: the camera does not move"


def test_window_overlay_shrinks_the_picture_onto_a_surround() -> None:
    rng = np.random.default_rng(0)
    params = {"qp": 30, "subtitle": 0, "logo": -1, "letterbox": 0.0, "noise": 0.0, "exposure": 0.0, "pip": None}
    params["window"] = {"scale": 0.5, "x": 0.0, "y": 1.0, "surround": "black"}
    white = (np.full((120, 160, 3), 255, np.uint8) for _ in range(2))
    first = next(apply_overlays(white, rng, params, 160, 120))
    assert (first[60:, :80] == 255).all()  # the picture, at half size, in the bottom-left corner
    assert (first[:60] == 0).all() and (first[:, 80:] == 0).all()  # black around it


def test_the_command_reuses_a_matching_dataset_and_refuses_another(tmp_path: Path) -> None:
    """``python -m videogen`` re-uses a folder whose generator.json matches, and refuses one made otherwise."""
    from videogen.__main__ import main as videogen_main

    args = ["--out", str(tmp_path), "--videos-per-class", "3", "--min-seconds", "0.3", "--max-seconds", "0.3"]

    def exit_code(*extra: str) -> int:
        with pytest.raises(SystemExit) as done:
            videogen_main([*args, "--workers", "1", *extra])
        return done.value.code

    assert exit_code() == 0
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.mp4")}
    assert len(stamps) == 12
    assert exit_code() == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # re-used: nothing drawn again
    assert exit_code("--seed", "1") == 2  # another seed: refused (error: ..., exit 2)
