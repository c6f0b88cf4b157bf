"""`inat-train`: the paper's recipe, from one CPU to a TPU pod.

  inat-train --recipe table3/inception_v3 --data_dir D --model_dir M
  inat-train --data_dir D --model_dir M --model mobilenet_v1 --image_size 96 --epochs 10 \\
             --weights none

Read top to bottom: strategy → data → model and optimizer → checkpoint (resume) → the loop (train
steps, progress, checkpoints, evaluation at epoch ends, best model) → final model. A rerun with the
same --model_dir resumes from the last checkpoint (step, weights, optimizer state, best score).

Everything under --model_dir goes through tf.io.gfile, so gs:// works. Its files (checkpoints/,
logs/train and logs/val, best.keras, final.keras, label_map.json, train_config.json,
train_summary.json) are the model-dir contract of inat_tf/trained_model.py; with --ema_decay > 0
the saved models hold the moving-average weights. The val pass also reports top-1 / top-5 on
many-, medium- and few-shot species (log line, TensorBoard `top1_few_shot` etc.; long_tail.py).
train.flags sets every flag of the run: `inat-train --flagfile=M/train.flags` trains the same
configuration again.
"""

import dataclasses
import hashlib
import json
import math
import os
import sys
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

import models
from inat_tf import augment
from inat_tf import cli
from inat_tf import distribution
from inat_tf import fit_check
from inat_tf import input_pipeline
from inat_tf import label_map as label_map_lib
from inat_tf import long_tail
from inat_tf import progress
from inat_tf import recipes
from inat_tf import records
from inat_tf import run_common
from inat_tf import run_record
from inat_tf import schedules
from inat_tf import trained_model
from inat_tf.commands import train as train_command
from inat_tf.commands.train import TrainConfig  # pylint: disable=unused-import
from inat_tf.errors import TrainError
from inat_tf.errors import TrainInterrupted


def _optimizer(config, schedule, policy):
  ema = {"use_ema": config.ema_decay > 0, "ema_momentum": config.ema_decay or 0.99}
  if config.optimizer == "rmsprop":
    # TF-slim's RMSProp (decay = rho 0.9, momentum 0.9, epsilon 1.0): what the paper used.
    optimizer = keras.optimizers.RMSprop(schedule, rho=config.rmsprop_decay,
                                         momentum=config.momentum,
                                         epsilon=config.rmsprop_epsilon, **ema)
  elif config.optimizer == "sgd":
    optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True, **ema)
  elif config.optimizer == "adamw":
    # Decoupled weight decay (Loshchilov & Hutter), on kernels only (see train): not the L2 loss.
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, **ema)
  else:
    raise TrainError(f"optimizer={config.optimizer!r}: expected rmsprop, sgd or adamw")
  if policy == "mixed_float16":  # float16 gradients underflow without loss scaling
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def _inner(optimizer):
  return optimizer.inner_optimizer if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) \
      else optimizer


def _total_steps(config, steps_per_epoch):
  if config.train_steps > 0:
    return config.train_steps
  if config.epochs > 0:
    return int(math.ceil(config.epochs * steps_per_epoch))
  raise TrainError("Say how long to train: --epochs (e.g. 40) or --train_steps.")


def _swap_ema(optimizer):
  """Exchanges the model's trainable weights with their moving averages (and back, if repeated).

  Uses the optimizer's own lists, as keras.callbacks.SwapEMAWeights does.
  """
  inner = _inner(optimizer)
  for variable, average in zip(inner._trainable_variables,  # pylint: disable=protected-access
                               inner._model_variables_moving_average):  # pylint: disable=protected-access
    current = tf.identity(variable.value)
    variable.assign(average.value)
    average.assign(current)


# Why a readable checkpoint's classifier may not fit the model the same flags build now.
_HEAD_CHANGE = ("; MobileNet V1's classifier was a 1x1 conv until 2026-12-07 and is a Dense now "
                "(models/heads.py): such a run cannot resume, but its best.keras and final.keras "
                "still load in inat-eval, inat-predict and inat-export")


def _does_not_fit(path, error):
  """The TrainError for a readable checkpoint of another model."""
  message = str(error)
  return TrainError(f"checkpoint {path} does not fit this model ({message.splitlines()[0]})"
                    f"{_HEAD_CHANGE if 'head_logits' in message else ''}: use a new --model_dir, "
                    f"or --overwrite")


def _restore(checkpoint, manager, log):
  """Restores the newest readable checkpoint, falling back to older ones with a warning (a
  machine lost mid-save can leave the newest one truncated); returns its path."""
  for path in reversed(manager.checkpoints):
    try:
      checkpoint.restore(path).assert_existing_objects_matched()
      return path
    except AssertionError as e:  # another network: run_record should have refused the rerun
      raise _does_not_fit(path, e) from None
    except (tf.errors.OpError, IndexError, KeyError, ValueError) as e:
      if isinstance(e, ValueError) and "incompatible tensor with shape" in str(e):
        raise _does_not_fit(path, e) from None  # another layout: every older checkpoint too
      log(f"inat-train: warning: checkpoint {path} cannot be read ({type(e).__name__}: "
          f"{(str(e).strip() or repr(e)).splitlines()[0][:200]}); trying the one before it")
  raise TrainError(f"no checkpoint of {manager.directory} can be read: delete the directory "
                   f"to start over (or rerun with --overwrite)")


def _weights_digest(model):
  digest = hashlib.sha256()
  for weight in model.weights:
    digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight.value)).tobytes())
  return digest.hexdigest()


def _finished_run(config, total_steps):
  """The train summary of a run already trained to total_steps in config.model_dir, else None."""
  path = os.path.join(config.model_dir, trained_model.TRAIN_SUMMARY)
  latest = tf.train.latest_checkpoint(os.path.join(config.model_dir, trained_model.CHECKPOINTS))
  if not latest or not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    summary = json.load(f)
  if summary.get("steps", -1) < total_steps or not latest.endswith(f"-{summary['steps']}"):
    return None
  return summary


def _check_before_start(config):
  """The mistakes found without TensorFlow's runtime (before any device is set up)."""
  problem = train_command.image_size_problem(config)  # also refused before TensorFlow loads
  if problem:
    raise TrainError(problem)
  if config.overwrite:
    run_record.clear(config.model_dir)
  try:
    run_record.check_rerun(config.model_dir, config.data_dir, dataclasses.asdict(config))
  except run_record.RunMismatch as e:
    raise TrainError(str(e)) from None


def interruptible(loop, checkpoint_dir):
  """loop(where, ctrl_c) under run_common.CtrlC; the loop keeps where["step"] current and calls
  ctrl_c.check() between steps. Ctrl-C raises TrainInterrupted naming the step reached and the
  newest checkpoint in checkpoint_dir (both trainers: inat-train and inat-train-geo)."""
  where = {"step": 0}
  try:
    with run_common.CtrlC() as ctrl_c:
      return loop(where, ctrl_c)
  except KeyboardInterrupt:
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:  # nothing to resume from
      raise TrainInterrupted(f"interrupted at step {where['step']:,}, before the first "
                             f"checkpoint: nothing was saved") from None
    raise TrainInterrupted(
        f"interrupted at step {where['step']:,}; last checkpoint {latest}; rerun the same "
        f"command to resume") from None


def train(config, log=print):
  """Trains (or resumes) per `config`; returns the train summary dict.

  Raises TrainError (the message says what to do) for settings, data or a model dir that cannot
  give a right run, TrainInterrupted on Ctrl-C. A rerun of a finished run changes no file.
  """
  try:
    return interruptible(lambda where, ctrl_c: _train(config, log, where, ctrl_c),
                         os.path.join(config.model_dir, "checkpoints"))
  except tf.errors.DataLossError as e:
    raise TrainError(records.describe_damage(config.data_dir, ("train", "val"), e)) from None


def _train(config, log, where, ctrl_c):
  _check_before_start(config)
  label_map = label_map_lib.LabelMap.load(config.data_dir)
  steps_per_epoch = records.steps_per_epoch(config.data_dir, "train", config.batch_size)
  total_steps = _total_steps(config, steps_per_epoch)
  finished = _finished_run(config, total_steps)
  if finished is not None:
    log(f"inat-train: {config.model_dir} already holds this run, trained to step "
        f"{finished['steps']:,} (of {total_steps:,} asked for): nothing to do. Raise --epochs or "
        f"--train_steps to train longer.")
    return finished

  # -- strategy ---------------------------------------------------------------------------------
  try:
    strategy = distribution.make_strategy(config.distribution, config.tpu,
                                          config.num_cpu_devices)
  except distribution.DistributionError as e:
    raise TrainError(str(e)) from None
  policy = distribution.set_mixed_precision(strategy, config.mixed_precision)
  chief = distribution.is_chief(strategy)
  task = distribution.task_name(strategy)
  replicas = strategy.num_replicas_in_sync
  if config.batch_size % replicas:  # each replica takes an equal share of the global batch
    lower = config.batch_size // replicas * replicas
    near = " or ".join(str(n) for n in (lower, lower + replicas) if n > 0)
    raise TrainError(f"--batch_size={config.batch_size} does not divide over the {replicas} "
                     f"replicas of {distribution.strategy_name(strategy)}: give a multiple of "
                     f"{replicas}, e.g. {near}")
  tf.io.gfile.makedirs(config.model_dir)

  # -- data -------------------------------------------------------------------------------------
  input_config = input_pipeline.InputConfig(
      data_dir=config.data_dir, model_name=config.model, split="train",
      image_size=config.image_size, global_batch_size=config.batch_size,
      sampling=config.sampling, color_distortion=config.color_distortion,
      crop_with_boxes=config.crop_with_boxes, cache=config.cache,
      deterministic=config.deterministic, seed=config.seed, synthetic=config.synthetic,
      data_service=config.data_service, dtype="bfloat16" if policy == "mixed_bfloat16" and
      isinstance(strategy, tf.distribute.TPUStrategy) else "float32",
      augment=augment.config_from(config), eval_crop_fraction=config.eval_crop_fraction)
  try:
    input_config.validate()
  except ValueError as e:
    raise TrainError(str(e)) from None
  # Long-tail remedies (long_tail.py): the loss's per-class weights and logit offsets, and from
  # which step they and --sampling apply (deferred re-weighting / re-sampling, Cao et al. 2019).
  try:
    remedy_terms = long_tail.loss_terms(config.loss, label_map.train_counts,
                                        config.class_balanced_beta, config.logit_adjustment_tau)
  except long_tail.LongTailError as e:
    raise TrainError(str(e)) from None
  plain_terms = long_tail.loss_terms("cross_entropy", label_map.train_counts)
  remedy_step = int(round(config.deferred_start_epoch * steps_per_epoch))
  if remedy_step and config.loss == "cross_entropy" and config.sampling == "uniform":
    raise TrainError("--deferred_start_epoch defers a remedy: give --loss (e.g. class_balanced: "
                     "deferred re-weighting) or --sampling balanced (deferred re-sampling)")
  train_data = {True: strategy.distribute_datasets_from_function(
      lambda context: input_pipeline.train_dataset(input_config, context))}
  if remedy_step and config.sampling != "uniform":  # images drawn uniformly until remedy_step
    uniform_config = dataclasses.replace(input_config, sampling="uniform")
    train_data[False] = strategy.distribute_datasets_from_function(
        lambda context: input_pipeline.train_dataset(uniform_config, context))
  has_val = records.has_shards(config.data_dir, "val")
  # Val scores the species the model is trained on, as inat-eval does: a held-out species'
  # images (inat-build --holdout_species) can never be right, and would only lower every score.
  unscored = tuple(int(c) for c in np.flatnonzero(np.asarray(label_map.train_counts) == 0))
  val_config = dataclasses.replace(input_config, split="val", deterministic=True,
                                   unscored_classes=unscored)
  val_data = strategy.distribute_datasets_from_function(
      lambda context: input_pipeline.eval_dataset(val_config, context, pad_final_batch=True)
  ) if has_val else None

  # -- model, optimizer, checkpoint -------------------------------------------------------------
  checkpoint_dir = os.path.join(config.model_dir, trained_model.CHECKPOINTS)
  if not chief:  # every worker saves (it is collective); only the chief's copy is kept
    checkpoint_dir = os.path.join(checkpoint_dir, f".{task}")
  latest = tf.train.latest_checkpoint(checkpoint_dir)
  resuming = latest is not None
  log(start_line(config, f"{replicas} replica{'s' * (replicas > 1)} "
                 f"({distribution.strategy_name(strategy)}), {policy}", num_classes=
                 label_map.num_classes, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                 resume_from=latest))
  if unscored and has_val:
    log(f"inat-train: val scores the {label_map.num_classes - len(unscored):,} species with "
        f"train images; the val images of the {len(unscored):,} without (held out by inat-build "
        f"--holdout_species) are left out, as inat-eval leaves them out")
  schedule = schedules.LearningRateSchedule(schedules.ScheduleConfig(
      learning_rate=config.learning_rate, global_batch_size=config.batch_size,
      steps_per_epoch=steps_per_epoch, total_steps=total_steps, kind=config.lr_schedule,
      decay_rate=config.lr_decay_rate, decay_epochs=config.lr_decay_epochs,
      warmup_epochs=config.warmup_epochs))
  keras.utils.set_random_seed(config.seed)
  with strategy.scope():
    try:
      model = models.build(config.model, label_map.num_classes, config.image_size,
                           weights=(None if resuming else
                                    run_common.weights_argument(config.weights)),
                           aux_logits=config.aux_logits,
                           dropout_rate=None if config.dropout_rate < 0 else config.dropout_rate,
                           head_rank=config.head_rank)
    except (ValueError, RuntimeError) as e:  # RuntimeError: ImageNet weights not downloadable
      raise TrainError(str(e)) from None
    run_common.set_batch_norm_momentum(model, config.bn_momentum)
    optimizer = _optimizer(config, schedule, policy)
    if config.optimizer == "adamw":  # decay kernels only, as the L2 term does for the others
      _inner(optimizer).exclude_from_weight_decay(
          var_list=[v for v in model.trainable_variables if "kernel" not in v.path])
    optimizer.build(model.trainable_variables)
    best_top1 = tf.Variable(-1.0, trainable=False, name="best_val_top1")
    best_step = tf.Variable(-1, trainable=False, dtype=tf.int64, name="best_val_step")
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, best_top1=best_top1,
                                   best_step=best_step)
  manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, config.keep_checkpoints)
  restored = _restore(checkpoint, manager, log) if resuming else None
  step = where["step"] = int(_inner(optimizer).iterations.numpy())
  if resuming:
    log(f"inat-train: resuming from {restored} at step {step:,} "
        f"(epoch {step / steps_per_epoch:.2f})")
  if chief:
    trained_model.start(config.model_dir, config.data_dir, {
        **dataclasses.asdict(config), "num_classes": label_map.num_classes,
        "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
        "inat_tf_version": recipes.package_version()})
    run_common.write_text(os.path.join(
        config.model_dir, trained_model.TRAIN_FLAGS), recipes.flagfile_text(
        # Without --overwrite: rerunning from this file must resume, never delete the run.
        {k: v for k, v in dataclasses.asdict(config).items() if k != "overwrite"}, [
            "inat-train flags of this run; `inat-train --flagfile=THIS_FILE` reruns it (later "
            "flags override).", f"inat-tf {recipes.package_version()}, recipe "
            f"{config.recipe or '(none)'}"]))

  # -- the steps ----------------------------------------------------------------------------------
  new_layers = models.new_layers(model)
  head_variables = [v for layer in new_layers for v in layer.trainable_variables]
  all_variables = list(model.trainable_variables)
  decay_variables = [v for v in all_variables if "kernel" in v.path]
  head_steps = int(config.train_head_epochs * steps_per_epoch)

  def freeze_backbone(frozen):
    """Head-only phase: frozen layers also run BatchNorm in inference mode, as Keras advises.

    Only on a change: setting `trainable` makes the next tf.function call retrace.
    """
    if frozen == freeze_backbone.frozen:
      return
    for layer in model.layers:
      if layer not in new_layers:
        layer.trainable = not frozen
    freeze_backbone.frozen = frozen

  freeze_backbone.frozen = False

  # Not converted by autograph (train_loop's tf.range loop is, and would convert everything it
  # calls): graph code as written, whose conversion only costs start-up time (BUILD_NOTES,
  # "Start-up").
  @tf.autograph.experimental.do_not_convert
  def replica_step(images, labels, variables, class_weights, logit_offsets):
    """One step on one replica; returns [loss sum, top-1 hits, top-5 hits, examples].

    labels: [batch] int32, or [batch, classes] float32 soft labels (MixUp / CutMix), whose
    largest entry counts for the top-k scores.
    """
    targets = labels  # what the loss compares with
    if labels.shape.rank == 2:
      labels = tf.argmax(labels, axis=-1, output_type=tf.int32)
    with tf.GradientTape() as tape:
      outputs = model(images, training=True)
      logits = outputs["logits"] if config.aux_logits else outputs

      def cross_entropy(logits):
        per_example = long_tail.per_example_loss(targets, logits, class_weights, logit_offsets,
                                                 label_smoothing=config.label_smoothing)
        return tf.nn.compute_average_loss(per_example, global_batch_size=config.batch_size)

      loss = cross_entropy(logits)
      if config.aux_logits:
        loss += config.aux_loss_weight * cross_entropy(outputs["aux_logits"])
      if config.weight_decay > 0 and config.optimizer != "adamw":  # TF-slim's L2 on kernels
        trained = {id(v) for v in variables}
        l2 = tf.add_n([tf.nn.l2_loss(tf.cast(v.value, tf.float32)) for v in decay_variables
                       if id(v) in trained])
        loss += tf.nn.scale_regularization_loss(config.weight_decay * l2)
      scaled_loss = optimizer.scale_loss(loss)
    gradients = tape.gradient(scaled_loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))
    logits = tf.cast(logits, tf.float32)
    # `loss` is this replica's share of the global batch's mean loss (compute_average_loss divides
    # by the global batch): the replicas' shares add up to it, so x global batch size is a sum
    # over the batch that the SUM over replicas and the division by examples turn back into it.
    return tf.stack([loss * config.batch_size,
                     tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32)),
                     tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, 5), tf.float32)),
                     tf.cast(tf.shape(labels)[0], tf.float32)])

  def make_train_loop(variables):
    # `variables` is closed over, not passed through strategy.run: as an argument every variable
    # would be read and regrouped per step (half the speed of a small model on CPU).
    @tf.function
    def train_loop(iterator, num_steps, class_weights, logit_offsets):
      step_fn = lambda images, labels: replica_step(images, labels, variables, class_weights,
                                                    logit_offsets)
      totals = tf.zeros([4])
      for _ in tf.range(num_steps):
        images, labels = next(iterator)
        sums = strategy.run(step_fn, args=(images, labels))
        totals += strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)
      return totals
    return train_loop

  train_head_only = make_train_loop(head_variables)
  train_everything = make_train_loop(all_variables)

  # Keras 3 creates BatchNorm's moving statistics without a cross-replica aggregation, so each
  # replica updates them from its own batches only and workers drift apart. Averaging them after
  # every loop gives what tf.keras's on-read MEAN variables gave: one set of statistics over the
  # global batch, identical on every worker (and in every worker's checkpoint).
  moving_statistics = [v for v in model.non_trainable_variables
                       if v.path.endswith(("moving_mean", "moving_variance"))]

  @tf.function(autograph=False)
  def average_moving_statistics():
    def replica():
      return tf.distribute.get_replica_context().all_reduce(
          tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in moving_statistics])
    means = strategy.run(replica)
    for variable, mean in zip(moving_statistics, means):
      variable.assign(strategy.experimental_local_results(mean)[0])

  @tf.function(autograph=False)
  def eval_step(images, labels, weights):
    """[num_classes, 3]: per class, top-1 hits, top-5 hits and examples (for the shot buckets)."""
    def replica(images, labels, weights):
      outputs = model(images, training=False)
      logits = tf.cast(outputs["logits"] if config.aux_logits else outputs, tf.float32)
      safe = tf.maximum(labels, 0)  # padding has label -1 and weight 0
      cross_entropy = keras.losses.categorical_crossentropy(
          tf.one_hot(safe, label_map.num_classes), logits, from_logits=True)
      # Per class (for the shot buckets): top-1 hits, top-5 hits, images, summed cross-entropy.
      sums = tf.stack([tf.cast(tf.math.in_top_k(safe, logits, k), tf.float32) * weights
                       for k in (1, 5)] + [weights, cross_entropy * weights], axis=1)
      return tf.math.unsorted_segment_sum(sums, safe, label_map.num_classes)
    sums = strategy.run(replica, args=(images, labels, weights))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, sums, axis=None)

  def evaluate():
    """Val (top-1, top-5, shot buckets, images, cross-entropy), with the EMA weights when they
    are kept."""
    if config.ema_decay > 0:
      _swap_ema(optimizer)
    per_class = np.zeros([label_map.num_classes, 4])
    for images, labels, weights in val_data:
      per_class += eval_step(images, labels, weights).numpy()
    if config.ema_decay > 0:
      _swap_ema(optimizer)
    totals = per_class.sum(axis=0)
    return (totals[0] / totals[2], totals[1] / totals[2],
            long_tail.shot_scores(per_class[:, 2], per_class[:, 0], per_class[:, 1],
                                  label_map.train_counts),
            int(totals[2]), totals[3] / totals[2])

  def save_model(which):
    """Chief only: the serving model (EMA weights if kept) as best.keras / final.keras."""
    if config.ema_decay > 0:
      _swap_ema(optimizer)
    try:
      trained_model.save(model, config.model_dir, which)
    finally:
      if config.ema_decay > 0:
        _swap_ema(optimizer)

  # -- the loop -----------------------------------------------------------------------------------
  writers = {name: tf.summary.create_file_writer(os.path.join(config.model_dir,
                                                              trained_model.LOGS, name))
             for name in ("train", "val")} if chief else {}
  if chief:  # the run's settings, in TensorBoard's Text tab (a Markdown table)
    with writers["train"].as_default(step=step):
      tf.summary.text("config", "| flag | value |\n|---|---|\n" + "\n".join(
          f"| {key} | {value} |" for key, value in sorted(dataclasses.asdict(config).items())))
  iterators = {remedy: iter(data) for remedy, data in train_data.items()}
  eval_interval = max(1, int(round(config.eval_every_epochs * steps_per_epoch)))
  totals, last_log_time, last_log_step = np.zeros(4), time.monotonic(), step
  start_time, start_step, val_scores, train_top1 = time.monotonic(), step, None, None
  val_curve = []  # (epoch, val top-1) of this run's evaluations, for the fit check at the end
  while step < total_steps:
    ctrl_c.check()  # a Ctrl-C stops here, between steps (run_common.CtrlC)
    num_steps = run_common.steps_to_next_stop(
        step, total_steps, every=(config.log_steps, config.checkpoint_steps, eval_interval),
        stops=(step + config.steps_per_loop, head_steps, remedy_step))
    if step < head_steps:
      freeze_backbone(True)
      loop = train_head_only
    else:
      freeze_backbone(False)
      loop = train_everything
    remedy = step >= remedy_step
    class_weights, logit_offsets = remedy_terms if remedy else plain_terms
    totals += loop(iterators[remedy if remedy in iterators else True], tf.constant(num_steps),
                   tf.constant(class_weights), tf.constant(logit_offsets)).numpy()
    if strategy.num_replicas_in_sync > 1 and moving_statistics:
      average_moving_statistics()
    step += num_steps
    where["step"] = step

    if step % config.log_steps == 0 or step == total_steps:
      now = time.monotonic()
      images_per_second = (step - last_log_step) * config.batch_size / (now - last_log_time)
      loss, top1, top5 = totals[0] / totals[3], totals[1] / totals[3], totals[2] / totals[3]
      train_top1 = top1
      rate = float(schedule(step))
      eta = (total_steps - step) * config.batch_size / max(images_per_second, 1e-9)
      log(f"step {step:,}/{total_steps:,} (epoch {step / steps_per_epoch:.2f}) loss {loss:.3f} "
          f"top-1 {100 * top1:.1f}% top-5 {100 * top5:.1f}% lr {rate:.5f} "
          f"{images_per_second:,.0f} images/s ETA {progress.duration(eta)}"
          + (" [head only]" if step <= head_steps else ""))
      if chief:
        with writers["train"].as_default(step=step):
          for name, value in (("loss", loss), ("top1", top1), ("top5", top5),
                              ("learning_rate", rate), ("images_per_second", images_per_second)):
            tf.summary.scalar(name, value)
      totals, last_log_time, last_log_step = np.zeros(4), now, step

    evaluated = val_data is not None and (step % eval_interval == 0 or step == total_steps)
    if evaluated:
      val_scores = evaluate()
      val_curve.append((step / steps_per_epoch, val_scores[0]))
      improved = val_scores[0] > float(best_top1.numpy())
      log(f"val at step {step:,} ({val_scores[3]:,} images): top-1 {100 * val_scores[0]:.2f}% "
          f"top-5 {100 * val_scores[1]:.2f}% top-5 error {100 * (1 - val_scores[1]):.2f}% "
          f"loss {val_scores[4]:.3f}; top-1 {long_tail.format_shots(val_scores[2])}"
          + (" (best so far)" if improved else ""))
      if improved:
        best_top1.assign(val_scores[0])
        best_step.assign(step)
        if chief:
          save_model("best")
      if chief:
        with writers["val"].as_default(step=step):
          tf.summary.scalar("top1", val_scores[0])
          tf.summary.scalar("top5", val_scores[1])
          for bucket, scores in val_scores[2].items():  # many / medium / few-shot species
            for key in ("top1", "top5"):
              if scores[key] is not None:
                tf.summary.scalar(f"{key}_{bucket}_shot", scores[key])
          tf.summary.scalar("loss", val_scores[4])
          tf.summary.scalar("best_top1", best_top1)
          tf.summary.scalar("best_step", best_step)  # the step best.keras comes from
    # After a val run too, so a resume restores the best score that best.keras was saved with
    # (otherwise a worse model could replace it). Not at every epoch end: on a small data set
    # that is every few steps, and the input position is not checkpointed anyway.
    if step % config.checkpoint_steps == 0 or evaluated or step == total_steps:
      manager.save(checkpoint_number=step)

  # -- the end ------------------------------------------------------------------------------------
  if chief:
    save_model("final")
    if not trained_model.exists(config.model_dir, "best"):
      save_model("best")  # no val split: the final model is the best we know
  seconds = time.monotonic() - start_time
  fit = fit_check.check(train_top1, val_curve, val_scores[3] if val_scores else 0,
                        mixed_labels=config.mixup_alpha > 0 or config.cutmix_factor > 0)
  summary = {
      "task": task, "steps": step, "epochs": step / steps_per_epoch,
      "steps_this_run": step - start_step, "seconds_this_run": round(seconds, 1),
      "images_per_second": (step - start_step) * config.batch_size / max(seconds, 1e-9),
      "last_train_top1": train_top1,  # over the last --log_steps steps, augmented batches
      "best_val_top1": float(best_top1.numpy()),
      "best_val_step": int(best_step.numpy()),
      "final_val_top1": val_scores[0] if val_scores else None,
      "final_val_top5": val_scores[1] if val_scores else None,
      "final_val_shots": val_scores[2] if val_scores else None,  # many / medium / few top-1, top-5
      "final_val_images": val_scores[3] if val_scores else None,
      "final_val_loss": val_scores[4] if val_scores else None,
      "weights_sha256": _weights_digest(model),
      "fit_check": dataclasses.asdict(fit),  # under- / overfitting findings and advice
  }
  name = trained_model.TRAIN_SUMMARY if chief else f"train_summary-{task}.json"
  run_common.write_json(os.path.join(config.model_dir, name), summary)
  for writer in writers.values():
    writer.flush()
  if fit.advice:  # before the done line, which stays the last
    log(f"inat-train: advice: {fit.advice}")
  report_end(summary, config, log)
  return summary


def start_line(config, placement, *, num_classes, steps_per_epoch, total_steps, resume_from):
  """inat-train's first line: what it is about to do, every setting resolved (after --recipe and
  the linear learning-rate scaling), e.g.

    inat-train: mobilenet_v1, 80 px, 40 classes, from random weights; rmsprop (rho 0.9,
    momentum 0.9, epsilon 1), learning rate 0.1 (0.1 per 32 images), cosine decay; 400 steps
    (10.0 epochs) of 32 images on 1 replica (OneDeviceStrategy), float32; recipe -; into
    runs/quickstart/model
  (one line). placement: replicas, strategy and precision as words; resume_from: the checkpoint
  a rerun continues from, or None.
  """
  c = config
  weights = run_common.weights_argument(c.weights)
  weights = {None: "random weights", "imagenet": "ImageNet weights"}.get(weights, weights)
  optimizer = {"rmsprop": f"rmsprop (rho {c.rmsprop_decay:g}, momentum {c.momentum:g}, epsilon "
                          f"{c.rmsprop_epsilon:g})",
               "sgd": f"sgd (Nesterov momentum {c.momentum:g})",
               "adamw": f"adamw (weight decay {c.weight_decay:g})"}.get(c.optimizer, c.optimizer)
  schedule = (f"x{c.lr_decay_rate:g} every {c.lr_decay_epochs:g} epochs"
              if c.lr_schedule == "exponential" else f"{c.lr_schedule} decay")
  warmup = f" after {cli.count(c.warmup_epochs, 'warm-up epoch')}" if c.warmup_epochs else ""
  peak = c.learning_rate * c.batch_size / schedules.BASE_BATCH
  resume = ""
  if resume_from:
    resume = f"; resuming from {os.path.basename(resume_from)}"
  return (f"inat-train: {c.model}, {c.image_size} px, {num_classes:,} classes, from {weights}; "
          f"{optimizer}, learning rate {peak:g} ({c.learning_rate:g} per "
          f"{schedules.BASE_BATCH} images), {schedule}{warmup}; {total_steps:,} steps "
          f"({total_steps / steps_per_epoch:.1f} epochs) of {c.batch_size} images on {placement}; "
          f"recipe {c.recipe or '-'}; into {c.model_dir}{resume}")


def report_end(summary, config, log):
  """inat-train's last line: what the run did (from its train_summary.json), e.g.

    inat-train: done: 400 steps (10.0 epochs), this run 400 in 3m05s (69 images/s); best val
    top-1 62.1% at step 360, final 61.0%; models in runs/quickstart/model (best.keras,
    final.keras)
  """
  s = summary
  if s["best_val_step"] >= 0:
    val = f"best val top-1 {100 * s['best_val_top1']:.1f}% at step {s['best_val_step']:,}"
    if s["final_val_top1"] is not None:
      val += f", final {100 * s['final_val_top1']:.1f}%"
  else:
    val = "no val split, so best.keras is the final model"
  log(f"inat-train: done: {s['steps']:,} steps ({s['epochs']:.1f} epochs), this run "
      f"{s['steps_this_run']:,} in {progress.duration(s['seconds_this_run'])} "
      f"({s['images_per_second']:,.0f} images/s); {val}; models in {config.model_dir} "
      f"({trained_model.model_file('best')}, {trained_model.model_file('final')})")


def main(config, _):
  """inat-train's work once its flags are parsed (inat_tf/commands/train.py)."""
  try:
    train(config, log=lambda message: print(message, flush=True))
  except TrainInterrupted as e:
    print(f"inat-train: {e}", file=sys.stderr)
    sys.exit(130)  # the shell's code for SIGINT

