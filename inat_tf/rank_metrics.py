"""Top-1 and top-5 accuracy at every taxonomic rank the label map carries.

A prediction counts at rank R when its taxon at R equals the true one (so predicting a sister
species of the right genus is a hit at the genus rank and above): top-1 at R compares the first
prediction's taxon with the true taxon, top-5 at R asks whether any of the five predictions' taxa
equals it. Rows: the super-category, each rank the edition publishes (kingdom .. genus, 2018 on;
inat_tf.editions.TAXONOMY_RANKS) and the species. Taxa are compared by lineage (a genus name used
in two families is two genera), see LabelMap.taxon_indices.
"""

import numpy as np


def levels(label_map):
  """The rows of the rank table, top first: supercategory, the published ranks, species."""
  return ("supercategory",) + tuple(label_map.ranks) + ("species",)


def rank_accuracy(labels, top_indices, label_map):
  """[{"rank", "taxa", "top1", "top5"}] over the labelled images, one per level, top first.

  labels: int [N] true class indices (-1: unlabelled, ignored); top_indices: int [N, K] predicted
  class indices, best first (K <= 5 counts as top-K; -1: no species in that slot). Accuracies
  are fractions of images in [0, 1]; "taxa" is the number of distinct taxa at that rank in the
  label map.
  Raises ValueError when no image is labelled.
  """
  labels = np.asarray(labels)
  top_indices = np.asarray(top_indices)
  keep = labels >= 0
  if not keep.any():
    raise ValueError("no labelled images to compute rank accuracy on")
  labels, top_indices = labels[keep], top_indices[keep]
  rows = []
  for level in levels(label_map):
    taxon = label_map.taxon_indices(level)
    # -1 (no species: a restriction with fewer than K) is no taxon, never a hit.
    true = taxon[labels]
    predicted = np.where(top_indices >= 0, taxon[np.maximum(top_indices, 0)], -1)
    rows.append({"rank": level, "taxa": int(len(np.unique(taxon))),
                 "top1": float(np.mean(predicted[:, 0] == true)),
                 "top5": float(np.mean(np.any(predicted[:, :5] == true[:, None], axis=1)))})
  return rows
