"""Reads and cross-checks the COCO-style JSONs into one record per image.

Images are keyed by `file_name` (how archive members are matched) and categories by `id` (never by
list position: valid COCO files may list categories out of order, with gaps, and need not align
`annotations` with `images`). A problem with the whole file (malformed JSON, missing sections,
contradictory categories) raises AnnotationError; a problem with one record is reported as a
Problem, that record is left out, and everything valid is kept.
"""

import collections
import dataclasses
import hashlib
import json
import math
import os

import tensorflow as tf

from inat_tf.label_map import LabelMap
from tfrecord_builder import sources


class AnnotationError(Exception):
  """A whole annotation file is unusable; the message names it and says what to do."""


@dataclasses.dataclass(frozen=True)
class Problem:
  """One rejected or dropped record: what kind, where (file and record), and why."""
  kind: str
  where: str
  message: str

  def to_json(self):
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Box:
  x: float
  y: float
  width: float
  height: float
  category_id: int
  area: float


@dataclasses.dataclass(frozen=True)
class Location:
  latitude: float = None
  longitude: float = None
  uncertainty: float = None
  date: str = None
  date_c: float = None
  user_id: int = None


@dataclasses.dataclass
class ImageRecord:
  split: str
  image_id: int
  file_name: str
  width: int
  height: int
  category_id: int = -1          # -1: unlabelled (test)
  boxes: list = dataclasses.field(default_factory=list)
  location: Location = None


@dataclasses.dataclass
class Catalog:
  """Everything the builder needs from the JSONs."""
  records: dict          # split -> {image_id: ImageRecord}
  listed_ids: dict       # split -> sorted ids of every image the JSON lists, kept or not
  label_map: LabelMap
  problems: list         # [Problem]
  md5: dict              # input path -> md5 hex of its bytes


def _read_json(path, md5):
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  md5[path] = hashlib.md5(data).hexdigest()
  try:
    return json.loads(data)
  except json.JSONDecodeError as e:
    raise AnnotationError(
        f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}. The file is "
        f"damaged or not the published one; download it again and compare its md5.") from None
  except UnicodeDecodeError as e:
    raise AnnotationError(f"{path}: not UTF-8 text ({e}); is this the JSON file?") from None


def _section(document, path, key, required=True):
  if not isinstance(document, dict):
    raise AnnotationError(f"{path}: expected a JSON object with 'images' and 'categories', "
                          f"found a {type(document).__name__}")
  value = document.get(key)
  if value is None and not required:
    return None
  if not isinstance(value, list):
    raise AnnotationError(f"{path}: expected a list under '{key}', found "
                          f"{'nothing' if value is None else type(value).__name__}")
  return value


def _is_int(value):
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
  """A finite number: JSON's NaN and Infinity (which Python's json accepts) count as missing."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _read_categories(document, path, edition=None, supercategory_required=True):
  """{id: category record} with integer id and string name (and supercategory, but in 2019)."""
  if edition is not None and edition.supercategory_from_folder:
    supercategory_required = False
  text_fields = ("name",) + ("supercategory",) * supercategory_required
  categories = {}
  for i, c in enumerate(_section(document, path, "categories")):
    if not (isinstance(c, dict) and _is_int(c.get("id"))
            and all(isinstance(c.get(field), str) for field in text_fields)):
      raise AnnotationError(f"{path}: categories[{i}] = {c!r}: expected an object with integer "
                            f"'id' and string {', '.join(repr(f) for f in text_fields)}")
    if c["id"] in categories:
      raise AnnotationError(f"{path}: category id {c['id']} appears twice (categories[{i}]); "
                            f"class labels would be ambiguous")
    categories[c["id"]] = c
  if not categories:
    raise AnnotationError(f"{path}: 'categories' is empty")
  return categories


def _check_same_categories(reference, reference_path, categories, path):
  for category_id, c in categories.items():
    known = reference.get(category_id)
    if known is None or (known["name"], known.get("supercategory")) != (
        c["name"], c.get("supercategory")):
      said = "is not there" if known is None else f"is {known['name']!r}"
      raise AnnotationError(
          f"{path}: category id {category_id} is {c['name']!r}, but in {reference_path} it "
          f"{said}. Every split must use the same categories; are these files from the same "
          f"release?")


def _apply_categories_file(categories, path, edition, md5):
  """2018/2019's separately published categories.json replaces the obfuscated names, by id.

  README (2018, 2019): "replace the `categories` list in the dataset files with the list found in
  this file". Every train category id must be in it; a supercategory it lacks is kept from the
  train JSON (or, 2019, from the image folders).
  """
  document = _read_json(path, md5)
  if not isinstance(document, list):
    raise AnnotationError(f"{path}: expected a JSON list of category records, found a "
                          f"{type(document).__name__}")
  published = _read_categories({"categories": document}, path, edition,
                                supercategory_required=False)
  missing = sorted(set(categories) - set(published))
  if missing:
    raise AnnotationError(f"{path}: category ids {missing[:10]} of the train JSON are not in it; "
                          f"is it the categories.json of the same edition?")
  return {cid: {**categories[cid], **{key: value for key, value in published[cid].items()
                                      if key != "supercategory" or value}}
          for cid in categories}


def _taxonomy_ranks(categories, edition, path):
  """The edition's ranks that every category carries as a string, top first.

  All or none: a download whose categories carry no taxonomy (2018/2019 without categories.json
  and with TFDS's stripped-down records) gets ranks (), visible in label_map.json; a rank some
  categories carry and others lack is an error naming one that lacks it.
  """
  ranks = []
  for rank in (edition.ranks if edition else ()):
    lacking = [cid for cid, c in categories.items() if not isinstance(c.get(rank), str)]
    if len(lacking) == len(categories):
      continue
    if lacking:
      raise AnnotationError(f"{path}: category id {lacking[0]} has no string {rank!r} but "
                            f"{len(categories) - len(lacking)} others have one; every category "
                            f"needs the same taxonomy fields")
    ranks.append(rank)
  return tuple(ranks)


def _supercategories_from_folders(categories, document, path):
  """2019: a category's supercategory is the folder its images are in (file_name part 2)."""
  parts_of = {image["id"]: image["file_name"].split("/")
              for image in document.get("images", []) if isinstance(image, dict)
              and _is_int(image.get("id")) and isinstance(image.get("file_name"), str)}
  folders = collections.defaultdict(set)
  for a in document.get("annotations", []):
    if isinstance(a, dict) and a.get("category_id") in categories:
      parts = parts_of.get(a.get("image_id"))
      if parts and len(parts) >= 3:
        folders[a["category_id"]].add(parts[1])
  result = {}
  for cid, c in categories.items():
    if isinstance(c.get("supercategory"), str) and c["supercategory"]:
      result[cid] = c
      continue
    found = folders.get(cid, set())
    if len(found) != 1:
      raise AnnotationError(
          f"{path}: category id {cid} has no 'supercategory' and its train images are in "
          f"{len(found)} super-category folders {sorted(found)[:3]}; expected exactly one "
          f"(<root>/<supercategory>/<category>/<image>.jpg)")
    result[cid] = {**c, "supercategory": found.pop()}
  return result


def _read_images(document, path, split, problems):
  """({image_id: ImageRecord}, {ids left out}); malformed and duplicated records become Problems.

  Several ids may share one file_name: each keeps the image (one Example per id), so no id of a
  readable image loses its record or its prediction.
  """
  name = os.path.basename(path)
  by_id = {}
  duplicates = set()
  for i, image in enumerate(_section(document, path, "images")):
    where = f"{name} images[{i}]"
    if not (isinstance(image, dict) and _is_int(image.get("id"))
            and isinstance(image.get("file_name"), str) and image["file_name"]
            and _is_int(image.get("width")) and _is_int(image.get("height"))
            and image["width"] > 0 and image["height"] > 0):
      problems.append(Problem("malformed image record", where,
                              f"{image!r}: expected integer id, width > 0, height > 0 and a "
                              f"file_name"))
      continue
    try:
      sources.check_file_name(image["file_name"])
    except sources.UnsafePath as e:
      problems.append(Problem("unsafe file_name", f"{where} (id {image['id']})", str(e)))
      duplicates.add(image["id"])  # left out; its annotations are not reported again
      continue
    if image["id"] in by_id:
      duplicates.add(image["id"])
      continue
    by_id[image["id"]] = ImageRecord(split, image["id"], image["file_name"], image["width"],
                                     image["height"], location=_inline_location(image))
  for image_id in sorted(duplicates & set(by_id)):
    problems.append(Problem("duplicate image id", f"{name} image id {image_id}",
                            "several images share this id; all of them are left out because "
                            "their labels and Kaggle ids would be ambiguous"))
    del by_id[image_id]
  return by_id, duplicates


def _inline_location(image):
  """iNat2021 puts latitude, longitude, location_uncertainty and date in the image record."""
  if not any(key in image for key in ("latitude", "longitude", "date")):
    return None
  return _location(image.get("latitude"), image.get("longitude"),
                   image.get("location_uncertainty"), image.get("date"), None, image.get("user_id"))


def _location(lat, lon, uncertainty, date, date_c, user_id):
  coordinates_ok = _is_number(lat) and _is_number(lon) and -90 <= lat <= 90 and -180 <= lon <= 180
  return Location(
      latitude=float(lat) if coordinates_ok else None,
      longitude=float(lon) if coordinates_ok else None,
      uncertainty=float(uncertainty) if _is_number(uncertainty) and uncertainty >= 0 else None,
      date=date if isinstance(date, str) and date else None,
      date_c=float(date_c) if _is_number(date_c) else None,
      user_id=int(user_id) if _is_int(user_id) else None)


def _apply_labels(document, path, by_id, left_out, categories, problems):
  """Sets each image's category from `annotations`; `left_out`: ids already reported."""
  name = os.path.basename(path)
  labels = collections.defaultdict(set)
  for i, annotation in enumerate(_section(document, path, "annotations")):
    where = f"{name} annotations[{i}]"
    if not (isinstance(annotation, dict) and _is_int(annotation.get("image_id"))
            and _is_int(annotation.get("category_id"))):
      problems.append(Problem("malformed annotation", where,
                              f"{annotation!r}: expected integer image_id and category_id"))
    elif annotation["category_id"] not in categories:
      problems.append(Problem("unknown category id", where,
                              f"category_id {annotation['category_id']} is not among the "
                              f"{len(categories)} categories; image {annotation['image_id']} "
                              f"is left out"))
      labels[annotation["image_id"]].add(None)
    elif annotation["image_id"] in left_out:
      continue
    elif annotation["image_id"] not in by_id:
      problems.append(Problem("annotation for unknown image", where,
                              f"image_id {annotation['image_id']} is not in 'images' (or was "
                              f"left out above); the annotation is ignored"))
    else:
      labels[annotation["image_id"]].add(annotation["category_id"])
  for image_id in list(by_id):
    found = labels.get(image_id, set())
    if len(found) == 1 and None not in found:
      by_id[image_id].category_id = found.pop()
      continue
    del by_id[image_id]
    if found == {None}:
      continue  # reported above as an unknown category id
    message = ("no annotation gives its category" if not found else
               f"its annotations disagree on its category ({sorted(found, key=str)})")
    problems.append(Problem("unlabelled image", f"{name} image id {image_id}",
                            f"{message}; left out"))


def _apply_boxes(path, by_id, categories, md5, problems):
  """Adds COCO boxes to their images; broken boxes are dropped and reported."""
  document = _read_json(path, md5)
  name = os.path.basename(path)
  for i, box in enumerate(_section(document, path, "annotations")):
    where = f"{name} annotations[{i}]"
    bbox = box.get("bbox") if isinstance(box, dict) else None
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))
            and bbox[2] > 0 and bbox[3] > 0 and _is_int(box.get("image_id"))
            and _is_int(box.get("category_id"))):
      problems.append(Problem("malformed box", where,
                              f"{box!r}: expected integer image_id and category_id and bbox "
                              f"[x, y, width > 0, height > 0]"))
      continue
    record = by_id.get(box["image_id"])
    if record is None:
      problems.append(Problem("box for unknown image", where,
                              f"image_id {box['image_id']} is not a (kept) image of this split; "
                              f"box ignored"))
      continue
    if box["category_id"] not in categories:
      problems.append(Problem("unknown category id", where,
                              f"box category_id {box['category_id']} is unknown; box ignored"))
      continue
    x, y, w, h = bbox
    overlap_w = min(x + w, record.width) - max(x, 0)
    overlap_h = min(y + h, record.height) - max(y, 0)
    # A box overhanging the edge a little is clipped (some published ones do); one that keeps
    # less than a pixel (or its own size, if smaller) inside the image marks nothing in it.
    if overlap_w < min(1.0, w) or overlap_h < min(1.0, h):
      problems.append(Problem("box outside its image", where,
                              f"bbox {bbox} lies outside the {record.width}x{record.height} image "
                              f"{box['image_id']}; box ignored"))
      continue
    area = box.get("area")
    record.boxes.append(Box(*map(float, bbox), category_id=box["category_id"],
                            area=float(area) if _is_number(area) else bbox[2] * bbox[3] / 2.0))


def _apply_locations(path, by_id, md5, problems):
  document = _read_json(path, md5)
  if not isinstance(document, list):
    raise AnnotationError(f"{path}: expected a JSON list of records with 'id', 'lat', 'lon', "
                          f"'date', 'date_c', 'user_id'; found a {type(document).__name__}")
  name = os.path.basename(path)
  for i, r in enumerate(document):
    if not (isinstance(r, dict) and _is_int(r.get("id"))):
      problems.append(Problem("malformed location", f"{name}[{i}]",
                              f"{r!r}: expected an object with an integer 'id'"))
      continue
    record = by_id.get(r["id"])
    if record is not None:
      record.location = _location(r.get("lat"), r.get("lon"), r.get("location_uncertainty"),
                                  r.get("date"), r.get("date_c"), r.get("user_id"))


def load_catalog(inputs, train_annotations, edition=None, categories_file=""):
  """Reads every JSON of `inputs` ({split: SplitInputs}); the label map comes from the train JSON.

  train_annotations: path of the train JSON, read even when the train split is not being built,
  so that every build of a data dir shares one label map.
  edition: an inat_tf.editions.Edition (its category fields and taxonomy ranks); None = 2017.
  categories_file: 2018/2019's un-obfuscated categories.json, when present in RAW_DIR.
  """
  md5, problems, records, listed_ids = {}, [], {}, {}
  train_document = _read_json(train_annotations, md5)
  # Splits are compared with the train JSON as published (before categories.json).
  train_categories = _read_categories(train_document, train_annotations, edition)
  categories = train_categories
  if categories_file:
    categories = _apply_categories_file(categories, categories_file, edition, md5)
  if edition is not None and edition.supercategory_from_folder:
    categories = _supercategories_from_folders(categories, train_document, train_annotations)
  train_counts = collections.Counter()
  for i, a in enumerate(_section(train_document, train_annotations, "annotations")):
    if isinstance(a, dict) and a.get("category_id") in categories:
      train_counts[a["category_id"]] += 1
  label_map = LabelMap.from_categories(
      categories.values(), train_counts,
      ranks=_taxonomy_ranks(categories, edition, categories_file or train_annotations),
      edition=edition.name if edition else "")

  for split, split_inputs in inputs.items():
    path = split_inputs.annotations
    document = train_document if path == train_annotations else _read_json(path, md5)
    own = _section(document, path, "categories", required=split != "test")
    if own is not None:
      _check_same_categories(
          train_categories, train_annotations, _read_categories(document, path, edition), path)
    by_id, left_out = _read_images(document, path, split, problems)
    listed_ids[split] = sorted({image["id"] for image in document["images"]
                                if isinstance(image, dict) and _is_int(image.get("id"))})
    if split != "test":
      _apply_labels(document, path, by_id, left_out, categories, problems)
    elif document.get("annotations"):
      raise AnnotationError(f"{path}: the test split has annotations; is this the right file?")
    if split_inputs.boxes:
      _apply_boxes(split_inputs.boxes, by_id, categories, md5, problems)
    if split_inputs.locations:
      _apply_locations(split_inputs.locations, by_id, md5, problems)
    records[split] = by_id
  _report_files_listed_twice(records, problems)
  return Catalog(records=records, listed_ids=listed_ids, label_map=label_map, problems=problems,
                 md5=md5)


def _report_files_listed_twice(records, problems):
  """train and val share one archive: a file both list is kept in both, and reported, since a val
  image that is also a train image inflates val accuracy."""
  splits_of = collections.defaultdict(set)
  for split, by_id in records.items():
    for record in by_id.values():
      splits_of[record.file_name].add(split)
  for file_name, splits in sorted(splits_of.items()):
    if len(splits) > 1:
      problems.append(Problem("file in several splits", file_name,
                              f"listed by the {' and '.join(sorted(splits))} JSONs; kept in each"))
