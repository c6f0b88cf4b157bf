"""The errors as plain data: which species are taken for which, the most confident mistakes, and
the answers a location prior changed. Numpy only; every list is bounded (its `limit`), so the
report's size does not grow with the split.
"""

import numpy as np

from inat_tf.report import accuracy

CONFUSED_PAIRS = 20      # most-confused (true, predicted) species pairs shown
CONFIDENT_MISTAKES = 24  # most confident top-1 errors shown
PRIOR_EXAMPLES = 8       # examples of each way a location prior changed an answer


def _species(label_map, index, prefix):
  index = int(index)
  return {prefix: index, f"{prefix}_name": label_map.names[index],
          f"{prefix}_common_name": label_map.common_names[index] if label_map.common_names else "",
          f"{prefix}_genus": accuracy.genus(label_map, index)}


def _most_confident_first(confidences, image_ids):
  """Order: confidence descending, then image id ascending (deterministic on ties)."""
  return np.lexsort((np.asarray(image_ids), -np.asarray(confidences)))


def summary(labels, top1, label_map):
  """{"top1_errors", "same_genus", "same_supercategory"}: how many labelled images got a wrong
  top-1, and how many of those were taken for a species of the same genus / super-category."""
  labels, top1 = np.asarray(labels), np.asarray(top1)
  wrong = (labels >= 0) & (top1 != labels)
  genera = accuracy.genus_indices(label_map)
  supercategories = np.asarray(label_map.supercategories)
  return {"top1_errors": int(wrong.sum()),
          "same_genus": int(np.sum(genera[labels[wrong]] == genera[top1[wrong]])),
          "same_supercategory": int(np.sum(supercategories[labels[wrong]] ==
                                           supercategories[top1[wrong]]))}


def confused_pairs(labels, top1, confidences, image_ids, label_map, *, limit=CONFUSED_PAIRS):
  """The `limit` (true, predicted) species pairs with the most top-1 errors, most first (ties: the
  lower class indices). Each: {"count", "reverse_count" (predicted taken for true), "same_genus",
  "image_id" and "confidence" of the pair's most confident error, "true*", "predicted*"
  (index, name, common name, genus)}.

  labels, top1: int [N] (labels -1: unlabelled); confidences: float [N] top-1 probabilities;
  image_ids: int [N].
  """
  labels, top1 = np.asarray(labels, np.int64), np.asarray(top1, np.int64)
  confidences, image_ids = np.asarray(confidences), np.asarray(image_ids)
  num_classes = label_map.num_classes
  wrong = np.flatnonzero((labels >= 0) & (top1 != labels))
  keys = labels[wrong] * num_classes + top1[wrong]
  unique, counts = np.unique(keys, return_counts=True)
  count_of = dict(zip(unique.tolist(), counts.tolist()))
  chosen = unique[np.lexsort((unique, -counts))][:limit]
  # The most confident error of each chosen pair: walk the errors most confident first.
  example = {}
  for i in wrong[_most_confident_first(confidences[wrong], image_ids[wrong])]:
    key = int(labels[i] * num_classes + top1[i])
    example.setdefault(key, i)
  pairs = []
  for key in chosen.tolist():
    true, predicted = divmod(key, num_classes)
    i = example[key]
    row = {"count": count_of[key], "reverse_count": count_of.get(predicted * num_classes + true, 0),
           "image_id": int(image_ids[i]), "confidence": float(confidences[i])}
    row.update(_species(label_map, true, "true"))
    row.update(_species(label_map, predicted, "predicted"))
    row["same_genus"] = row["true_genus"] == row["predicted_genus"]
    pairs.append(row)
  return pairs


def confident_mistakes(labels, top1, confidences, image_ids, label_map,
                       *, limit=CONFIDENT_MISTAKES):
  """The `limit` top-1 errors with the highest top-1 confidence, at most one per (true,
  predicted) pair of species (confused_pairs shows how often a pair recurs): [{"image_id",
  "confidence", "true*", "predicted*"}], most confident first (ties: the lower image id)."""
  labels, top1 = np.asarray(labels), np.asarray(top1)
  confidences, image_ids = np.asarray(confidences), np.asarray(image_ids)
  wrong = np.flatnonzero((labels >= 0) & (top1 != labels))
  rows, seen = [], set()
  for i in wrong[_most_confident_first(confidences[wrong], image_ids[wrong])]:
    if len(rows) == limit:
      break
    if (int(labels[i]), int(top1[i])) in seen:
      continue
    seen.add((int(labels[i]), int(top1[i])))
    row = {"image_id": int(image_ids[i]), "confidence": float(confidences[i])}
    row.update(_species(label_map, labels[i], "true"))
    row.update(_species(label_map, top1[i], "predicted"))
    rows.append(row)
  return rows


def prior_changes(labels, image_only, with_prior, image_ids, label_map, *,
                  limit=PRIOR_EXAMPLES):
  """What a location prior did to the top-1 answers of labelled images.

  image_only, with_prior: (top1 int [N], confidence float [N]) without and with the prior.
  Returns {"changed", "right_to_wrong", "wrong_to_right", "wrong_to_wrong" (counts), "examples":
  {"right_to_wrong": [...], "wrong_to_right": [...]}}, each example {"image_id",
  "image_only_confidence", "with_prior_confidence", "true*", "image_only*", "with_prior*"}, the
  `limit` with the most confident answer with the prior first.
  """
  labels = np.asarray(labels)
  (before, before_confidence), (after, after_confidence) = (
      (np.asarray(t), np.asarray(c)) for t, c in (image_only, with_prior))
  image_ids = np.asarray(image_ids)
  changed = (labels >= 0) & (before != after)
  ways = {"right_to_wrong": changed & (before == labels),
          "wrong_to_right": changed & (after == labels)}
  result = {"changed": int(changed.sum()),
            **{way: int(mask.sum()) for way, mask in ways.items()},
            "wrong_to_wrong": int(np.sum(changed & (before != labels) & (after != labels))),
            "examples": {}}
  for way, mask in ways.items():
    members = np.flatnonzero(mask)
    rows = []
    for i in members[_most_confident_first(after_confidence[members], image_ids[members])][:limit]:
      row = {"image_id": int(image_ids[i]),
             "image_only_confidence": float(before_confidence[i]),
             "with_prior_confidence": float(after_confidence[i])}
      row.update(_species(label_map, labels[i], "true"))
      row.update(_species(label_map, before[i], "image_only"))
      row.update(_species(label_map, after[i], "with_prior"))
      rows.append(row)
    result["examples"][way] = rows
  return result
