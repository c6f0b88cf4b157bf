"""Scores with and without the location prior, side by side (inat-eval, inat-predict, the
benchmark). Reads inat_tf.evaluate.Predictions made with a prior (geo_top_indices, has_place)."""

import numpy as np

SUBSETS = (("all images", None), ("with a place", True), ("without a place", False))


def _scores(top_indices, labels):
  if len(labels) == 0:
    return {"top1": None, "top5": None}
  return {"top1": float(np.mean(top_indices[:, 0] == labels)),
          "top5": float(np.mean((top_indices == labels[:, None]).any(axis=1)))}


def compare(predictions):
  """{"subsets": [{"images", "name", "image_only": {top1, top5}, "with_prior": {...}}],
  "images_with_place", "top1_changed"} over the labelled images (label >= 0).

  On "without a place" the two columns are equal by construction (the combination leaves those
  images' probabilities untouched); the report shows it so that anyone can check.
  """
  labelled = predictions.labels >= 0
  subsets = []
  for name, wanted in SUBSETS:
    mask = labelled if wanted is None else labelled & (predictions.has_place == wanted)
    subsets.append({"name": name, "images": int(mask.sum()),
                    "image_only": _scores(predictions.top_indices[mask], predictions.labels[mask]),
                    "with_prior": _scores(predictions.geo_top_indices[mask],
                                          predictions.labels[mask])})
  return {"subsets": subsets, "images_with_place": int(predictions.has_place.sum()),
          "images": int(len(predictions.has_place)),
          "top1_changed": int(np.sum(predictions.top_indices[:, 0] !=
                                     predictions.geo_top_indices[:, 0]))}


def _percent(value):
  return "–" if value is None else f"{100 * value:.2f}%"


def markdown(comparison):
  """The comparison as a Markdown table."""
  lines = ["## With and without the location prior (Mac Aodha et al. 2019)", "",
           f"{comparison['images_with_place']:,} of {comparison['images']:,} images have a place; "
           f"the prior changed the top-1 of {comparison['top1_changed']:,}.", "",
           "| Images | Count | Top-1 image only | Top-1 with prior | Top-5 image only | "
           "Top-5 with prior |", "|---|---:|---:|---:|---:|---:|"]
  for row in comparison["subsets"]:
    lines.append(f"| {row['name']} | {row['images']:,} | {_percent(row['image_only']['top1'])} | "
                 f"{_percent(row['with_prior']['top1'])} | {_percent(row['image_only']['top5'])} | "
                 f"{_percent(row['with_prior']['top5'])} |")
  return "\n".join(lines) + "\n"
