"""`blendgan.tracking`: faces linked from frame to frame, gaps filled along a track, fades at a track's ends,
smoothing over time. Made-up boxes and values: no video, no detector."""

import numpy as np
import pytest

from blendgan import tracking


def box(x, y=0, side=100):
    return (x, y, x + side, y + side)


def flat(ids):
    return [k for frame in ids for k in frame]


def test_two_faces_keep_their_ids_as_they_move():
    frames = [[box(10 * t), box(500 - 10 * t)] for t in range(6)]
    ids = tracking.link_tracks(frames)
    assert all(frame == [0, 1] for frame in ids)
    # listed in the other order in some frames: the ids follow the boxes, not the order
    frames[3] = frames[3][::-1]
    ids = tracking.link_tracks(frames)
    assert ids[3] == [1, 0] and ids[4] == [0, 1]


def test_a_gap_up_to_the_limit_keeps_the_track_and_a_longer_one_starts_a_new_one():
    gap = tracking.MAX_GAP
    frames = [[box(0)]] + [[] for _ in range(gap)] + [[box(5)]]
    assert flat(tracking.link_tracks(frames)) == [0, 0]
    frames = [[box(0)]] + [[] for _ in range(gap + 1)] + [[box(5)]]
    assert flat(tracking.link_tracks(frames)) == [0, 1]


def test_a_face_that_jumps_away_is_a_new_track():
    ids = tracking.link_tracks([[box(0)], [box(0)], [box(400)]])
    assert flat(ids) == [0, 0, 1]


def test_two_faces_crossing_swap_ids_where_their_boxes_overlap_most():
    """Documented limit: linking is greedy by box overlap between consecutive frames, with no motion model, so
    two faces of the same size crossing each other can swap ids where the boxes overlap (the later frames then
    follow the swapped ids consistently)."""
    a = [box(0), box(40), box(60), box(100)]  # moving right
    b = [box(100), box(60), box(40), box(0)]  # moving left
    ids = tracking.link_tracks([[a[t], b[t]] for t in range(4)])
    assert ids[0] == [0, 1]
    assert ids[2] == [1, 0]  # at t=2 the box of a is nearer b's last box: swapped
    assert sorted(flat(ids)) == [0, 0, 0, 0, 1, 1, 1, 1]  # still two tracks, no new ones


def test_fill_gaps_interpolates_inside_a_track_only():
    frames = np.array([0, 1, 4, 5, 9, 20])
    tracks = np.array([0, 0, 0, 0, 0, 1])
    values = np.array([[0.0], [1.0], [4.0], [5.0], [9.0], [7.0]])
    new_frames, new_tracks, new_values = tracking.fill_gaps(frames, tracks, values, max_gap=3)
    assert new_frames.tolist() == [2, 3, 6, 7, 8]  # 5 -> 9 is a gap of 3: filled; nothing before 0 or after 20
    assert new_tracks.tolist() == [0] * 5
    np.testing.assert_allclose(new_values[:, 0], [2, 3, 6, 7, 8])  # linear between the neighbours
    new_frames, _, _ = tracking.fill_gaps(frames, tracks, values, max_gap=2)
    assert new_frames.tolist() == [2, 3]  # the 3-frame gap is over the limit


def test_fill_gaps_of_nothing_has_the_values_shape():
    frames, tracks, values = tracking.fill_gaps(np.zeros(0, int), np.zeros(0, int), np.zeros((0, 68, 2), np.float32))
    assert frames.shape == (0,) and tracks.shape == (0,) and values.shape == (0, 68, 2)


def test_fades_where_a_face_appears_or_leaves_but_not_at_the_clip_ends():
    frames = np.array([0, 1, 2, 3, 4, 5, 6, 7, 3, 4, 5, 6, 7, 8, 9])
    tracks = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    w = tracking.fade_weights(frames, tracks, first=0, stop=10, fade=3)
    # track 0 starts with the clip: full weight there; it leaves at 7, before the clip's end: fades out
    np.testing.assert_allclose(w[:8], [1, 1, 1, 1, 1, 0.75, 0.5, 0.25])
    # track 1 appears at 3: fades in; it runs to the clip's last frame: full weight there
    np.testing.assert_allclose(w[8:], [0.25, 0.5, 0.75, 1, 1, 1, 1])
    assert (w > 0).all()


@pytest.mark.parametrize("sigma", [0.0, 2.0])
def test_smoothing_keeps_a_still_face_and_a_constant_motion(sigma):
    frames = np.arange(20)
    still = np.ones((20, 3))
    assert np.allclose(tracking.smooth_over_time(frames, still, sigma), still)
    line = frames[:, None] * np.array([[1.0, 2.0]])
    inside = slice(7, 13)  # away from the ends, a symmetric filter keeps a straight line
    assert np.allclose(tracking.smooth_over_time(frames, line, sigma)[inside], line[inside])


def test_smoothing_is_per_track_and_reduces_jitter():
    rng = np.random.default_rng(0)
    frames = np.concatenate([np.arange(30), np.arange(30)])
    tracks = np.repeat([0, 1], 30)
    values = np.concatenate([np.zeros(30), np.full(30, 100.0)]) + rng.normal(0, 1, 60)
    smoothed = tracking.smooth_tracks(tracks, frames, values, 2.0)
    assert abs(smoothed[:30].mean()) < 1 and abs(smoothed[30:].mean() - 100) < 1  # tracks not mixed
    assert np.diff(smoothed[:30]).std() < 0.5 * np.diff(values[:30]).std()


def test_keyframes_every_k_and_each_tracks_last():
    frames = np.array([0, 1, 2, 3, 4, 5, 6, 2, 3, 4])
    tracks = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
    key = tracking.keyframes(frames, tracks, 3)
    assert key.tolist() == [True, False, False, True, False, False, True, True, False, True]
    assert tracking.keyframes(frames, tracks, 1).all()


def test_fill_between_keys_is_exact_on_keys_and_linear_between():
    frames = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    tracks = np.zeros(8, int)
    values = np.stack([frames * 2.0, -frames * 1.0], axis=1).astype(np.float32)
    values[[1, 2, 4, 5]] = np.nan  # not encoded
    key = ~np.isnan(values[:, 0])
    filled = tracking.fill_between_keys(frames, tracks, values, key)
    assert np.array_equal(filled[key], values[key])  # the encoded faces exactly
    np.testing.assert_allclose(filled[:, 0], frames * 2.0, rtol=1e-6)  # a straight line is recovered
    np.testing.assert_allclose(filled[:, 1], -frames * 1.0, rtol=1e-6)


class Found:
    def __init__(self, box):
        self.box, self.landmarks = box, face_points(box)


def face_points(box):
    """68 made-up landmarks spread over a box (only their centre and spread matter to the follower)."""
    left, top, right, bottom = box
    u = np.linspace(0.2, 0.8, 68)
    return np.stack([left + u * (right - left), top + u[::-1] * (bottom - top)], axis=1).astype(np.int64)


def test_the_follower_detects_on_schedule_after_a_loss_and_on_a_cut():
    """--detect_every 4 on made-up frames: the detector runs on frames 0 and 4; a face whose landmarks leave the
    frame ends its track there and the next frame is detected; a frame whose picture changed (a cut) is detected."""
    frames = [np.full((120, 160, 3), 100, np.uint8) for _ in range(10)]
    frames[8:] = [np.full((120, 160, 3), 220, np.uint8)] * 2  # a cut at frame 8
    detected, t_of = [], {}
    face = {"box": (40, 30, 100, 90)}

    def detect(bgr):
        detected.append(t_of["t"])
        return [Found(face["box"])]

    def landmarks_at(bgr, box):
        return face_points(face["box"])

    follower = tracking.FaceFollower(4)
    for t, frame in enumerate(frames):
        t_of["t"] = t
        if t == 2:
            face["box"] = (120, 30, 180, 90)  # the face runs out of the frame's right edge
        if t == 3:
            face["box"] = (40, 30, 100, 90)
        found = follower.step(frame, detect, landmarks_at, lambda lm: True)
        assert len(found) == (0 if t == 2 else 1), t
    assert detected == [0, 3, 4, 8]
