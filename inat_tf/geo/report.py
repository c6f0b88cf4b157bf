"""Scores with and without the location prior, side by side (inat-eval, inat-predict, the
benchmark), as plain data; inat_tf.report.sections.location_prior renders it. Reads
inat_tf.trained_model.Predictions made with a prior (geo_top_indices, has_place)."""

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
