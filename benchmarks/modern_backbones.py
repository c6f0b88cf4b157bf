"""Every modern backbone through a train step, .keras, SavedModel and TFLite: time and size.

  python benchmarks/modern_backbones.py [--image_size 32] [--networks efficientnetv2_b0,...]

The test suite takes one network of each family through parts of this: EfficientNetV2-B0 through
inat-train and inat-export (SavedModel and TFLite), EfficientNetV2-S and ConvNeXt Tiny through a
step and `.keras` (tests/test_models.py), ConvNeXt Tiny also to TFLite. The other sizes are the
same keras.applications code with other widths and depths, and all of it for all seven costs about
three CPU-minutes, too much for the suite. This runs every one, with random weights (no download),
at its minimum size by default, and checks as it goes: one training step moves the weights with a
finite loss, the loaded `.keras` model gives the same logits, the SavedModel's serving_default
answers, and the TFLite model (inat-export's conversion) agrees with Keras. Prints, per network:
seconds of each stage, the TFLite file's size, its largest difference from Keras, each total as a
ratio to the first row's (EfficientNetV2-B0 by default), and the process's peak resident memory so
far.
"""

import argparse
import io
import resource
import tempfile
import time

MODERN = ("efficientnetv2_b0", "efficientnetv2_b1", "efficientnetv2_b2", "efficientnetv2_b3",
          "efficientnetv2_s", "convnext_tiny", "convnext_small")
NUM_CLASSES = 7


def _jpeg(size):
  import numpy as np
  from PIL import Image
  buffer = io.BytesIO()
  pixels = np.random.default_rng(0).integers(0, 255, (size + 9, size + 17, 3), np.uint8)
  Image.fromarray(pixels).save(buffer, "JPEG")
  return buffer.getvalue()


def _one(name, size, work_dir):
  import keras
  import numpy as np
  import tensorflow as tf
  import models
  from inat_tf import export
  from inat_tf import label_map as label_map_lib
  from inat_tf import trained_model
  seconds, start = {}, time.perf_counter()

  def lap(stage):
    nonlocal start
    seconds[stage], start = time.perf_counter() - start, time.perf_counter()

  model = models.build(name, NUM_CLASSES, size)
  lap("build")
  # 8 images: at 32 px the last maps are 1 x 1, and batch norm over 2 values passes almost no
  # gradient back (EfficientNetV2-S's stem then does not move).
  images = tf.random.stateless_normal([8, size, size, 3], [0, 1])
  stem_before = model.trainable_weights[0].numpy().copy()
  model.compile(optimizer=keras.optimizers.SGD(0.01, clipnorm=1.0), run_eagerly=True,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  loss = model.train_on_batch(images, np.arange(8) % NUM_CLASSES)
  assert np.isfinite(loss) and not np.array_equal(model.trainable_weights[0].numpy(),
                                                  stem_before), f"{name}: the step did not train"
  lap("train step")
  path = f"{work_dir}/{name}.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), atol=1e-4)
  lap(".keras save + load")
  label_map = label_map_lib.LabelMap(  # ids, names, super-category of each, its names, counts
      tuple(range(NUM_CLASSES)), tuple(map(str, range(NUM_CLASSES))), (0,) * NUM_CLASSES, ("X",),
      (1,) * NUM_CLASSES)
  trained = trained_model.TrainedModel(model=loaded, model_name=name, image_size=size,
                                       label_map=label_map)
  module = export.serving_module(trained, top_k=5)
  jpeg = _jpeg(size)
  saved = export.export_saved_model(module, f"{work_dir}/{name}", jpeg)
  served = tf.saved_model.load(saved).signatures["serving_default"]
  scores = served(image_bytes=tf.constant([jpeg]))["scores"].numpy()
  assert scores.shape == (1, 5) and np.isfinite(scores).all()
  lap("SavedModel")
  tflite = export.export_tflite(module, work_dir, "")["model.tflite"]
  view = np.random.default_rng(1).uniform(0, 255, (1, size, size, 3)).astype("float32")
  interpreter = tf.lite.Interpreter(model_path=tflite)
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], view)
  interpreter.invoke()
  lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  keras_probabilities = tf.nn.softmax(loaded(trained.normalize(view), training=False)).numpy()
  difference = float(np.abs(lite - keras_probabilities).max())
  assert difference < 1e-4, f"{name}: TFLite differs from Keras by {difference}"
  lap("TFLite")
  return seconds, tf.io.gfile.stat(tflite).length / 2**20, difference


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--networks", default=",".join(MODERN))
  parser.add_argument("--image_size", type=int, default=32)
  args = parser.parse_args()
  stages = ("build", "train step", ".keras save + load", "SavedModel", "TFLite")
  print(f"| network | px | {' | '.join(f'{s} s' for s in stages)} | total s | x first row | "
        f"TFLite MB | max TFLite - Keras | peak RSS GB |", flush=True)
  print("|---|---:|" + "---:|" * (len(stages) + 5), flush=True)
  first_total = None
  for name in args.networks.split(","):
    with tempfile.TemporaryDirectory() as work_dir:
      seconds, megabytes, difference = _one(name, args.image_size, work_dir)
    total = sum(seconds.values())
    first_total = first_total or total
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GB (Linux)
    print(f"| {name} | {args.image_size} | "
          f"{' | '.join(f'{seconds[s]:.1f}' for s in stages)} | {total:.1f} | "
          f"{total / first_total:.1f} | {megabytes:.0f} | {difference:.1e} | {peak:.1f} |",
          flush=True)


if __name__ == "__main__":
  main()
