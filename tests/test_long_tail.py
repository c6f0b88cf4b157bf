"""long_tail.py on hand-made tables: shot buckets, losses, post-hoc adjustments, tune/report halves.

Fast tier (no training): every expected number below is worked out by hand in the comments.
"""

import math

import numpy as np
import pytest

from inat_tf import label_map as label_map_lib
from inat_tf import long_tail


def _label_map(train_counts):
  categories = [{"id": 10 * i + 3, "name": f"Species {i}", "supercategory": "Aves"}
                for i in range(len(train_counts))]
  return label_map_lib.LabelMap.from_categories(
      categories, {10 * i + 3: n for i, n in enumerate(train_counts)})


def test_shot_buckets_count_classes_on_a_hand_made_label_map():
  # The literature's edges: > 100 many, 20-100 medium, < 20 few; 100 and 20 are medium.
  label_map = _label_map([3919, 101, 100, 57, 20, 19, 1, 0])
  assert long_tail.shot_buckets(label_map.train_counts).tolist() == [
      "many", "many", "medium", "medium", "medium", "few", "few", "few"]
  # Per class: evaluated images, top-1 hits, top-5 hits; class 3 has no evaluated image.
  examples = [10, 4, 2, 0, 5, 3, 1, 2]
  top1 = [9, 2, 1, 0, 0, 0, 1, 0]
  top5 = [10, 4, 2, 0, 5, 3, 1, 1]
  shots = long_tail.shot_scores(examples, top1, top5, label_map.train_counts)
  assert shots["many"] == {"classes": 2, "images": 14, "top1": pytest.approx((0.9 + 0.5) / 2),
                           "top5": pytest.approx(1.0)}
  # Medium: classes 2 and 4 (class 3 was not evaluated): mean of 1/2 and 0/5.
  assert shots["medium"] == {"classes": 2, "images": 7, "top1": pytest.approx(0.25),
                             "top5": pytest.approx(1.0)}
  # Few: classes 5, 6, 7: top-1 0/3, 1/1, 0/2; top-5 3/3, 1/1, 1/2.
  assert shots["few"] == {"classes": 3, "images": 6, "top1": pytest.approx(1 / 3),
                          "top5": pytest.approx((1 + 1 + 0.5) / 3)}
  assert long_tail.format_shots(shots) == "many 70.0%, medium 25.0%, few 33.3%"


def test_a_bucket_without_classes_is_none_not_zero():
  shots = long_tail.shot_scores([2, 2], [1, 2], [2, 2], [5, 7])
  assert shots["many"] == {"classes": 0, "images": 0, "top1": None, "top5": None}
  assert long_tail.format_shots(shots) == "many n/a, medium n/a, few 75.0%"


def test_scores_from_logits_on_a_table():
  logits = np.array([[5., 4, 3, 2, 1, 0],   # label 0: top-1 hit
                     [5., 4, 3, 2, 1, 0],   # label 5: outside the top 5
                     [0., 1, 2, 3, 4, 5],   # label 1: in the top 5, not top-1
                     [0., 0, 0, 0, 0, 9]])  # label 5: top-1 hit
  scores = long_tail.scores_from_logits(logits, [0, 5, 1, 5], [150, 30, 1, 1, 1, 2])
  assert (scores["top1"], scores["top5"]) == (0.5, 0.75)
  assert scores["shots"]["many"]["top1"] == 1.0 and scores["shots"]["medium"]["top1"] == 0.0
  assert scores["shots"]["few"] == {"classes": 1, "images": 2, "top1": 0.5, "top5": 0.5}


def test_class_balanced_weights_follow_the_effective_number():
  # beta 0.5: E(1) = 1, E(2) = (1 - 0.25) / 0.5 = 1.5, so 1/E = 1, 2/3; scaled to sum 2 -> 1.2, 0.8.
  np.testing.assert_allclose(long_tail.effective_number([1, 2], 0.5), [1, 1.5])
  np.testing.assert_allclose(long_tail.class_balanced_weights([1, 2], 0.5), [1.2, 0.8], rtol=1e-6)
  # beta 0: every class weighs the same; beta -> 1: E(n) -> n (inverse frequency).
  np.testing.assert_allclose(long_tail.class_balanced_weights([1, 1000], 0.0), [1, 1])
  np.testing.assert_allclose(long_tail.effective_number([1, 1000], 1 - 1e-12), [1, 1000],
                             rtol=1e-6)
  with pytest.raises(long_tail.LongTailError, match=r"beta=1.0: must be in \[0, 1\)"):
    long_tail.class_balanced_weights([1, 2], 1.0)


def test_losses_equal_their_formulas_on_a_table():
  counts = [3, 1]  # prior 0.75, 0.25
  logits = np.array([[0.0, 0.0], [2.0, -1.0]], np.float32)
  labels = np.array([1, 0])
  ce = [math.log(2), math.log(1 + math.exp(-3))]

  def loss(name, **kwargs):
    weights, offsets = long_tail.loss_terms(name, counts, **kwargs)
    return long_tail.per_example_loss(labels, logits, weights, offsets).numpy()

  np.testing.assert_allclose(loss("cross_entropy"), ce, rtol=1e-5)
  # Logit-adjusted (tau 1): softmax of logits + log prior. Row 0, label 1: -log(0.25 / 1) = log 4.
  # Row 1, label 0: logits + log prior = (2 + log .75, -1 + log .25): -log sigmoid(3 + log 3).
  expected = [math.log(4), math.log(1 + math.exp(-3 - math.log(3)))]
  np.testing.assert_allclose(loss("logit_adjusted"), expected, rtol=1e-5)
  np.testing.assert_allclose(loss("balanced_softmax"), expected, rtol=1e-5)  # = LA at tau 1
  # tau 2 doubles the offsets.
  np.testing.assert_allclose(loss("logit_adjusted", tau=2.0), [
      -math.log(0.25 ** 2 / (0.75 ** 2 + 0.25 ** 2)),
      math.log(1 + math.exp(-3 - 2 * math.log(3)))], rtol=1e-5)
  # Class-balanced, beta 0.5: E(3) = 1.75, E(1) = 1; 1/E = 4/7, 1 -> scaled to sum 2: 8/11, 14/11.
  np.testing.assert_allclose(loss("class_balanced", beta=0.5),
                             [14 / 11 * ce[0], 8 / 11 * ce[1]], rtol=1e-5)
  with pytest.raises(long_tail.LongTailError, match="expected one of cross_entropy"):
    long_tail.loss_terms("focal", counts)


def test_prior_adjustment_equals_its_formula_on_a_hand_made_logit_table():
  counts = [6, 3, 1]  # prior 0.6, 0.3, 0.1
  logits = np.array([[2.0, 1.9, 0.0],
                     [0.0, 0.0, 0.0]])
  adjusted = long_tail.posthoc_logit_adjustment(logits, counts, tau=1.0)
  expected = logits - np.log([0.6, 0.3, 0.1])
  np.testing.assert_allclose(adjusted, expected)
  # Row 0: 2 + 0.511 = 2.511 and 0 + 2.303 are below 1.9 + 1.204 = 3.104: the rarer class 1 now
  # wins; row 1: the rarest, class 2.
  assert adjusted.argmax(axis=1).tolist() == [1, 2]
  np.testing.assert_allclose(long_tail.posthoc_logit_adjustment(logits, counts, tau=0.0), logits)
  np.testing.assert_allclose(long_tail.posthoc_logit_adjustment(logits, counts, tau=0.5),
                             logits - 0.5 * np.log([0.6, 0.3, 0.1]))


def test_the_stored_classifier_gives_the_formulas_logits():
  """The adjustment is applied as new classifier weights; its logits are the formula's."""
  rng = np.random.default_rng(0)
  counts = [40, 7, 2]
  features = rng.normal(size=(5, 4))
  kernel, bias = rng.normal(size=(4, 3)), rng.normal(size=3)
  logits = features @ kernel + bias
  la = long_tail.Adjustment("logit_adjustment", 0.7, {}, "")
  new_kernel, new_bias = long_tail.adjusted_classifier(kernel, bias, la, counts)
  np.testing.assert_allclose(features @ new_kernel + new_bias,
                             long_tail.posthoc_logit_adjustment(logits, counts, 0.7), rtol=1e-5)
  # tau-norm on a 1x1-conv kernel [1, 1, d, C] (MobileNet's head): columns / norm^tau, no bias.
  conv_kernel = np.array([[[[3.0, 0.0], [4.0, 1.0]]]])  # d = 2, C = 2: norms 5 and 1
  tau = long_tail.Adjustment("tau_norm", 1.0, {}, "")
  new_kernel, new_bias = long_tail.adjusted_classifier(conv_kernel, [0.5, -0.5], tau, [9, 1])
  np.testing.assert_allclose(new_kernel, [[[[0.6, 0.0], [0.8, 1.0]]]], rtol=1e-6)
  np.testing.assert_array_equal(new_bias, [0, 0])
  np.testing.assert_allclose(long_tail.tau_normalized(conv_kernel, 0.5),
                             [[[[3 / 5 ** 0.5, 0.0], [4 / 5 ** 0.5, 1.0]]]])
  crt = long_tail.Adjustment("crt", 0.0, {}, "")
  new_kernel, new_bias = long_tail.adjusted_classifier(
      conv_kernel, [0, 0], crt, [9, 1], crt_classifier=(np.eye(2), np.array([1.0, 2.0])))
  assert new_kernel.shape == (1, 1, 2, 2) and new_bias.tolist() == [1, 2]


def test_classes_without_training_images_are_refused_by_name():
  with pytest.raises(long_tail.LongTailError, match=r"class index\(es\) \[1\] have none"):
    long_tail.posthoc_logit_adjustment([[0.0, 0.0]], [5, 0], 1.0)
  with pytest.raises(long_tail.LongTailError, match="class-balanced loss"):
    long_tail.loss_terms("class_balanced", [0, 5])


def test_tune_and_report_halves_are_stratified_and_depend_on_ids_only():
  labels = np.array([0] + [1] * 2 + [2] * 3 + [3] * 4 + [4] * 31)
  ids = np.arange(1000, 1000 + len(labels)) * 7
  tune = long_tail.stratified_halves(labels, ids, seed=3)
  # floor(n / 2) of each class tunes: 0, 1, 1, 2, 15; a single image is always reported.
  assert [int(tune[labels == c].sum()) for c in range(5)] == [0, 1, 1, 2, 15]
  order = np.random.default_rng(1).permutation(len(labels))
  np.testing.assert_array_equal(long_tail.stratified_halves(labels[order], ids[order], seed=3),
                                tune[order])
  assert not np.array_equal(long_tail.stratified_halves(labels, ids, seed=4), tune)


def test_reported_mask_never_reports_the_tuned_images():
  labels, ids = np.array([0, 0, 1, 1]), np.array([5, 6, 7, 8])
  halves = long_tail.Adjustment("logit_adjustment", 1.0, {"split": "val", "part": "tune",
                                                          "seed": 0}, "")
  keep = long_tail.reported_mask(labels, ids, halves, "val")
  np.testing.assert_array_equal(keep, ~long_tail.stratified_halves(labels, ids, 0))
  assert keep.sum() == 2
  assert long_tail.reported_mask(labels, ids, halves, "minival") is None
  assert long_tail.reported_mask(labels, ids, None, "val") is None
  whole = long_tail.Adjustment("tau_norm", 1.0, {"split": "minival", "part": "all"}, "")
  with pytest.raises(long_tail.LongTailError, match="chosen on all of minival"):
    long_tail.reported_mask(labels, ids, whole, "minival")
