"""The mapping between the dataset's category ids and the model's contiguous class indices.

`inat-build` writes `label_map.json` beside the shards; everything downstream reads it through
`LabelMap.load(data_dir)`. A model's output index i is category `category_ids[i]`; a submission
always carries category ids, never indices.

From iNat2018 on, each class also carries its taxonomy (kingdom, phylum, class, order, family,
genus; inat_tf.editions.TAXONOMY_RANKS) and, in 2021, its common name, so that a record's class
index (`image/class/label`) leads to every rank: `label_map.taxon(index, "family")`.
"""

import dataclasses
import json
import os

import tensorflow as tf

from inat_tf import records


@dataclasses.dataclass(frozen=True)
class LabelMap:
  """Contiguous index i ↔ category_ids[i] ↔ names[i] ↔ supercategory_names[supercategories[i]]."""
  category_ids: tuple       # JSON category_id of class index i (sorted ascending)
  names: tuple              # species name of class index i
  supercategories: tuple    # super-category index of class index i
  supercategory_names: tuple  # sorted super-category names
  train_counts: tuple       # train images of class index i in the JSON
  ranks: tuple = ()         # taxonomic ranks carried, top first (() for iNat2017)
  taxa: tuple = ()          # taxa[i][r]: name of class i's taxon at ranks[r]
  common_names: tuple = ()  # common name of class index i ("" when unpublished); () if none
  edition: str = ""         # inat_tf.editions name of the download it was built from

  @property
  def num_classes(self):
    return len(self.category_ids)

  def index_of(self, category_id):
    """Contiguous index of a JSON category_id; KeyError names the id when it is unknown."""
    try:
      return self._index[category_id]
    except KeyError:
      raise KeyError(f"category_id {category_id} is not in the label map "
                     f"({self.num_classes} categories)") from None

  @property
  def _index(self):
    # Cached on first use; frozen dataclass, so set through object.__setattr__.
    if "_index_cache" not in self.__dict__:
      object.__setattr__(self, "_index_cache",
                         {cid: i for i, cid in enumerate(self.category_ids)})
    return self.__dict__["_index_cache"]

  def taxon(self, index, rank):
    """Name of class `index`'s taxon at `rank` ("species" and "supercategory" too)."""
    if rank == "species":
      return self.names[index]
    if rank == "supercategory":
      return self.supercategory_names[self.supercategories[index]]
    if rank not in self.ranks:
      raise KeyError(f"rank {rank!r} is not in this label map (ranks: "
                     f"{', '.join(self.ranks) or 'none, as in iNat2017'})")
    return self.taxa[index][self.ranks.index(rank)]

  def lineage(self, index):
    """[(rank, name)] of class `index` from the top rank down to the species: the published
    ranks (2018 on), or for iNat2017 the super-category and the genus read from the binomial name
    (inat_tf.taxonomy.genus_from_name, which says where that reading is not exact)."""
    from inat_tf import taxonomy  # pylint: disable=g-import-not-at-top  (taxonomy reads label maps)
    ranks = taxonomy.ranks_of(self)
    names, _ = taxonomy.class_lineage(self, index)
    return list(reversed(list(zip(ranks, names))))

  def taxon_indices(self, rank):
    """int64 array [num_classes]: each class's taxon at `rank` as a small integer (equal taxa,
    equal integers), for vectorised rank accuracy."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    if rank in self.ranks:  # by lineage: a genus name reused in two families is two genera
      depth = self.ranks.index(rank) + 1
      names = [self.taxa[i][:depth] for i in range(self.num_classes)]
    else:
      names = [self.taxon(i, rank) for i in range(self.num_classes)]
    ids = {name: n for n, name in enumerate(sorted(set(names)))}
    return np.asarray([ids[name] for name in names], np.int64)

  @classmethod
  def from_categories(cls, categories, train_counts, ranks=(), edition=""):
    """From JSON `categories` records (any order, ids with gaps) and {category_id: count}.

    ranks: the taxonomic fields each record carries (a record missing one raises KeyError; the
    builder checks them first). A `common_name` field is kept when present.
    """
    ordered = sorted(categories, key=lambda c: c["id"])
    supercategory_names = tuple(sorted({c["supercategory"] for c in ordered}))
    sc_index = {name: i for i, name in enumerate(supercategory_names)}
    has_common = any("common_name" in c for c in ordered)
    return cls(
        category_ids=tuple(c["id"] for c in ordered),
        names=tuple(c["name"] for c in ordered),
        supercategories=tuple(sc_index[c["supercategory"]] for c in ordered),
        supercategory_names=supercategory_names,
        train_counts=tuple(train_counts.get(c["id"], 0) for c in ordered),
        ranks=tuple(ranks),
        taxa=tuple(tuple(c[rank] for rank in ranks) for c in ordered) if ranks else (),
        common_names=tuple(c.get("common_name") or "" for c in ordered) if has_common else (),
        edition=edition)

  def to_json(self):
    classes = []
    for i, (cid, name, sc, count) in enumerate(zip(
        self.category_ids, self.names, self.supercategories, self.train_counts)):
      entry = {"index": i, "category_id": cid, "name": name,
               "supercategory": self.supercategory_names[sc], "supercategory_index": sc,
               "train_count": count}
      entry.update(zip(self.ranks, self.taxa[i] if self.ranks else ()))
      if self.common_names:
        entry["common_name"] = self.common_names[i]
      classes.append(entry)
    return {"num_classes": self.num_classes, "edition": self.edition, "ranks": list(self.ranks),
            "supercategories": list(self.supercategory_names), "classes": classes}

  @classmethod
  def from_json(cls, document):
    classes = sorted(document["classes"], key=lambda c: c["index"])
    ranks = tuple(document.get("ranks", ()))  # absent in label maps written before taxonomy
    return cls(
        category_ids=tuple(c["category_id"] for c in classes),
        names=tuple(c["name"] for c in classes),
        supercategories=tuple(c["supercategory_index"] for c in classes),
        supercategory_names=tuple(document["supercategories"]),
        train_counts=tuple(c["train_count"] for c in classes),
        ranks=ranks,
        taxa=tuple(tuple(c[rank] for rank in ranks) for c in classes) if ranks else (),
        common_names=(tuple(c.get("common_name", "") for c in classes)
                      if any("common_name" in c for c in classes) else ()),
        edition=document.get("edition", ""))

  @classmethod
  def load(cls, data_dir):
    path = os.path.join(data_dir, records.LABEL_MAP)
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(
          f"{path} not found: DATA_DIR must be a directory written by `inat-build`.")
    with tf.io.gfile.GFile(path) as f:
      return cls.from_json(json.load(f))


class LabelMapMismatch(ValueError):
  """A data dir and a model dir have different classes; the message names both."""


def check_same(data_dir, model_dir):
  """Raises LabelMapMismatch unless data_dir's label map has model_dir's classes, in its order.

  A model's output index i means its own label map's class i: a data dir with other classes (or
  the same number in another order) would be scored or predicted wrong without a word. Train
  counts may differ (a rebuild with more images is fine); ids, names and super-categories not.
  """
  ours, theirs = LabelMap.load(data_dir), LabelMap.load(model_dir)
  fields = ("category_ids", "names", "supercategories", "supercategory_names")
  if all(getattr(ours, f) == getattr(theirs, f) for f in fields):
    return
  if ours.num_classes != theirs.num_classes:
    detail = f"{ours.num_classes} classes against the model's {theirs.num_classes}"
  else:
    first = next(i for i in range(ours.num_classes) if (ours.category_ids[i], ours.names[i]) !=
                 (theirs.category_ids[i], theirs.names[i])) if (
                     ours.category_ids, ours.names) != (theirs.category_ids, theirs.names) else None
    detail = (f"{ours.num_classes} classes as the model, but class {first} is category "
              f"{ours.category_ids[first]} ({ours.names[first]}) there and "
              f"{theirs.category_ids[first]} ({theirs.names[first]}) in the model"
              if first is not None else "the same classes under other super-categories")
  raise LabelMapMismatch(
      f"the label map of data dir {data_dir} differs from model dir {model_dir}'s ({detail}): "
      f"use the data dir the model was trained on, or train a model on this one")
