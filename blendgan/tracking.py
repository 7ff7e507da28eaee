"""Faces followed through a video, and their landmarks or codes smoothed over time.

Pass 1 of `blendgan stylize VIDEO` records every frame's faces; this module links them into tracks (a face
in frame t is the face of frame t-1 whose box overlaps it most) and smooths each track's values with a
centred Gaussian over the track's own frames. The whole clip is known before anything is smoothed, so the
filter looks ahead as well as back (no lag, unlike a causal filter), and a face that appears, leaves or is
missed for a few frames is smoothed only over the frames where it is.
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
