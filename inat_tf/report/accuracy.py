"""Top-1 / top-5 as plain data: overall, per species, per super-category (the paper's Table 4),
per shot bucket (long_tail.py), per rank (rank_metrics.py) and per training-count bin (Fig. 5).

Van Horn et al. 2018, "The iNaturalist Species Classification and Detection Dataset": Table 4
averages over the species of a super-category, not over its images; Fig. 5 plots accuracy against
the number of training images per species. Numpy only (no TensorFlow).
"""

import collections

import numpy as np

from inat_tf import long_tail
from inat_tf import rank_metrics

TOP_K = 5
# Bins of training images per species for Fig. 5 (lower edges; the last is open-ended).
TRAIN_COUNT_BINS = (0, 10, 20, 50, 100, 200, 500, 1000)


def per_class_hits(labels, top_indices, num_classes):
  """(examples, top-1 hits, top-5 hits), int64 [num_classes] each, over images with label >= 0.

  labels: int [N] (-1: unlabelled); top_indices: int [N, K], best first.
  """
  labels, top_indices = np.asarray(labels), np.asarray(top_indices)
  keep = labels >= 0
  labels, top_indices = labels[keep], top_indices[keep]
  hit1 = top_indices[:, 0] == labels
  hit5 = (top_indices[:, :TOP_K] == labels[:, None]).any(axis=1)
  return tuple(np.bincount(labels, weights=w, minlength=num_classes).astype(np.int64)
               for w in (np.ones(len(labels)), hit1, hit5))


def genus(label_map, index):
  """Genus name of class `index`: the label map's genus rank (2018 on), else the binomial's first
  word (2017 publishes no taxonomy; its names are "Genus species")."""
  if "genus" in label_map.ranks:
    return label_map.taxon(index, "genus")
  return label_map.names[index].split(" ")[0]


def genus_indices(label_map):
  """int64 [num_classes]: each class's genus as a small integer (equal genera, equal integers); by
  lineage where the label map has ranks (LabelMap.taxon_indices)."""
  if "genus" in label_map.ranks:
    return label_map.taxon_indices("genus")
  names = [genus(label_map, i) for i in range(label_map.num_classes)]
  ids = {name: n for n, name in enumerate(sorted(set(names)))}
  return np.asarray([ids[name] for name in names], np.int64)


def most_confused_with(labels, top1, num_classes):
  """For every true class, the class its images were most often taken for (top-1 errors):
  (class index [num_classes], -1 where none; count [num_classes]). Ties: the lower index."""
  labels, top1 = np.asarray(labels), np.asarray(top1)
  wrong = (labels >= 0) & (top1 >= 0) & (top1 != labels)  # top1 -1: no species at all
  pairs = labels[wrong].astype(np.int64) * num_classes + top1[wrong]
  unique, counts = np.unique(pairs, return_counts=True)
  best = np.full(num_classes, -1, np.int64)
  best_count = np.zeros(num_classes, np.int64)
  order = np.lexsort((unique, -counts))  # count descending, then pair: the first per class wins
  for pair, count in zip(unique[order], counts[order]):
    true = pair // num_classes
    if best[true] < 0:
      best[true], best_count[true] = pair % num_classes, count
  return best, best_count


def summarize(labels, top_indices, label_map):
  """The accuracy report over labelled images: a dict of plain data (report.json's core).

  labels: int [N] class indices (-1: unlabelled, left out); top_indices: int [N, K >= 1] predicted
  class indices, best first. Returns {"images", "top1", "top5", "top5_error", "chance_top1",
  "chance_top5", "num_classes", "shots", "supercategories", "ranks", "train_count_bins",
  "classes"}; accuracies are fractions in [0, 1]. Raises ValueError when no image is labelled.
  """
  labels, top_indices = np.asarray(labels), np.asarray(top_indices)
  labelled = labels >= 0
  if not labelled.any():
    raise ValueError("This split has no labels (the test split?): nothing to score. Use "
                     "inat-predict to write a submission instead.")
  num_classes = label_map.num_classes
  examples, hits1, hits5 = per_class_hits(labels, top_indices, num_classes)
  confused, confused_count = most_confused_with(labels, top_indices[:, 0], num_classes)
  classes = []
  for index in np.flatnonzero(examples):
    n = int(examples[index])
    other = int(confused[index])
    classes.append({
        "index": int(index), "category_id": label_map.category_ids[index],
        "name": label_map.names[index],
        "common_name": label_map.common_names[index] if label_map.common_names else "",
        "genus": genus(label_map, index),
        "supercategory": label_map.supercategory_names[label_map.supercategories[index]],
        "train_images": label_map.train_counts[index], "eval_images": n,
        "top1": int(hits1[index]) / n, "top5": int(hits5[index]) / n,
        "confused_with": label_map.names[other] if other >= 0 else "",
        "confused_count": int(confused_count[index]) if other >= 0 else None})
  by_supercategory = collections.defaultdict(list)
  for c in classes:
    by_supercategory[c["supercategory"]].append(c)
  supercategories = [{
      "supercategory": name, "species": len(members),
      "avg_train_images": float(np.mean([c["train_images"] for c in members])),
      # The paper averages over the species of a super-class, not over images.
      "top1": float(np.mean([c["top1"] for c in members])),
      "top5": float(np.mean([c["top5"] for c in members]))}
      for name, members in sorted(by_supercategory.items())]
  n = int(labelled.sum())
  top1, top5 = float(hits1.sum() / n), float(hits5.sum() / n)
  return {"images": n, "top1": top1, "top5": top5, "top5_error": 1 - top5,
          "shots": long_tail.shot_scores(examples, hits1, hits5, label_map.train_counts),
          "chance_top1": 1 / num_classes, "chance_top5": min(1.0, TOP_K / num_classes),
          "num_classes": num_classes, "supercategories": supercategories,
          "ranks": rank_metrics.rank_accuracy(labels, top_indices, label_map),
          "train_count_bins": train_count_bins(classes), "classes": classes}


def train_count_bins(classes):
  """Fig. 5's bins: [{"train_images" (label), "low", "species", "mean_train_images",
  "top1_mean", "top1_median", "top1" (every member's top-1)}] over TRAIN_COUNT_BINS, empty bins
  left out. classes: summarize's per-species rows."""
  bins = []
  edges = list(TRAIN_COUNT_BINS) + [float("inf")]
  for low, high in zip(edges[:-1], edges[1:]):
    members = [c for c in classes if low <= c["train_images"] < high]
    if members:
      accuracies = [c["top1"] for c in members]
      bins.append({"train_images": f"{low}-{high - 1}" if high != float("inf") else f"{low}+",
                   "low": low, "species": len(members),
                   "mean_train_images": float(np.mean([c["train_images"] for c in members])),
                   "top1_mean": float(np.mean(accuracies)),
                   "top1_median": float(np.median(accuracies)), "top1": accuracies})
  return bins
