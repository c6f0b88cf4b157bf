"""Did a training run underfit or overfit? One line of advice at the end of inat-train.

`check` compares the last train top-1 with the best val top-1 and looks at the slope of the val
curve over the last quarter of the run (issue 31: a recipe run ended at 57 % train top-1 with
its best val at the very last step, and nothing told the user). Its findings, each with advice:

  val_rising  val top-1 still rising at the end: the least-squares line through the evaluations
              of the last quarter of the run rises by more than the noise of one val top-1
              (2 binomial standard errors) over that quarter, and the best one is among them
              -> "train longer".
  underfit    train top-1 below UNDERFIT_TRAIN_TOP1 at the end: a network this size can fit its
              train set (Zhang et al. 2017, "Understanding deep learning requires rethinking
              generalization"), so a run ending well short of it was held back by its budget or
              its augmentation -> "less augmentation or more epochs". Not judged with MixUp /
              CutMix, whose mixed labels cap the train top-1 by design.
  overfit     train top-1 more than OVERFIT_GAP above the best val top-1 while val no longer
              rises -> "more regularisation (or more data)".
  val_fell    the last val top-1 below the best by more than the noise while val no longer
              rises: training on made it worse -> best.keras holds the best; "more
              regularisation or fewer epochs".

The two thresholds are round numbers, not fitted: 70 % train top-1 is far enough below 100 %
that augmentation noise alone does not explain it, and 25 points between train and val is
"train >> val" for any data set we know (Inception V3 on iNat2017 ends ~15-20 points apart).
The train top-1 is inat-train's: over the last --log_steps steps, on augmented batches.
"""

import dataclasses

UNDERFIT_TRAIN_TOP1 = 0.70
OVERFIT_GAP = 0.25
LAST_FRACTION = 0.25  # the "end" of the val curve: its last quarter (in epochs)


@dataclasses.dataclass(frozen=True)
class FitCheck:
  """What `check` found; `advice` is one line, "" when there is nothing to advise."""
  last_train_top1: float  # None when no step was logged
  best_val_top1: float    # None without val evaluations
  last_val_top1: float    # None without val evaluations
  val_rise_at_end: float  # fitted rise of val top-1 over the last quarter; None: < 2 evaluations
  noise: float            # 2 binomial standard errors of one val top-1 (fraction)
  findings: tuple         # names above, in the order of the advice
  advice: str


def _fitted_rise(curve):
  """Rise of the least-squares line through the last quarter's (epoch, top-1) points over the
  quarter's length; at least the last two points. None with fewer than two evaluations."""
  if len(curve) < 2:
    return None
  end = curve[-1][0]
  start = end * (1 - LAST_FRACTION)
  tail = [p for p in curve if p[0] >= start]
  if len(tail) < 2:
    tail = curve[-2:]
  xs, ys = [p[0] for p in tail], [p[1] for p in tail]
  mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
  spread = sum((x - mean_x) ** 2 for x in xs)
  if spread == 0:
    return None
  slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
  return slope * max(end - start, xs[-1] - xs[0])


def _percent(value):
  return f"{100 * value:.0f} %"


def check(last_train_top1, val_curve, val_images, mixed_labels=False):
  """The fit findings of a finished run.

  Args:
    last_train_top1: train top-1 (fraction) over the last logged steps, or None.
    val_curve: [(epoch, val top-1 fraction)] of the run's evaluations, in order; may be empty.
    val_images: images in one val evaluation (for the noise of a top-1).
    mixed_labels: MixUp or CutMix were on (their train top-1 is not comparable).

  Returns:
    A FitCheck.
  """
  curve = [(float(e), float(t)) for e, t in val_curve]
  best = max((t for _, t in curve), default=None)
  last = curve[-1][1] if curve else None
  noise = 0.0
  if last is not None and val_images:
    p = min(max(last, 1.0 / val_images), 1 - 1.0 / val_images)  # never 0 at 0 % or 100 %
    noise = 2 * (p * (1 - p) / val_images) ** 0.5
  rise = _fitted_rise(curve)
  best_at_end = bool(curve) and any(t == best for e, t in curve
                                    if e >= curve[-1][0] * (1 - LAST_FRACTION))
  rising = rise is not None and rise > noise and best_at_end
  clauses, findings = [], []
  if rising:
    findings.append("val_rising")
    clauses.append(f"val top-1 still rising at the last step (+{100 * rise:.1f} points over "
                   f"the last quarter of the run): train longer")
  if last_train_top1 is not None and not mixed_labels and last_train_top1 < UNDERFIT_TRAIN_TOP1:
    findings.append("underfit")
    clauses.append(f"train top-1 {_percent(last_train_top1)} at the end: less augmentation or "
                   f"more epochs")
  if not rising and best is not None and last_train_top1 is not None and (
      last_train_top1 - best > OVERFIT_GAP):
    findings.append("overfit")
    clauses.append(f"train top-1 {_percent(last_train_top1)} against best val top-1 "
                   f"{_percent(best)}: more regularisation (augmentation, label smoothing, "
                   f"weight decay) or more data")
  if not rising and best is not None and last < best - noise:
    findings.append("val_fell")
    clauses.append(f"val top-1 fell from its best {_percent(best)} to {_percent(last)} at the "
                   f"end (best.keras keeps the best): more regularisation or fewer epochs")
  return FitCheck(last_train_top1=last_train_top1, best_val_top1=best, last_val_top1=last,
                  val_rise_at_end=rise, noise=noise, findings=tuple(findings),
                  advice="; ".join(clauses))
