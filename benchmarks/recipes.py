"""Scratch recipes against a plain Keras anchor: same data, image size and epochs, side by side.

  python benchmarks/recipes.py --work_dir /tmp/anchor --image_size 32 --epochs 8 \
      --networks mobilenet_v1,resnet50,inception_v3

For each network: (1) `inat-train --recipe scratch/<network>` with --image_size / --epochs / a
batch of 32 overridden, through inat_tf.train (the real trainer, val top-1 after the last epoch);
(2) the anchor: a plain `keras.applications.<Net>(weights=None, classes=N)` compiled with Adam
(Keras's defaults, learning rate 1e-3) and `model.fit` for the same epochs on the same train
records, images decoded whole, resized to the same size and normalised with keras.applications'
own preprocess_input (no augmentation), scored with `model.evaluate` on the same val records
likewise. SE networks have no keras.applications twin: their anchor is the plain network.
Inceptions run at 75 px at least (their minimum). Prints one table: val top-1 of both, first and
last epoch's train loss of both, and whether the recipe's loss diverged (non-finite, or the last
epoch's loss above the first's). Data: a generated sample (inat-make-sample) built once into
--work_dir; the trainings are CPU-sized, so the figures say "stable and learning", not "good".
"""

import argparse
import json
import os
import re
import tempfile
import time

BATCH = 32


def _sample(work_dir, num_species, max_train, val_per_species):
  """The generated sample, built once per setting: the directory name carries every setting, so
  a rerun with other settings never reuses a stale sample."""
  from inat_tf import sample_download
  from tfrecord_builder import build
  name = f"s{num_species}-t{max_train}-v{val_per_species}"
  data_dir = os.path.join(work_dir, name, "data")
  if not os.path.exists(os.path.join(data_dir, "manifest.json")):
    raw = os.path.join(work_dir, name, "download")
    sample_download.make_sample(raw, sample_download.SampleConfig(
        num_species=num_species, min_train_per_species=max_train // 2,
        max_train_per_species=max_train, val_per_species=val_per_species, max_side=96, seed=3))
    status, summary = build.build(build.BuildConfig(raw_dir=raw, data_dir=data_dir,
                                                    examples_per_shard=128), log=lambda m: None)
    assert status == 0, summary
  return data_dir


def _ours(name, data_dir, size, epochs, seed, overrides):
  """(val top-1, [train loss per epoch], seconds) of the scratch recipe through inat-train."""
  from absl import flags
  from inat_tf import flag_config
  from inat_tf import recipes
  from inat_tf import records
  from inat_tf import train
  flag_values = flags.FlagValues()
  flag_config.define_flags(train.TrainConfig, flag_values)
  steps = records.steps_per_epoch(data_dir, "train", BATCH)
  with tempfile.TemporaryDirectory() as model_dir:
    flag_values(recipes.expand([
        "inat-train", f"--recipe=scratch/{name}", f"--data_dir={data_dir}",
        f"--model_dir={model_dir}", f"--image_size={size}", f"--epochs={epochs}",
        f"--batch_size={BATCH}", f"--log_steps={steps}", f"--eval_every_epochs={epochs}",
        f"--seed={seed}", "--checkpoint_steps=100000", *overrides], flag_values))
    losses, start = [], time.perf_counter()

    def log(message):
      match = re.search(r" loss ([-\w.]+) ", message)
      if message.startswith("step ") and match:
        losses.append(float(match.group(1)))
    summary = train.train(flag_config.from_flags(train.TrainConfig, flag_values), log=log)
    return summary["final_val_top1"], losses, time.perf_counter() - start


_KERAS = {  # our name -> (keras.applications constructor, its preprocess_input module)
    "inception_v3": ("InceptionV3", "inception_v3"),
    "inception_resnet_v2": ("InceptionResNetV2", "inception_resnet_v2"),
    "resnet50": ("ResNet50", "resnet"), "resnet101": ("ResNet101", "resnet"),
    "resnet152": ("ResNet152", "resnet"), "mobilenet_v1": ("MobileNet", "mobilenet"),
    "efficientnetv2_b0": ("EfficientNetV2B0", "efficientnet_v2"),
    "efficientnetv2_b1": ("EfficientNetV2B1", "efficientnet_v2"),
    "efficientnetv2_b2": ("EfficientNetV2B2", "efficientnet_v2"),
    "efficientnetv2_b3": ("EfficientNetV2B3", "efficientnet_v2"),
    "efficientnetv2_s": ("EfficientNetV2S", "efficientnet_v2"),
    "convnext_tiny": ("ConvNeXtTiny", "convnext"), "convnext_small": ("ConvNeXtSmall", "convnext"),
}


def _anchor(name, data_dir, size, epochs, seed):
  """(val top-1, [train loss per epoch], seconds) of plain keras.applications + Adam + fit."""
  import keras
  import tensorflow as tf
  from inat_tf import label_map as label_map_lib
  from inat_tf import records
  from inat_tf import schema
  base = name.replace("_se", "").replace("_drp", "")
  constructor, module = _KERAS[base]
  preprocess = getattr(keras.applications, module).preprocess_input
  num_classes = label_map_lib.LabelMap.load(data_dir).num_classes

  def dataset(split, shuffle):
    def view(example):
      image = tf.image.resize(tf.io.decode_jpeg(example[schema.ENCODED], channels=3), [size, size])
      return preprocess(image), example[schema.LABEL]
    ds = records.examples(data_dir, split, [schema.ENCODED, schema.LABEL])
    if shuffle:  # training: endless, reshuffled each epoch; fit takes steps_per_epoch of it
      ds = ds.shuffle(4096, seed=seed).repeat()
    return ds.map(view, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(2)

  keras.utils.set_random_seed(seed)
  model = getattr(keras.applications, constructor)(weights=None, classes=num_classes,
                                                    input_shape=(size, size, 3))
  model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
  start = time.perf_counter()
  steps = records.steps_per_epoch(data_dir, "train", BATCH)  # the trainer's epoch too
  history = model.fit(dataset("train", True), epochs=epochs, steps_per_epoch=steps, verbose=0)
  _, top1 = model.evaluate(dataset("val", False), verbose=0)
  return top1, history.history["loss"], time.perf_counter() - start


def _diverged(losses):
  return not losses or any(l != l or l == float("inf") for l in losses) or losses[-1] > losses[0]


def _stderr(top1, n):
  """Binomial standard error of a top-1 measured on n images: the noise of one val split."""
  return (top1 * (1 - top1) / max(1, n)) ** 0.5


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--work_dir", default="/tmp/inat-recipes")
  parser.add_argument("--networks", default="",
                      help="comma-separated; default: every network with a scratch recipe")
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--epochs", type=int, default=8)
  parser.add_argument("--num_species", type=int, default=13)
  parser.add_argument("--max_train_per_species", type=int, default=30)
  parser.add_argument("--val_per_species", type=int, default=40,
                      help="val images per species: 40 x 13 = 520, a standard error of ~2 points")
  parser.add_argument("--seeds", default="0", help="comma-separated training seeds, both sides")
  parser.add_argument("--recipe_flags", default="",
                      help="extra inat-train flags after the recipe (space-separated), e.g. to "
                      "try a change to a recipe against the same anchor")
  parser.add_argument("--output_json", default="")
  args = parser.parse_args()
  import models
  data_dir = _sample(args.work_dir, args.num_species, args.max_train_per_species,
                     args.val_per_species)
  manifest = json.load(open(os.path.join(data_dir, "manifest.json")))
  num_val = manifest["splits"]["val"]["examples"]
  seeds = [int(s) for s in args.seeds.split(",")]
  overrides = args.recipe_flags.split()
  print(f"data: {data_dir}: {manifest['splits']['train']['examples']} train / {num_val} val "
        f"images, {args.num_species} species (chance {100 / args.num_species:.1f} %); batch "
        f"{BATCH}, {args.epochs} epochs, seeds {seeds}; recipe overrides: {overrides or 'none'}",
        flush=True)
  header = ("| network | px | recipe val top-1 | anchor val top-1 | recipe - anchor | "
            "recipe loss first -> last | anchor loss first -> last | recipe diverged | "
            "seconds (recipe / anchor) |")
  print(header + "\n|---|---:|---:|---:|---:|---|---|---|---|", flush=True)
  rows = []
  from inat_tf import recipes
  networks = (args.networks.split(",") if args.networks else
              [n.split("/")[1] for n in recipes.available() if n.startswith("scratch/")])
  for name in networks:
    size = max(args.image_size, models.min_image_size(name))
    for seed in seeds:
      ours = _ours(name, data_dir, size, args.epochs, seed, overrides)
      anchor = _anchor(name, data_dir, size, args.epochs, seed)
      row = dict(network=name, image_size=size, seed=seed, num_val=num_val,
                 recipe_overrides=overrides, recipe_top1=ours[0], anchor_top1=anchor[0],
                 recipe_losses=ours[1], anchor_losses=anchor[1],
                 recipe_diverged=_diverged(ours[1]), recipe_seconds=ours[2],
                 anchor_seconds=anchor[2])
      rows.append(row)
      # The difference of two top-1s on the same n images: +- 2 standard errors is its noise.
      noise = 2 * (_stderr(ours[0], num_val) ** 2 + _stderr(anchor[0], num_val) ** 2) ** 0.5
      label = name if len(seeds) == 1 else f"{name} (seed {seed})"
      print(f"| {label} | {size} | {100 * ours[0]:.1f} % | {100 * anchor[0]:.1f} % | "
            f"{100 * (ours[0] - anchor[0]):+.1f} +- {100 * noise:.1f} | "
            f"{ours[1][0]:.2f} -> {ours[1][-1]:.2f} | {anchor[1][0]:.2f} -> {anchor[1][-1]:.2f} | "
            f"{'YES' if row['recipe_diverged'] else 'no'} | {ours[2]:.0f} / {anchor[2]:.0f} |",
            flush=True)
      if args.output_json:
        with open(args.output_json, "w") as f:
          json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
