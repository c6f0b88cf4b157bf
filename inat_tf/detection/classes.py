"""The detector's classes at a label granularity, and how species labels map onto them.

  species     one class per species of the nine boxed super-categories (2,854 in iNat2017);
              output id = the JSON category_id
  superclass  one class per boxed super-category (9); output id = the label map's
              super-category index (as in image/object/class/supercategory)
  agnostic    one class, "object"; output id = 1
"""

import dataclasses

from inat_tf.editions import INAT2017

BOXED_SUPERCATEGORIES = INAT2017.boxed_supercategories  # the paper's nine (Sec. 3.3)

GRANULARITIES = ("species", "superclass", "agnostic")
AGNOSTIC_ID = 1


@dataclasses.dataclass(frozen=True)
class DetectionClasses:
  """Detector class k has output id ids[k], name names[k] and super-category supercategories[k]
  (a name; "" for the agnostic class). species_to_class[i] is the class of label-map index i, or
  -1 when species i belongs to no boxed super-category."""
  granularity: str
  ids: tuple
  names: tuple
  supercategories: tuple
  species_to_class: tuple

  @property
  def num_classes(self):
    return len(self.ids)


def check_granularity(granularity):
  if granularity not in GRANULARITIES:
    raise ValueError(f"granularity={granularity!r}: expected one of {', '.join(GRANULARITIES)} "
                     f"(the paper's Table 6 rows: species, super-class, class-agnostic)")


def boxed_supercategories(label_map):
  """Super-category indices of the label map that have boxes in the published data, ascending."""
  found = [i for i, name in enumerate(label_map.supercategory_names)
           if name in BOXED_SUPERCATEGORIES]
  if not found:
    raise ValueError(
        f"The label map's super-categories {list(label_map.supercategory_names)} include none of "
        f"the nine with boxes ({', '.join(sorted(BOXED_SUPERCATEGORIES))}): this data has nothing "
        f"to detect.")
  return found


def detection_classes(label_map, granularity):
  """The DetectionClasses of `granularity` for a LabelMap."""
  check_granularity(granularity)
  boxed = boxed_supercategories(label_map)
  sc_names = label_map.supercategory_names
  if granularity == "species":
    species = [i for i, sc in enumerate(label_map.supercategories) if sc in boxed]
    class_of = {index: k for k, index in enumerate(species)}
    return DetectionClasses(
        granularity, ids=tuple(label_map.category_ids[i] for i in species),
        names=tuple(label_map.names[i] for i in species),
        supercategories=tuple(sc_names[label_map.supercategories[i]] for i in species),
        species_to_class=tuple(class_of.get(i, -1) for i in range(label_map.num_classes)))
  if granularity == "superclass":
    class_of = {sc: k for k, sc in enumerate(boxed)}
    return DetectionClasses(
        granularity, ids=tuple(boxed), names=tuple(sc_names[sc] for sc in boxed),
        supercategories=tuple(sc_names[sc] for sc in boxed),
        species_to_class=tuple(class_of.get(sc, -1) for sc in label_map.supercategories))
  return DetectionClasses(
      granularity, ids=(AGNOSTIC_ID,), names=("object",), supercategories=("",),
      species_to_class=tuple(0 if sc in boxed else -1 for sc in label_map.supercategories))
