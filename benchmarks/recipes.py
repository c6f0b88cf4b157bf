"""Scratch recipes against a plain Keras anchor: same data, image size and epochs, side by side.

  python benchmarks/recipes.py                       # every scratch recipe (RESULTS.md)
  python benchmarks/recipes.py --epochs 30           # half the recipes' length (the 30-epoch table)
  python benchmarks/recipes.py --networks convnext_tiny --epochs 6 --seeds 0,1,2 \
      --recipe_flags="--label_smoothing=0"           # try a change to a recipe, three seeds

For each network: (1) `inat-train --recipe scratch/<network>` with --image_size / --epochs / a
batch of 32 / --seed overridden (and --recipe_flags after them), through inat_tf.train (the real
trainer; val top-1 after the last epoch, with the recipe's eval crop); (2) the anchor: a plain
`keras.applications.<Net>(weights=None, classes=N)` compiled with Adam (Keras's defaults,
learning rate 1e-3) and `model.fit` for the same epochs on the same train records, images decoded
whole, resized to the same size and normalised with keras.applications' own preprocess_input (no
augmentation), scored with `model.evaluate` on the same val records likewise. SE and dropout
variants have no keras.applications twin: their anchor is the plain network's (computed once per
run). Inceptions run at 75 px at least (their minimum).

Prints one table row per network and seed: val top-1 of both, the difference with +- 2 standard
errors (the two top-1s' binomial errors as if independent: conservative, since both miss many of
the same images), first and last epoch's train loss of both, and whether the recipe's loss
diverged (non-finite, or the last epoch's above the first's); with several seeds, also the mean
difference +- 2 standard errors over seeds. Data: a generated sample (inat-make-sample), built
once per setting into --work_dir/s<species>-t<max train>-v<val per species>/. The trainings are
CPU-sized, so the figures say "stable, and learning at least as well as the plain script", not
which recipe is best on iNat2017.
"""

import argparse
import json
import os
import re
import shlex
import statistics
import tempfile
import time

BATCH = 32
# Settings both sides must share: given through this script's flags, never --recipe_flags.
_SHARED_FLAGS = ("image_size", "epochs", "train_steps", "batch_size", "data_dir", "seed")


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


def _anchor_network(name):
  """The keras.applications network of the anchor: SE and dropout variants have no twin there."""
  return name.replace("_se", "").replace("_drp", "")


def _anchor(name, data_dir, size, epochs, seed):
  """(val top-1, [train loss per epoch], seconds) of plain keras.applications + Adam + fit."""
  import keras
  import tensorflow as tf
  from inat_tf import label_map as label_map_lib
  from inat_tf import records
  from inat_tf import schema
  constructor, module = _KERAS[_anchor_network(name)]
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


def _standard_error(top1, n):
  """Binomial standard error of a top-1 measured on n images: the noise of one val split."""
  return (top1 * (1 - top1) / max(1, n)) ** 0.5


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--work_dir", default="/tmp/inat-recipes")
  parser.add_argument("--networks", default="",
                      help="comma-separated; default: every network with a scratch recipe")
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--epochs", type=int, default=60,
                      help="both sides; default: the scratch recipes' own length (all 60)")
  parser.add_argument("--num_species", type=int, default=13)
  parser.add_argument("--max_train_per_species", type=int, default=20)
  parser.add_argument("--val_per_species", type=int, default=40,
                      help="val images per species (0: the paper's rule, half the train count); "
                      "40 x 13 species = 520 images: one top-1's standard error is ~2 points")
  parser.add_argument("--seeds", default="0", help="comma-separated training seeds, both sides")
  parser.add_argument("--recipe_flags", default="",
                      help="extra inat-train flags after the recipe, quoted as one argument "
                      "(--recipe_flags=\"--a=1 --b=2\"), e.g. to "
                      "try a change to a recipe against the same anchor")
  parser.add_argument("--output_json", default="")
  args = parser.parse_args()
  import models
  data_dir = _sample(args.work_dir, args.num_species, args.max_train_per_species,
                     args.val_per_species)
  manifest = json.load(open(os.path.join(data_dir, "manifest.json")))
  num_val = manifest["splits"]["val"]["examples"]
  seeds = [int(s) for s in args.seeds.split(",")]
  overrides = shlex.split(args.recipe_flags)
  shared = [f for f in overrides if f.lstrip("-").split("=")[0] in _SHARED_FLAGS]
  if shared:
    parser.error(f"--recipe_flags {' '.join(shared)}: the anchor would not follow; set "
                 f"{', '.join('--' + f for f in _SHARED_FLAGS)} through this script's own flags")
  print(f"data: {data_dir}: {manifest['splits']['train']['examples']} train / {num_val} val "
        f"images, {args.num_species} species (chance {100 / args.num_species:.1f} %); batch "
        f"{BATCH}, {args.epochs} epochs, seeds {seeds}; recipe overrides: {overrides or 'none'}",
        flush=True)
  header = ("| network | px | recipe val top-1 | anchor val top-1 | recipe - anchor | "
            "recipe loss first -> last | anchor loss first -> last | recipe diverged | "
            "seconds (recipe / anchor) |")
  print(header + "\n|---|---:|---:|---:|---:|---|---|---|---|", flush=True)
  from inat_tf import recipes
  networks = (args.networks.split(",") if args.networks else
              [n.split("/")[1] for n in recipes.available() if n.startswith("scratch/")])
  rows, anchors = [], {}
  for name in networks:
    size = max(args.image_size, models.min_image_size(name))
    differences = []
    for seed in seeds:
      ours = _ours(name, data_dir, size, args.epochs, seed, overrides)
      # SE and dropout variants share their base network's anchor (same keras.applications net).
      key = (_anchor_network(name), size, seed)
      if key not in anchors:
        anchors[key] = _anchor(name, data_dir, size, args.epochs, seed)
      anchor = anchors[key]
      row = dict(network=name, image_size=size, seed=seed, num_val=num_val,
                 recipe_overrides=overrides, recipe_top1=ours[0], anchor_top1=anchor[0],
                 recipe_losses=ours[1], anchor_losses=anchor[1],
                 recipe_diverged=_diverged(ours[1]), recipe_seconds=ours[2],
                 anchor_seconds=anchor[2])
      rows.append(row)
      differences.append(ours[0] - anchor[0])
      # Two top-1s on the same n images, their errors treated as independent: when both miss the
      # same images (the usual case) the true noise of the difference is smaller, so this is
      # the conservative side.
      noise = 2 * (_standard_error(ours[0], num_val) ** 2 +
                   _standard_error(anchor[0], num_val) ** 2) ** 0.5
      label = name if len(seeds) == 1 else f"{name} (seed {seed})"
      print(f"| {label} | {size} | {100 * ours[0]:.1f} % | {100 * anchor[0]:.1f} % | "
            f"{round(100 * (ours[0] - anchor[0]), 1) + 0.0:+.1f} +- {100 * noise:.1f} | "
            f"{ours[1][0]:.2f} -> {ours[1][-1]:.2f} | {anchor[1][0]:.2f} -> {anchor[1][-1]:.2f} | "
            f"{'YES' if row['recipe_diverged'] else 'no'} | {ours[2]:.0f} / {anchor[2]:.0f} |",
            flush=True)
      if args.output_json:
        with open(args.output_json, "w") as f:
          json.dump(rows, f, indent=1)
    if len(seeds) > 1:  # seed-to-seed spread: mean difference +- 2 standard errors of the mean
      spread = 2 * statistics.stdev(differences) / len(differences) ** 0.5
      print(f"| {name} (mean of {len(seeds)} seeds) | {size} | | | "
            f"{100 * statistics.mean(differences):+.1f} +- {100 * spread:.1f} | | | | |",
            flush=True)

if __name__ == "__main__":
  main()
