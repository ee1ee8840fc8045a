"""The one cross-validation's folds: held-out families, and beside them held-out sources and single clips.

A lab asks three questions of a classifier, and each needs clips its models never saw in a
different way:

- ``family``: a new *kind* of video (a family the fold's models never saw: the fold's test part,
  grouped by ``cv.group_by``, as every grouped CV holds out);
- ``source``: a new source of a known kind (a whole source, the annotation's ``group``, of a family
  the fold trains on; the family keeps at least one other source in training);
- ``clip``: a new recording of a known source (one clip of a source that stays in training).

``cv_folds`` deals all three from one set of grouped folds, so one set of fold members scores every
kind: the headline and the choice read the ``family`` kind, the calibration and the familiarity score
all three. The ``source`` and ``clip`` rows of a fold are taken from its training part, class by class
(``held_out_sources`` and ``held_out_clips`` of each class's clips there), never a source or clip an earlier
fold held out as the same kind: every clip is scored at most once per kind.

Validation: with ``keep: last`` (a fixed schedule, nothing is chosen on validation) the held-out sources
and clips *are* the fold's validation part: the members report on them and never choose an epoch on
them, so the training part keeps what a separate validation carve would take. With ``keep: best`` the
validation part picks the epoch, so it is carved by group from the training part as before, and the
held-out sources and clips are scored only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from research.data.splits import carve_validation, group_codes, make_folds, starved_classes

KINDS = ("family", "source", "clip")
KIND_WHAT = {
    "family": "held-out families: a new kind of video",
    "source": "held-out sources of families the models trained on: a new source of a known kind",
    "clip": "held-out clips of sources the models trained on: a new recording of a known source",
}


@dataclass(frozen=True)
class Fold:
    """One fold's rows (indices into the collection), every array sorted; the parts are disjoint."""

    family: np.ndarray  # the test part: whole groups (families) no model of the fold saw
    source: np.ndarray  # whole sources of trained families
    clip: np.ndarray  # single clips of trained sources
    train: np.ndarray  # what the fold's members fit
    val: np.ndarray  # what they report on (keep: best, choose the epoch on)

    def held_out(self, kind: str) -> np.ndarray:
        return getattr(self, kind)

    @property
    def val_is_held_out(self) -> bool:
        """The validation part is the held-out sources and clips themselves (``keep: last``)."""
        return len(self.val) > 0 and np.array_equal(self.val, np.union1d(self.source, self.clip))


def cv_folds(
    labels: np.ndarray,
    groups: list[str],
    sources: list[str],
    folds: int,
    seed: int,
    held_out_sources: float,
    held_out_clips: float,
    val_fraction: float,
    carve_val: bool,
) -> list[Fold]:
    """``folds`` grouped folds of every clip (``groups``, e.g. families, never on two sides), each with its
    held-out sources (``sources``, the finer grouping, e.g. the annotation's ``group``) and clips.

    ``held_out_sources`` / ``held_out_clips``: the share of each class's clips in a fold's training part held
    out as whole sources / single clips. ``carve_val``: validation carved by group from the training part
    (``val_fraction``, ``keep: best``); else the held-out sources and clips are the validation part, and a
    carve is made only where there are none (e.g. one clip per source and no finer grouping)."""
    labels = np.asarray(labels, dtype=np.int64)
    group_of = group_codes(groups)
    source_of = group_codes([f"{g}\x00{s}" for g, s in zip(groups, sources, strict=True)])  # a source in one family
    used_sources: set[int] = set()
    used_clips: set[int] = set()
    out = []
    for k, test in enumerate(make_folds(labels, groups, folds, seed)):
        rng = np.random.default_rng([seed, k])
        rest = np.setdiff1d(np.arange(len(labels)), test)
        source = _whole_sources(rest, labels, group_of, source_of, held_out_sources, rng, used_sources)
        kept = np.setdiff1d(rest, source)
        clip = _single_clips(kept, labels, source_of, held_out_clips, rng, used_clips)
        held = np.union1d(source, clip)
        if carve_val or not len(held):
            fit, val = carve_validation(np.setdiff1d(rest, held), labels, groups, val_fraction, seed + k)
        else:
            fit, val = np.setdiff1d(rest, held), held
        out.append(Fold(np.sort(test), source, clip, np.sort(fit), np.sort(val)))
    return out


def _whole_sources(
    rest: np.ndarray,
    labels: np.ndarray,
    group_of: np.ndarray,
    source_of: np.ndarray,
    share: float,
    rng: np.random.Generator,
    used: set[int],
) -> np.ndarray:
    """Whole sources of ``rest`` whose family keeps another source there, about ``share`` of each class's
    clips (a source counts for its most common class), none an earlier fold held out (``used``)."""
    if share <= 0:
        return np.empty(0, dtype=np.int64)
    sources, clips_per_source = np.unique(source_of[rest], return_counts=True)
    family = {int(s): int(group_of[rest][source_of[rest] == s][0]) for s in sources}
    left = {}  # sources each family still has in training
    for s in sources:
        left[family[int(s)]] = left.get(family[int(s)], 0) + 1
    majority = {int(s): int(np.bincount(labels[rest][source_of[rest] == s]).argmax()) for s in sources}
    order = sorted((s for s in sources.tolist() if s not in used), key=lambda s: rng.random())  # seeded
    target = {c: share * n for c, n in enumerate(np.bincount(labels[rest]))}
    taken, held = [], dict.fromkeys(target, 0)
    size = dict(zip(sources.tolist(), clips_per_source.tolist(), strict=True))
    for s in order:
        c, f = majority[s], family[s]
        if left[f] < 2 or held[c] + size[s] / 2 > target[c]:  # the family's last source; or the class is full
            continue
        taken.append(s)
        left[f] -= 1
        held[c] += size[s]
    used.update(taken)
    return np.sort(rest[np.isin(source_of[rest], taken)])


def _single_clips(
    rest: np.ndarray,
    labels: np.ndarray,
    source_of: np.ndarray,
    share: float,
    rng: np.random.Generator,
    used: set[int],
) -> np.ndarray:
    """One clip each of sources of ``rest`` that keep another clip there, about ``share`` of each class's
    clips, none an earlier fold held out (``used``)."""
    if share <= 0:
        return np.empty(0, dtype=np.int64)
    counts = np.bincount(source_of[rest], minlength=int(source_of.max()) + 1)
    candidates = [int(i) for i in rest if counts[source_of[i]] >= 2]
    order = sorted((i for i in candidates if i not in used), key=lambda i: rng.random())
    target = {c: share * n for c, n in enumerate(np.bincount(labels[rest]))}
    taken, held, sources_taken = [], dict.fromkeys(target, 0), set()
    for i in order:
        c, s = int(labels[i]), int(source_of[i])
        if s in sources_taken or held[c] + 0.5 > target[c]:
            continue
        taken.append(i)
        sources_taken.add(s)
        held[c] += 1
    used.update(taken)
    return np.sort(np.asarray(taken, dtype=np.int64))


def fold_of_rows(folds: list[Fold], kind: str, n: int) -> np.ndarray:
    """``[n]``: the fold that held each clip out as ``kind``, -1 where none did."""
    out = np.full(n, -1, dtype=np.int64)
    for k, fold in enumerate(folds):
        out[fold.held_out(kind)] = k
    return out


def starved_folds(labels: np.ndarray, groups: list[str], folds: list[Fold], classes: list[str]) -> list[str]:
    """One line per class that a fold trains on with less than half the share of its clips the fold should
    give it (one group holding most of a class leaves the fold that holds it out almost without the class),
    naming the fold and the group; each class once."""
    lines: dict[str, str] = {}
    for k, fold in enumerate(folds):
        intended = len(fold.train) / max(len(labels), 1)  # the share of every class a fold trains on, balanced
        parts = {"train": fold.train, "test": fold.family}
        for line in starved_classes(labels, groups, parts, classes, intended, need_test=False):
            lines.setdefault(line.split(" keeps ")[0], f"fold {k}: {line}")
    return list(lines.values())
