"""Training input throughput at 299 px: our pipeline against the usual alternatives, same images.

  python benchmarks/input_pipeline.py --work_dir /tmp/inat-input-bench

Uses the train split of a generated download at 800 px (TFDS's species names, so TFDS can build it
too) and measures, each in a fresh process (peak RSS is its own), batches of 32 at 299 px:
  inat        inat_tf.input_pipeline.train_dataset on our TFRecords (fused decode-and-crop)
  keras       keras.utils.image_dataset_from_directory over the same JPEGs extracted to folders,
              with Keras augmentation layers (RandomZoom as the random crop, RandomFlip)
  tfds        the TFDS-built records of the same images: decoded in full, then cropped
  ceiling     decode_and_crop_jpeg (+ resize) alone, over the same JPEG bytes held in memory
              (the in-memory cache is filled by a first pass before timing starts)
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

BATCH = 32
IMAGE_SIZE = 299


def _time_batches(dataset, batches, warmup):
  iterator = iter(dataset)
  for _ in range(warmup):
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * BATCH / (time.perf_counter() - start)


def _inat(work):
  from inat_tf import input_pipeline
  return input_pipeline.train_dataset(input_pipeline.InputConfig(
      data_dir=work["inat_data_dir"], image_size=IMAGE_SIZE, global_batch_size=BATCH))


def _keras(work):
  import keras
  import tensorflow as tf
  ds = keras.utils.image_dataset_from_directory(
      work["folders"], image_size=(IMAGE_SIZE, IMAGE_SIZE), batch_size=BATCH, shuffle=True,
      label_mode="int")
  augment = keras.Sequential([keras.layers.RandomZoom((-0.6, 0.0)),  # zoom in: a random crop
                              keras.layers.RandomFlip("horizontal"),
                              keras.layers.Rescaling(1 / 127.5, offset=-1)])
  return ds.repeat().map(lambda x, y: (augment(x, training=True), y),
                         num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _tfds(work):
  import tensorflow as tf
  import tensorflow_datasets as tfds
  from inat_tf import preprocessing
  builder = tfds.builder_from_directory(work["tfds_dir"])
  ds = builder.as_dataset(split="train", shuffle_files=True)

  def crop(example):
    image = example["image"]  # TFDS has decoded it in full
    window = preprocessing.random_crop_window(tf.shape(image), tf.random.uniform([2], 0, 2**30,
                                                                               tf.int32))
    image = tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])
    image = tf.image.resize(tf.cast(image, tf.float32), [IMAGE_SIZE, IMAGE_SIZE])
    return tf.image.random_flip_left_right(image) / 127.5 - 1, example["label"]

  return (ds.shuffle(1024).repeat().map(crop, num_parallel_calls=tf.data.AUTOTUNE)
          .batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def _ceiling(work):
  """The same JPEG bytes, cached in memory by a first pass (the warm-up), then only the op."""
  import tensorflow as tf
  from inat_tf import preprocessing
  from inat_tf import records
  from inat_tf import schema
  jpegs = records.examples(work["inat_data_dir"], "train", [schema.ENCODED]).map(
      lambda example: example[schema.ENCODED]).cache()
  seeds = tf.data.Dataset.random(seed=0).batch(2)

  def crop(image_bytes, seed):
    window = preprocessing.random_crop_window(tf.image.extract_jpeg_shape(image_bytes), seed)
    image = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)
    return tf.image.resize(tf.cast(image, tf.float32), [IMAGE_SIZE, IMAGE_SIZE])

  return (tf.data.Dataset.zip((jpegs.repeat(), seeds))
          .map(crop, num_parallel_calls=tf.data.AUTOTUNE)
          .batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


CONTENDERS = {"inat": _inat, "keras": _keras, "tfds": _tfds, "ceiling": _ceiling}


def _prepare(args):
  """The download, its three renderings (ours, TFDS's, folders); returns the paths."""
  from inat_tf import records
  sys.path.insert(0, os.path.dirname(__file__))
  import builder as builder_benchmark  # the TFDS builder subclass and the sample step live there
  raw = os.path.join(args.work_dir, "download")
  builder_benchmark.make_sample(raw, args.num_species, max_side=800)
  train_files = builder_benchmark.EDITION.splits["train"]
  work = {"archive": os.path.join(raw, train_files.archive),
          "inat_data_dir": os.path.join(args.work_dir, "inat"),
          "tfds_dir": os.path.join(args.work_dir, "tfds"),
          "folders": os.path.join(args.work_dir, "folders")}
  train = json.load(open(os.path.join(raw, train_files.annotations)))
  work["train_files"] = [image["file_name"] for image in train["images"]]
  if not os.path.exists(os.path.join(work["inat_data_dir"], records.MANIFEST)):
    subprocess.run([sys.executable, "-c", "import sys; from tfrecord_builder import build; "
                    "sys.exit(build.build(build.BuildConfig(raw_dir=sys.argv[1], "
                    "data_dir=sys.argv[2], splits=('train',)))[0])", raw, work["inat_data_dir"]],
                   check=True)
  if not os.path.exists(work["tfds_dir"]):
    subprocess.run([sys.executable, builder_benchmark.__file__, "--child", "tfds", "--raw_dir",
                    raw, "--out_dir", work["tfds_dir"] + "-build"], check=True,
                   stdout=subprocess.DEVNULL)
    built = glob.glob(os.path.join(work["tfds_dir"] + "-build", "*", "*", "dataset_info.json"))
    shutil.move(os.path.dirname(built[0]), work["tfds_dir"])
  if not os.path.exists(work["folders"]):
    wanted = set(work["train_files"])
    with tarfile.open(work["archive"]) as tar:
      for member in tar:
        if member.isfile() and member.name in wanted:
          species = member.name.split("/")[2]
          target = os.path.join(work["folders"], species, os.path.basename(member.name))
          os.makedirs(os.path.dirname(target), exist_ok=True)
          with open(target, "wb") as f:
            f.write(tar.extractfile(member).read())
  return work


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--work_dir", default="/tmp/inat-input-bench")
  parser.add_argument("--num_species", type=int, default=100)
  parser.add_argument("--batches", type=int, default=40)
  parser.add_argument("--child", help=argparse.SUPPRESS)
  parser.add_argument("--work", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    work = json.load(open(args.work))
    # The ceiling's warm-up is one full pass, which fills its in-memory cache.
    warmup = len(work["train_files"]) // BATCH + 1 if args.child == "ceiling" else 5
    rate = _time_batches(CONTENDERS[args.child](work), args.batches, warmup)
    print(json.dumps({"images_per_second": rate}))
    return

  work = _prepare(args)
  work_file = os.path.join(args.work_dir, "work.json")
  json.dump(work, open(work_file, "w"))
  results = {}
  for name in CONTENDERS:
    process = subprocess.Popen([sys.executable, __file__, "--child", name, "--work",
                                work_file, "--batches", str(args.batches)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status:
      raise RuntimeError(f"{name} failed; run it alone with --child {name} to see why")
    results[name] = {**json.loads(output.strip().splitlines()[-1]),
                     "peak_rss_mb": usage.ru_maxrss / 1024}
    print(f"{name:8s} {results[name]['images_per_second']:7.1f} images/s  "
          f"peak RSS {results[name]['peak_rss_mb']:6.0f} MB", flush=True)
  inat = results["inat"]["images_per_second"]
  print(f"\ninat / ceiling = {inat / results['ceiling']['images_per_second']:.2f}  "
        f"inat / keras = {inat / results['keras']['images_per_second']:.2f}  "
        f"inat / tfds = {inat / results['tfds']['images_per_second']:.2f}  "
        f"({len(work['train_files'])} train images at up to 800 px, {BATCH} x {IMAGE_SIZE} px "
        f"batches, {os.cpu_count()} cores)")


if __name__ == "__main__":
  main()
