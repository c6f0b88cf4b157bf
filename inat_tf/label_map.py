"""The mapping between the dataset's category ids and the model's contiguous class indices.

`inat-build` writes `label_map.json` beside the shards; everything downstream reads it through
`LabelMap.load(data_dir)`. A model's output index i is category `category_ids[i]`; a submission
always carries category ids, never indices.
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

  @classmethod
  def from_categories(cls, categories, train_counts):
    """From JSON `categories` records (any order, ids with gaps) and {category_id: count}."""
    ordered = sorted(categories, key=lambda c: c["id"])
    supercategory_names = tuple(sorted({c["supercategory"] for c in ordered}))
    sc_index = {name: i for i, name in enumerate(supercategory_names)}
    return cls(
        category_ids=tuple(c["id"] for c in ordered),
        names=tuple(c["name"] for c in ordered),
        supercategories=tuple(sc_index[c["supercategory"]] for c in ordered),
        supercategory_names=supercategory_names,
        train_counts=tuple(train_counts.get(c["id"], 0) for c in ordered))

  def to_json(self):
    return {
        "num_classes": self.num_classes,
        "supercategories": list(self.supercategory_names),
        "classes": [
            {"index": i, "category_id": cid, "name": name,
             "supercategory": self.supercategory_names[sc], "supercategory_index": sc,
             "train_count": count}
            for i, (cid, name, sc, count) in enumerate(zip(
                self.category_ids, self.names, self.supercategories, self.train_counts))],
    }

  @classmethod
  def from_json(cls, document):
    classes = sorted(document["classes"], key=lambda c: c["index"])
    return cls(
        category_ids=tuple(c["category_id"] for c in classes),
        names=tuple(c["name"] for c in classes),
        supercategories=tuple(c["supercategory_index"] for c in classes),
        supercategory_names=tuple(document["supercategories"]),
        train_counts=tuple(c["train_count"] for c in classes))

  @classmethod
  def load(cls, data_dir):
    path = os.path.join(data_dir, records.LABEL_MAP)
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(
          f"{path} not found: DATA_DIR must be a directory written by `inat-build`.")
    with tf.io.gfile.GFile(path) as f:
      return cls.from_json(json.load(f))
