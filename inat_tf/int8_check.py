"""Does an int8 TFLite model give the float model's answers? inat-export's check, on held-out images.

  result = int8_check.check({"model_int8.tflite": path, ...}, float_path, data_dir, size,
                            crop_fraction, labels_usable=True)
  int8_check.describe(result, "model.tflite")  # one line per model: what was measured
  int8_check.problems(result, "model.tflite", advice)  # one line per model below the bounds

Post-training int8 quantisation can cost anything from nothing to most of a model's accuracy
(TensorFlow's published losses run from 0.8 points top-1 for Inception V3 to 5-8 for MobileNet
V1/V2 on ImageNet; one broken kernel took our ResNet-50 from 89 % to 32 %, benchmarks/RESULTS.md), and
it depends on the trained weights, not only on the network: the only way to know is to run both
models on images. The check runs the float TFLite model and each int8 one on CHECK_IMAGES
held-out images of the data dir (val, else minival; never train, where the calibration images
come from) and measures top-1 agreement (the share of images whose top-1 class is the float
model's) and, where the images' labels belong to the model's label map, the top-1 of both.

Bounds: issue 29's goal for an int8 model, within TOP1_DROP_BOUND (1 point) top-1 of float and
AGREEMENT_BOUND (97 %) agreement with it.
"""

import warnings

import numpy as np

AGREEMENT_BOUND = 0.97
TOP1_DROP_BOUND = 0.01
CHECK_IMAGES = 200  # the binomial standard error of a 97 % agreement on 200 images: 1.2 points
HELD_OUT_SPLITS = ("val", "minival")  # in this order; calibration images come from train
SURE = 0.5  # "where the float model is sure": its top-1 probability is at least this


def agreement(reference, candidate, labels=None):
  """Top-1 agreement of two models' outputs on the same images.

  reference, candidate: [n, C] scores (probabilities, or anything whose argmax is the top-1: a
  full-integer model's uint8 output will do), reference being the float model's; labels: [n]
  int class indices, or None. Ties go to the lower class index (np.argmax), as in
  benchmarks/edge.py. Returns {"images": n, "agreement": share of images with the same top-1,
  "agreement_where_sure": the same on the images whose reference top-1 probability is at least
  SURE (None when there is none), "sure_images": their number} and with labels also
  "top1_float", "top1" (shares) and "top1_change_points" (100 x (top1 - top1_float)).
  ValueError when the shapes differ or n is 0.
  """
  reference, candidate = np.asarray(reference), np.asarray(candidate)
  if reference.shape != candidate.shape or reference.ndim != 2 or not len(reference):
    raise ValueError(f"expected two [n, C] arrays of the same shape with n > 0, got "
                     f"{reference.shape} and {candidate.shape}")
  ours, theirs = np.argmax(candidate, axis=1), np.argmax(reference, axis=1)
  same = ours == theirs
  sure = reference.max(axis=1) >= SURE
  result = {"images": int(len(same)), "agreement": float(same.mean()),
            "agreement_where_sure": float(same[sure].mean()) if sure.any() else None,
            "sure_images": int(sure.sum())}
  if labels is not None:
    labels = np.asarray(labels)
    if labels.shape != ours.shape:
      raise ValueError(f"expected {len(ours)} labels, got shape {labels.shape}")
    result["top1_float"] = float((theirs == labels).mean())
    result["top1"] = float((ours == labels).mean())
    result["top1_change_points"] = round(100 * (result["top1"] - result["top1_float"]), 2)
  return result


def _top1_drop(result):
  return result["top1_float"] - result["top1"] if "top1" in result else 0.0


def below_bounds(result):
  """Whether one model's agreement result misses issue 29's goal (agreement below
  AGREEMENT_BOUND, or top-1 more than TOP1_DROP_BOUND below float's)."""
  return result["agreement"] < AGREEMENT_BOUND or _top1_drop(result) > TOP1_DROP_BOUND + 1e-9


def held_out_images(data_dir, image_size, crop_fraction, *, count=CHECK_IMAGES, seed=0):
  """(split, images [n, size, size, 3] float32 in [0, 255] as inat-eval sees them, labels [n]
  int64, -1 where unlabelled): a seeded uniform sample of `count` images of the first of
  HELD_OUT_SPLITS the data dir has; (None, None, None) when it has neither.

  Why a sample and not the first images: inside a shard, images are in the download's order
  (archives are grouped by species), so the first 200 would be a few species. Shards are
  uniform random subsets of their split (tfrecord_builder/plan.py), so a uniform sample of the
  first shards (enough of them to hold `count`) is a uniform sample of the split; only those
  shards are read, and only the chosen images decoded.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from inat_tf import preprocessing  # pylint: disable=g-import-not-at-top
  from inat_tf import records  # pylint: disable=g-import-not-at-top
  from inat_tf import schema  # pylint: disable=g-import-not-at-top
  split = next((s for s in HELD_OUT_SPLITS if records.has_shards(data_dir, s)), None)
  if split is None:
    return None, None, None
  files, sizes = records.shard_files(data_dir, split), records.shard_examples(data_dir, split)
  used = min(len(files), len(sizes), int(np.searchsorted(np.cumsum(sizes), count)) + 1)
  total = int(sum(sizes[:used]))
  chosen = np.zeros(total, bool)
  chosen[np.random.default_rng(seed).choice(total, min(count, total), replace=False)] = True
  chosen = tf.constant(chosen)
  dataset = (tf.data.TFRecordDataset(files[:used])
             .map(lambda serialized: schema.parse(serialized, [schema.ENCODED, schema.LABEL]))
             .enumerate()
             .filter(lambda i, _: i < total and tf.gather(chosen, tf.minimum(i, total - 1)))
             .map(lambda _, e: (preprocessing.eval_image(e[schema.ENCODED], image_size,
                                                         crop_fraction), e[schema.LABEL])))
  images, labels = [], []
  for image, label in dataset:
    images.append(image.numpy())
    labels.append(int(label))
  if not images:
    return None, None, None
  return split, np.stack(images), np.array(labels, np.int64)


def tflite_outputs(path, images):
  """[n, C] float64 outputs of a one-input TFLite model (inat-export's model.tflite,
  model_int8.tflite: float32 pixels; model_full_integer.tflite: uint8 pixels, rounded as an app
  rounds them), one image per invoke, dequantised with the output's scale."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated" (ai-edge-litert, its
    warnings.simplefilter("ignore", UserWarning)  # successor, is not a dependency)
    interpreter = tf.lite.Interpreter(model_path=path)
  interpreter.allocate_tensors()
  (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
  integer = source["dtype"] == np.uint8
  scale = target["quantization"][0] if target["dtype"] != np.float32 else 1.0
  outputs = []
  for image in images:
    feed = np.clip(np.round(image), 0, 255).astype(np.uint8) if integer else \
        image.astype(np.float32)
    interpreter.set_tensor(source["index"], feed[np.newaxis])
    interpreter.invoke()
    output = interpreter.get_tensor(target["index"])[0].astype(np.float64)
    outputs.append((output - target["quantization"][1]) * scale if scale != 1.0 else output)
  return np.array(outputs)


def check(paths, float_path, data_dir, image_size, crop_fraction, *, labels_usable=True,
          count=CHECK_IMAGES):
  """The int8 models of `paths` ({file name: path}) against the float TFLite model at
  float_path, on held_out_images of data_dir. labels_usable: the data dir's labels are class
  indices of the model's label map (label_map.check_same passed).

  Returns {"split", "images", "seed", "bounds": {"agreement", "top1_drop_points"}, "models":
  {file name: agreement(...)}}, or {"split": None, "reason": ...} when the data dir has no
  held-out images.
  """
  split, images, labels = held_out_images(data_dir, image_size, crop_fraction, count=count)
  if split is None:
    return {"split": None, "reason": f"{data_dir} has no {' or '.join(HELD_OUT_SPLITS)} images"}
  if not labels_usable or (labels < 0).any():
    labels = None
  reference = tflite_outputs(float_path, images)
  return {"split": split, "images": int(len(images)), "seed": 0, "labels": labels is not None,
          "bounds": {"agreement": AGREEMENT_BOUND, "top1_drop_points": 100 * TOP1_DROP_BOUND},
          "models": {name: agreement(reference, tflite_outputs(path, images), labels)
                     for name, path in paths.items()}}


def describe(result, float_name):
  """One line per model: what inat-export prints after writing the models."""
  if result["split"] is None:
    return [f"int8 not checked against float: {result['reason']}"]
  lines = []
  for name, measured in result["models"].items():
    sure = (f" ({100 * measured['agreement_where_sure']:.1f} % of the {measured['sure_images']} "
            f"where float's top-1 probability is >= {SURE})"
            if measured["agreement_where_sure"] is not None else "")
    top1 = (f"; top-1 {100 * measured['top1']:.1f} % against float's "
            f"{100 * measured['top1_float']:.1f} % ({measured['top1_change_points']:+.1f} "
            f"points)" if "top1" in measured else "")
    lines.append(f"{name}: same top-1 as {float_name} on {100 * measured['agreement']:.1f} % of "
                 f"{result['images']} {result['split']} images{sure}{top1}")
  return lines


def problems(result, float_name, advice):
  """One warning line per int8 model below the bounds (below_bounds), ending with `advice`
  (what to ship instead); none when the check could not run (describe says so)."""
  lines = []
  for name, measured in (result.get("models") or {}).items():
    if not below_bounds(measured):
      continue
    what = []
    if measured["agreement"] < AGREEMENT_BOUND:
      what.append(f"gives {float_name}'s top-1 on only {100 * measured['agreement']:.1f} % of "
                  f"{result['images']} {result['split']} images (goal >= "
                  f"{100 * AGREEMENT_BOUND:.0f} %)")
    if _top1_drop(measured) > TOP1_DROP_BOUND + 1e-9:
      what.append(f"its top-1 is {100 * _top1_drop(measured):.1f} points "
                  f"below {float_name}'s (goal <= {100 * TOP1_DROP_BOUND:.0f})")
    lines.append(f"{name} {' and '.join(what)}: {advice}")
  return lines
