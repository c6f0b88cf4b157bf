"""`inat-detect-train`: a keras-hub RetinaNet on the boxes of our TFRecords.

  inat-detect-train --data_dir D --model_dir M --granularity species --backbone resnet50 \\
                    --image_size 512 --batch_size 8 --epochs 12 --weights imagenet

Trains on the train images that have boxes, at one label granularity (species, superclass or
agnostic), with aspect-keeping resize and random horizontal flips. A rerun with the same
--model_dir resumes from the last checkpoint (weights, optimizer state, step).

MODEL_DIR (all through tf.io.gfile):
  detector.json        backbone, image size, anchors, head, classes: what rebuilds the detector
  checkpoints/         tf.train.Checkpoint: detector, optimizer (its step counter is the step)
  label_map.json       copied from the data dir
  train_config.json    the flags of the run (and the number of boxed train images)
  train_summary.json   steps, seconds per step, last loss
  logs/train           TensorBoard: loss, learning rate, seconds per step
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from inat_tf import label_map as label_map_lib
from inat_tf import run_common
from inat_tf import trained_model
from inat_tf.detection import backbones
from inat_tf.detection import classes as classes_lib
from inat_tf.detection import data
from inat_tf.detection import model as model_lib
from inat_tf.commands.detect_train import DetectTrainConfig  # pylint: disable=unused-import
from inat_tf.errors import DetectTrainError

def _check(config):
  problems = []
  try:
    classes_lib.check_granularity(config.granularity)
  except ValueError as e:
    problems.append(str(e))
  try:
    backbones.check_image_size(config.backbone, config.image_size)
  except ValueError as e:
    problems.append(str(e))
  for name in ("batch_size", "max_boxes", "checkpoint_steps", "log_steps", "head_convs"):
    if getattr(config, name) < (0 if name == "head_convs" else 1):
      problems.append(f"--{name}={getattr(config, name)}: expected a positive integer")
  if config.learning_rate <= 0:
    problems.append(f"--learning_rate={config.learning_rate}: expected > 0, e.g. 1e-4")
  if config.train_steps <= 0 and config.epochs <= 0:
    problems.append("say how long to train: --epochs (e.g. 12) or --train_steps")
  if problems:
    raise DetectTrainError("; ".join(problems))


def _config_to_resume(config, model_dir):
  """The detector.json written by an earlier run must describe the same detector."""
  path = os.path.join(model_dir, trained_model.TRAIN_CONFIG)
  if not tf.io.gfile.exists(path):
    return
  earlier = run_common.read_json(path)
  fixed = ("granularity", "backbone", "image_size", "anchor_size", "head_convs", "head_norm")
  changed = [f"--{k}={earlier.get(k)!r} then, {getattr(config, k)!r} now" for k in fixed
             if earlier.get(k) != getattr(config, k)]
  checkpoints = os.path.join(model_dir, trained_model.CHECKPOINTS)
  if changed and tf.train.latest_checkpoint(checkpoints):
    raise DetectTrainError(f"{model_dir} holds a detector trained with other settings "
                           f"({'; '.join(changed)}): use another --model_dir, or the same flags "
                           f"to resume.")


def train(config, log=print):
  """Trains (or resumes) per `config`; returns the train summary dict."""
  _check(config)
  label_map = label_map_lib.LabelMap.load(config.data_dir)
  classes = classes_lib.detection_classes(label_map, config.granularity)
  data.check_has_boxes(config.data_dir, "train")
  _config_to_resume(config, config.model_dir)
  tf.io.gfile.makedirs(config.model_dir)

  total_steps, boxed_images = config.train_steps, None
  if total_steps <= 0:
    log("inat-detect-train: counting the train images with boxes (one pass over the records)")
    boxed_images = data.count_boxed(config.data_dir, "train")
    total_steps = int(math.ceil(config.epochs * boxed_images / config.batch_size))

  detector_config = model_lib.DetectorConfig(
      backbone=config.backbone, image_size=config.image_size, num_classes=classes.num_classes,
      anchor_size=config.anchor_size, head_convs=config.head_convs, head_norm=config.head_norm)
  checkpoint_dir = os.path.join(config.model_dir, trained_model.CHECKPOINTS)
  latest = tf.train.latest_checkpoint(checkpoint_dir)
  keras.utils.set_random_seed(config.seed)
  detector = model_lib.build(detector_config,
                             weights=(None if latest else
                                      run_common.weights_argument(config.weights)))
  run_common.set_batch_norm_momentum(detector, config.bn_momentum)
  optimizer = model_lib.make_optimizer(config.learning_rate, config.warmup_steps,
                                       config.clip_norm)
  optimizer.build(detector.trainable_variables)
  checkpoint = tf.train.Checkpoint(detector=detector, optimizer=optimizer)
  manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, config.keep_checkpoints)
  if latest:
    checkpoint.restore(latest).assert_existing_objects_matched()
  step = int(optimizer.iterations.numpy())
  if latest:
    log(f"inat-detect-train: resuming from {latest} at step {step:,}")
  model_lib.write_config(config.model_dir, detector_config, classes)
  trained_model.start(config.model_dir, config.data_dir, {
      **dataclasses.asdict(config), "total_steps": total_steps,
      "boxed_train_images": boxed_images, "num_classes": classes.num_classes})

  dataset = data.train_dataset(config.data_dir, classes.species_to_class, config.image_size,
                               config.batch_size, config.max_boxes, seed=config.seed + step,
                               flip=config.flip)
  variables = detector.trainable_variables

  @tf.function
  def train_loop(iterator, num_steps):
    total = tf.constant(0.0)
    for _ in tf.range(num_steps):
      images, targets = next(iterator)
      with tf.GradientTape() as tape:
        outputs = detector(images, training=True)
        # keras-hub's loss: focal (classes) + Huber (boxes), targets encoded against anchors.
        loss = detector.compute_loss(x=images, y=targets, y_pred=outputs, sample_weight=None)
      optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
      total += loss
    return total

  log(f"inat-detect-train: {config.backbone} RetinaNet, {classes.num_classes} "
      f"{config.granularity} classes, {config.image_size} px, from {config.weights} weights; "
      f"Adam at learning rate {config.learning_rate:g} after {config.warmup_steps} warm-up "
      f"steps; {total_steps:,} steps of {config.batch_size} images; into {config.model_dir}")
  writer = tf.summary.create_file_writer(os.path.join(config.model_dir, trained_model.LOGS,
                                                      "train"))
  iterator = iter(dataset)
  start, start_step, loss_sum, last_time, last_step = time.monotonic(), step, 0.0, None, step
  loss = None
  while step < total_steps:
    num_steps = run_common.steps_to_next_stop(step, total_steps,
                                              every=(config.log_steps, config.checkpoint_steps))
    if last_time is None:  # the first call traces the step: timed apart from the rest
      num_steps, trace_start = 1, time.monotonic()
    loss_sum += float(train_loop(iterator, tf.constant(num_steps)).numpy())
    step += num_steps
    if last_time is None:
      last_time, last_step = time.monotonic(), step
      log(f"step {step:,}/{total_steps:,}: first step (with tracing) "
          f"{last_time - trace_start:.1f}s")
      loss_sum = 0.0
    if not np.isfinite(loss_sum):
      raise DetectTrainError(f"the loss is {loss_sum} at step {step}: lower --learning_rate")
    if step % config.log_steps == 0 or step == total_steps:
      now = time.monotonic()
      seconds_per_step = (now - last_time) / max(step - last_step, 1)
      loss = loss_sum / max(step - last_step, 1)
      log(f"step {step:,}/{total_steps:,} loss {loss:.4f} {seconds_per_step:.2f} s/step "
          f"ETA {(total_steps - step) * seconds_per_step / 60:.1f} min")
      with writer.as_default(step=step):
        tf.summary.scalar("loss", loss)
        tf.summary.scalar("learning_rate", optimizer.learning_rate)
        tf.summary.scalar("seconds_per_step", seconds_per_step)
      loss_sum, last_time, last_step = 0.0, now, step
    if step % config.checkpoint_steps == 0 or step == total_steps:
      manager.save(checkpoint_number=step)
      log(f"checkpoint saved at step {step:,}")
  writer.flush()
  seconds = time.monotonic() - start
  summary = {"steps": step, "steps_this_run": step - start_step,
             "seconds_this_run": round(seconds, 1),
             "seconds_per_step": round(seconds / max(step - start_step, 1), 3),
             "last_loss": loss}
  run_common.write_json(os.path.join(config.model_dir, trained_model.TRAIN_SUMMARY), summary)
  log(f"inat-detect-train: done: {step:,} steps, this run {step - start_step:,} in "
      f"{seconds:.0f}s, last loss {loss if loss is None else round(float(loss), 4)}; "
      f"checkpoints in {checkpoint_dir}")
  return summary


def main(config, _):
  """inat-detect-train's work once its flags are parsed (inat_tf/commands/detect_train.py)."""
  try:
    train(config, log=lambda message: print(message, flush=True))
  except tf.errors.InvalidArgumentError as e:  # a box outside the boxed classes
    raise DetectTrainError(str(e)) from None

