"""`inat-train-geo`: trains the location/date prior on the train split's places alone.

  inat-train-geo --data_dir D --geo_dir G [--epochs 30] [--nouse_date]

Mac Aodha, Cole and Perona, "Presence-Only Geographical Priors for Fine-Grained Image
Classification", ICCV 2019: network and loss in inat_tf/geo/model.py. The paper's settings are
the defaults (width 256, 4 residual blocks, Adam, batch 1024, learning rate 5e-4 decayed ×0.98
per epoch, λ = number of classes). No images are read: one train example is one (species,
latitude, longitude, date) observation; examples without coordinates (or without a date, when
dates are used) are left out and counted. Small enough for a CPU: the split's places live in
memory as two compact arrays, 16 bytes per place (iNat2021's 2.7 M: 43 MB), plus each epoch's
order (8 bytes per place); val is scored 1,024 places at a time, keeping top-5 indices only.

Like inat-train, a rerun with the same --geo_dir resumes from the last checkpoint (step, weights,
optimizer state, best score), and the same epoch order follows (each epoch's shuffle is seeded by
(seed, epoch); each step's background places by (seed, step)). Under --geo_dir (gfile paths):
  checkpoints/ logs/train logs/val   tf.train.Checkpoint; TensorBoard scalars
  best.keras final.keras             the prior with the best val prior-only top-1; the last one
  label_map.json geo_config.json     classes, and how places are encoded (use_date)
  train_summary.json                 steps, seconds, val scores
"""

import dataclasses
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from inat_tf import editions
from inat_tf import label_map as label_map_lib
from inat_tf import progress
from inat_tf import records
from inat_tf import run_common
from inat_tf import schema
from inat_tf import train as image_train
from inat_tf.geo import encoding
from inat_tf.geo import model as geo_model
from inat_tf.geo import prior as prior_lib
from inat_tf.commands.train_geo import GeoTrainConfig  # pylint: disable=unused-import

VAL_CHUNK = 1024  # val places scored at a time (their logits: VAL_CHUNK x classes float32)


def split_places(data_dir, split, use_date):
  """(places [N, 3] float32, labels [N] int32, examples read) for a split's labelled examples
  with a usable place, read from the records (no image is decoded).

  16 bytes per kept example, filled batch by batch into arrays sized from the manifest, so the
  whole split is never held in any other form (iNat2021's 2.7 M train places: 43 MB).
  """
  keys = [schema.LABEL, *encoding.PLACE_KEYS]

  def usable(examples):
    places, labels = encoding.places_from_examples(examples), examples[schema.LABEL]
    keep = encoding.has_place(places, use_date) & (labels >= 0)
    return tf.boolean_mask(places, keep), tf.cast(tf.boolean_mask(labels, keep), tf.int32), \
        tf.size(labels)

  dataset = records.examples(data_dir, split, keys).batch(4096).map(usable)
  capacity = records.split_examples(data_dir, split)
  places, labels = np.empty([capacity, 3], np.float32), np.empty([capacity], np.int32)
  kept = read = 0
  for batch_places, batch_labels, batch_read in dataset:
    n = len(batch_labels)
    if kept + n > capacity:  # more records than the manifest says: grow rather than fail
      capacity = max(2 * capacity, kept + n)
      places, labels = np.resize(places, [capacity, 3]), np.resize(labels, [capacity])
    places[kept:kept + n], labels[kept:kept + n] = batch_places.numpy(), batch_labels.numpy()
    kept, read = kept + n, read + int(batch_read)
  return places[:kept], labels[:kept], read


def no_places_hint(edition_name):
  """Where the data dir's edition publishes its places (inat_tf.editions), and what to do."""
  edition = editions.EDITIONS.get(edition_name or "2017")
  if edition is None or not (edition.location_files or edition.inline_locations):
    return (f"{edition.locations_published if edition else 'this edition has no places'}; "
            f"train a prior on an edition that has them: {_editions_with_places()}")
  if edition.inline_locations:
    return (f"iNat{edition.name} publishes {edition.locations_published}; were they null or NaN "
            f"in this download?")
  return (f"iNat{edition.name} publishes {edition.locations_published}; put them in the raw "
          f"folder and rebuild (inat-build names the location source it used in its summary)")


def _editions_with_places():
  """e.g. "train2017_locations.json (iNat2017), ... or train.json (iNat2021)": each edition's own
  file with places, so the hint names no 2017 file as another edition's."""
  names = [f"{e.splits['train'].annotations if e.inline_locations else e.location_files['train']}"
           f" (iNat{e.name})" for e in editions.EDITIONS.values()
           if (e.location_files or e.inline_locations) and e.name != "2021_mini"]
  return ", ".join(names[:-1]) + " or " + names[-1]


def _top_k_accuracy(top_indices, labels):
  """(top-1, top-5) accuracy from [N, K] predicted class indices, best first, and [N] labels."""
  return (float(np.mean(top_indices[:, 0] == labels)),
          float(np.mean((top_indices == labels[:, None]).any(1))))


def train(config, log=print):
  """Trains (or resumes) the prior per `config`; returns the train summary dict.

  Raises inat_tf.train.TrainError for data that cannot train a prior, and its TrainInterrupted
  on Ctrl-C (stopping between steps; the message names the last checkpoint).
  """
  return image_train.interruptible(lambda where, ctrl_c: _train(config, log, where, ctrl_c),
                                   os.path.join(config.geo_dir, "checkpoints"))


def _train(config, log, where, ctrl_c):
  label_map = label_map_lib.LabelMap.load(config.data_dir)
  places, labels, read = split_places(config.data_dir, "train", config.use_date)
  what = "coordinates and a date" if config.use_date else "coordinates"
  if len(labels) == 0:
    raise image_train.TrainError(
        f"None of the {read:,} train examples in {config.data_dir} has {what}: the prior has "
        f"nothing to learn from ({no_places_hint(label_map.edition)})")
  has_val = records.has_shards(config.data_dir, "val")
  val_places, val_labels, _ = (split_places(config.data_dir, "val", config.use_date)
                               if has_val else (None, np.zeros([0]), 0))
  steps_per_epoch = int(math.ceil(len(labels) / config.batch_size))
  total_steps = int(math.ceil(config.epochs * steps_per_epoch))
  if total_steps <= 0:
    raise image_train.TrainError("Say how long to train: --epochs must be > 0")
  log(f"inat-train-geo: a location{' and date' if config.use_date else ''} prior for "
      f"{label_map.num_classes} classes from the {len(labels):,} of {read:,} train examples "
      f"with {what}: {config.num_blocks} blocks of {config.width}, Adam at learning rate "
      f"{config.learning_rate:g} (x{config.lr_decay_rate:g} per epoch), {total_steps:,} steps "
      f"({config.epochs:g} epochs) of {config.batch_size}; into {config.geo_dir}")

  tf.io.gfile.makedirs(config.geo_dir)
  checkpoint_dir = os.path.join(config.geo_dir, "checkpoints")
  resuming = tf.train.latest_checkpoint(checkpoint_dir) is not None
  config_path = os.path.join(config.geo_dir, prior_lib.CONFIG_FILE)
  if resuming and tf.io.gfile.exists(config_path):
    previous = run_common.read_json(config_path)
    changed = [k for k in ("num_classes", "use_date", "width", "num_blocks")
               if previous.get(k) != {**dataclasses.asdict(config),
                                      "num_classes": label_map.num_classes}[k]]
    if changed:
      raise image_train.TrainError(
          f"{config.geo_dir} holds a prior trained with other {', '.join(changed)}: give a new "
          f"--geo_dir, or the same settings to resume")
  keras.utils.set_random_seed(config.seed)
  model = geo_model.build(label_map.num_classes, encoding.num_features(config.use_date),
                          width=config.width, num_blocks=config.num_blocks,
                          dropout=config.dropout_rate)
  schedule = keras.optimizers.schedules.ExponentialDecay(
      config.learning_rate, steps_per_epoch, config.lr_decay_rate, staircase=True)
  optimizer = keras.optimizers.Adam(schedule)
  optimizer.build(model.trainable_variables)
  best_top1 = tf.Variable(-1.0, trainable=False, name="best_val_top1")
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, best_top1=best_top1)
  manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, config.keep_checkpoints)
  if resuming:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
  step = int(optimizer.iterations.numpy())
  if resuming:
    log(f"inat-train-geo: resuming from {manager.latest_checkpoint} at step {step:,} "
        f"(epoch {step / steps_per_epoch:.2f})")
  tf.io.gfile.copy(os.path.join(config.data_dir, records.LABEL_MAP),
                   os.path.join(config.geo_dir, records.LABEL_MAP), overwrite=True)
  run_common.write_json(config_path, {
      **dataclasses.asdict(config), "num_classes": label_map.num_classes,
      "train_places": len(labels), "steps_per_epoch": steps_per_epoch,
      "total_steps": total_steps,
      "method": "Mac Aodha, Cole, Perona 2019, presence-only loss L_full-assym"})

  positive_weight = config.positive_weight or float(label_map.num_classes)

  @tf.function(autograph=False)  # graph code as written (BUILD_NOTES, "Start-up")
  def train_step(batch_places, batch_labels, step_seed):
    background = geo_model.random_places(tf.shape(batch_places)[0], step_seed)
    with tf.GradientTape() as tape:
      both = model(encoding.encode(tf.concat([batch_places, background], 0), config.use_date),
                   training=True)
      n = tf.shape(batch_places)[0]
      loss = geo_model.presence_only_loss(both[:n], both[n:], batch_labels, positive_weight)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss

  @tf.function(autograph=False)
  def prior_top_k(batch_places):
    logits = model(encoding.encode(batch_places, config.use_date), training=False)
    return tf.math.top_k(logits, min(5, label_map.num_classes)).indices

  def evaluate():
    # Top-5 per chunk of 1,024 places: the [val places, classes] logits would be 4 GB at
    # iNat2021's 100 k x 10 k; a chunk's are 41 MB.
    top = np.concatenate([prior_top_k(val_places[i:i + VAL_CHUNK]).numpy()
                          for i in range(0, len(val_labels), VAL_CHUNK)])
    return _top_k_accuracy(top, val_labels)

  def save_model(name):
    path = os.path.join(config.geo_dir, name)
    model.save(path + ".tmp.keras")
    tf.io.gfile.rename(path + ".tmp.keras", path, overwrite=True)

  writers = {name: tf.summary.create_file_writer(os.path.join(config.geo_dir, "logs", name))
             for name in ("train", "val")}
  start_time, start_step, val_scores = time.monotonic(), step, None
  losses, last_time, last_step = [], time.monotonic(), step
  order, order_epoch = None, -1
  while step < total_steps:
    ctrl_c.check()  # a Ctrl-C stops here, between steps (run_common.CtrlC)
    epoch, offset = divmod(step, steps_per_epoch)
    if epoch != order_epoch:
      order = np.random.default_rng([config.seed, epoch]).permutation(len(labels))
      order_epoch = epoch
    chosen = order[offset * config.batch_size:(offset + 1) * config.batch_size]
    losses.append(float(train_step(tf.constant(places[chosen]), tf.constant(labels[chosen]),
                                   tf.constant([config.seed, step], tf.int64))))
    step += 1
    where["step"] = step
    epoch_end = step % steps_per_epoch == 0 or step == total_steps
    if step % config.log_steps == 0 or epoch_end:
      now = time.monotonic()
      rate = (step - last_step) * config.batch_size / max(now - last_time, 1e-9)
      eta = (total_steps - step) * config.batch_size / max(rate, 1e-9)
      loss = float(np.mean(losses))
      log(f"step {step:,}/{total_steps:,} (epoch {step / steps_per_epoch:.2f}) loss {loss:.4f} "
          f"lr {float(schedule(step)):.6f} {rate:,.0f} places/s "
          f"ETA {progress.duration(eta)}")
      with writers["train"].as_default(step=step):
        tf.summary.scalar("loss", loss)
        tf.summary.scalar("places_per_second", rate)
      losses, last_time, last_step = [], now, step
    if epoch_end:
      if len(val_labels):
        val_scores = evaluate()
        improved = val_scores[0] > float(best_top1.numpy())
        log(f"val at step {step:,}: prior-only top-1 {100 * val_scores[0]:.2f}% top-5 "
            f"{100 * val_scores[1]:.2f}% on {len(val_labels):,} places"
            + (" (best so far)" if improved else ""))
        if improved:
          best_top1.assign(val_scores[0])
          save_model("best.keras")
        with writers["val"].as_default(step=step):
          tf.summary.scalar("prior_top1", val_scores[0])
          tf.summary.scalar("prior_top5", val_scores[1])
      manager.save(checkpoint_number=step)

  save_model("final.keras")
  if not tf.io.gfile.exists(os.path.join(config.geo_dir, "best.keras")):
    save_model("best.keras")  # no val places: the final prior is the best we know
  seconds = time.monotonic() - start_time
  summary = {"steps": step, "epochs": step / steps_per_epoch, "steps_this_run": step - start_step,
             "seconds_this_run": round(seconds, 1), "train_places": len(labels),
             "val_places": int(len(val_labels)), "best_val_prior_top1": float(best_top1.numpy()),
             "final_val_prior_top1": val_scores[0] if val_scores else None,
             "final_val_prior_top5": val_scores[1] if val_scores else None}
  run_common.write_json(os.path.join(config.geo_dir, "train_summary.json"), summary)
  for writer in writers.values():
    writer.flush()
  best = (f"best val prior-only top-1 {100 * summary['best_val_prior_top1']:.1f}%"
          if summary["val_places"] else "no val places, so best.keras is the final prior")
  log(f"inat-train-geo: done: {step:,} steps ({summary['epochs']:.1f} epochs), this run "
      f"{summary['steps_this_run']:,} in {progress.duration(seconds)}; {best}; prior in "
      f"{config.geo_dir} (best.keras, final.keras)")
  return summary


def main(config, _):
  """inat-train-geo's work once its flags are parsed (inat_tf/commands/train_geo.py)."""
  try:
    train(config, log=lambda message: print(message, flush=True))
  except image_train.TrainInterrupted as e:
    print(f"inat-train-geo: {e}", file=sys.stderr)
    sys.exit(130)  # the shell's code for SIGINT

