"""Timelines that do not flicker: window probabilities smoothed before segments are cut.

Each window of a timeline (``research.engine.timeline``) is classified alone, so one doubtful window in a
long segment becomes a segment of its own. Two steps, both with settings in seconds (so that they mean the
same at any window and stride):

- a **sticky HMM** decoded by Viterbi: the hidden state is the class; each window's emission is its
  calibrated probability (the classifier's posterior used as a scaled likelihood, Bourlard & Morgan 1994,
  without dividing by the training prior: a lab's video has its own); the class stays from one window to the
  next with probability ``1 - stride / segment_s``, the geometric run length whose mean is the expected
  segment length ``segment_s`` (the sticky HMM of Fox et al. 2011, with its self-transition set from the
  segment length rather than learned), and moves to each other class alike. Viterbi costs O(windows x classes);
- a **minimum segment length**: a segment shorter than ``min_segment_s`` is absorbed by the neighbour whose
  class its windows give the higher mean probability, shortest first, until none is left (a heap: O(S log S)).

The settings are chosen on held-out data, never on the video being scored (``choose_smoothing``: the grid
point with the best mean of the segmentation scores of ``research.engine.segment_metrics`` over held-out
window sequences). Where no choice is given, ``DEFAULT``.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from research.engine.segment_metrics import timeline_scores

EPS = 1e-12  # the smallest probability an emission takes: log(0) would forbid a class outright


@dataclass(frozen=True)
class Smoothing:
    """How a timeline's windows are smoothed: ``segment_s`` (expected segment length, seconds; None: no HMM,
    each window's top class) and ``min_segment_s`` (shorter segments are absorbed; 0: none)."""

    segment_s: float | None
    min_segment_s: float = 0.0

    @property
    def off(self) -> bool:
        return self.segment_s is None and self.min_segment_s <= 0

    def record(self) -> dict[str, Any]:
        return {"segment_s": self.segment_s, "min_segment_s": self.min_segment_s}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Smoothing:
        segment = record.get("segment_s")
        return cls(None if segment is None else float(segment), float(record.get("min_segment_s") or 0.0))


NONE = Smoothing(None, 0.0)
# Where neither the command nor the classifier file gives settings: what choose_smoothing chose on the held-out
# timelines of benchmarks/timeline.py --quality (30 videos of held-out families, 6 sources each, segments of
# 5-36 s; benchmarks/RESULTS.md): at window 2 s and stride 1 s, where raw timelines flicker, every fold's choice
# on the other folds was no HMM and no segment under 3 s (edit +0.13, F1@50 +0.08 on the fold's own videos, frame
# accuracy unchanged); at window 4 s and stride 2 s the same 3 s rounds up to the 2 windows chosen there. Windows
# a stride of 3 s or more apart are left as they are. A lab's longer segments want a classifier file's own choice
# or --segment-s.
DEFAULT = Smoothing(None, 3.0)


def resolve(segment_s: float | None, min_segment_s: float | None, smooth: bool, record: dict | None) -> Smoothing:
    """The settings a timeline uses: none where ``smooth`` is off; else each setting given (the command's),
    else the classifier file's (``record``: chosen on held-out data by the pipeline), else ``DEFAULT``'s."""
    if not smooth:
        return NONE
    chosen = Smoothing.from_record(record) if record else DEFAULT
    return Smoothing(
        chosen.segment_s if segment_s is None else float(segment_s),
        chosen.min_segment_s if min_segment_s is None else float(min_segment_s),
    )


def stride_of(starts: np.ndarray, window: float) -> float:
    """Seconds between window starts (the median step: a tail window may sit closer); one window: its length."""
    return float(np.median(np.diff(starts))) if len(starts) > 1 else float(window)


def viterbi(probs: np.ndarray, stay: float) -> np.ndarray:
    """``[N]`` the most probable class path of a sticky HMM: emissions ``probs`` [N, C], self-transition
    ``stay``, every other class ``(1 - stay) / (C - 1)``, a uniform start. O(N x C): the best move into a
    class is from the best other class, the top one or (into the top one itself) the second."""
    n, c = probs.shape
    if n == 0 or c == 1:
        return np.zeros(n, dtype=np.int64)
    stay = float(np.clip(stay, 1.0 / c, 1 - EPS))
    log_stay, log_move = np.log(stay), np.log((1 - stay) / (c - 1))
    emission = np.log(np.maximum(probs, EPS))
    back = np.empty((n, c), dtype=np.int64)
    classes = np.arange(c)
    delta = emission[0] - np.log(c)
    for t in range(1, n):
        order = np.argpartition(-delta, 1)[:2] if c > 2 else np.argsort(-delta)
        top, second = (order[0], order[1]) if delta[order[0]] >= delta[order[1]] else (order[1], order[0])
        other = np.where(classes == top, second, top)
        stayed, moved = delta + log_stay, delta[other] + log_move
        keep = stayed >= moved  # ties: stay (fewer segments)
        back[t] = np.where(keep, classes, other)
        delta = np.where(keep, stayed, moved) + emission[t]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(delta.argmax())
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def absorb_short(path: np.ndarray, probs: np.ndarray, min_windows: int) -> np.ndarray:
    """``path`` with every segment of fewer than ``min_windows`` windows absorbed, shortest first (ties: the
    earliest), by the neighbour whose class its windows give the higher mean probability (ties: the longer
    neighbour); neighbours of one class that meet are joined. A video shorter than the minimum keeps its one
    segment. O(N x C + S log S) with a heap of segments."""
    path = np.asarray(path, dtype=np.int64)
    if min_windows <= 1 or len(path) < 2:
        return path.copy()
    starts = np.r_[0, np.flatnonzero(path[1:] != path[:-1]) + 1]
    ends = np.r_[starts[1:], len(path)].astype(np.int64)
    labels, starts = path[starts].copy(), starts.astype(np.int64)
    s = len(labels)
    left, right = np.arange(-1, s - 1), np.r_[np.arange(1, s), -1]
    alive = np.ones(s, dtype=bool)
    cumulative = np.vstack([np.zeros(probs.shape[1]), np.cumsum(probs, axis=0)])  # window sums of each class
    heap = [(int(ends[i] - starts[i]), int(starts[i]), i) for i in range(s)]
    heapq.heapify(heap)

    def join(keep: int, gone: int) -> None:  # ``gone`` (adjacent to ``keep``) becomes part of ``keep``
        starts[keep], ends[keep] = min(starts[keep], starts[gone]), max(ends[keep], ends[gone])
        alive[gone] = False
        if left[keep] == gone:
            left[keep] = left[gone]
            if left[gone] >= 0:
                right[left[gone]] = keep
        else:
            right[keep] = right[gone]
            if right[gone] >= 0:
                left[right[gone]] = keep

    while heap:
        length, _, i = heapq.heappop(heap)
        if not alive[i] or length != ends[i] - starts[i]:
            continue  # merged away, or grown since this entry
        if length >= min_windows or (left[i] < 0 and right[i] < 0):
            break
        mass = cumulative[ends[i]] - cumulative[starts[i]]
        sides = [j for j in (left[i], right[i]) if j >= 0]
        into = max(sides, key=lambda j: (mass[labels[j]], ends[j] - starts[j]))
        other = right[i] if into == left[i] else left[i]
        join(into, i)
        if other >= 0 and labels[other] == labels[into]:  # the absorbed segment was all that parted them
            join(into, other)
        heapq.heappush(heap, (int(ends[into] - starts[into]), int(starts[into]), int(into)))
    out = np.empty_like(path)
    for i in np.flatnonzero(alive):
        out[starts[i] : ends[i]] = labels[i]
    return out


def smooth(probs: np.ndarray, stride: float, settings: Smoothing) -> np.ndarray:
    """``[N]`` each window's class after the sticky HMM (where ``segment_s`` is set) and the minimum segment
    length (windows ``stride`` seconds apart); with ``NONE``, each window's top class."""
    probs = np.asarray(probs, dtype=np.float64)
    path = probs.argmax(1) if settings.segment_s is None else viterbi(probs, 1.0 - stride / settings.segment_s)
    if settings.min_segment_s > 0:
        path = absorb_short(path, probs, int(np.ceil(settings.min_segment_s / stride - 1e-9)))
    return path


# ------------------------------------------------------------------ choosing the settings on held-out data

SEGMENT_WINDOWS = (None, 2, 4, 8, 16, 32, 64)  # expected segment lengths tried, in windows (None: no HMM)
MIN_WINDOWS = (0, 2, 3, 4, 6)  # minimum segment lengths tried, in windows (0: none)


def choose_smoothing(
    sequences: list[tuple[np.ndarray, np.ndarray]],
    stride: float,
    segment_windows: tuple[int | None, ...] = SEGMENT_WINDOWS,
    min_windows: tuple[int, ...] = MIN_WINDOWS,
) -> dict[str, Any]:
    """The settings with the best mean segmentation score over held-out window sequences: each ``(probs [N, C],
    truth [N])`` (the true class at each window's centre) of a video no classifier that scored it was trained
    on, windows ``stride`` seconds apart. The score of a setting: the mean over videos of the mean of frame
    accuracy, edit score and F1@{10, 25, 50} (each in [0, 1]); ties go to less smoothing (earlier in the grid).
    Returns the chosen ``Smoothing``'s record, its score and every grid point's."""
    tried = []
    for segment, minimum in itertools.product(segment_windows, min_windows):
        settings = Smoothing(None if segment is None else segment * stride, minimum * stride)
        per_video = [
            np.mean(list(timeline_scores(smooth(p, stride, settings), t).values())) for p, t in sequences if len(t)
        ]
        tried.append((float(np.mean(per_video)), settings))
    best = max(range(len(tried)), key=lambda i: (round(tried[i][0], 12), -i))
    return {
        "smoothing": tried[best][1].record(),
        "score": tried[best][0],
        "score_is": "mean over held-out videos of mean(frame accuracy, edit, F1@10, F1@25, F1@50)",
        "stride": stride,
        "grid": [{"score": score} | settings.record() for score, settings in tried],
    }
