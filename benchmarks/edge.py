"""What int8 costs, per network family: float TFLite against int8 and full-integer TFLite.

  python benchmarks/edge.py                                    # the RESULTS.md table (~40 min)
  python benchmarks/edge.py --networks mobilenet_v1 --epochs 30
  python benchmarks/edge.py --networks mobilenet_v1 --num_species 100 --max_train_per_species 30 \
      --val_per_species 10 --head_ranks 0,8                    # full against factorised head

For each network (and each --head_ranks R): `inat-train --recipe scratch/<network>` on a
generated download (inat-make-sample: --num_species species, --max_train_per_species train and
--val_per_species val images each, 96 px at most), through inat_tf.train; then inat-export's three
TFLite models (inat_tf.export.export_tflite: model.tflite float, model_int8.tflite int8 inside
with float input and output, model_full_integer.tflite uint8 pixels in and uint8 probabilities
out), int8 calibrated on --calibration_images train images. Every val image, cropped and resized
as inat-eval does, goes through each model in the TFLite interpreter with one thread.

Prints one row per network and model: val top-1 / top-5, the difference from float, top-1
agreement with float (the share of val images whose top-1 class is the float model's; also on
the images whose float top-1 probability is at least 0.5, where a change is not a near-tie), size,
median (and minimum) latency per image on one thread and its ratio to float. The Keras model's
top-1 is printed beside float TFLite's as a check of the conversion. --diagnose adds two rows
that split int8's error into its weight and activation parts (DIAGNOSTIC_MODELS). Models and
exports are kept under --work_dir (keyed by every setting) and reused by a rerun. The goal of
issue 29: int8 within 1.0 point top-1 of float and >= 97 % agreement on every family.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

BATCH = 32
MODELS = (("float", "model.tflite"), ("int8", "model_int8.tflite"),
          ("full integer", "model_full_integer.tflite"))
# --diagnose: where int8's disagreements come from. Weights alone (dynamic-range quantisation:
# int8 weights, float activations) and activations at 16 bits (int8 weights, int16
# activations; TFLite's 16x8 mode, reference kernels, slow).
DIAGNOSTIC_MODELS = (("int8 weights only", "model_weights_int8.tflite"),
                     ("16-bit activations", "model_16x8.tflite"))


def _sample(work_dir, num_species, max_train, val_per_species):
  """The generated download, built once per setting (benchmarks/recipes.py's settings)."""
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


def _train(name, data_dir, model_dir, size, epochs, head_rank):
  """Trains the scratch recipe into model_dir unless a finished run is there; returns seconds."""
  from absl import flags
  from inat_tf import flag_config
  from inat_tf import recipes
  from inat_tf import records
  from inat_tf import train
  if os.path.exists(os.path.join(model_dir, "final.keras")):
    return 0.0
  flag_values = flags.FlagValues()
  flag_config.define_flags(train.TrainConfig, flag_values)
  steps = records.steps_per_epoch(data_dir, "train", BATCH)
  flag_values(recipes.expand([
      "inat-train", f"--recipe=scratch/{name}", f"--data_dir={data_dir}",
      f"--model_dir={model_dir}", f"--image_size={size}", f"--epochs={epochs}",
      f"--batch_size={BATCH}", f"--log_steps={steps * 10}", f"--eval_every_epochs={epochs}",
      "--checkpoint_steps=100000", f"--head_rank={head_rank}"], flag_values))
  start = time.perf_counter()
  train.train(flag_config.from_flags(train.TrainConfig, flag_values), log=lambda m: None)
  return time.perf_counter() - start


def _export(model_dir, data_dir, export_dir, calibration, diagnose):
  """inat-export's TFLite models of model_dir's best.keras (and with diagnose the two
  DIAGNOSTIC_MODELS), unless already there."""
  import tensorflow as tf
  from inat_tf import export
  from inat_tf import trained_model
  trained = trained_model.load(model_dir)
  module = export.serving_module(trained, top_k=5)
  if not os.path.exists(os.path.join(export_dir, MODELS[-1][1])):
    os.makedirs(export_dir, exist_ok=True)
    export.export_tflite(module, export_dir, data_dir, calibration_count=calibration)
  if diagnose and not os.path.exists(os.path.join(export_dir, DIAGNOSTIC_MODELS[-1][1])):
    images = export.calibration_images(data_dir, trained.image_size, trained.eval_crop_fraction,
                                       calibration)
    for (_, name), ops in zip(DIAGNOSTIC_MODELS, (None, [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8])):
      converter = export.tflite_converter(module.probabilities)
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      if ops:  # without a representative dataset: weights only
        converter.representative_dataset = export._representative(  # pylint: disable=protected-access
            images)
        converter.target_spec.supported_ops = ops
      with open(os.path.join(export_dir, name), "wb") as f:
        f.write(converter.convert())
  return trained


def _val(trained, data_dir):
  """(images [n, size, size, 3] float32 in [0, 255], labels [n]) of val, as inat-eval sees them."""
  from inat_tf import preprocessing
  from inat_tf import records
  from inat_tf import schema
  images, labels = [], []
  for example in records.examples(data_dir, "val", [schema.ENCODED, schema.LABEL]):
    images.append(preprocessing.eval_image(example[schema.ENCODED], trained.image_size,
                                           trained.eval_crop_fraction).numpy())
    labels.append(int(example[schema.LABEL]))
  return np.stack(images), np.array(labels)


def _run_tflite(path, images):
  """(probabilities [n, C] float, (median, minimum) seconds per image) on one interpreter
  thread. The minimum is the figure least disturbed by other processes on a shared machine."""
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(model_path=path, num_threads=1)
  interpreter.allocate_tensors()
  source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
  integer = source["dtype"] == np.uint8
  scale = target["quantization"][0] if integer else 1.0
  outputs, seconds = [], []
  for image in images:
    feed = np.round(image).astype(np.uint8) if integer else image.astype(np.float32)
    interpreter.set_tensor(source["index"], feed[np.newaxis])
    start = time.perf_counter()
    interpreter.invoke()
    seconds.append(time.perf_counter() - start)
    outputs.append(interpreter.get_tensor(target["index"])[0].astype(np.float64) * scale)
  seconds = seconds[min(5, len(seconds) - 1):]  # after the first invokes (allocation, caches)
  return np.array(outputs), (statistics.median(seconds), min(seconds))


def _top(probabilities, labels):
  order = np.argsort(-probabilities, axis=1, kind="stable")
  top5 = (order[:, :5] == labels[:, None]).any(axis=1)
  return order[:, 0], (order[:, 0] == labels).mean(), top5.mean()


def _keras_top1(trained, images):
  import tensorflow as tf
  logits = [trained.model(trained.normalize(tf.constant(images[i:i + 64])), training=False)
            for i in range(0, len(images), 64)]
  return np.argmax(np.concatenate([np.asarray(l) for l in logits]), axis=1)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--work_dir", default="/tmp/inat-edge")
  parser.add_argument("--networks",
                      default="mobilenet_v1,efficientnetv2_b0,inception_v3,resnet50,convnext_tiny")
  parser.add_argument("--image_size", type=int, default=32,
                      help="at least each network's minimum (Inceptions: 75)")
  parser.add_argument("--epochs", type=int, default=60, help="the scratch recipes' own length")
  parser.add_argument("--num_species", type=int, default=13)
  parser.add_argument("--max_train_per_species", type=int, default=20)
  parser.add_argument("--val_per_species", type=int, default=40)
  parser.add_argument("--head_ranks", default="0", help="comma-separated; 0 = the full head")
  parser.add_argument("--calibration_images", type=int, default=100)
  parser.add_argument("--diagnose", action="store_true",
                      help="also int8 weights only and 16-bit activations (DIAGNOSTIC_MODELS)")
  parser.add_argument("--output_json", default="")
  args = parser.parse_args()
  import models
  from inat_tf import int8_check
  data_dir = _sample(args.work_dir, args.num_species, args.max_train_per_species,
                     args.val_per_species)
  manifest = json.load(open(os.path.join(data_dir, "manifest.json")))
  print(f"data: {data_dir}: {manifest['splits']['train']['examples']} train / "
        f"{manifest['splits']['val']['examples']} val images, {args.num_species} species; "
        f"{args.epochs} epochs of the scratch recipe, batch {BATCH}; int8 calibrated on "
        f"{args.calibration_images} train images; latency: median (minimum) of one-thread "
        f"invokes", 
        flush=True)
  print("| network | px | head | model | val top-1 | top-5 | top-1 - float | agreement with "
        "float | agreement where float p >= 0.5 | size | latency median (min) | latency / float |"
        "\n|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
  rows = []
  for name in args.networks.split(","):
    size = max(args.image_size, models.min_image_size(name))
    for rank in (int(r) for r in args.head_ranks.split(",")):
      key = f"{os.path.basename(os.path.dirname(data_dir))}-{name}-{size}-e{args.epochs}-r{rank}"
      model_dir = os.path.join(args.work_dir, "models", key)
      seconds = _train(name, data_dir, model_dir, size, args.epochs, rank)
      export_dir = os.path.join(args.work_dir, "exports", f"{key}-c{args.calibration_images}")
      trained = _export(model_dir, data_dir, export_dir, args.calibration_images, args.diagnose)
      images, labels = _val(trained, data_dir)
      keras_top1 = _keras_top1(trained, images)
      head = f"rank {rank}" if rank else "full"
      reference = None
      for label, file_name in MODELS + (DIAGNOSTIC_MODELS if args.diagnose else ()):
        path = os.path.join(export_dir, file_name)
        probabilities, latency = _run_tflite(path, images)
        top1_class, top1, top5 = _top(probabilities, labels)
        if reference is None:
          reference = dict(probabilities=probabilities, top1=top1, latency=latency)
          check = f" (Keras {100 * (keras_top1 == labels).mean():.1f} %)"
        else:
          check = ""
        # inat-export's own measure (inat_tf.int8_check), on every val image here. "Where
        # sure": the images whose float top-1 probability is >= 0.5, where a disagreement is a
        # real change of answer, not a near-tie flipped by rounding.
        measured = int8_check.agreement(reference["probabilities"], probabilities)
        agreement, agreement_sure = measured["agreement"], measured["agreement_where_sure"]
        sure = reference["probabilities"].max(axis=1) >= int8_check.SURE
        row = dict(network=name, image_size=size, head_rank=rank, model=label,
                   val_images=len(labels), top1=top1, top5=top5,
                   agreement=agreement, agreement_confident=agreement_sure,
                   confident_images=int(sure.sum()), bytes=os.path.getsize(path), latency_s=latency,
                   train_seconds=seconds,
                   keras_top1_agreement=float((keras_top1 == top1_class).mean()))
        rows.append(row)
        print(f"| {name} | {size} | {head} | {label} | {100 * top1:.1f} %{check} | "
              f"{100 * top5:.1f} % | {100 * (top1 - reference['top1']):+.1f} | "
              f"{100 * agreement:.1f} % | "
              f"{f'{100 * agreement_sure:.1f} %' if agreement_sure is not None else '-'} of "
              f"{sure.sum()} | "
              f"{row['bytes'] / 1e6:.2f} MB | "
              f"{1e3 * latency[0]:.2f} ({1e3 * latency[1]:.2f}) ms | "
              f"{latency[0] / reference['latency'][0]:.2f} "
              f"({latency[1] / reference['latency'][1]:.2f}) |", flush=True)
        if args.output_json:
          with open(args.output_json, "w") as f:
            json.dump(rows, f, indent=1, default=float)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"peak resident memory: {peak:.0f} MB", flush=True)


if __name__ == "__main__":
  sys.exit(main())
