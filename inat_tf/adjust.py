"""`inat-adjust`: a post-hoc long-tail remedy for a trained model, chosen on held-out images.

  inat-adjust --data_dir D --model_dir M --method logit_adjustment   # or tau_norm, crt, none

The backbone is never retrained. Each method replaces the classifier (`head_logits`) of
M/best.keras (or --which final), see inat_tf/long_tail.py for the papers and formulas:
  logit_adjustment  logits - tau * log(train prior)            (Menon et al. 2021), tau chosen
  tau_norm          class weights / ||w||^tau, no bias          (Kang et al. 2020), tau chosen
  crt               a new linear classifier trained on the frozen network's features of class-
                    balanced, augmented train batches (Kang et al. 2020: cRT)
  none              remove the stored adjustment

tau is chosen (grid 0, 0.1, ..., 2; best top-1, the smaller tau on ties) on --tune_split, never
on the images that are then reported: with --tune_split val (the default) val is split per species
into a tune half and a report half (long_tail.stratified_halves, seeded), inat-adjust prints both,
and inat-eval --split val scores the report half only. A split held out of training (e.g. a
minival, once the data dir has one) is used whole, and then val is reported whole. The training
split is refused: the network has fit it, so it says nothing about held-out images.

The result is written beside the model (long_tail_adjustment-best.json, plus
long_tail_classifier-best.npz for cRT) and applied by every later load of that model
(trained_model.load -> long_tail.apply_stored): inat-eval, inat-predict and inat-export's
SavedModel and TFLite files all use the adjusted classifier.
"""

import dataclasses
import math
import time

import keras
import numpy as np
import tensorflow as tf

from inat_tf import input_pipeline
from inat_tf import long_tail
from inat_tf import progress
from inat_tf import records
from inat_tf import schema
from inat_tf import trained_model
from inat_tf.commands import adjust as adjust_command
from inat_tf.commands.adjust import AdjustConfig  # pylint: disable=unused-import
from inat_tf.errors import AdjustError

TAUS = tuple(round(0.1 * i, 1) for i in range(21))  # Kang et al.'s tau_norm.py grid: 0 to 2
def _classifier(model):
  layer = model.get_layer(long_tail.CLASSIFIER_LAYER)
  kernel, bias = (np.asarray(w) for w in layer.get_weights())
  return layer, kernel, bias


def _feature_model(model):
  """The network up to the classifier's input (features [batch, ...]; inference mode)."""
  return keras.Model(model.input, model.get_layer(long_tail.CLASSIFIER_LAYER).input)


def split_features(trained, data_dir, split, batch_size=64):
  """(features [N, d] float32, labels [N], image ids [N]) of a split's central crops."""
  features_of = _feature_model(trained.model)

  def view(example):
    # The model as it is served: its own crop (trained_model.TrainedModel.eval_views).
    image = trained.eval_views(example[schema.ENCODED])[0]
    return image, example[schema.LABEL], example[schema.IMAGE_ID]

  dataset = records.examples(data_dir, split, [schema.ENCODED, schema.LABEL, schema.IMAGE_ID]) \
      .map(view, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)
  run = tf.function(lambda images: features_of(images, training=False), autograph=False)
  features, labels, ids = [], [], []
  for images, batch_labels, batch_ids in dataset:
    features.append(tf.reshape(run(images), [tf.shape(images)[0], -1]).numpy())
    labels.append(batch_labels.numpy())
    ids.append(batch_ids.numpy())
  return np.concatenate(features), np.concatenate(labels), np.concatenate(ids)


def _logits(features, kernel, bias):
  return features.astype(np.float64) @ np.asarray(kernel, np.float64).reshape(
      features.shape[1], -1) + np.asarray(bias, np.float64)


def retrain_classifier(trained, config, log=print):
  """cRT (Kang et al. 2020): a freshly initialised linear classifier trained on the frozen
  network's features of class-balanced (input_pipeline sampling="balanced"), augmented train
  batches; SGD with momentum 0.9, cosine decay to 0, L2 weight decay. Returns (kernel [d, C],
  bias [C]) float32.
  """
  features_of = _feature_model(trained.model)
  num_classes = trained.label_map.num_classes
  input_config = input_pipeline.InputConfig(
      data_dir=config.data_dir, model_name=trained.model_name, split="train",
      image_size=trained.image_size, global_batch_size=config.crt_batch_size,
      sampling="balanced", seed=config.seed)
  steps = max(1, math.ceil(config.crt_epochs * records.steps_per_epoch(
      config.data_dir, "train", config.crt_batch_size)))
  keras.utils.set_random_seed(config.seed)
  head = keras.layers.Dense(num_classes, dtype="float32")  # glorot kernel, zero bias: re-init
  head.build((None, int(np.prod(features_of.output.shape[1:]))))
  rate = config.crt_learning_rate * config.crt_batch_size / 512
  optimizer = keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(rate, steps),
                                   momentum=0.9)

  @tf.function(autograph=False)  # graph code as written (BUILD_NOTES, "Start-up")
  def step(images, labels):
    features = tf.reshape(tf.cast(features_of(images, training=False), tf.float32),
                          [tf.shape(images)[0], -1])
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, head(features)))
      loss += config.crt_weight_decay * 0.5 * tf.reduce_sum(tf.square(head.kernel.value))
    optimizer.apply_gradients(zip(tape.gradient(loss, head.trainable_variables),
                                  head.trainable_variables))
    return loss

  log(f"inat-adjust: cRT, {steps:,} steps of {config.crt_batch_size} class-balanced train images")
  for i, (images, labels) in enumerate(input_pipeline.train_dataset(input_config).take(steps)):
    loss = step(images, labels)
    if (i + 1) % max(1, steps // 5) == 0 or i + 1 == steps:
      log(f"  step {i + 1:,}/{steps:,} loss {float(loss):.3f}")
  return (np.asarray(head.kernel.numpy(), np.float32), np.asarray(head.bias.numpy(), np.float32))


def _table(result):
  """What inat-adjust measured, before and after, on each half: a report Table as plain text."""
  from inat_tf.report import blocks  # pylint: disable=g-import-not-at-top
  from inat_tf.report import render  # pylint: disable=g-import-not-at-top
  rows = []
  for part in ("tune", "report"):
    for when in ("before", "after"):
      scores = result.get(part, {}).get(when)
      if scores:
        rows.append({"part": f"{part} {when}", "images": scores["images"], "top1": scores["top1"],
                     "top5": scores["top5"],
                     **{b: scores["shots"][b]["top1"] for b in long_tail.BUCKETS}})
  columns = (blocks.Column("part", ""), blocks.Column("images", "images", "int"),
             blocks.Column("top1", "top-1", "percent"), blocks.Column("top5", "top-5", "percent"),
             ) + tuple(blocks.Column(b, f"{b} top-1", "percent") for b in long_tail.BUCKETS)
  return "\n".join(render.text_table(blocks.Table(columns, tuple(rows))))


def adjust(config, log=print):
  """Chooses and stores the adjustment (or removes it for method "none"); returns what it measured:
  {"adjustment": Adjustment or None, "tune": {"before", "after"}, "report": {...}, "grid"}."""
  if config.method == "none":
    found = long_tail.remove_adjustment(config.model_dir, config.which)
    log(f"inat-adjust: {'removed the' if found else 'there was no'} adjustment of "
        f"{config.which}.keras in {config.model_dir}")
    return {"adjustment": None}
  if config.method not in long_tail.METHODS:
    raise AdjustError(f"method={config.method!r}: expected one of "
                      f"{', '.join(long_tail.METHODS + ('none',))}")
  if config.tune_split == "train":
    raise AdjustError(adjust_command.TRAIN_SPLIT_REFUSAL)
  trained = trained_model.load(config.model_dir, config.which, adjusted=False)
  counts = trained.label_map.train_counts
  _, kernel, bias = _classifier(trained.model)
  bottleneck = long_tail.bottleneck_of(trained.model)  # tau_norm on a factorised head reads it
  features, labels, ids = split_features(trained, config.data_dir, config.tune_split,
                                         config.batch_size)
  if (labels < 0).all():
    raise AdjustError(f"--tune_split {config.tune_split} has no labels; use val or a minival "
                      f"(inat-build --minival_fraction F)")
  halves = config.tune_split == "val"
  tune = long_tail.stratified_halves(labels, ids, config.seed) if halves else \
      np.ones(len(labels), bool)
  parts = {"tune": tune, "report": ~tune} if halves else {"tune": tune}

  def scores(part, new_kernel, new_bias):
    mask = parts[part]
    return long_tail.scores_from_logits(_logits(features[mask], new_kernel, new_bias),
                                        labels[mask], counts)

  tuned_on = {"split": config.tune_split, "part": "tune" if halves else "all",
              "seed": config.seed, "images": int(tune.sum())}
  result = {part: {"before": scores(part, kernel, bias)} for part in parts}
  crt_classifier, grid = None, []
  if config.method == "crt":
    crt_classifier = retrain_classifier(trained, config, log)
    chosen = long_tail.Adjustment("crt", 0.0, tuned_on, long_tail.classifier_digest(kernel, bias))
  else:
    for tau in TAUS:
      candidate = long_tail.Adjustment(config.method, tau, tuned_on, "")
      grid.append((tau, scores("tune", *long_tail.adjusted_classifier(
          kernel, bias, candidate, counts, bottleneck=bottleneck))["top1"]))
    best_tau = max(grid, key=lambda entry: (entry[1], -entry[0]))[0]
    chosen = long_tail.Adjustment(config.method, best_tau, tuned_on,
                                  long_tail.classifier_digest(kernel, bias))
  new_kernel, new_bias = long_tail.adjusted_classifier(kernel, bias, chosen, counts,
                                                       crt_classifier=crt_classifier,
                                                       bottleneck=bottleneck)
  for part in parts:
    result[part]["after"] = scores(part, new_kernel, new_bias)
  chosen = dataclasses.replace(chosen, scores={**result, "grid": grid})
  long_tail.save_adjustment(config.model_dir, config.which, chosen, crt_classifier)
  result.update(adjustment=chosen, grid=grid)
  log(f"inat-adjust: {chosen.describe()} for {config.which}.keras, stored in "
      f"{long_tail.adjustment_path(config.model_dir, config.which)}\n{_table(result)}")
  if halves:
    log("inat-adjust: the report half is held out from the choice; inat-eval --split val now "
        "scores that half only.")
  return result


def main(config, _):
  """inat-adjust's work once its flags are parsed (inat_tf/commands/adjust.py)."""
  start = time.monotonic()
  model = f"{config.model_dir}/{trained_model.model_file(config.which)}"
  if config.method == "none":
    print(f"inat-adjust: removing the long-tail adjustment of {model}", flush=True)
  else:
    part = "its tune half" if config.tune_split == "val" else "all of it"
    print(f"inat-adjust: {config.method} for {model}, chosen on the {config.tune_split} split of "
          f"{config.data_dir} ({part}, seed {config.seed})", flush=True)
  adjust(config, log=lambda message: print(message, flush=True))
  print(f"inat-adjust: done in {progress.duration(time.monotonic() - start)}; inat-eval, "
        f"inat-predict, inat-export and inat-classify now use what is stored beside {model}",
        flush=True)

