"""The fit check at the end of inat-train (issue 31 item 3): hand-made training curves."""

import json
import os

import pytest

from inat_tf import fit_check
from inat_tf import trained_model
from tests.conftest import TRAINED_MODEL_GROUP

# The run: train top-1 57 % at the end, val still climbing at the very last step.
UNDERFIT_CURVE = [(e, 0.04 * e / 3) for e in range(3, 31, 3)]  # 4 % at epoch 3 -> 40 % at 30
# Memorised: val peaked at epoch 10 and fell while train top-1 reached 99 %.
OVERFIT_CURVE = [(2, 0.20), (4, 0.35), (6, 0.45), (8, 0.52), (10, 0.55), (12, 0.53), (14, 0.50),
                 (16, 0.47), (18, 0.46), (20, 0.45)]


def test_underfitting_run_is_told_to_train_longer_with_less_augmentation():
  fit = fit_check.check(0.57, UNDERFIT_CURVE, val_images=520)
  assert fit.findings == ("val_rising", "underfit")
  assert "val top-1 still rising at the last step" in fit.advice
  assert "train longer" in fit.advice
  assert "train top-1 57 % at the end: less augmentation or more epochs" in fit.advice
  assert fit.best_val_top1 == pytest.approx(0.40) and fit.last_val_top1 == pytest.approx(0.40)
  # The last quarter (epochs 22.5-30: 24, 27, 30) rises 4 points per 3 epochs: 10 over 7.5.
  assert fit.val_rise_at_end == pytest.approx(0.10)


def test_overfitting_run_is_told_to_regularise():
  fit = fit_check.check(0.99, OVERFIT_CURVE, val_images=520)
  assert fit.findings == ("overfit", "val_fell")
  assert "train top-1 99 % against best val top-1 55 %: more regularisation" in fit.advice
  assert "fell from its best 55 % to 45 %" in fit.advice
  assert fit.val_rise_at_end < 0


def test_a_run_that_fits_and_has_settled_gets_no_advice():
  settled = [(e, min(0.8, 0.1 * e)) for e in range(1, 21)]
  fit = fit_check.check(0.92, settled, val_images=520)
  assert fit.findings == () and fit.advice == ""


def test_a_rise_within_the_noise_of_a_small_val_set_is_not_called_rising():
  # +2 points over the last quarter: beyond 2 standard errors on 5,000 images, not on 100.
  curve = [(e, 0.6 + 0.004 * e) for e in range(1, 21)]
  assert fit_check.check(0.9, curve, val_images=5000).findings == ("val_rising",)
  assert fit_check.check(0.9, curve, val_images=100).findings == ()


def test_mixed_labels_are_not_judged_underfit_and_one_evaluation_has_no_slope():
  fit = fit_check.check(0.55, [(60, 0.7)], val_images=520, mixed_labels=True)
  assert fit.findings == () and fit.val_rise_at_end is None
  assert fit_check.check(0.55, [(60, 0.7)], val_images=520).findings == ("underfit",)
  assert fit_check.check(None, [], val_images=0).findings == ()


@TRAINED_MODEL_GROUP
@pytest.mark.slow
def test_train_summary_holds_the_fit_check(trained_dir):
  """The shared trained model (one val evaluation, at the end): the check in its summary reads
  the same train and val figures as the summary itself."""
  with open(os.path.join(trained_dir, trained_model.TRAIN_SUMMARY)) as f:
    summary = json.load(f)
  fit = summary["fit_check"]
  assert fit["last_train_top1"] == summary["last_train_top1"]
  assert fit["best_val_top1"] == summary["final_val_top1"] == fit["last_val_top1"]
  assert fit["val_rise_at_end"] is None
  assert set(fit["findings"]) <= {"underfit", "overfit", "val_fell", "val_rising"}
