"""Accept or review: a threshold on the calibrated top probability whose accepted clips reach a target accuracy,
with a stated confidence, chosen from out-of-fold predictions.

A lab needs "accept these automatically, review those", and the accepted share's accuracy with a bound, not a
hope. ``choose_threshold`` takes held-out (out-of-fold) calibrated probabilities ``[N, C]``, labels and groups
and returns an ``AcceptRule``: the threshold (or None), the target, the confidence, the coverage it buys and the
accepted clips' accuracy with its lower bound. ``decide`` applies a rule to new probabilities: ``accept`` where
the top probability reaches the threshold, else ``review`` (no threshold: every clip ``review``).

The procedure, as the record states it (``METHOD``):

- **One clip per group.** Clips of one group (a source, a family) are not independent draws, and a binomial
  bound over all of them would count one family's forty near-identical clips as forty pieces of evidence.
  So the bound uses one clip per group, picked by a seeded generator (``one_per_group``: uniform within the
  group, from the groups and the seed alone, never from the model), and the claim is about a new clip of a
  new group drawn like these: give the grouping whose units you are willing to call independent (families
  for the strict claim, sources for new recordings of known kinds).
- **The test at one threshold.** Among the sampled clips whose top probability reaches ``t``, ``n`` are
  accepted and ``k`` of them are wrong. Given ``n`` they are independent draws from the clips above ``t``,
  so ``k ~ Binomial(n, risk(t))``. The null "accuracy above ``t`` is below the target" is rejected when
  ``P(Binomial(n, 1 - target) <= k) <= 1 - confidence``: exactly when the one-sided Clopper–Pearson lower
  bound of the accuracy, ``Beta(1 - confidence; n - k, k + 1)`` quantile, reaches the target.
- **Which threshold: fixed-sequence testing** (Learn then Test, Angelopoulos, Bates, Candès, Jordan and Lei
  2021). Choosing the lowest of many thresholds whose bound passes would be a selection that breaks the
  bound. Instead the thresholds form a fixed grid (``GRID_STEP``), tested in a fixed order from the highest
  down, each at the full level ``1 - confidence``; the procedure stops at the first that fails and keeps the
  last that passed. The family-wise error stays at ``1 - confidence``: a wrong claim needs the first
  threshold whose true accuracy is below the target to pass its own test. Thresholds above the start
  accept fewer sampled clips (``min_accepted``) than could ever pass even with no error, so the sequence
  starts at the highest grid threshold that accepts that many; the start depends on the probabilities
  alone, never on which clips are right. Confident errors above the start still count in every test
  below it (the accepted set of a threshold is everything above it).

Both views of the accepted share are recorded: on the one-per-group sample (the one the bound is about) and
on every clip (descriptive: what the lab would see on clips like these, without a bound). ``threshold_scores``
gives the same figures for a given threshold on another set (held-out families, held-out sources), and
``plot_risk_coverage`` draws the risk–coverage curves with the chosen threshold marked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import beta, binom

ACCEPT, REVIEW = "accept", "review"
METHOD = (
    "fixed-sequence testing (Learn then Test, Angelopoulos et al. 2021) from the highest threshold of a fixed grid "
    "down, each step a one-sided binomial (Clopper-Pearson) test of the accepted clips' accuracy at the full level, "
    "stopping at the first failure; one clip per group, picked by a seeded generator"
)
TARGET = 0.9  # the accepted clips' accuracy a lab asks for (issue 51's example)
CONFIDENCE = 0.95  # the probability that the claim holds: 1 in 20 runs may overstate it
SEED = 0  # which clip of each group the bound uses: any fixed seed, chosen before looking at the data
GRID_STEP = 0.005  # thresholds 1.000, 0.995, ...: finer than calibrated probabilities move between folds
# (a finer grid adds steps at which the sequence can stop, a coarser one loses coverage between its points)


@dataclass
class AcceptRule:
    """A chosen threshold with what backs it: plain data (``to_dict``/``from_dict``) for JSON and checkpoints."""

    threshold: float | None  # accept where the calibrated top probability >= this; None: review every clip
    target: float  # the accepted clips' accuracy asked for
    confidence: float  # the probability the claim holds
    method: str
    seed: int  # of the one-clip-per-group pick
    clips: int  # out-of-fold clips given
    groups: int  # distinct groups: the clips the bound used (one each)
    accepted: int  # of those, accepted at the threshold
    coverage: float  # accepted / groups
    accuracy: float | None  # of the accepted sampled clips
    lower_bound: float | None  # its one-sided Clopper-Pearson bound at ``confidence``
    all_accepted: int  # of every clip, accepted at the threshold (descriptive, no bound)
    all_coverage: float
    all_accuracy: float | None
    min_accepted: int  # sampled clips a threshold must accept before any error-free record could pass
    steps: list[dict[str, Any]] = field(default_factory=list)  # each tested threshold: n, errors, p, bound, passed

    @property
    def stopped_at(self) -> float | None:
        """The threshold whose test failed and ended the sequence (None: every grid threshold passed)."""
        failed = [s["threshold"] for s in self.steps if not s["passed"]]
        return failed[0] if failed else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AcceptRule:
        return cls(**{f: data[f] for f in cls.__dataclass_fields__ if f in data})


# ---------------------------------------------------------------- the bound


def lower_bound(correct: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided Clopper–Pearson lower bound of an accuracy seen as ``correct`` of ``n``: the ``p`` with
    ``P(Binomial(n, p) >= correct) = 1 - confidence`` (0 when nothing is right or nothing was seen)."""
    if n <= 0 or correct <= 0:
        return 0.0
    return float(beta.ppf(1.0 - confidence, correct, n - correct + 1))


def p_value(errors: int, n: int, target: float) -> float:
    """The p-value of "the accuracy is below ``target``" after ``errors`` wrong of ``n``: ``P(Binomial(n,
    1 - target) <= errors)``. It is ``<= 1 - confidence`` exactly when ``lower_bound`` reaches ``target``."""
    if n <= 0:
        return 1.0
    return float(binom.cdf(errors, n, 1.0 - target))


def min_accepted(target: float, confidence: float) -> int:
    """The fewest accepted clips whose test can pass at all: no error among them, ``target ** n <= 1 - confidence``."""
    return max(1, math.ceil(math.log(1.0 - confidence) / math.log(target) - 1e-12))


def one_per_group(groups: Sequence[str] | np.ndarray, seed: int = SEED) -> np.ndarray:
    """Indices of one clip per group, sorted: groups in sorted order, each clip of a group (in row order) equally
    likely, from ``seed`` alone. The model's output plays no part, so the pick cannot favour easy clips."""
    names, codes, counts = np.unique(np.asarray(groups, dtype=str), return_inverse=True, return_counts=True)
    order = np.argsort(codes, kind="stable")  # each group's clips together, in row order
    starts = np.cumsum(counts) - counts
    offsets = np.floor(np.random.default_rng(seed).random(len(names)) * counts).astype(np.int64)
    return np.sort(order[starts + np.minimum(offsets, counts - 1)])


def threshold_grid(step: float = GRID_STEP) -> np.ndarray:
    """The thresholds tested, highest first: 1, 1 - step, ..., down to 0 (fixed before any data is seen)."""
    count = round(1.0 / step)
    return np.round(np.linspace(1.0, 0.0, count + 1), 10)


# ---------------------------------------------------------------- the choice


def choose_threshold(
    probs: np.ndarray,
    labels: np.ndarray,
    groups: Sequence[str] | np.ndarray,
    target: float = TARGET,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
    step: float = GRID_STEP,
) -> AcceptRule:
    """The lowest threshold of the fixed sequence (see the module) whose accepted clips reach ``target`` accuracy
    with ``confidence``, from out-of-fold calibrated ``probs`` [N, C], ``labels`` [N] and ``groups`` [N].

    None when the first tested threshold already fails (or no threshold accepts ``min_accepted`` sampled
    clips): then every clip is reviewed, and the record says with which numbers.
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(labels) or len(labels) != len(groups):
        raise ValueError(f"probs [N, C], labels [N] and groups [N] must agree: {probs.shape}, {labels.shape}")
    if not 0 < target < 1 or not 0 < confidence < 1:
        raise ValueError(f"target and confidence must lie in (0, 1), got {target}, {confidence}")
    picked = one_per_group(groups, seed)
    top = probs[picked].max(axis=1)
    wrong = probs[picked].argmax(axis=1) != labels[picked]
    needed = min_accepted(target, confidence)
    # accepted and wrong counts at every grid threshold, in one pass over the sorted top probabilities
    order = np.argsort(-top, kind="stable")
    sorted_top, errors_so_far = top[order], np.cumsum(wrong[order])
    steps: list[dict[str, Any]] = []
    chosen: float | None = None
    for t in threshold_grid(step):
        n = int(np.searchsorted(-sorted_top, -t, side="right"))  # sampled clips with top >= t
        if n < needed:
            continue  # too few to ever pass: not a test (the start depends on the probabilities alone)
        k = int(errors_so_far[n - 1])
        p = p_value(k, n, target)
        passed = p <= 1.0 - confidence
        steps.append(
            {
                "threshold": float(t),
                "accepted": n,
                "errors": k,
                "p_value": p,
                "lower_bound": lower_bound(n - k, n, confidence),
                "passed": bool(passed),
            }
        )
        if not passed:
            break
        chosen = float(t)
        if n == len(picked):
            break  # every sampled clip accepted: lower thresholds test the same clips
    return _rule(probs, labels, picked, chosen, target, confidence, seed, needed, steps)


def _rule(
    probs: np.ndarray,
    labels: np.ndarray,
    picked: np.ndarray,
    threshold: float | None,
    target: float,
    confidence: float,
    seed: int,
    needed: int,
    steps: list[dict[str, Any]],
) -> AcceptRule:
    sample = _share(probs[picked], labels[picked], threshold)
    every = _share(probs, labels, threshold)
    return AcceptRule(
        threshold=threshold,
        target=target,
        confidence=confidence,
        method=METHOD,
        seed=seed,
        clips=len(labels),
        groups=len(picked),
        accepted=sample["accepted"],
        coverage=sample["coverage"],
        accuracy=sample["accuracy"],
        lower_bound=None if threshold is None else lower_bound(sample["correct"], sample["accepted"], confidence),
        all_accepted=every["accepted"],
        all_coverage=every["coverage"],
        all_accuracy=every["accuracy"],
        min_accepted=needed,
        steps=steps,
    )


def _share(probs: np.ndarray, labels: np.ndarray, threshold: float | None) -> dict[str, Any]:
    """Accepted count, coverage, correct count and accuracy of ``threshold`` on these clips."""
    if threshold is None or not len(labels):
        return {"accepted": 0, "coverage": 0.0, "correct": 0, "accuracy": None}
    kept = probs.max(axis=1) >= threshold
    n = int(kept.sum())
    correct = int((probs[kept].argmax(axis=1) == labels[kept]).sum())
    return {"accepted": n, "coverage": n / len(labels), "correct": correct, "accuracy": correct / n if n else None}


# ---------------------------------------------------------------- using a rule


def decide(rule: AcceptRule | Mapping[str, Any] | None, probs: np.ndarray) -> list[str]:
    """``accept`` or ``review`` per row of ``probs`` [N, C]: accept where the top probability reaches the rule's
    threshold. No rule, or a rule without a threshold: every clip ``review`` (nothing is accepted unbacked)."""
    probs = np.asarray(probs, dtype=np.float64).reshape(len(probs), -1)
    threshold = rule.get("threshold") if isinstance(rule, Mapping) else None if rule is None else rule.threshold
    if threshold is None:
        return [REVIEW] * len(probs)
    return [ACCEPT if p >= threshold else REVIEW for p in probs.max(axis=1)]


def threshold_scores(
    threshold: float | None,
    probs: np.ndarray,
    labels: np.ndarray,
    groups: Sequence[str] | np.ndarray | None = None,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> dict[str, Any]:
    """A given threshold on another set (held-out families, held-out sources): coverage and accuracy of the
    accepted clips over every clip; with ``groups``, also over one clip per group (seeded as in
    ``choose_threshold``) with the Clopper–Pearson lower bound of that accuracy at ``confidence``. The bound is
    a plain one for a threshold fixed beforehand: on the very clips the threshold was chosen from, read the
    rule's own bound instead (that one accounts for the choice)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    every = _share(probs, labels, threshold)
    out: dict[str, Any] = {
        "threshold": threshold,
        "clips": len(labels),
        "accepted": every["accepted"],
        "coverage": every["coverage"],
        "accuracy": every["accuracy"],
    }
    if groups is not None:
        picked = one_per_group(groups, seed)
        sample = _share(probs[picked], labels[picked], threshold)
        out |= {
            "groups": len(picked),
            "group_accepted": sample["accepted"],
            "group_coverage": sample["coverage"],
            "group_accuracy": sample["accuracy"],
            "group_lower_bound": lower_bound(sample["correct"], sample["accepted"], confidence)
            if sample["accepted"]
            else None,
            "confidence": confidence,
        }
    return out


def risk_coverage(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(coverage, risk)`` of accepting the k most confident clips, k = 1..N (ties broken by row order):
    the share accepted and the error rate among them."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    order = np.argsort(-probs.max(axis=1), kind="stable")
    wrong = (probs.argmax(axis=1) != labels)[order]
    k = np.arange(1, len(labels) + 1)
    return k / max(len(labels), 1), np.cumsum(wrong) / k


def plot_risk_coverage(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    rule: AcceptRule | None,
    path: str | Path,
    title: str = "risk-coverage",
) -> None:
    """Risk (error rate of the accepted clips) against coverage (their share), one line per ``name: (probs,
    labels)``; with a rule, its threshold marked on each line, the target risk ``1 - target`` as a dashed line
    and the tested sequence's upper bounds of the risk on the one-per-group sample."""
    import matplotlib  # only for this picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    for name, (probs, labels) in curves.items():
        coverage, risk = risk_coverage(probs, labels)
        (line,) = ax.plot(coverage, risk, linewidth=1.5, label=f"{name} ({len(labels)} clips)")
        if rule is not None and rule.threshold is not None:
            share = _share(np.asarray(probs, dtype=np.float64), np.asarray(labels), rule.threshold)
            if share["accepted"]:
                ax.plot(
                    share["coverage"],
                    1.0 - share["accuracy"],
                    marker="o",
                    markersize=7,
                    color=line.get_color(),
                    markeredgecolor="black",
                )
    if rule is not None:
        target = f"target risk {1 - rule.target:.2f}"
        ax.axhline(1.0 - rule.target, color="0.4", linestyle="--", linewidth=1, label=target)
        if rule.steps:
            ax.plot(
                [s["accepted"] / rule.groups for s in rule.steps],
                [1.0 - s["lower_bound"] for s in rule.steps],
                color="black",
                linestyle=":",
                marker=".",
                markersize=3,
                linewidth=1,
                label=f"{rule.confidence:.0%} upper bound, one clip per group ({rule.groups})",
            )
        chosen = "none" if rule.threshold is None else f"{rule.threshold:.3f}"
        title = f"{title}\nthreshold {chosen} (dots), accuracy target {rule.target:.2f} at {rule.confidence:.0%}"
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("coverage (share of clips accepted, most confident first)")
    ax.set_ylabel("risk (error rate of the accepted clips)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no version stamp: the same bytes on a rerun
    plt.close(fig)


def rule_summary(rule: AcceptRule, name: str = "held-out clips") -> str:
    """One line for a report: the threshold, its target and confidence, and the coverage it buys (or why none)."""
    if rule.threshold is None:
        first = rule.steps[0] if rule.steps else None
        why = (
            f"the first threshold tested, {first['threshold']:.3f}, accepts {first['accepted']} of {rule.groups} "
            f"groups' clips with {first['errors']} wrong (bound {first['lower_bound']:.3f})"
            if first
            else f"no threshold accepts the {rule.min_accepted} clips a bound needs"
        )
        return (
            f"{name}: no threshold reaches accuracy {rule.target:.2f} at {rule.confidence:.0%} confidence: {why}; "
            "every clip is reviewed"
        )
    return (
        f"{name}: accept at top probability >= {rule.threshold:.3f}: {rule.accepted} of {rule.groups} groups "
        f"(coverage {rule.coverage:.1%}), accuracy {rule.accuracy:.3f}, >= {rule.lower_bound:.3f} at "
        f"{rule.confidence:.0%} confidence (target {rule.target:.2f}); every clip: {rule.all_accepted} of "
        f"{rule.clips} accepted ({rule.all_coverage:.1%}), accuracy {rule.all_accuracy:.3f}"
    )


def accept_markdown(rule: AcceptRule, sets: Mapping[str, Mapping[str, Any]], chosen_on: str) -> list[str]:
    """Markdown lines for RESULTS.md: the rule (``rule_summary``) and a table of the threshold on each set,
    ``sets`` naming ``threshold_scores`` results (e.g. held-out families and held-out sources, with groups)."""

    def number(value: Any, form: str) -> str:
        return "-" if value is None else format(value, form)

    lines = [
        f"Method: {rule.method}; seed {rule.seed}.",
        "",
        rule_summary(rule, chosen_on) + ".",
        "",
        "| set | clips | accepted | coverage | accuracy | groups | accepted (one per group) | coverage | accuracy "
        f"| {rule.confidence:.0%} lower bound |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, score in sets.items():
        lines.append(
            f"| {name} | {score['clips']} | {score['accepted']} | {number(score['coverage'], '.1%')} | "
            f"{number(score['accuracy'], '.3f')} | {score.get('groups', '-')} | {score.get('group_accepted', '-')} | "
            f"{number(score.get('group_coverage'), '.1%')} | {number(score.get('group_accuracy'), '.3f')} | "
            f"{number(score.get('group_lower_bound'), '.3f')} |"
        )
    return lines


__all__ = [
    "ACCEPT",
    "CONFIDENCE",
    "GRID_STEP",
    "METHOD",
    "REVIEW",
    "SEED",
    "TARGET",
    "AcceptRule",
    "accept_markdown",
    "choose_threshold",
    "decide",
    "lower_bound",
    "min_accepted",
    "one_per_group",
    "p_value",
    "plot_risk_coverage",
    "risk_coverage",
    "rule_summary",
    "threshold_grid",
    "threshold_scores",
]
