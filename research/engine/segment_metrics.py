"""How good a timeline is: frame accuracy, the segmental edit score and F1@k, as action segmentation scores them.

The measures of MS-TCN (Farha & Gall 2019, CVPR; edit score and F1@k from Lea et al. 2017, "Temporal
convolutional networks for action segmentation and detection", CVPR), on two label sequences of one video
sampled at the same instants (frames, windows, or a regular grid of times):

- **frame accuracy**: the share of instants whose predicted class is the true one;
- **edit score**: 1 - the Levenshtein distance between the sequences of segment labels (runs), over the
  longer one's length: it counts flicker (extra segments) and missed segments, not where boundaries fall;
- **F1@k**: a predicted segment is a true positive when its IoU with a true segment of the same class is at
  least k and that true segment was not matched before (each predicted segment is matched to its best-overlap
  true segment, in order); F1 of those counts. k = 0.10, 0.25, 0.50.

Scores are fractions (MS-TCN prints them x 100). Cost: linear in the instants for the accuracy and the runs,
segments x segments for the edit score and F1 (a timeline of an hour holds hundreds of segments, not more).
"""

from __future__ import annotations

import numpy as np

OVERLAPS = (0.10, 0.25, 0.50)  # MS-TCN's thresholds: loose, medium, strict


def runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(label, start, end)`` of each run of equal labels (``end`` exclusive)."""
    labels = np.asarray(labels)
    if not len(labels):
        empty = np.zeros(0, dtype=np.int64)
        return labels[:0], empty, empty
    starts = np.r_[0, np.flatnonzero(labels[1:] != labels[:-1]) + 1]
    ends = np.r_[starts[1:], len(labels)]
    return labels[starts], starts, ends


def frame_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(truth))) if len(truth) else float("nan")


def edit_score(predicted: np.ndarray, truth: np.ndarray) -> float:
    """1 - Levenshtein(segment labels of ``predicted``, of ``truth``) / the longer's number of segments."""
    p, t = runs(predicted)[0], runs(truth)[0]
    if not len(p) and not len(t):
        return 1.0
    row = np.arange(len(t) + 1, dtype=np.int64)  # the distance from the empty prefix of p
    for i in range(1, len(p) + 1):
        previous, row = row, np.empty_like(row)
        row[0] = i
        substitute = previous[:-1] + (t != p[i - 1])
        deleted = previous[1:] + 1
        best = np.minimum(substitute, deleted)
        for j in range(1, len(t) + 1):  # insertions depend on the row being built: a running minimum
            row[j] = min(best[j - 1], row[j - 1] + 1)
    return float(1 - row[-1] / max(len(p), len(t)))


def f1_at(predicted: np.ndarray, truth: np.ndarray, overlap: float) -> float:
    """F1 of predicted segments matched to true ones of the same class at IoU >= ``overlap`` (MS-TCN's
    ``f_score``: each predicted segment, in order, to its best-overlap true segment, each true one once)."""
    p_label, p_start, p_end = runs(predicted)
    t_label, t_start, t_end = runs(truth)
    hit = np.zeros(len(t_label), dtype=bool)
    tp = fp = 0
    for label, start, end in zip(p_label, p_start, p_end, strict=True):
        intersection = np.minimum(end, t_end) - np.maximum(start, t_start)
        union = np.maximum(end, t_end) - np.minimum(start, t_start)
        iou = np.where(t_label == label, intersection / union, 0.0)
        best = int(iou.argmax()) if len(iou) else -1
        if best >= 0 and iou[best] >= overlap and not hit[best]:
            tp += 1
            hit[best] = True
        else:
            fp += 1
    fn = len(t_label) - int(hit.sum())
    return float(2 * tp / (2 * tp + fp + fn)) if tp else 0.0


def timeline_scores(predicted: np.ndarray, truth: np.ndarray, overlaps: tuple[float, ...] = OVERLAPS) -> dict:
    """Frame accuracy, edit score and F1 at each overlap (``f1@10``, ...) of one video."""
    return {"accuracy": frame_accuracy(predicted, truth), "edit": edit_score(predicted, truth)} | {
        f"f1@{round(k * 100)}": f1_at(predicted, truth, k) for k in overlaps
    }
