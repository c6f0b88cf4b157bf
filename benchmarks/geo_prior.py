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

Then location as a boost, not a filter (inat_tf.geo.prior.combine's floor): each val image with
a place is scored twice, at its own place (in range) and at the antipode of that place
(out of range: far from every photo of its species, as a garden plant or a zoo animal is), for a
range of floors, the plain product (floor 0) first. Printed per floor: the in-range top-1 gain
over image only, the share of the plain product's gain it keeps, the out-of-range top-1 drop
below image only, and its share of the plain product's drop; then whether the default floor
(inat_tf.geo.prior.DEFAULT_FLOOR) keeps >= 90 % of the gain with at most half the drop.
Opted-out items (captive / cultivated) must get exactly the image-only answer.

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
  parser.add_argument("--floors", type=float, nargs="+",
                      default=[0.0, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2],
                      help="Location floors to compare; the first should be 0 (plain product).")
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
  floors, opted_out_exact = floor_table(trained, prior, work["data"], args.floors)
  with open(os.path.join(args.work_dir, "geo_prior.json"), "w") as f:
    json.dump({"comparison": comparison, "prior_only": prior_only, "floors": floors,
               "args": vars(args)}, f, indent=1)
  if not unchanged:
    sys.exit("images without a place changed: the combination is wrong")
  if not opted_out_exact:
    sys.exit("opted-out items differ from the image-only answer: the opt-out is wrong")


def _val_logits_and_places(trained, data_dir):
  """(logits [N, C], labels [N], places [N, 3]) of the val split, one central view."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from inat_tf import preprocessing, records, schema  # pylint: disable=g-import-not-at-top
  from inat_tf.geo import encoding  # pylint: disable=g-import-not-at-top

  def view(example):
    image = preprocessing.eval_image(example[schema.ENCODED], trained.image_size,
                                     trained.eval_crop_fraction)
    return (trained.normalize(image), example[schema.LABEL],
            encoding.places_from_examples(example))

  keys = [schema.ENCODED, schema.LABEL, *encoding.PLACE_KEYS]
  dataset = records.examples(data_dir, "val", keys).map(view).batch(128)
  model = tf.function(lambda images: trained.model(images, training=False))
  parts = [(model(images).numpy(), labels.numpy(), places.numpy())
           for images, labels, places in dataset]
  return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def antipodes(places):
  """The same photos moved to the far side of the globe (latitude negated, longitude + 180),
  dates kept: far outside every species' range in the sample."""
  moved = places.copy()
  moved[:, 0] = -places[:, 0]
  moved[:, 1] = (places[:, 1] + 360.0) % 360.0 - 180.0
  return moved


def floor_table(trained, prior, data_dir, floors):
  """Prints and returns the floor table (module docstring), and whether opted-out items got
  exactly the image-only answer. Every answer comes from inat_tf.answers.answer."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from inat_tf import answers, rollup, taxonomy  # pylint: disable=g-import-not-at-top
  from inat_tf.geo import prior as prior_lib  # pylint: disable=g-import-not-at-top
  tree = taxonomy.from_label_map(trained.label_map)
  logits, labels, places = _val_logits_and_places(trained, data_dir)
  has_place = prior.available(tf.constant(places)).numpy()
  logits, labels, places = logits[has_place], labels[has_place], places[has_place]
  moved = antipodes(places)
  in_range_logits = prior.logits(tf.constant(places)).numpy()
  out_range_logits = prior.logits(tf.constant(moved)).numpy()
  available = np.ones(len(labels), bool)

  def top1(floor, prior_logits, opt_out=None):
    config = answers.AnswerConfig(rule=rollup.ArgmaxRule(), floor=floor)
    out = answers.answer(answers.Inputs(logits=logits, prior_logits=prior_logits,
                                        has_place=available, opt_out=opt_out), tree, config)
    return out["species"].numpy(), out["probabilities"].numpy()

  image_only, image_probabilities = top1(0.0, out_range_logits, opt_out=available)
  image_only_plain = answers.answer(answers.Inputs(logits=logits), tree,
                                    answers.AnswerConfig(rule=rollup.ArgmaxRule()))
  exact = (image_probabilities.tobytes() ==
           image_only_plain["probabilities"].numpy().tobytes())
  base = float(np.mean(image_only == labels))
  rows = []
  for floor in floors:
    in_range = float(np.mean(top1(floor, in_range_logits)[0] == labels))
    out_range = float(np.mean(top1(floor, out_range_logits)[0] == labels))
    rows.append({"floor": floor, "in_range_top1": in_range, "out_of_range_top1": out_range,
                 "gain": in_range - base, "drop": base - out_range})
  plain = rows[0]
  print(f"\nlocation as a boost: {len(labels)} val images with a place, image-only top-1 "
        f"{100 * base:.2f}%; out of range = the same photos at the antipode of their place")
  print(f"{'floor':>8s} {'in-range top-1':>14s} {'gain':>7s} {'of plain':>8s} "
        f"{'out-of-range top-1':>18s} {'drop':>7s} {'of plain':>8s}")
  for row in rows:
    row["gain_share"] = row["gain"] / plain["gain"] if plain["gain"] else None
    row["drop_share"] = row["drop"] / plain["drop"] if plain["drop"] else None
    share = lambda v: "-" if v is None else f"{100 * v:.0f}%"
    name = "plain" if row["floor"] == 0 else f"{row['floor']:g}"
    print(f"{name:>8s} {100 * row['in_range_top1']:13.2f}% {100 * row['gain']:+6.2f} "
          f"{share(row['gain_share']):>8s} {100 * row['out_of_range_top1']:17.2f}% "
          f"{100 * row['drop']:+6.2f} {share(row['drop_share']):>8s}")
  def largest(share):
    kept = [row["floor"] for row in rows[1:]
            if row["gain_share"] is not None and row["gain_share"] >= share - 1e-9]
    return f"{max(kept):g}" if kept else "none"
  print(f"largest floor keeping all of the plain product's in-range gain: {largest(1.0)}; "
        f"keeping >= 90%: {largest(0.9)}")
  default = next((row for row in rows if row["floor"] == prior_lib.DEFAULT_FLOOR), None)
  if default is not None and default["gain_share"] is not None and default["drop_share"] is not None:
    met = default["gain_share"] >= 0.9 and default["drop_share"] <= 0.5
    print(f"default floor {prior_lib.DEFAULT_FLOOR:g}: keeps {100 * default['gain_share']:.0f}% of "
          f"the gain with {100 * default['drop_share']:.0f}% of the drop: goal (>= 90%, <= 50%) "
          f"{'met' if met else 'MISSED'}")
  print(f"opted out (captive / cultivated), out of range: "
        f"{'exactly the image-only answer' if exact else 'DIFFERS from the image-only answer'}")
  return rows, exact


if __name__ == "__main__":
  main()
