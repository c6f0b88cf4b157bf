"""Published facts of the iNaturalist competition datasets, per edition: the file names of each
split's download, the split names, and the super-categories that have bounding boxes.

Data only: the builder's layout detection, the sample generator, detection, the quickstart and the
benchmarks read these names instead of repeating them. Sources: the competition pages
(https://github.com/visipedia/inat_comp, 2017/ and 2021/) and the iNat2017 paper (Van Horn et al.,
CVPR 2018, Sec. 3.3: boxes for nine super-categories).
"""

import dataclasses

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class SplitFiles:
  """One split's published files, as names relative to the download folder (RAW_DIR)."""
  annotations: str          # COCO-style JSON
  image_root: str           # archive stem (`<image_root>.tar.gz`) and first component of file_name
  boxes: str = ""           # bounding-box JSON, where published
  locations: str = ""       # locations JSON, where published

  @property
  def archive(self):
    return self.image_root + ".tar.gz"


@dataclasses.dataclass(frozen=True)
class Edition:
  name: str                 # e.g. "inat2017"
  year: int
  splits: dict              # split name -> SplitFiles
  boxed_supercategories: frozenset = frozenset()
  supercategory_species: tuple = ()   # (super-category, species count) as published

  def archives(self):
    """The image archives, each once, in split order (train and val share one in 2017)."""
    return tuple(dict.fromkeys(files.archive for files in self.splits.values()))

  def file_names(self):
    """Every published file: archives, then each split's JSONs."""
    jsons = [name for files in self.splits.values()
             for name in (files.annotations, files.boxes, files.locations) if name]
    return self.archives() + tuple(jsons)


INAT2017 = Edition(
    name="inat2017", year=2017,
    splits={
        "train": SplitFiles("train2017.json", "train_val_images", "train_2017_bboxes.json",
                            "train2017_locations.json"),
        "val": SplitFiles("val2017.json", "train_val_images", "val_2017_bboxes.json",
                          "val2017_locations.json"),
        "test": SplitFiles("test2017.json", "test2017"),
    },
    # The nine super-categories with boxes (paper, Sec. 3.3).
    boxed_supercategories=frozenset({"Actinopterygii", "Amphibia", "Animalia", "Arachnida",
                                     "Aves", "Insecta", "Mammalia", "Mollusca", "Reptilia"}),
    # The 13 super-categories with their category counts (competition page, 5,089 species).
    supercategory_species=(
        ("Plantae", 2101), ("Insecta", 1021), ("Aves", 964), ("Reptilia", 289),
        ("Mammalia", 186), ("Fungi", 121), ("Amphibia", 115), ("Mollusca", 93),
        ("Animalia", 77), ("Arachnida", 56), ("Actinopterygii", 53), ("Chromista", 9),
        ("Protozoa", 4)))

INAT2021 = Edition(
    name="inat2021", year=2021,
    splits={
        "train": SplitFiles("train.json", "train"),
        "val": SplitFiles("val.json", "val"),
        "test": SplitFiles("public_test.json", "public_test"),
    })

# Detection order: the first edition whose train JSON is in RAW_DIR.
EDITIONS = {edition.name: edition for edition in (INAT2017, INAT2021)}
