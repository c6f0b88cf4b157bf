"""The published facts of each iNaturalist competition edition, in one place.

File names, archive layouts, category fields, taxonomic ranks and Kaggle submission formats, as
the competition repository's per-year READMEs publish them (visipedia/inat_comp, 2017/README.md,
2018/README.md, 2019/README.md, 2021/README.md; "Annotation Format", "Submission Format" and
"Data" sections) and as TensorFlow Datasets' builders read them
(tensorflow_datasets/image_classification/i_naturalist2017, i_naturalist2018, i_naturalist2021 and
their dummy_data/). Everything that depends on the edition (layout detection, the sample
generator, the label map's taxonomy, inat-predict's header, inat-score's checks) reads it here.

Per edition:

  2017       train2017.json val2017.json test2017.json; train_val_images.tar.gz
             (train_val_images/<supercategory>/<species name>/<hash>.jpg), test2017.tar.gz
             (test2017/<hash>.jpg); categories: id, name, supercategory (no taxonomy);
             boxes (train_2017_bboxes.json, val_2017_bboxes.json) and locations
             (train2017_locations.json, val2017_locations.json). Kaggle: `id,predicted`, 5 ids.
  2018       train2018.json val2018.json test2018.json, categories.json (the un-obfuscated
             categories, released June 2018: "replace the `categories` list" with it);
             locations (README update of August 16th, 2019: "latitude, longitude, date, and
             user_id for each of images in the train and validation sets") in
             inat2018_locations.zip, holding inat2018_locations/train2018_locations.json and
             val2018_locations.json, records as 2017's;
             train_val2018.tar.gz (train_val2018/<supercategory>/<category id>/<hash>.jpg),
             test2018.tar.gz (test2018/<hash>.jpg); categories: id, name, supercategory, kingdom,
             phylum, class, order, family, genus. Kaggle: `id,predicted`, 3 ids.
  2019       train2019.json val2019.json test2019.json, categories.json (un-obfuscated, Aug 2019);
             train_val2019.tar.gz (train_val2019/<supercategory>/<category id>/<hash>.jpg),
             test2019.tar.gz (test2019/<hash>.jpg); categories: id, name, kingdom, phylum, class,
             order, family, genus -- no supercategory field: it is the archive folder (README
             "directory structure like train_val2019/super category/category/image.jpg").
             No locations are published. Kaggle: `id,predicted`, 1 id (top-1 error).
  2021       train.json val.json public_test.json; train.tar.gz (train/<image_dir_name>/<uuid>.jpg),
             val.tar.gz, public_test.tar.gz (public_test/<uuid>.jpg); categories: id, name,
             common_name, supercategory, kingdom, phylum, class, order, family, genus,
             specific_epithet, image_dir_name; images carry date, latitude, longitude,
             location_uncertainty. Kaggle: `Id,Predicted`, 5 ids ("must have 5 category
             predictions per image or the Kaggle evaluation will fail"; scored on the first).
  2021_mini  the same with train_mini.json and train_mini.tar.gz (train_mini/<image_dir_name>/...).
"""

import dataclasses
import os

SPLITS = ("train", "val", "test")
# The taxonomic ranks published from 2018 on, from the top (README "category" records).
TAXONOMY_RANKS = ("kingdom", "phylum", "class", "order", "family", "genus")


class EditionError(Exception):
  """RAW_DIR does not hold one recognisable edition, or a flag contradicts it."""


@dataclasses.dataclass(frozen=True)
class SplitFiles:
  annotations: str      # JSON file name
  image_root: str       # first component of every file_name, and the archive's stem
  boxes: str = ""       # bounding-box JSON (2017 only)
  locations: str = ""   # locations JSON (2017, 2018; 2021 puts them in the image records)

  @property
  def archive(self):
    return self.image_root + ".tar.gz"


@dataclasses.dataclass(frozen=True)
class Edition:
  """One competition edition's published layout and formats."""
  name: str                    # "2017", "2018", "2019", "2021", "2021_mini"
  year: int
  splits: dict                 # split -> SplitFiles
  ranks: tuple                 # taxonomic ranks its categories carry (() for 2017)
  category_fields: tuple       # fields of a category record, as published
  submission_header: tuple     # Kaggle CSV column names, spelled as that year asked
  submission_labels: int       # category ids per row that year's Kaggle asked for
  categories_file: str = ""    # separately published un-obfuscated categories (2018, 2019)
  supercategory_from_folder: bool = False  # 2019: the category records have no supercategory
  species_folder: str = "name"  # what names an image's species folder: name, id, image_dir_name
  readme: str = ""
  boxed_supercategories: frozenset = frozenset()  # super-categories with boxes (2017 only)
  supercategory_species: tuple = ()  # (super-category, species count) as published
  # Where the places are published, in words (inat-build's summary, inat-train-geo's hints).
  locations_published: str = ""
  locations_archive: str = ""  # a .zip holding the location JSONs (2018), under its stem folder
  inline_locations: bool = False  # latitude/longitude in each image record (2021)

  @property
  def location_files(self):
    """{split: locations JSON file name} for the splits with a locations file."""
    return {split: files.locations for split, files in self.splits.items() if files.locations}

  @property
  def tfds_name(self):
    return {"2017": "i_naturalist2017", "2018": "i_naturalist2018",
            "2019": "", "2021": "i_naturalist2021", "2021_mini": "i_naturalist2021"}[self.name]

  def archives(self):
    """The image archives, each once, in split order (train and val share one up to 2019)."""
    return tuple(dict.fromkeys(files.archive for files in self.splits.values()))

  def file_names(self):
    """Every published file: archives, then each split's JSONs, then categories.json."""
    jsons = [name for files in self.splits.values()
             for name in (files.annotations, files.boxes, files.locations) if name]
    return self.archives() + tuple(jsons) + ((self.categories_file,) if self.categories_file
                                             else ())


_README = "https://github.com/visipedia/inat_comp/tree/master/{}"
_BASE_FIELDS = ("id", "name", "supercategory")

EDITIONS = {
    "2017": Edition(
        name="2017", year=2017,
        splits={"train": SplitFiles("train2017.json", "train_val_images", "train_2017_bboxes.json",
                                    "train2017_locations.json"),
                "val": SplitFiles("val2017.json", "train_val_images", "val_2017_bboxes.json",
                                  "val2017_locations.json"),
                "test": SplitFiles("test2017.json", "test2017")},
        ranks=(), category_fields=_BASE_FIELDS, submission_header=("id", "predicted"),
        submission_labels=5, readme=_README.format(2017),
        # The nine super-categories with boxes (paper, Sec. 3.3; README "Bounding Boxes").
        boxed_supercategories=frozenset({"Actinopterygii", "Amphibia", "Animalia", "Arachnida",
                                         "Aves", "Insecta", "Mammalia", "Mollusca", "Reptilia"}),
        supercategory_species=(
            ("Plantae", 2101), ("Insecta", 1021), ("Aves", 964), ("Reptilia", 289),
            ("Mammalia", 186), ("Fungi", 121), ("Amphibia", 115), ("Mollusca", 93),
            ("Animalia", 77), ("Arachnida", 56), ("Actinopterygii", 53), ("Chromista", 9),
            ("Protozoa", 4)),
        locations_published="train2017_locations.json and val2017_locations.json, 2017 README"),
    "2018": Edition(
        name="2018", year=2018,
        splits={"train": SplitFiles("train2018.json", "train_val2018",
                                    locations="train2018_locations.json"),
                "val": SplitFiles("val2018.json", "train_val2018",
                                  locations="val2018_locations.json"),
                "test": SplitFiles("test2018.json", "test2018")},
        ranks=TAXONOMY_RANKS, category_fields=_BASE_FIELDS + TAXONOMY_RANKS,
        submission_header=("id", "predicted"), submission_labels=3,
        categories_file="categories.json", species_folder="id", readme=_README.format(2018),
        supercategory_species=(
            ("Plantae", 2917), ("Insecta", 2031), ("Aves", 1258), ("Actinopterygii", 369),
            ("Fungi", 321), ("Reptilia", 284), ("Mollusca", 262), ("Mammalia", 234),
            ("Animalia", 178), ("Amphibia", 144), ("Arachnida", 114), ("Chromista", 25),
            ("Protozoa", 4), ("Bacteria", 1)),
        locations_published="train2018_locations.json and val2018_locations.json in "
                            "inat2018_locations.zip, 2018 README update of August 16th, 2019",
        locations_archive="inat2018_locations.zip"),
    "2019": Edition(
        name="2019", year=2019,
        splits={"train": SplitFiles("train2019.json", "train_val2019"),
                "val": SplitFiles("val2019.json", "train_val2019"),
                "test": SplitFiles("test2019.json", "test2019")},
        ranks=TAXONOMY_RANKS, category_fields=("id", "name") + TAXONOMY_RANKS,
        submission_header=("id", "predicted"), submission_labels=1,
        categories_file="categories.json", supercategory_from_folder=True, species_folder="id",
        readme=_README.format(2019),
        # The README gives 1,010 species in 72 genera but no per-super-category counts; these are
        # the six train_val2019/ folders, with count 0 for "not published".
        supercategory_species=(("Plants", 0), ("Insects", 0), ("Birds", 0), ("Fungi", 0),
                               ("Reptiles", 0), ("Amphibians", 0)),
        locations_published="iNat2019 publishes no locations"),
    "2021": Edition(
        name="2021", year=2021,
        splits={"train": SplitFiles("train.json", "train"),
                "val": SplitFiles("val.json", "val"),
                "test": SplitFiles("public_test.json", "public_test")},
        ranks=TAXONOMY_RANKS,
        category_fields=("id", "name", "common_name", "supercategory") + TAXONOMY_RANKS + (
            "specific_epithet", "image_dir_name"),
        submission_header=("Id", "Predicted"), submission_labels=5,
        species_folder="image_dir_name", readme=_README.format(2021),
        supercategory_species=(
            ("Plants", 4271), ("Insects", 2526), ("Birds", 1486), ("Fungi", 341),
            ("Reptiles", 313), ("Mammals", 246), ("Ray-finned Fishes", 183), ("Amphibians", 170),
            ("Mollusks", 169), ("Arachnids", 153), ("Animalia", 142)),
        locations_published="latitude and longitude in each image record, 2021 README",
        inline_locations=True),
}
EDITIONS["2021_mini"] = dataclasses.replace(
    EDITIONS["2021"], name="2021_mini",
    splits={**EDITIONS["2021"].splits, "train": SplitFiles("train_mini.json", "train_mini")})
NAMES = tuple(EDITIONS)
INAT2017, INAT2021 = EDITIONS["2017"], EDITIONS["2021"]


def get(name):
  """The Edition called `name`; EditionError lists the known ones."""
  try:
    return EDITIONS[str(name)]
  except KeyError:
    raise EditionError(f"edition {name!r}: expected one of {', '.join(NAMES)}") from None


def detect(raw_dir, train_set=""):
  """The edition whose train JSON is in raw_dir.

  train_set: for iNat2021, "train" or "train_mini" (which train JSON to build from); needed only
  when both are present. Raises EditionError naming what was expected or what is ambiguous.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (the sample generator forks)
  exists = lambda name: tf.io.gfile.exists(os.path.join(raw_dir, name))
  found = [e for e in EDITIONS.values() if exists(e.splits["train"].annotations)]
  if train_set:
    choices = {"train": "2021", "train_mini": "2021_mini"}
    if train_set not in choices:
      raise EditionError(f"--train_set={train_set}: expected train or train_mini (iNat2021)")
    chosen = EDITIONS[choices[train_set]]
    if chosen not in found:
      raise EditionError(f"--train_set={train_set}: {chosen.splits['train'].annotations} is not "
                         f"in {raw_dir}")
    return chosen
  if len(found) == 1:
    return found[0]
  if {e.name for e in found} == {"2021", "2021_mini"}:
    raise EditionError(f"{raw_dir} holds both train.json and train_mini.json (iNat2021): say "
                       f"which train set to build with --train_set=train or --train_set=train_mini")
  if found:
    raise EditionError(f"{raw_dir} holds the train JSONs of several editions "
                       f"({', '.join(e.splits['train'].annotations for e in found)}); give each "
                       f"edition its own RAW_DIR")
  expected = ", ".join(f"{e.splits['train'].annotations} (iNat{e.name})" for e in
                       EDITIONS.values())
  raise EditionError(f"No annotation file in RAW_DIR {raw_dir}: expected one of {expected}. "
                     f"Point --raw_dir at the folder holding the downloaded files under their "
                     f"published names.")


def published_file(edition, split, what):
  """For a hint that names the right file: the file of `edition` holding `what` ("boxes" or
  "locations") of `split`, as its README publishes it, or "" when it publishes none. iNat2021's
  locations are fields of the images in its split JSONs (README "Annotation Format")."""
  files = edition.splits[split]
  if what == "boxes":
    return files.boxes
  if what == "locations":
    return files.locations or (files.annotations if edition.year == 2021 else "")
  raise ValueError(f"what={what!r}: expected boxes or locations")


def publishers(split, what):
  """'train_2017_bboxes.json (iNat2017)'-style list of every edition's file of `what`."""
  return ", ".join(f"{published_file(e, split, what)} (iNat{e.name})" for e in EDITIONS.values()
                   if published_file(e, split, what))


def from_annotations_path(path):
  """The edition whose split JSON has this file name, or None (val.json: 2021)."""
  base = os.path.basename(path)
  for edition in EDITIONS.values():
    if base in {files.annotations for files in edition.splits.values()}:
      return edition
  return None
