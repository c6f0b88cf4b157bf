"""How much the location prior raises accuracy on a generated download, side by side.

  python benchmarks/geo_prior.py --work_dir /tmp/inat-geo-bench [--max_side 64 --image_size 64]

The default sample (inat-make-sample: 40 species in genera of 2-3 look-alike siblings that differ
only by their spot count; siblings' ranges and seasons overlap, SIBLING_OFFSET in
inat_tf/sample_download.py), built, then an image classifier (MobileNet V1 from scratch, the
quickstart's recipe) and a location prior (inat-train-geo) trained on its train split, and the
val split scored five ways:

  image only          p(y | image)
  prior only          p(y | place, time) alone, on the val images that have a place
  combined            p(y | image) · p(y | place, time) (Mac Aodha et al. 2019), all images
  combined, place     the same on the images with a place, next to image only on them
  combined, no place  the images without a location or date: must equal image only

Stages already finished in --work_dir (download, build, models) are reused.
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np


def _stage(name, done, run):
  start = time.perf_counter()
  if done():
    print(f"{name}: reused")
    return 0.0
  run()
  seconds = time.perf_counter() - start
  print(f"{name}: {seconds:.1f} s")
  return seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--work_dir", required=True)
  parser.add_argument("--max_side", type=int, default=64)
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--epochs", type=float, default=10)
  parser.add_argument("--geo_epochs", type=float, default=40)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  from inat_tf import records
  from inat_tf import sample_download
  from inat_tf import schema
  from inat_tf import train
  from inat_tf import trained_model
  from inat_tf.geo import encoding
  from inat_tf.geo import prior as prior_lib
  from inat_tf.geo import report
  from inat_tf.geo import train as geo_train
  from tfrecord_builder import build
  import tensorflow as tf

  work = {name: os.path.join(args.work_dir, name) for name in ("download", "data", "model", "geo")}
  quiet = lambda message: None
  _stage("make-sample", lambda: os.path.exists(os.path.join(work["download"], "val2017.json")),
         lambda: sample_download.make_sample(work["download"], sample_download.SampleConfig(
             max_side=args.max_side, seed=args.seed)))
  _stage("build", lambda: os.path.exists(os.path.join(work["data"], "label_map.json")),
         lambda: build.build(build.BuildConfig(raw_dir=work["download"], data_dir=work["data"]),
                             log=quiet))
  _stage("train image model", lambda: os.path.exists(os.path.join(work["model"], "final.keras")),
         lambda: train.train(train.TrainConfig(
             data_dir=work["data"], model_dir=work["model"], model="mobilenet_v1",
             image_size=args.image_size, batch_size=32, epochs=args.epochs, weights="none",
             learning_rate=0.1, bn_momentum=0.9, lr_schedule="cosine", seed=args.seed),
             log=quiet))
  _stage("train location prior", lambda: os.path.exists(os.path.join(work["geo"], "final.keras")),
         lambda: geo_train.train(geo_train.GeoTrainConfig(
             work["data"], work["geo"], epochs=args.geo_epochs, batch_size=128,
             learning_rate=0.002, seed=args.seed), log=quiet))

  trained = trained_model.load(work["model"])
  prior = prior_lib.load(work["geo"])
  predictions = trained_model.predict(trained, work["data"], "val", geo_prior=prior)
  comparison = report.compare(predictions)
  # Prior alone, on the val images with a place.
  places, labels = [], []
  for batch in records.examples(work["data"], "val", [schema.LABEL, *encoding.PLACE_KEYS]).batch(
      1024):
    places.append(encoding.places_from_examples(batch).numpy())
    labels.append(batch[schema.LABEL].numpy())
  places, labels = np.concatenate(places), np.concatenate(labels)
  keep = prior.available(tf.constant(places)).numpy()
  top = tf.math.top_k(prior.logits(tf.constant(places[keep])), 5).indices.numpy()
  prior_only = {"top1": float(np.mean(top[:, 0] == labels[keep])),
                "top5": float(np.mean((top == labels[keep][:, None]).any(1)))}

  rows = {row["name"]: row for row in comparison["subsets"]}
  pct = lambda v: f"{100 * v:6.2f}%"
  table = [("image only", rows["all images"]["images"], rows["all images"]["image_only"]),
           ("prior only (images with a place)", int(keep.sum()), prior_only),
           ("combined", rows["all images"]["images"], rows["all images"]["with_prior"]),
           ("image only, images with a place", rows["with a place"]["images"],
            rows["with a place"]["image_only"]),
           ("combined, images with a place", rows["with a place"]["images"],
            rows["with a place"]["with_prior"]),
           ("image only, images without", rows["without a place"]["images"],
            rows["without a place"]["image_only"]),
           ("combined, images without", rows["without a place"]["images"],
            rows["without a place"]["with_prior"])]
  print(f"\nval split of the sample ({rows['all images']['images']} images, "
        f"{trained.label_map.num_classes} species), {trained.model_name} at "
        f"{trained.image_size} px:")
  print(f"{'':36s} {'images':>7s} {'top-1':>8s} {'top-5':>8s}")
  for name, count, scores in table:
    print(f"{name:36s} {count:7d} {pct(scores['top1'])} {pct(scores['top5'])}")
  top1_gain = rows["all images"]["with_prior"]["top1"] - rows["all images"]["image_only"]["top1"]
  print(f"top-1 gain from the prior: {100 * top1_gain:+.2f} points; "
        f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
  unchanged = rows["without a place"]["image_only"] == rows["without a place"]["with_prior"]
  with open(os.path.join(args.work_dir, "geo_prior.json"), "w") as f:
    json.dump({"comparison": comparison, "prior_only": prior_only, "args": vars(args)}, f,
              indent=1)
  if not unchanged:
    sys.exit("images without a place changed: the combination is wrong")


if __name__ == "__main__":
  main()
