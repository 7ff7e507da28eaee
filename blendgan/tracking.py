"""Faces followed through a video, and their landmarks or codes smoothed over time.

Pass 1 of `blendgan stylize VIDEO` records every frame's faces; this module links them into tracks (a face
in frame t is the face of frame t-1 whose box overlaps it most) and smooths each track's values with a
centred Gaussian over the track's own frames. The whole clip is known before anything is smoothed, so the
filter looks ahead as well as back (no lag, unlike a causal filter), and a face that appears, leaves or is
missed for a few frames is smoothed only over the frames where it is. `FaceFollower` decides on which frames
pass 1 runs the face detector at all (``--detect_every``) and follows the faces on the others.
"""

from __future__ import annotations

import numpy as np

#: boxes of consecutive frames overlapping at least this much (intersection over union) are one face
MIN_IOU = 0.3
#: a track survives this many frames without its face (a missed detection, a hand in front of it)
MAX_GAP = 5


def box_iou(a, b) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def link_tracks(
    boxes_per_frame: list[list[tuple]], min_iou: float = MIN_IOU, max_gap: int = MAX_GAP
) -> list[list[int]]:
    """Track ids (0, 1, ...) for every face of every frame, from the faces' boxes: greedy matching of each
    frame's faces to the open tracks by box overlap, best pairs first."""
    ids, open_tracks, next_id = [], {}, 0  # open: id -> (last box, last frame)
    for t, boxes in enumerate(boxes_per_frame):
        open_tracks = {k: v for k, v in open_tracks.items() if t - v[1] <= max_gap + 1}
        pairs = sorted(
            ((box_iou(b, last), i, k) for i, b in enumerate(boxes) for k, (last, _) in open_tracks.items()),
            reverse=True,
        )
        taken_faces, taken_tracks, frame_ids = set(), set(), [None] * len(boxes)
        for iou, i, k in pairs:
            if iou < min_iou:
                break
            if i in taken_faces or k in taken_tracks:
                continue
            frame_ids[i] = k
            taken_faces.add(i)
            taken_tracks.add(k)
        for i in range(len(boxes)):
            if frame_ids[i] is None:
                frame_ids[i] = next_id
                next_id += 1
            open_tracks[frame_ids[i]] = (boxes[i], t)
        ids.append(frame_ids)
    return ids


def smooth_over_time(frames: np.ndarray, values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted average of one track's values over its frames: ``values[j]`` belongs to frame
    ``frames[j]`` (increasing); each output is the average of the values within 3 sigma frames of it,
    weighted by exp(-d^2 / 2 sigma^2). ``sigma`` 0 returns the values unchanged."""
    values = np.asarray(values)
    if sigma <= 0 or len(values) < 2:
        return values.copy()
    frames = np.asarray(frames, dtype=np.float64)
    flat = values.reshape(len(values), -1).astype(np.float64)
    out = np.empty_like(flat)
    reach = 3.0 * sigma
    lo = hi = 0
    for j, t in enumerate(frames):
        while frames[lo] < t - reach:
            lo += 1
        while hi < len(frames) and frames[hi] <= t + reach:
            hi += 1
        w = np.exp(-0.5 * ((frames[lo:hi] - t) / sigma) ** 2)
        out[j] = w @ flat[lo:hi] / w.sum()
    return out.reshape(values.shape).astype(values.dtype)


def smooth_tracks(track_ids: np.ndarray, frame_index: np.ndarray, values: np.ndarray, sigma: float) -> np.ndarray:
    """``values`` (one row per face entry) smoothed over time within each track (entries in frame order)."""
    out = np.array(values, copy=True)
    for k in np.unique(track_ids):
        rows = np.nonzero(track_ids == k)[0]
        rows = rows[np.argsort(frame_index[rows], kind="stable")]
        out[rows] = smooth_over_time(frame_index[rows], values[rows], sigma)
    return out


#: frames over which a track's stylized face fades in where the face appears and out where it leaves
FADE_FRAMES = 3


def fill_gaps(frames: np.ndarray, tracks: np.ndarray, values: np.ndarray, max_gap: int = MAX_GAP):
    """Entries for the frames a track missed inside its span: (frames, tracks, values) of the new entries only.

    A track that lost its face for up to `max_gap` frames (a missed detection: `link_tracks` keeps it open that
    long) gets, for each missed frame, the value linearly interpolated between the entries on either side
    (landmarks, boxes: any array whose first axis is the entry). Gaps are never filled before a track's first
    entry or after its last: there the face was not seen at all."""
    new_frames, new_tracks, new_values = [], [], []
    values = np.asarray(values)
    for k in np.unique(tracks):
        rows = np.nonzero(tracks == k)[0]
        rows = rows[np.argsort(frames[rows], kind="stable")]
        for a, b in zip(rows[:-1], rows[1:]):
            t0, t1 = int(frames[a]), int(frames[b])
            if t1 - t0 < 2 or t1 - t0 - 1 > max_gap:
                continue
            for t in range(t0 + 1, t1):
                w = (t - t0) / (t1 - t0)
                new_frames.append(t)
                new_tracks.append(int(k))
                new_values.append((1 - w) * values[a].astype(np.float64) + w * values[b].astype(np.float64))
    rest = values.shape[1:]
    return (
        np.asarray(new_frames, np.int64),
        np.asarray(new_tracks, np.int64),
        np.asarray(new_values, values.dtype).reshape(-1, *rest) if new_values else np.zeros((0, *rest), values.dtype),
    )


def fade_weights(frames: np.ndarray, tracks: np.ndarray, first: int, stop: int, fade: int = FADE_FRAMES) -> np.ndarray:
    """A weight in (0, 1] per entry for the stylized face's mask: 1 inside a track, rising over the first `fade`
    frames of a track that starts after the clip's first frame `first` and falling over the last `fade` frames
    of one that ends before `stop`, so a face that appears or leaves is not switched on or off in one frame
    (a track that starts at the clip's first frame or runs to its end is at full weight there)."""
    weights = np.ones(len(frames), np.float64)
    for k in np.unique(tracks):
        rows = np.nonzero(tracks == k)[0]
        start, end = int(frames[rows].min()), int(frames[rows].max())
        for r in rows:
            t = int(frames[r])
            w = 1.0
            if start > first:
                w = min(w, (t - start + 1) / (fade + 1))
            if end < stop - 1:
                w = min(w, (end - t + 1) / (fade + 1))
            weights[r] = w
    return weights


def keyframes(frames: np.ndarray, tracks: np.ndarray, every: int) -> np.ndarray:
    """Which entries are encoded when only every `every`-th face of a track is: each track's 1st, (1+every)-th,
    ... entry in frame order, and its last (so every other entry lies between two encoded ones). `every` 1:
    all of them."""
    key = np.zeros(len(frames), bool)
    for k in np.unique(tracks):
        rows = np.nonzero(tracks == k)[0]
        rows = rows[np.argsort(frames[rows], kind="stable")]
        key[rows[:: max(1, int(every))]] = True
        key[rows[-1]] = True
    return key


def fill_between_keys(frames: np.ndarray, tracks: np.ndarray, values: np.ndarray, key: np.ndarray) -> np.ndarray:
    """`values` with each non-key entry replaced by the linear interpolation, along its track and over frames,
    of the nearest key entries before and after it (key entries are returned exactly as they are). An entry with
    a key on one side only takes that key's value."""
    out = np.array(values, copy=True)
    for k in np.unique(tracks):
        rows = np.nonzero(tracks == k)[0]
        rows = rows[np.argsort(frames[rows], kind="stable")]
        keys = rows[key[rows]]
        if len(keys) == 0 or len(keys) == len(rows):
            continue
        key_frames = frames[keys].astype(np.float64)
        for r in rows[~key[rows]]:
            j = int(np.searchsorted(key_frames, frames[r]))
            if j == 0 or j == len(keys):
                out[r] = values[keys[min(j, len(keys) - 1)]]
                continue
            a, b = keys[j - 1], keys[j]
            w = (frames[r] - frames[a]) / (frames[b] - frames[a])
            out[r] = ((1 - w) * values[a].astype(np.float64) + w * values[b].astype(np.float64)).astype(values.dtype)
    return out


# --------------------------------------------------------------------------- detection only where needed

#: side (pixels) of the grey thumbnails whose change between consecutive frames tells a cut
THUMB_SIDE = 32
#: a mean absolute change of the thumbnails (grey levels 0-255) above this is a cut: the smooth pan and zoom of
#: the test clips changes them by at most ~5 per frame, a cut to another photo or a shifted face by 36-72
#: (docs/video.md); a false cut only costs one detection, a missed one is caught at the next detection
CUT_THRESHOLD = 16.0
#: a followed face whose landmarks, with the box placed on them as at the detection, overlap the box they came from
#: less than this (intersection over union) ends its track
AGREE_IOU = 0.5


def thumbnail(bgr: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """A small grey copy of a BGR frame (``side`` pixels wide, area-averaged) for telling cuts."""
    import cv2

    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    return cv2.resize(grey, (side, max(1, round(side * h / w))), interpolation=cv2.INTER_AREA).astype(np.int16)


def frame_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails (grey levels)."""
    return float(np.abs(a - b).mean())


def _landmark_frame(landmarks: np.ndarray) -> np.ndarray:
    """Centre x, centre y and scale (RMS distance to the centre) of 68 landmarks."""
    lm = np.asarray(landmarks, np.float64)
    centre = lm.mean(axis=0)
    return np.array([*centre, np.sqrt(((lm - centre) ** 2).sum(axis=1).mean()) or 1.0])


def box_in_landmarks(box, landmarks) -> np.ndarray:
    """A box (left, top, right, bottom) in the frame of its face's landmarks (relative to their centre, in units of
    their scale): `box_on` places it on the same face's landmarks in another frame."""
    x, y, scale = _landmark_frame(landmarks)
    return (np.asarray(box, np.float64) - [x, y, x, y]) / scale


def box_on(landmarks, relative) -> np.ndarray:
    """The box (floats) that `relative` (`box_in_landmarks`) gives on these landmarks."""
    x, y, scale = _landmark_frame(landmarks)
    return np.array([x, y, x, y]) + np.asarray(relative) * scale


#: a followed face's box moves only once its landmarks moved by more than this share of the box's side
FOLLOW_STEP = 0.125


class _Followed:
    """A face found by the detector and followed since: its detector box, its landmarks' centre there, the box
    in the landmarks' frame, and the box of its latest frame."""

    def __init__(self, box, landmarks):
        self.box, self.last = tuple(int(v) for v in box), tuple(int(v) for v in box)
        self.centre = _landmark_frame(landmarks)[:2]
        self.relative = box_in_landmarks(box, landmarks)


class FaceFollower:
    """Which frames of a segment run the face detector, and the faces of the other frames.

    The detector runs on the segment's first frame, on every `every`-th frame after it, on a cut (the frame's
    thumbnail changed by more than `cut_threshold` from the previous frame's) and on the frame after a face was
    lost. On the other frames each face is followed from its detection: the landmark model runs on the box the
    detector gave it. dlib's detector moves its boxes in steps (the cells of its sliding window), and the landmark
    model's points move by several pixels when their box does; so the followed box stays where the detector put it
    until the landmarks show the face moved by more than `FOLLOW_STEP` of the box, and is then moved with them and
    the landmark model runs again on the moved box (no drift builds up: every frame is measured from the detection,
    not from the previous frame). A face whose landmarks leave the frame, whose box placed on its landmarks (as the
    detector's box sat on them) overlaps the box they came from less than `AGREE_IOU`, or that `keep(landmarks)`
    refuses, ends there. Make one per segment: a segment never depends on another's frames."""

    def __init__(self, every: int, cut_threshold: float = CUT_THRESHOLD):
        self.every, self.cut_threshold = max(1, int(every)), cut_threshold
        self.index, self.thumb, self.lost, self.faces = 0, None, False, []

    def step(self, bgr: np.ndarray, detect, landmarks_at, keep) -> list[tuple[tuple, np.ndarray]]:
        """(box, landmarks) of each face of the next frame `bgr`. `detect(bgr)`: the faces found (objects with
        `box` and `landmarks`, already chosen and filtered); `landmarks_at(bgr, box)`: the landmarks in a box;
        `keep(landmarks)`: whether a followed face still counts (its size)."""
        index, self.index = self.index, self.index + 1
        if self.every == 1:
            return [(tuple(f.box), f.landmarks) for f in detect(bgr)]
        thumb = thumbnail(bgr)
        cut = self.thumb is not None and frame_change(self.thumb, thumb) > self.cut_threshold
        self.thumb = thumb
        if index % self.every == 0 or cut or self.lost:
            return self._detected(bgr, detect, cut)
        height, width = bgr.shape[:2]
        out, kept = [], []
        for face in self.faces:
            box, lm = face.box, landmarks_at(bgr, face.box)
            moved = _landmark_frame(lm)[:2] - face.centre
            if np.abs(moved).max() > FOLLOW_STEP * (box[2] - box[0]):
                box = tuple(int(v) for v in np.rint(np.asarray(box) + np.tile(moved, 2)))
                lm = landmarks_at(bgr, box)
            inside = lm.min() >= 0 and lm[:, 0].max() < width and lm[:, 1].max() < height
            if not inside or box_iou(box_on(lm, face.relative), box) < AGREE_IOU or not keep(lm):
                self.lost = True
                continue
            face.last = box
            kept.append(face)
            out.append((box, lm))
        self.faces = kept
        return out

    def _detected(self, bgr, detect, cut):
        found = detect(bgr)
        previous = [] if cut else self.faces  # after a cut nothing carries over
        pairs = sorted(
            ((box_iou(f.box, p.last), i, j) for i, f in enumerate(found) for j, p in enumerate(previous)), reverse=True
        )
        matched, used = set(), set()
        for iou, i, j in pairs:
            if iou < MIN_IOU:
                break
            if i not in matched and j not in used:
                matched.add(i)
                used.add(j)
        self.lost = len(used) < len(previous)  # a face the detector did not find again: look again next frame
        self.faces = [_Followed(f.box, f.landmarks) for f in found]
        return [(tuple(f.box), f.landmarks) for f in found]
