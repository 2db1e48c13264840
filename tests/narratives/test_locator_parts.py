"""The cursor locator's collaborators, each alone: the sprite set, the view's held frames, the
pointer-free background and the frame's motion blobs (``narratives/sprite_set.py``,
``view_history.py``, ``background.py``, ``frame_motion.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from quilt_llava.narratives.background import PointerFreeBackground
from quilt_llava.narratives.cursor import CursorConfig, TemplateCursorLocator
from quilt_llava.narratives.cursor_hits import THINNED, AnalysedFrame, CursorHit
from quilt_llava.narratives.frame_motion import FrameMotion
from quilt_llava.narratives.sprite_set import PRIOR_RETIRE_AFTER, SpriteSet
from quilt_llava.narratives.templates import make_template, make_templates
from quilt_llava.narratives.view_history import ViewHistory
from tests.narratives.scenes import texture, with_pointer

cv2 = pytest.importorskip("cv2")


def test_sprite_set_locks_on_three_quarters_of_the_votes_and_a_new_sprite_unlocks():
    sprites = SpriteSet(make_templates((0.8, 1.0, 1.25), 720), CursorConfig(lock_after=4))
    assert sprites.active() == [0, 1, 2]
    for k in (1, 1, 2, 2, 2, 2):  # size 2 has 4 votes, but only 4 of 6
        sprites.vote(k)
    assert sprites.locked is None and sprites.active() == [0, 1, 2]
    sprites.vote(2)
    sprites.vote(2)  # 6 of 8: three quarters
    assert sprites.locked == 2 and sprites.active() == [2]
    k = sprites.add(make_template(1.1))
    assert k == 3 and sprites.generic == 3 and sprites.learned_any
    assert sprites.locked is None and sprites.active() == [0, 1, 2, 3]
    assert sprites.votes.tolist() == [0, 0, 0, 0]  # the lock is earned afresh


def test_sprite_set_retires_the_prior_sizes_that_never_found_the_pointer():
    sprites = SpriteSet(make_templates((0.8, 1.0, 1.25), 720), CursorConfig())
    sprites.credit(0)  # before a sprite is learned: not counted
    k = sprites.add(make_template(1.1))
    sprites.credit(1)  # the middle size found it once since
    for _ in range(PRIOR_RETIRE_AFTER - 1):
        sprites.credit(k)
    assert sprites.retired() == set() and sprites.unlocked() == [0, 1, 2, 3]
    sprites.credit(k)
    assert sprites.retired() == {0, 2} and sprites.unlocked() == [1, 3]


def test_sprite_set_retires_a_prior_size_that_only_held_a_still_spot():
    """A size of the prior whose verified hits since the first sprite was learned never moved (a
    lookalike in the tissue or the chrome, held while the pointer was hidden or was a shape the prior
    does not match) has not found the pointer: it is retired like a size that found nothing. A size
    whose track moved to its hits stays; a learned sprite's hits count whether they moved or not."""
    sprites = SpriteSet(make_templates((0.8, 1.0, 1.25), 720), CursorConfig())
    k = sprites.add(make_template(1.1))
    for _ in range(50):
        sprites.credit(0, moved=False)  # the same spot, frame after frame
    sprites.credit(1, moved=True)
    for _ in range(PRIOR_RETIRE_AFTER):
        sprites.credit(k, moved=False)  # a learned sprite resting: still counted
    assert sprites.retired() == {0, 2} and sprites.unlocked() == [1, 3]


def test_sprite_set_footprint_is_the_union_of_every_template_box_clipped_to_the_frame():
    templates = make_templates((0.6, 1.6), 720)
    sprites = SpriteSet(templates, CursorConfig())
    # Every template's hotspot is (2, 2) from its top-left: the union spans the largest one.
    big = templates[1].image.shape
    assert sprites.footprint(100.0, 50.0, (640, 360)) == (100 - 2 - 3, 50 - 2 - 3, 98 + big[1] + 3, 48 + big[0] + 3)
    assert sprites.footprint(1.0, 1.0, (20, 20), margin=0) == (0, 0, 20, 20)


def test_view_history_keeps_pixels_of_every_nth_frame_and_the_newest():
    history = ViewHistory(CursorConfig(history_stride=4, backfill_frames=6))
    frames = [np.full((4, 4), i, np.uint8) for i in range(10)]
    for i, luma in enumerate(frames):
        history.remember(i, luma, False)
    held = list(history.frames)
    assert [i for i, _, _ in held] == [4, 5, 6, 7, 8, 9]  # at most backfill_frames
    kept = [i for i, luma, _ in held if luma is not THINNED]
    assert kept == [4, 8, 9]
    assert history.pixels_of(8) is frames[8] and history.pixels_of(5) is THINNED and history.pixels_of(2) is None
    # The oldest frame with pixels at most 3 back (frame 8 from 11, frame 9 from 12), else the newest one.
    assert history.older(11, 3) is frames[8] and history.older(12, 3) is frames[9]
    assert history.older(20, 3) is frames[9]


def test_view_history_confirm_marks_frames_and_backfill_stops_there():
    t = make_template(1.0)
    base = texture()
    history = ViewHistory(CursorConfig(history_stride=1))
    tip = (60, 40)
    for i in range(8):
        history.remember(i, with_pointer(base, tip, t), False)
    walked = history.backfill(60.0, 40.0, t)
    assert [h.index for h in walked] == list(range(8))
    assert all(abs(h.x - 60) <= 1 and abs(h.y - 40) <= 1 for h in walked)
    history.confirm([CursorHit(3, 60.0, 40.0, 0.95)])
    assert [c for _, _, c in history.frames] == [i == 3 for i in range(8)]
    assert history.hits == {3: (60.0, 40.0)} and history.any_confirmed()
    assert [h.index for h in history.backfill(60.0, 40.0, t)] == [4, 5, 6, 7]  # a verified hit is not walked over
    history.clear()
    assert not history.frames and not history.hits and history.first is None


def test_view_history_guesses_are_walked_over_where_matched_better_then_settled():
    t = make_template(1.0)
    base = texture()
    history = ViewHistory(CursorConfig(history_stride=1))
    for i in range(6):
        history.remember(i, with_pointer(base, (60, 40), t), False)
    guess = [CursorHit(i, 120.0, 90.0, 0.65) for i in range(3)]  # a lookalike taken for a rest
    history.confirm(guess)
    history.guessed(guess)
    assert [h.index for h in history.backfill(60.0, 40.0, t)] == list(range(6))  # the pointer matches better
    history.replaced(history.backfill(60.0, 40.0, t))  # the verified track emitted them
    assert not history.guesses
    assert all(abs(history.hits[i][0] - 60) <= 1 and abs(history.hits[i][1] - 40) <= 1 for i in range(3))
    assert [h.index for h in history.backfill(60.0, 40.0, t)] == [3, 4, 5]  # now verified: not walked over


def test_background_keeps_what_the_pointer_covers():
    t = make_template(1.0)
    empty = texture(seed=1)
    tip = (70, 50)
    covered = with_pointer(empty, tip, t)
    mask = t.mask > 0
    th, tw = t.image.shape
    x0, y0 = tip[0] - t.hotspot[0], tip[1] - t.hotspot[1]
    expected = np.abs(covered[y0 : y0 + th, x0 : x0 + tw].astype(int) - empty[y0 : y0 + th, x0 : x0 + tw])[mask].mean()
    background = PointerFreeBackground()
    assert background.change(covered, *tip, t) == 0.0  # nothing to compare with yet
    background.update(empty, [])
    assert background.change(covered, *tip, t) == pytest.approx(expected, abs=0.01)
    assert expected > 20
    # The pointer stays: under it, the pixels from before it arrived are kept.
    background.update(covered, [(tip[0], tip[1], t)])
    assert background.frame is covered
    assert background.change(covered, *tip, t) == pytest.approx(expected, abs=0.01)
    # Nothing kept: the background is the last frame, pointer included.
    background.update(covered, [])
    assert background.change(covered, *tip, t) == 0.0
    assert background.change(covered, 1.0, 1.0, t) == 0.0  # the template leaves the frame
    background.clear()
    assert background.frame is None and background.patches == []


def test_frame_motion_boxes_around_moving_blobs():
    cfg = CursorConfig(motion_threshold=14, max_blob_area=50, max_blobs=4)
    s = 4
    motion = np.zeros((60, 80), np.uint8)
    motion[10:13, 10:14] = 40  # a pointer-sized change
    luma = np.zeros((240, 320), np.uint8)
    sizes = [(20, 12)]  # (height, width) of the templates matched now

    one = FrameMotion(cfg).blob_boxes(AnalysedFrame(1, 0.0, luma, motion, False, scale=s), lambda: sizes)
    # Every top-left from which a 12 x 20 template overlaps the changed area.
    assert one == [(10 * s - 12, 10 * s - 20, 14 * s + 1, 13 * s + 1)]

    motion[40:43, 60:63] = 40  # a second one far away
    motion[30:40, 30:45] = 40  # and a large change (150 px): not a pointer
    motion[0:2, 0:2] = 10  # below the motion threshold
    frame = AnalysedFrame(2, 0.0, luma, motion, False, scale=s)
    found = FrameMotion(cfg)
    boxes = found.blob_boxes(frame, lambda: sizes)
    assert sorted(boxes) == sorted(
        [(10 * s - 12, 10 * s - 20, 14 * s + 1, 13 * s + 1), (60 * s - 12, 40 * s - 20, 63 * s + 1, 43 * s + 1)]
    )
    assert found.blob_boxes(frame, lambda: [(99, 99)]) is boxes  # made once per frame
    assert found.largest_blobs(frame, 1) == []  # the largest one is too large to be a pointer

    ignore = np.zeros((60, 80), bool)
    ignore[35:50, 55:70] = True  # a webcam over the second one
    masked = FrameMotion(cfg).blob_boxes(AnalysedFrame(3, 0.0, luma, motion, False, ignore, s), lambda: sizes)
    assert (60 * s - 12, 40 * s - 20, 63 * s + 1, 43 * s + 1) not in masked and len(masked) == 1
    assert FrameMotion(cfg).blob_boxes(AnalysedFrame(4, 0.0, luma, None, False, scale=s), lambda: sizes) == []


@pytest.mark.parametrize("seed", range(6))
def test_frame_motion_components_are_those_of_the_whole_mask(seed):
    """Components labelled within the box around the motion are the whole mask's, in the same order
    (scattered specks, blobs touching the frame's edges, one pixel)."""
    import cv2

    rng = np.random.default_rng(seed)
    motion = np.zeros((90, 160), np.uint8)
    if seed == 0:
        motion[44, 77] = 50
    else:
        y0, x0 = rng.integers(0, 60), rng.integers(0, 120)
        patch = rng.random((int(rng.integers(5, 30)), int(rng.integers(5, 40)))) < 0.2 * seed
        motion[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]][patch] = 60
        if seed % 2:
            motion[0, :5] = motion[-3:, -1] = 60  # at the edges
    frame = AnalysedFrame(seed, 0.0, np.zeros((360, 640), np.uint8), motion, False, scale=4)
    parts = FrameMotion(CursorConfig(motion_threshold=14))
    moved = parts.moved(frame)
    whole = cv2.connectedComponentsWithStats(moved, connectivity=8)[2]
    got = parts.components(frame, moved)
    assert np.array_equal(got[1:], whole[1:]) and len(got) > 1
    assert parts.components(frame, moved) is got  # made once per frame


def test_the_locator_and_its_parts_import_nothing_heavy():
    """OpenCV is imported where a part first correlates, not when the locator's modules load."""
    import subprocess
    import sys

    parts = [
        "cursor",
        "cursor_hits",
        "sprite_set",
        "frame_motion",
        "whole_frame_search",
        "box_matches",
        "background",
        "pointer_evidence",
        "view_history",
        "earlier_rests",
        "sprite_intake",
        "motion_judge",
        "ignored_regions",
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {parts!r}:\n"
        "    importlib.import_module('quilt_llava.narratives.' + name)\n"
        "print(','.join(m for m in ('cv2', 'av', 'torch') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def _settled_locator(blobs: list[tuple[int, int, int, int]]) -> tuple[TemplateCursorLocator, list]:
    """A locator whose track is verified on a learned sprite at (200, 200), hit in the last frame
    (the state in which the sprite learner is not fed), with this frame's moving ``blobs``; returns
    it and the list the learner's feed is recorded in (the blobs it was shown)."""
    loc = TemplateCursorLocator(540)
    loc.track, loc.verified, loc.last_hit = (200.0, 200.0, loc.sprites.generic), True, 9
    loc.motion.largest_blobs = lambda frame, n: blobs  # type: ignore[method-assign]
    shown: list = []
    loc.intake.observe = lambda frame, b: shown.append(b) or []  # type: ignore[union-attr,method-assign]
    return loc, shown


def test_a_verified_track_does_not_blind_the_learner_to_motion_far_from_it():
    """While a verified track holds a learned sprite, the learner is not fed the frame's motion (the
    pointer is held; a sprite learned meanwhile would only be a variant of it). But where that track
    sits on a still lookalike and the pointer, now a shape not yet learned, moves elsewhere, the
    learner never saw the new shape (the independent corpus's draw 10 ``he-handhelds``: the arrow
    sprite carried on tissue through both views of the hand, hand recall 0.00). Blobs beyond the
    learner's largest pointer from the track are shown to it; blobs near the track are not."""
    luma = np.zeros((540, 960), np.uint8)
    frame = AnalysedFrame(10, 0.4, luma, np.zeros((135, 240), np.uint8), False)
    far, near = (600, 400, 640, 440), (210, 190, 240, 230)
    loc, shown = _settled_locator([near, far])
    loc._learn(frame)
    assert shown == [[far]]
    loc, shown = _settled_locator([near])
    loc._learn(frame)
    assert shown == [None]  # (None: the learner is not told whether anything moved)


def test_a_resting_track_is_not_carried_blind_in_the_frame_a_sprite_is_learned():
    """A verified track whose spot shows no motion is carried over without matching. In the frame
    the learner takes in a new shape, the frame is searched instead (the new shape's whole-frame
    search is due), so the pointer found elsewhere can take the track from a still lookalike."""
    loc = TemplateCursorLocator(540)
    loc.track, loc.verified, loc.last_hit, loc.last_changed = (200.0, 200.0, 0), True, 9, True
    frame = AnalysedFrame(10, 0.4, np.zeros((540, 960), np.uint8), np.zeros((135, 240), np.uint8), False)
    assert loc._still_pointer(frame)
    loc.just_learned = True
    assert not loc._still_pointer(frame)


def _circled_spot_and_webcam() -> tuple[np.ndarray, np.ndarray, AnalysedFrame]:
    """A 960 x 540 frame whose ignored cells (quarter size) are a spot the pointer circles and a
    webcam's box."""
    luma = np.zeros((540, 960), np.uint8)
    given = np.zeros((135, 240), bool)
    given[60:80, 100:130] = True  # where the pointer circles
    given[100:130, 180:230] = True  # a webcam box
    return luma, given, AnalysedFrame(10, 0.2, luma, None, False, given, 4)


def test_ignored_regions_leave_out_the_one_that_holds_the_pointer_and_what_overlaps_it_later():
    """A region marked as ignored (a webcam: it changed in most still frames) that holds the track of
    a learned sprite when it is marked is the pointer's haunt (a 64 px arrow circling one spot changes
    it as often as a webcam does: the independent corpus's draw 1 ``he-handhelds``, whose arrow was
    ignored through its whole first view, arrow recall 0.49). It is not ignored, nor is a region
    marked later that overlaps it; other regions are."""
    from quilt_llava.narratives.ignored_regions import IgnoredRegions

    luma, given, frame = _circled_spot_and_webcam()
    regions = IgnoredRegions()
    used = regions.frame(frame, (460.0, 280.0)).ignore
    assert used is not None and not used[60:80, 100:130].any() and used[100:130, 180:230].all()
    assert regions.frame(AnalysedFrame(11, 0.2, luma, None, False, given, 4), None).ignore is used  # (made once)
    later = np.zeros_like(given)
    later[65:90, 110:140] = True  # the busy spot marked anew, moved a little: still the pointer's
    later[100:130, 180:230] = True
    used = regions.frame(AnalysedFrame(35, 0.6, luma, None, False, later, 4), None).ignore
    assert used is not None and not used[65:90, 110:140].any() and used[100:130, 180:230].all()
    # Without the pointer in it, a region marked is ignored as the caller marks it.
    fresh = IgnoredRegions()
    assert fresh.frame(frame, None) is frame
    assert fresh.frame(frame, (900.0, 20.0)) is frame


def test_a_region_claimed_by_the_learner_is_no_longer_ignored():
    """A region the sprite learner claims (a flat sprite learned in it, the region changed by the
    pointer alone: ``SpriteLearner.claimed``) is left out of the ignored regions from then on, and
    so is one marked later that overlaps it; other regions stay ignored."""
    from quilt_llava.narratives.ignored_regions import IgnoredRegions

    luma, given, frame = _circled_spot_and_webcam()
    regions = IgnoredRegions()
    assert regions.frame(frame, None) is frame  # no track: both ignored
    regions.claim([(460.0, 280.0)], 4)
    used = regions.frame(frame, None).ignore
    assert used is not None and not used[60:80, 100:130].any() and used[100:130, 180:230].all()
    later = np.zeros_like(given)
    later[65:90, 110:140] = True
    later[100:130, 180:230] = True
    used = regions.frame(AnalysedFrame(35, 0.6, luma, None, False, later, 4), None).ignore
    assert used is not None and not used[65:90, 110:140].any() and used[100:130, 180:230].all()


def test_the_locator_ignores_no_region_that_holds_its_learned_sprite_track():
    """The locator's parts see the caller's ignored regions less the one its track of a learned
    sprite lies in when it is marked; a track of the arrow prior (which matches tissue) does not
    count, and the chroma locator (``pointer_haunts`` off) keeps every region."""
    luma = np.zeros((540, 960), np.uint8)
    given = np.zeros((135, 240), bool)
    given[40:60, 40:60] = True  # holds (200, 200)

    def seen(loc: TemplateCursorLocator, k: int) -> np.ndarray | None:
        loc.track, loc.verified, loc.last_hit = (200.0, 200.0, k), True, 9
        frames: list[AnalysedFrame] = []
        loc._learn = lambda frame: frames.append(frame) or []  # type: ignore[method-assign]
        loc._process_still = lambda frame: []  # type: ignore[method-assign]
        loc.process(AnalysedFrame(10, 0.4, luma, np.zeros((135, 240), np.uint8), False, given, 4))
        return frames[0].ignore

    loc = TemplateCursorLocator(540)
    assert seen(loc, loc.sprites.generic) is None
    loc = TemplateCursorLocator(540)
    assert seen(loc, 0) is given
    loc = TemplateCursorLocator(540, CursorConfig(pointer_haunts=False))
    assert seen(loc, loc.sprites.generic) is given
