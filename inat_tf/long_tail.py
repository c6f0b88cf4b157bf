"""Long-tailed recognition: many/medium/few-shot scores, re-balancing losses, and post-hoc
classifier adjustments, as pure functions of logits, classifier weights and per-class training
image counts (numpy; the loss is TensorFlow so it runs inside the training step).

Scores (Liu et al. 2019, "Large-Scale Long-Tailed Recognition in an Open World", and every paper
since): classes are *many*-shot with more than 100 training images, *medium*-shot with 20-100,
*few*-shot with fewer than 20; a bucket's accuracy is the mean of its classes' accuracies.

Training-time remedies (inat-train --loss, --deferred_start_epoch), all one formula: per-example
cross-entropy on `logits + logit_offsets[class]`, times `class_weights[label]`:
  cross_entropy     weights 1, offsets 0.
  class_balanced    Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples",
                    eq. 4-5: weight 1 / E(n_y), E(n) = (1 - beta^n) / (1 - beta), normalised to sum
                    to the number of classes (their implementation); offsets 0.
  logit_adjusted    Menon et al. 2021, "Long-tail learning via logit adjustment", eq. 10: offsets
                    tau * log(pi_y), pi the training label prior; weights 1. Predict with the raw
                    logits.
  balanced_softmax  Ren et al. 2020, "Balanced Meta-Softmax for Long-Tailed Visual Recognition",
                    eq. 4: softmax of n_j exp(eta_j), i.e. offsets log(n_j): the logit-adjusted loss
                    at tau = 1 (log n_j and log pi_j differ by a constant, which softmax ignores).
  Deferred re-weighting / re-sampling (Cao et al. 2019, "Learning Imbalanced Datasets with
  Label-Distribution-Aware Margin Loss", Sec. 3.3, DRW): plain cross-entropy over uniformly drawn
  images first, the remedy (loss and --sampling) only from a later epoch (theirs: epoch 160 of 200
  on CIFAR, 60 of 90 on iNaturalist 2018).

Post-hoc remedies (`inat-adjust`): each is a new final classifier (kernel, bias) for the trained
network's `head_logits` layer, the backbone untouched:
  logit_adjustment  Menon et al. 2021, eq. 9: logits - tau * log(pi); the bias moves by that.
  tau_norm          Kang et al. 2020, "Decoupling Representation and Classifier for Long-Tailed
                    Recognition", Sec. 4: w_j / ||w_j||^tau, bias dropped (their tau_norm.py).
                    On a factorised head (inat-train --head_rank R: features f -> z = f U + b_u
                    -> logits z W + b) w_j is class j's weight vector on the *features*, U w_j,
                    and the bias dropped is the whole b_u w_j + b_j: the result is exactly
                    tau-norm of the equivalent full classifier (U W, b_u W + b), stored as a new
                    W and b (the head stays rank R). Norms taken in the rank-R space instead
                    would change with any re-parametrisation U A, A^-1 W of the same network.
  crt               Kang et al. 2020, Sec. 4: a new linear classifier trained on the frozen
                    network's features with class-balanced sampling (inat_tf/adjust.py).
                    On a factorised head the frozen features are the bottleneck's output z, so the
                    re-trained classifier is R x C and the head stays small.
  logit_adjustment moves the bias of `head_logits` only, on either kind of head.
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

from inat_tf import choices
from inat_tf.errors import LongTailError

# The literature's shot buckets (Liu et al. 2019; Kang et al. 2020): > 100, 20-100, < 20 images.
MANY_SHOT_ABOVE = 100
FEW_SHOT_BELOW = 20
BUCKETS = ("many", "medium", "few")

LOSSES = choices.LOSSES
METHODS = choices.ADJUSTMENTS
CLASSIFIER_LAYER = "head_logits"  # models/heads.py: the layer holding the classifier everywhere
BOTTLENECK_LAYER = "head_bottleneck"  # models/heads.py: the rank-R factor before it (--head_rank)


# -- scores -----------------------------------------------------------------------------------


def shot_buckets(train_counts):
  """Bucket name per class: "many" (> 100 training images), "medium" (20-100), "few" (< 20).

  train_counts: [num_classes] ints (LabelMap.train_counts). Returns a [num_classes] str array.
  """
  counts = np.asarray(train_counts)
  return np.where(counts > MANY_SHOT_ABOVE, "many",
                  np.where(counts < FEW_SHOT_BELOW, "few", "medium"))


def shot_scores(examples, top1_hits, top5_hits, train_counts):
  """Top-1 / top-5 per shot bucket: the mean over the bucket's classes of their accuracy.

  examples, top1_hits, top5_hits: [num_classes] evaluated images and hits per class (classes with
  no evaluated image are left out). Returns {bucket: {"classes", "images", "top1", "top5"}}, with
  top1 / top5 None for a bucket without evaluated classes.
  """
  examples = np.asarray(examples, np.float64)
  buckets = shot_buckets(train_counts)
  scores = {}
  for bucket in BUCKETS:
    members = (buckets == bucket) & (examples > 0)
    n = examples[members]
    scores[bucket] = {
        "classes": int(members.sum()), "images": int(n.sum()),
        "top1": float(np.mean(np.asarray(top1_hits)[members] / n)) if members.any() else None,
        "top5": float(np.mean(np.asarray(top5_hits)[members] / n)) if members.any() else None}
  return scores


def format_shots(shots, key="top1"):
  """'many 71.2%, medium 40.0%, few 3.1%' (a bucket without classes shows 'n/a')."""
  return ", ".join(f"{b} " + ("n/a" if shots[b][key] is None else f"{100 * shots[b][key]:.1f}%")
                   for b in BUCKETS)


def scores_from_logits(logits, labels, train_counts):
  """Overall top-1 / top-5 (over images) and shot_scores, for [N, C] logits and [N] labels."""
  logits, labels = np.asarray(logits), np.asarray(labels)
  num_classes = logits.shape[1]
  top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
  hit1 = top5[:, 0] == labels
  hit5 = (top5 == labels[:, None]).any(axis=1)
  per_class = [np.bincount(labels, weights=w, minlength=num_classes)
               for w in (np.ones(len(labels)), hit1, hit5)]
  return {"images": int(len(labels)), "top1": float(hit1.mean()), "top5": float(hit5.mean()),
          "shots": shot_scores(*per_class, train_counts)}


# -- training-time losses ----------------------------------------------------------------------


def _positive_counts(train_counts, what):
  counts = np.asarray(train_counts, np.float64)
  if counts.ndim != 1 or not len(counts):
    raise LongTailError(f"{what}: expected one training-image count per class, got shape "
                        f"{counts.shape}")
  empty = np.flatnonzero(counts <= 0)
  if len(empty):
    raise LongTailError(
        f"{what} needs every class to have training images, but class index(es) "
        f"{empty[:10].tolist()} have none (label_map.json train_count); it would divide by zero "
        f"or take log(0). Rebuild the data dir so every class has training images.")
  return counts


def effective_number(train_counts, beta):
  """E(n) = (1 - beta^n) / (1 - beta), the expected volume of n samples (Cui et al. 2019, eq. 3).

  Float64 [num_classes]. beta in [0, 1): 0 gives 1 for every class, beta -> 1 approaches n.
  """
  if not 0 <= beta < 1:
    raise LongTailError(f"class_balanced_beta={beta}: must be in [0, 1) (Cui et al. use 0.9999 "
                        f"on iNaturalist, 0.999 on smaller sets)")
  counts = _positive_counts(train_counts, "the class-balanced loss")
  # 1 - beta^n as -expm1(n log beta): no cancellation when beta is close to 1.
  return -np.expm1(counts * np.log(beta)) / (1 - beta) if beta > 0 else np.ones_like(counts)


def class_balanced_weights(train_counts, beta):
  """Per-class loss weights 1 / E(n_y), scaled to sum to num_classes (Cui et al. 2019, eq. 5).

  Float32 [num_classes]; a balanced set gets all ones.
  """
  weights = 1.0 / effective_number(train_counts, beta)
  return (weights * len(weights) / weights.sum()).astype(np.float32)


def log_prior(train_counts):
  """log(pi_y) = log(n_y / sum(n)): the training label prior (Menon et al. 2021), float64 [C]."""
  counts = _positive_counts(train_counts, "logit adjustment")
  return np.log(counts) - np.log(counts.sum())


def loss_terms(loss, train_counts, beta=0.9999, tau=1.0):
  """(class_weights, logit_offsets), float32 [num_classes] each, of a training loss in LOSSES.

  The per-example loss is CE(softmax(logits + logit_offsets), label) * class_weights[label]; see the
  module docstring for each loss's source. Raises LongTailError on an unknown loss or bad counts.
  """
  num_classes = len(train_counts)
  ones, zeros = np.ones(num_classes, np.float32), np.zeros(num_classes, np.float32)
  if loss == "cross_entropy":
    return ones, zeros
  if loss == "class_balanced":
    return class_balanced_weights(train_counts, beta), zeros
  if loss == "logit_adjusted":
    return ones, (tau * log_prior(train_counts)).astype(np.float32)
  if loss == "balanced_softmax":
    return ones, log_prior(train_counts).astype(np.float32)
  raise LongTailError(f"loss={loss!r}: expected one of {', '.join(LOSSES)}")


def per_example_loss(labels, logits, class_weights, logit_offsets, *, label_smoothing=0.0):
  """The training loss per example, float32 [batch] (TensorFlow ops; see loss_terms).

  labels: [batch] int class indices, or [batch, C] float soft labels (MixUp / CutMix: each
  example's class weight is then the label-weighted mean); logits: [batch, C]; class_weights,
  logit_offsets: [C].
  """
  import keras  # pylint: disable=g-import-not-at-top  (the rest of the module is numpy)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  logits = tf.cast(logits, tf.float32) + tf.cast(logit_offsets, tf.float32)
  class_weights = tf.cast(class_weights, tf.float32)
  labels = tf.convert_to_tensor(labels)
  if labels.shape.rank == 2:
    one_hot = tf.cast(labels, tf.float32)
    weights = tf.reduce_sum(one_hot * class_weights, axis=-1)
  else:
    one_hot = tf.one_hot(labels, tf.shape(logits)[-1])
    weights = tf.gather(class_weights, labels)
  per_example = keras.losses.categorical_crossentropy(one_hot, logits, from_logits=True,
                                                      label_smoothing=label_smoothing)
  return per_example * weights


# -- post-hoc adjustments ----------------------------------------------------------------------


def posthoc_logit_adjustment(logits, train_counts, tau):
  """logits - tau * log(pi): Menon et al. 2021, eq. 9 (tau = 1 is Bayes-optimal for the balanced
  error when the logits estimate the training posterior). [N, C] -> [N, C] float64."""
  return np.asarray(logits, np.float64) - tau * log_prior(train_counts)


def tau_normalized(kernel, tau, bottleneck_kernel=None):
  """Kernel with each class's weight vector divided by its L2 norm to the power tau (Kang et al.
  2020, Sec. 4). kernel: [..., C] (a Dense [d, C] or 1x1 conv [1, 1, d, C] kernel); same shape.

  bottleneck_kernel: [..., d, R] of a factorised head (kernel then [..., R, C]); the norm is then
  that of class j's weight vector on the features, ||U w_j|| (see the module docstring).
  """
  kernel = np.asarray(kernel, np.float64)
  effective = kernel.reshape(-1, kernel.shape[-1])
  if bottleneck_kernel is not None:
    bottleneck_kernel = np.asarray(bottleneck_kernel, np.float64)
    effective = bottleneck_kernel.reshape(-1, bottleneck_kernel.shape[-1]) @ effective
  norms = np.sqrt(np.sum(np.square(effective), axis=0))
  if (norms == 0).any():
    raise LongTailError(f"tau_norm: class index(es) {np.flatnonzero(norms == 0)[:10].tolist()} "
                        f"have an all-zero classifier weight vector; nothing to normalise")
  return kernel / norms ** tau


def adjusted_classifier(kernel, bias, adjustment, train_counts, *, crt_classifier=None,
                        bottleneck=None):
  """The (kernel, bias) that replaces the network's classifier under `adjustment`.

  kernel: [..., C], bias: [C] (the trained `head_logits` weights); adjustment: an Adjustment;
  crt_classifier: (kernel, bias) of the re-trained classifier, for method "crt"; bottleneck:
  (kernel [..., d, R], bias [R]) of `head_bottleneck` for a factorised head (bottleneck_of),
  which tau_norm reads (module docstring); the other methods act on `head_logits` alone. Float32
  arrays, shapes kept. Logits from the result equal the method's formula on the original logits
  (tested).
  """
  kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
  if adjustment.method == "logit_adjustment":
    new_kernel, new_bias = kernel, bias - adjustment.tau * log_prior(train_counts)
  elif adjustment.method == "tau_norm":
    if bottleneck is None:
      new_kernel, new_bias = tau_normalized(kernel, adjustment.tau), np.zeros_like(bias)
    else:
      new_kernel = tau_normalized(kernel, adjustment.tau, bottleneck[0])
      # The whole bias of class j, b_u w_j + b_j, is dropped: b_j := -b_u w_j.
      rank = np.asarray(bottleneck[1]).size
      new_bias = -(np.asarray(bottleneck[1], np.float64).reshape(rank)
                   @ new_kernel.reshape(rank, -1)).reshape(bias.shape)
  elif adjustment.method == "crt":
    if crt_classifier is None:
      raise LongTailError("crt: the re-trained classifier's weights are missing")
    new_kernel = np.asarray(crt_classifier[0], np.float64).reshape(kernel.shape)
    new_bias = np.asarray(crt_classifier[1], np.float64).reshape(bias.shape)
  else:
    raise LongTailError(f"method={adjustment.method!r}: expected one of {', '.join(METHODS)}")
  return new_kernel.astype(np.float32), new_bias.astype(np.float32)


def bottleneck_of(model):
  """(kernel, bias) numpy arrays of a model's `head_bottleneck` (a factorised head), or None."""
  if not any(layer.name == BOTTLENECK_LAYER for layer in model.layers):
    return None
  return tuple(np.asarray(w) for w in model.get_layer(BOTTLENECK_LAYER).get_weights())


# -- tuning split ------------------------------------------------------------------------------


def stratified_halves(labels, image_ids, seed=0):
  """Boolean [N] mask of the *tune* half of a labelled split; the rest is the *report* half.

  Per class, images are ordered by a keyed hash of (seed, image id) and the first floor(n / 2)
  tune; so a class with one image is only reported, and the split depends on the ids alone (the
  same in inat-adjust and inat-eval, whatever the record order).
  """
  labels, image_ids = np.asarray(labels), np.asarray(image_ids)
  keys = np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{int(i)}".encode(), digest_size=8)
                                  .digest(), "big") for i in image_ids], dtype=np.uint64)
  tune = np.zeros(len(labels), bool)
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    ordered = members[np.argsort(keys[members], kind="stable")]
    tune[ordered[:len(members) // 2]] = True
  return tune


# -- the stored adjustment ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Adjustment:
  """A post-hoc adjustment of one saved model's classifier, as stored in its model dir.

  method: one of METHODS; tau: its knob (0 for crt); tuned_on: {"split", "part" ("tune": the
  stratified_halves tune half, "all": the whole split), "seed", "images"}; base_sha256: digest of
  the classifier it was made for (classifier_digest); scores: what inat-adjust measured.
  """
  method: str
  tau: float
  tuned_on: dict
  base_sha256: str
  scores: dict = dataclasses.field(default_factory=dict)

  def describe(self):
    if self.method == "crt":
      return "crt (classifier re-trained on class-balanced train batches)"
    part = "the tune half of " if self.tuned_on.get("part") == "tune" else ""
    return f"{self.method} tau={self.tau:g} (chosen on {part}{self.tuned_on.get('split')})"


def adjustment_path(model_dir, which):
  return os.path.join(model_dir, f"long_tail_adjustment-{which}.json")


def crt_path(model_dir, which):
  return os.path.join(model_dir, f"long_tail_classifier-{which}.npz")


def classifier_digest(kernel, bias):
  """sha256 of a classifier's float32 weights: ties a stored adjustment to its model."""
  digest = hashlib.sha256()
  for array in (kernel, bias):
    digest.update(np.ascontiguousarray(np.asarray(array, np.float32)).tobytes())
  return digest.hexdigest()


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (gs:// model dirs)
  return tf.io.gfile


def save_adjustment(model_dir, which, adjustment, crt_classifier=None):
  """Writes the adjustment (and cRT weights) beside the model; each file complete or absent."""
  gfile = _gfile()
  if crt_classifier is not None:
    import io  # pylint: disable=g-import-not-at-top
    buffer = io.BytesIO()
    np.savez(buffer, kernel=crt_classifier[0], bias=crt_classifier[1])
    with gfile.GFile(crt_path(model_dir, which) + ".tmp", "wb") as f:
      f.write(buffer.getvalue())
    gfile.rename(crt_path(model_dir, which) + ".tmp", crt_path(model_dir, which), overwrite=True)
  path = adjustment_path(model_dir, which)
  with gfile.GFile(path + ".tmp", "w") as f:
    json.dump(dataclasses.asdict(adjustment), f, indent=1, sort_keys=True)
  gfile.rename(path + ".tmp", path, overwrite=True)


def remove_adjustment(model_dir, which):
  """Deletes a stored adjustment; returns whether there was one."""
  gfile = _gfile()
  found = False
  for path in (adjustment_path(model_dir, which), crt_path(model_dir, which)):
    if gfile.exists(path):
      gfile.remove(path)
      found = True
  return found


def load_adjustment(model_dir, which):
  """(Adjustment, crt_classifier or None) stored for `which`, or (None, None)."""
  gfile = _gfile()
  path = adjustment_path(model_dir, which)
  if not gfile.exists(path):
    return None, None
  try:
    with gfile.GFile(path) as f:
      adjustment = Adjustment(**json.load(f))
  except (ValueError, TypeError) as e:
    raise LongTailError(f"{path}: not a long-tail adjustment written by inat-adjust ({e}); "
                        f"rerun inat-adjust or delete the file") from None
  crt_classifier = None
  if adjustment.method == "crt":
    if not gfile.exists(crt_path(model_dir, which)):
      raise LongTailError(f"{path} names a cRT classifier but {crt_path(model_dir, which)} is "
                          f"missing; rerun inat-adjust --method crt")
    with gfile.GFile(crt_path(model_dir, which), "rb") as f:
      import io  # pylint: disable=g-import-not-at-top
      stored = np.load(io.BytesIO(f.read()))
      crt_classifier = (stored["kernel"], stored["bias"])
  return adjustment, crt_classifier


def apply_stored(model, model_dir, which, train_counts):
  """THE one place a stored adjustment is applied: rewrites `model`'s classifier weights in place.

  Everything that loads a model through trained_model.load (inat-eval, inat-predict, inat-export's
  SavedModel and TFLite) therefore sees the same adjusted logits. Returns the Adjustment or None.
  Raises LongTailError when the stored adjustment was made for other weights (the model was
  retrained since): a stale adjustment is never applied silently.
  """
  adjustment, crt_classifier = load_adjustment(model_dir, which)
  if adjustment is None:
    return None
  layer = model.get_layer(CLASSIFIER_LAYER)
  kernel, bias = (np.asarray(w) for w in layer.get_weights())
  if classifier_digest(kernel, bias) != adjustment.base_sha256:
    raise LongTailError(
        f"{adjustment_path(model_dir, which)} was made for other {which}.keras weights (the model "
        f"was retrained since): rerun inat-adjust, or `inat-adjust --method none` to drop it")
  layer.set_weights(list(adjusted_classifier(kernel, bias, adjustment, train_counts,
                                             crt_classifier=crt_classifier,
                                             bottleneck=bottleneck_of(model))))
  return adjustment


def reported_mask(labels, image_ids, adjustment, split):
  """Boolean [N] mask of a split's images that may be reported under `adjustment`, or None (all).

  An adjustment tuned on the tune half of `split` leaves its report half; one tuned on another
  split leaves everything. One tuned on all of `split` raises LongTailError: its score there
  would be the number it was tuned to maximise (the issue's rule: never report the tuning split).
  """
  tuned = adjustment.tuned_on if adjustment is not None else {}
  if tuned.get("split") != split:
    return None
  if tuned.get("part") != "tune":
    raise LongTailError(f"the stored long-tail adjustment was chosen on all of {split}; its score "
                        f"there is not a held-out one: evaluate another split")
  return ~stratified_halves(labels, image_ids, tuned.get("seed", 0))
