"""A report made from synthetic arrays at any scale, without a model or records: for the scale test
(tests/test_report.py) and benchmarks/report_page.py.

  report, photos = synthetic.report(num_classes=10_000, num_images=100_000)

The label map is long-tailed like iNat2021's (train images per species drawn from a power law,
2 to 3,000), with 13 super-categories and genera of 1-4 species; predictions are right with a
probability that grows with the species' training images, wrong ones mostly within the genus;
confidences are drawn so that the model is over-confident. Photos are noise JPEGs at the
thumbnail size (noise compresses worst: an upper bound on the page's size).
"""

import io

import numpy as np
from PIL import Image

from inat_tf import label_map as label_map_lib
from inat_tf.report import accuracy
from inat_tf.report import calibration
from inat_tf.report import errors
from inat_tf.report import photos as photos_lib

SUPERCATEGORIES = ("Actinopterygii", "Amphibia", "Animalia", "Arachnida", "Aves", "Chromista",
                   "Fungi", "Insecta", "Mammalia", "Mollusca", "Plantae", "Protozoa", "Reptilia")


def label_map(num_classes, seed=0):
  """A LabelMap of num_classes species "Genus{g} species{i}" with genus ranks and common names."""
  rng = np.random.default_rng(seed)
  genus_of = np.cumsum(rng.random(num_classes) < 0.45)  # a new genus every ~2.2 species
  counts = np.clip((rng.pareto(1.2, num_classes) + 1) * 8, 2, 3000).astype(int)
  ranks = ("kingdom", "phylum", "class", "order", "family", "genus")
  taxa = tuple(("Animalia", "Chordata", f"Class{g % 40}", f"Order{g % 300}", f"Family{g % 1500}",
                f"Genus{g}") for g in genus_of)
  return label_map_lib.LabelMap(
      category_ids=tuple(range(num_classes)),
      names=tuple(f"Genus{g} species{i}" for i, g in enumerate(genus_of)),
      supercategories=tuple(int(g) % len(SUPERCATEGORIES) for g in genus_of),
      supercategory_names=SUPERCATEGORIES, train_counts=tuple(int(c) for c in counts),
      ranks=ranks, taxa=taxa, common_names=tuple(f"common {i}" for i in range(num_classes)),
      edition="2021")


def predictions(labels_map, num_images, seed=0):
  """(image_ids [N], labels [N], top_indices [N, 5], top1 confidences [N]) for labels_map."""
  rng = np.random.default_rng(seed + 1)
  num_classes = labels_map.num_classes
  labels = rng.integers(0, num_classes, num_images)
  counts = np.asarray(labels_map.train_counts)
  p_right = 0.35 + 0.5 * np.log(counts[labels]) / np.log(1000)
  right = rng.random(num_images) < p_right
  # Wrong answers: a neighbour (same genus, mostly) or any species.
  near = np.clip(labels + rng.choice([-2, -1, 1, 2], num_images), 0, num_classes - 1)
  anywhere = rng.integers(0, num_classes, num_images)
  wrong = np.where(rng.random(num_images) < 0.7, near, anywhere)
  wrong = np.where(wrong == labels, (labels + 1) % num_classes, wrong)
  top1 = np.where(right, labels, wrong)
  others = rng.integers(0, num_classes, (num_images, 4))
  top = np.concatenate([top1[:, None], others], axis=1)
  # A wrong answer has the true class second in 60% of images (top-5 above top-1).
  top[:, 1] = np.where(right | (rng.random(num_images) < 0.6), np.where(right, wrong, labels),
                       top[:, 1])
  confidence = np.clip(np.where(right, rng.beta(5, 2, num_images), rng.beta(2, 3, num_images)),
                       0, 1)
  return np.arange(1, num_images + 1) * 7, labels, top, confidence


def noise_jpeg(seed, side=photos_lib.THUMBNAIL_SIDE):
  pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="JPEG", quality=photos_lib.JPEG_QUALITY)
  return buffer.getvalue()


def report(num_classes=10_000, num_images=100_000, seed=0):
  """(report dict, photos_lib.Photos) as inat-eval would make them, every photo present."""
  labels_map = label_map(num_classes, seed)
  image_ids, labels, top, confidence = predictions(labels_map, num_images, seed)
  result = accuracy.summarize(labels, top, labels_map)
  result.update(model="synthetic", model_dir="(none)", which="best", data_dir="(synthetic)",
                split="val", edition=labels_map.edition, date="(synthetic)",
                settings={"crop": "central 87.5% crop"}, scored_part="all")
  result["calibration"] = calibration.reliability(confidence, top[:, 0] == labels)
  result["errors"] = {
      **errors.summary(labels, top[:, 0], labels_map),
      "confused_pairs": errors.confused_pairs(labels, top[:, 0], confidence, image_ids,
                                              labels_map),
      "confident_mistakes": errors.confident_mistakes(labels, top[:, 0], confidence, image_ids,
                                                      labels_map)}
  photos = photos_lib.Photos()
  found = result["errors"]
  for row in found["confused_pairs"] + found["confident_mistakes"]:
    photos.images[f"val:{row['image_id']}"] = noise_jpeg(row["image_id"])
    train_id = 10_000_000 + row["predicted"]
    photos.train_examples[row["predicted"]] = train_id
    photos.images[f"train:{train_id}"] = noise_jpeg(train_id)
  return result, photos
