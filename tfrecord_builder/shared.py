"""One file listed under several image ids or in several splits (issue 25, item 1).

The same file under two ids is the same pixels twice. What that means depends on where:

  test only                  every id needs its own prediction (Kaggle scores each listed id):
                             kept under each id; reported as a fact.
  one labelled split, labels agree
                             kept once (the smallest id): the same photo twice would count twice
                             in the loss and in val accuracy; a fact.
  labels disagree (any labelled splits)
                             left out of train and val: the same pixels would teach two labels;
                             a problem (counts towards --max_rejects, like any rejected image).
  train and val, labels agree
                             kept in train only: a val image that is also a train image inflates
                             val accuracy; a problem (val loses it; the published splits are not
                             meant to share files).

Files with the same pixels under different names are found after the images are read, from their
content hashes (build.py, "same_pixels" in the manifest).
"""

import numpy as np

from tfrecord_builder import annotations
from tfrecord_builder import columns

LABELLED = ("train", "val")


def resolve(tables, problems):
  """(tables with the rows to leave out removed, [fact dict per shared file name]).

  tables: {split: columns.SplitTable}; problems: the catalog's list, appended to.
  """
  splits = list(tables)
  groups = columns.shared_name_groups([tables[s] for s in splits])
  drop = {split: [] for split in splits}
  facts = []
  for members in groups:
    ids, labels = {}, {}
    for table_index, row in members:
      split = splits[table_index]
      ids.setdefault(split, []).append(int(tables[split].ids[row]))
      labels.setdefault(split, []).append(int(tables[split].category_ids[row]))
    name = tables[splits[members[0][0]]].names[members[0][1]]
    labelled = {s for s in ids if s in LABELLED}
    categories = {c for s in labelled for c in labels[s]}
    keep = {s: set(ids[s]) for s in ids}  # by default every id stays
    if len(categories) > 1:
      action = "left out of " + " and ".join(sorted(labelled)) + " (the same pixels would " \
               f"teach {len(categories)} labels: categories {sorted(categories)})"
      for split in labelled:
        keep[split] = set()
      problems.append(annotations.Problem(
          "file under several labels", name, f"listed as image ids {_listing(ids)} with "
                                             f"categories {sorted(categories)}; {action}"))
    elif labelled:
      home = "train" if "train" in labelled else sorted(labelled)[0]
      kept = min(ids[home])
      for split in labelled:
        keep[split] = {kept} if split == home else set()
      action = f"kept once, as {home} image id {kept}"
      if len(labelled) > 1:
        others = sorted(labelled - {home})
        action += (f"; left out of {' and '.join(others)} (an image that is also a {home} "
                   f"image would inflate {' and '.join(others)} accuracy)")
        problems.append(annotations.Problem(
            "file in several splits", name, f"listed as image ids {_listing(ids)}; {action}"))
    else:
      action = "kept under each test id (each needs its own prediction)"
    if "test" in ids and labelled:
      action += "; the test image is also a " + " and ".join(sorted(labelled)) + " image"
    for split in ids:
      drop[split] += [int(i) for i in ids[split] if int(i) not in keep[split]]
    facts.append({"file_name": name, "image_ids": ids, "categories": {
        s: labels[s] for s in labelled}, "action": action})
  result = {}
  for split, table in tables.items():
    result[split] = (table.take(~np.isin(table.ids, np.array(drop[split], np.int64)))
                     if drop[split] else table)
  return result, facts


def _listing(ids):
  return "; ".join(f"{split} {sorted(split_ids)}" for split, split_ids in sorted(ids.items()))
