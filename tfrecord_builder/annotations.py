"""Reads and cross-checks the COCO-style JSONs into one table of columns per split (columns.py).

Images are keyed by `file_name` (how archive members are matched) and categories by `id` (never by
list position: valid COCO files may list categories out of order, with gaps, and need not align
`annotations` with `images`). A problem with the whole file (malformed JSON, missing sections,
contradictory categories) raises AnnotationError; a problem with one record is reported as a
Problem, that record is left out, and everything valid is kept.

The large files are streamed (json_stream.py): each image and annotation record is checked and
appended to typed columns, then dropped, so memory grows by ~125 bytes per image, not by the
~1.5 KB a parsed record costs. Cross-checks (labels, boxes, places, shared file names) are then
done on whole columns with numpy.
"""

import array
import collections
import dataclasses
import hashlib
import json
import math
import os

import numpy as np
import tensorflow as tf

from inat_tf.label_map import LabelMap
from tfrecord_builder import columns
from tfrecord_builder import json_stream
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


@dataclasses.dataclass
class Catalog:
  """Everything the builder needs from the JSONs."""
  tables: dict           # split -> columns.SplitTable of the images to build
  listed_ids: dict       # split -> sorted int64 ids of every image the JSON lists, kept or not
  label_map: LabelMap
  problems: list         # [Problem]
  md5: dict              # input path -> md5 hex of its bytes
  shared_files: list     # [dict]: file names listed under several ids or splits (shared.py)
  locations: dict        # split -> {"source", "images", "with_place"}


def _read_json(path, md5):
  """A small JSON file (categories.json), whole."""
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


def _stream(path, streamed, md5, key=""):
  """json_stream.read with our error: the rest of the document, its md5 recorded under `key`
  (default: path; path may be an open file object, then key names it)."""
  key = key or path
  try:
    rest, digest = json_stream.read(path, streamed)
  except json_stream.MalformedJson as e:
    raise AnnotationError(f"{key}: {e}. The file is damaged or not the published one; download "
                          f"it again and compare its md5.") from None
  md5[key] = digest
  return rest


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


# -- images ---------------------------------------------------------------------------------------

_INLINE_PLACE_KEYS = ("latitude", "longitude", "date")


def _coordinates(lat, lon):
  ok = _is_number(lat) and _is_number(lon) and -90 <= lat <= 90 and -180 <= lon <= 180
  return (float(lat), float(lon)) if ok else (math.nan, math.nan)


class _ImageReader:
  """The streamed `images` of one split JSON, checked record by record into a TableBuilder."""

  def __init__(self, path, split, problems):
    self.name, self.problems = os.path.basename(path), problems
    self.table = columns.TableBuilder(split)
    self.listed = array.array("q")   # every integer id the JSON lists, kept or not
    self.unsafe_ids = set()          # left out for their file_name
    self.index = 0

  def __call__(self, image):
    i, self.index = self.index, self.index + 1
    get = image.get if isinstance(image, dict) else None
    image_id = get("id") if get else None
    if type(image_id) is int:  # pylint: disable=unidiomatic-typecheck  (bool is not an id)
      self.listed.append(image_id)
    name, width, height = (get("file_name"), get("width"), get("height")) if get else (0, 0, 0)
    if not (type(image_id) is int and type(name) is str and name  # pylint: disable=unidiomatic-typecheck
            and type(width) is int and type(height) is int and width > 0 and height > 0):  # pylint: disable=unidiomatic-typecheck
      self.problems.append(Problem("malformed image record", f"{self.name} images[{i}]",
                                   f"{image!r}: expected integer id, width > 0, height > 0 and "
                                   f"a file_name"))
      return
    if ".." in name or ":" in name or name[0] in "/\\":  # the rare names worth a full check
      try:
        sources.check_file_name(name)
      except sources.UnsafePath as e:
        self.problems.append(Problem("unsafe file_name", f"{self.name} images[{i}] (id "
                                                         f"{image_id})", str(e)))
        self.unsafe_ids.add(image_id)
        return
    table = self.table
    table.ids.append(image_id)
    table.widths.append(width)
    table.heights.append(height)
    table.names.append(name)
    # iNat2021 puts latitude, longitude, location_uncertainty and date in the image record.
    lat, lon = _coordinates(get("latitude"), get("longitude"))
    table.latitudes.append(lat)
    table.longitudes.append(lon)
    uncertainty = get("location_uncertainty")
    table.uncertainties.append(float(uncertainty) if _is_number(uncertainty) and uncertainty >= 0
                               else math.nan)
    date = get("date")
    table.dates.append(date if isinstance(date, str) else "")

  def build(self):
    """(SplitTable without duplicated ids, ids left out) ; duplicates become Problems."""
    table, self.table = self.table.build(), None  # the table now owns the builder's buffers
    ids = table.ids
    unique, counts = np.unique(ids, return_counts=True)
    duplicated = set(unique[counts > 1].tolist()) | (self.unsafe_ids & set(unique.tolist()))
    for image_id in sorted(duplicated):
      self.problems.append(Problem("duplicate image id", f"{self.name} image id {image_id}",
                                   "several images share this id; all of them are left out "
                                   "because their labels and Kaggle ids would be ambiguous"))
    if duplicated:
      table = table.take(~np.isin(ids, np.fromiter(duplicated, np.int64)))
    return table, self.unsafe_ids | duplicated


class _AnnotationReader:
  """The streamed `annotations` of a split JSON as columns (image id, category id, index)."""

  def __init__(self, path, problems):
    self.name, self.problems = os.path.basename(path), problems
    self.image_ids, self.category_ids = array.array("q"), array.array("q")
    self.malformed = 0
    self.count = 0

  def __call__(self, annotation):
    i, self.count = self.count, self.count + 1
    get = annotation.get if isinstance(annotation, dict) else None
    image_id, category_id = (get("image_id"), get("category_id")) if get else (None, None)
    if type(image_id) is not int or type(category_id) is not int:  # pylint: disable=unidiomatic-typecheck
      self.problems.append(Problem("malformed annotation", f"{self.name} annotations[{i}]",
                                   f"{annotation!r}: expected integer image_id and category_id"))
      self.image_ids.append(_NO_IMAGE)
      self.category_ids.append(_NO_IMAGE)
      self.malformed += 1
      return
    self.image_ids.append(image_id)
    self.category_ids.append(category_id)

  def arrays(self):
    return (np.frombuffer(self.image_ids, np.int64) if self.image_ids else np.zeros(0, np.int64),
            np.frombuffer(self.category_ids, np.int64) if self.category_ids
            else np.zeros(0, np.int64))


_NO_IMAGE = np.iinfo(np.int64).min      # a malformed annotation's placeholder
_UNKNOWN_CATEGORY = np.iinfo(np.int64).min + 1


def _rows_of(table, image_ids):
  """Row of each id in table (-1 where absent)."""
  order = np.argsort(table.ids, kind="stable")
  position = np.searchsorted(table.ids, image_ids, sorter=order)
  position = np.minimum(position, max(0, len(order) - 1))
  rows = order[position] if len(order) else np.zeros(len(image_ids), np.int64)
  found = (table.ids[rows] == image_ids) if len(order) else np.zeros(len(image_ids), bool)
  return np.where(found, rows, -1)


def _apply_labels(table, reader, left_out, categories, problems):
  """Sets each row's category from the annotations; returns the table of labelled rows."""
  name = reader.name
  image_ids, category_ids = reader.arrays()
  valid = image_ids != _NO_IMAGE
  known = np.isin(category_ids, np.fromiter(categories, np.int64))
  rows = _rows_of(table, image_ids)
  in_left_out = np.isin(image_ids, np.fromiter(left_out, np.int64)) if left_out else np.zeros(
      len(image_ids), bool)
  for i in np.flatnonzero(valid & (~known | (~in_left_out & (rows < 0)))).tolist():
    if not known[i]:
      problems.append(Problem("unknown category id", f"{name} annotations[{i}]",
                              f"category_id {category_ids[i]} is not among the "
                              f"{len(categories)} categories; image {image_ids[i]} is left out"))
    else:
      problems.append(Problem("annotation for unknown image", f"{name} annotations[{i}]",
                              f"image_id {image_ids[i]} is not in 'images' (or was left out "
                              f"above); the annotation is ignored"))
  use = valid & (rows >= 0) & (~known | ~in_left_out)
  pairs = np.unique(np.stack([rows[use], np.where(known[use], category_ids[use],
                                                  _UNKNOWN_CATEGORY)], 1), axis=0)
  per_row = np.bincount(pairs[:, 0], minlength=len(table)) if len(pairs) else np.zeros(
      len(table), np.int64)
  single = np.zeros(len(table), bool)
  single[pairs[:, 0][per_row[pairs[:, 0]] == 1]] = True
  labels = np.full(len(table), _UNKNOWN_CATEGORY, np.int64)
  labels[pairs[:, 0]] = pairs[:, 1]  # the row's only category where single
  keep = single & (labels != _UNKNOWN_CATEGORY)
  for row in np.flatnonzero(~keep).tolist():
    found = pairs[pairs[:, 0] == row, 1].tolist() if per_row[row] else []
    if found == [_UNKNOWN_CATEGORY]:
      continue  # reported above as an unknown category id
    shown = sorted((None if c == _UNKNOWN_CATEGORY else c for c in found), key=str)
    message = ("no annotation gives its category" if not found else
               f"its annotations disagree on its category ({shown})")
    problems.append(Problem("unlabelled image", f"{name} image id {table.ids[row]}",
                            f"{message}; left out"))
  table.category_ids[:] = labels
  # take() copies every column: only when a row goes (2.7 M rows: ~400 MB for a moment).
  return (table if keep.all() else table.take(keep)), pairs


# -- boxes and places -----------------------------------------------------------------------------

def _read_boxes(path, table, categories, md5, problems):
  """COCO boxes of the split's images (2017); broken boxes are dropped and reported."""
  name = os.path.basename(path)
  kept = []  # (row, x, y, w, h, category id, area): boxes are few (561 k in 2017)
  counter = [0]

  def on_box(box):
    i = counter[0]
    counter[0] += 1
    where = f"{name} annotations[{i}]"
    bbox = box.get("bbox") if isinstance(box, dict) else None
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))
            and bbox[2] > 0 and bbox[3] > 0 and _is_int(box.get("image_id"))
            and _is_int(box.get("category_id"))):
      problems.append(Problem("malformed box", where,
                              f"{box!r}: expected integer image_id and category_id and bbox "
                              f"[x, y, width > 0, height > 0]"))
      return
    row = table.row_of(box["image_id"])
    if row is None:
      problems.append(Problem("box for unknown image", where,
                              f"image_id {box['image_id']} is not a (kept) image of this split; "
                              f"box ignored"))
      return
    if box["category_id"] not in categories:
      problems.append(Problem("unknown category id", where,
                              f"box category_id {box['category_id']} is unknown; box ignored"))
      return
    x, y, w, h = bbox
    width, height = int(table.widths[row]), int(table.heights[row])
    # A box overhanging the edge a little is clipped (some published ones do); one that keeps
    # less than a pixel (or its own size, if smaller) inside the image marks nothing in it.
    if (min(x + w, width) - max(x, 0) < min(1.0, w)
        or min(y + h, height) - max(y, 0) < min(1.0, h)):
      problems.append(Problem("box outside its image", where,
                              f"bbox {bbox} lies outside the {width}x{height} image "
                              f"{box['image_id']}; box ignored"))
      return
    area = box.get("area")
    kept.append((row, *map(float, bbox), box["category_id"],
                 float(area) if _is_number(area) else bbox[2] * bbox[3] / 2.0))

  _stream(path, {"annotations": on_box}, md5)
  if not kept:
    return
  rows = np.array([k[0] for k in kept], np.int64)
  order = np.argsort(rows, kind="stable")  # by image, in file order within an image
  starts = np.zeros(len(table) + 1, np.int64)
  np.cumsum(np.bincount(rows, minlength=len(table)), out=starts[1:])
  table.boxes = columns.Boxes(starts, np.array([k[1:5] for k in kept])[order],
                              np.array([k[5] for k in kept], np.int64)[order],
                              np.array([k[6] for k in kept])[order])


def _read_locations(split_inputs, table, md5, problems):
  """2017/2018: a list of {id, lat, lon, location_uncertainty, date, date_c, user_id}."""
  path, member = split_inputs.locations, split_inputs.locations_member
  name = os.path.basename(member or path)
  ids, lats, lons = array.array("q"), array.array("f"), array.array("f")
  uncertainties, dates_c, users = array.array("f"), array.array("f"), array.array("q")
  dates = columns.StringBuilder()
  counter = [0]

  def on_record(r):
    i = counter[0]
    counter[0] += 1
    if not (isinstance(r, dict) and _is_int(r.get("id"))):
      problems.append(Problem("malformed location", f"{name}[{i}]",
                              f"{r!r}: expected an object with an integer 'id'"))
      return
    ids.append(r["id"])
    lat, lon = _coordinates(r.get("lat"), r.get("lon"))
    lats.append(lat)
    lons.append(lon)
    uncertainty, date_c, user = r.get("location_uncertainty"), r.get("date_c"), r.get("user_id")
    uncertainties.append(float(uncertainty) if _is_number(uncertainty) and uncertainty >= 0
                         else math.nan)
    dates_c.append(float(date_c) if _is_number(date_c) else math.nan)
    users.append(user if _is_int(user) and -2**63 < user < 2**63 else columns.MISSING_INT)
    date = r.get("date")
    dates.append(date if isinstance(date, str) else "")

  if member:  # read from the published .zip without extracting it
    import zipfile  # pylint: disable=g-import-not-at-top
    with tf.io.gfile.GFile(path, "rb") as f, zipfile.ZipFile(f) as bundle:
      rest = _stream(bundle.open(member), {"": on_record}, md5, key=f"{path}:{member}")
  else:
    rest = _stream(path, {"": on_record}, md5)
  if rest is not None:
    raise AnnotationError(f"{path}: expected a JSON list of records with 'id', 'lat', 'lon', "
                          f"'date', 'date_c', 'user_id'; found an object")
  ids = np.frombuffer(ids, np.int64) if ids else np.zeros(0, np.int64)
  # A record listed twice: the later one counts (as a dict keyed by id would have it).
  last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
  order = last[np.argsort(ids[last], kind="stable")]
  position = np.searchsorted(ids[order], table.ids)
  position = np.minimum(position, max(0, len(order) - 1))
  found = (ids[order][position] == table.ids) if len(order) else np.zeros(len(table), bool)
  source = np.where(found, order[position] if len(order) else 0, -1)
  rows = np.flatnonzero(found)
  picked = source[rows]
  for column, values in ((table.latitudes, lats), (table.longitudes, lons),
                         (table.uncertainties, uncertainties), (table.dates_c, dates_c)):
    column[rows] = np.frombuffer(values, np.float32)[picked]
  table.user_ids[rows] = np.frombuffer(users, np.int64)[picked]
  dates.append("")  # index -1: no record
  table.dates = dates.build().take(np.where(found, source, len(ids)))


def _supercategories_from_folders(categories, table, pairs, path):
  """2019: a category's supercategory is the folder its images are in (file_name part 2)."""
  folders = collections.defaultdict(set)
  if table is not None and len(pairs):
    for folder_index, category in set(zip(table.names.folder_index[pairs[:, 0]].tolist(),
                                          pairs[:, 1].tolist())):
      parts = table.names.folders[folder_index].split("/")
      if category in categories and len(parts) >= 2:
        folders[category].add(parts[1])
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


# -- the catalog ----------------------------------------------------------------------------------

def _read_split_json(path, split, problems, md5, images=True):
  """(rest of the document, image reader or None, annotation reader) of a split JSON."""
  image_reader = _ImageReader(path, split, problems) if images else None
  annotation_reader = _AnnotationReader(path, problems)
  streamed = {"annotations": annotation_reader}
  if image_reader:
    streamed["images"] = image_reader
  rest = _stream(path, streamed, md5)
  if not isinstance(rest, dict):
    raise AnnotationError(f"{path}: expected a JSON object with 'images' and 'categories', "
                          f"found a list")
  for key in streamed:
    if rest.get(key) is not None:
      raise AnnotationError(f"{path}: expected a list under '{key}', found "
                            f"{type(rest[key]).__name__}")
  if images and "images" not in rest:
    raise AnnotationError(f"{path}: expected a list under 'images', found nothing")
  return rest, image_reader, annotation_reader


def load_catalog(inputs, train_annotations, edition=None, categories_file=""):
  """Reads every JSON of `inputs` ({split: SplitInputs}); the label map comes from the train JSON.

  train_annotations: path of the train JSON, read even when the train split is not being built,
  so that every build of a data dir shares one label map.
  edition: an inat_tf.editions.Edition (its category fields and taxonomy ranks); None = 2017.
  categories_file: 2018/2019's un-obfuscated categories.json, when present in RAW_DIR.
  """
  from tfrecord_builder import shared  # pylint: disable=g-import-not-at-top  (a sibling module)
  md5, problems, tables, listed_ids, pairs_of = {}, [], {}, {}, {}
  building_train = "train" in inputs and inputs["train"].annotations == train_annotations
  train_rest, train_images, train_annotations_reader = _read_split_json(
      train_annotations, "train", problems if building_train else [], md5,
      images=building_train or bool(edition and edition.supercategory_from_folder))
  train_categories = _read_categories(train_rest, train_annotations, edition)
  categories = train_categories
  if categories_file:
    categories = _apply_categories_file(categories, categories_file, edition, md5)
  image_ids, category_ids = train_annotations_reader.arrays()
  counted = category_ids[np.isin(category_ids, np.fromiter(categories, np.int64))]
  train_counts = dict(zip(*(a.tolist() for a in np.unique(counted, return_counts=True))))

  for split, split_inputs in inputs.items():
    path = split_inputs.annotations
    if path == train_annotations:
      rest, images, annotations_reader = train_rest, train_images, train_annotations_reader
    else:
      rest, images, annotations_reader = _read_split_json(path, split, problems, md5)
    own = _section(rest, path, "categories", required=split != "test")
    if own is not None:
      _check_same_categories(
          train_categories, train_annotations, _read_categories(rest, path, edition), path)
    table, left_out = images.build()
    listed_ids[split] = np.unique(np.frombuffer(images.listed, np.int64) if images.listed
                                  else np.zeros(0, np.int64))
    if split != "test":
      if "annotations" not in rest:
        raise AnnotationError(f"{path}: expected a list under 'annotations', found nothing")
      table, pairs_of[split] = _apply_labels(table, annotations_reader, left_out, categories,
                                             problems)
    elif annotations_reader.count:
      raise AnnotationError(f"{path}: the test split has annotations; is this the right file?")
    if split_inputs.boxes:
      _read_boxes(split_inputs.boxes, table, categories, md5, problems)
    tables[split] = table

  if edition is not None and edition.supercategory_from_folder:
    train_table = tables.get("train")
    pairs = pairs_of.get("train")
    if train_table is None:  # train not built: its folders still name the supercategories
      train_table, _ = train_images.build()
      train_table, pairs = _apply_labels(train_table, train_annotations_reader, set(),
                                         categories, [])
    categories = _supercategories_from_folders(categories, train_table, pairs, train_annotations)
  label_map = LabelMap.from_categories(
      categories.values(), train_counts,
      ranks=_taxonomy_ranks(categories, edition, categories_file or train_annotations),
      edition=edition.name if edition else "")

  locations = {}
  for split, table in tables.items():
    source = inputs[split].locations
    if source:
      _read_locations(inputs[split], table, md5, problems)
      source = os.path.basename(source) + (f": {inputs[split].locations_member}"
                                           if inputs[split].locations_member else "")
    locations[split] = {"source": _location_source(source, inputs[split], edition, table),
                        "images": len(table),
                        "with_place": int(np.count_nonzero(np.isfinite(table.latitudes)))}
  tables, shared_files = shared.resolve(tables, problems)
  for split, table in tables.items():
    locations[split].update(images=len(table), with_place=int(np.count_nonzero(
        np.isfinite(table.latitudes))))
  return Catalog(tables=tables, listed_ids=listed_ids, label_map=label_map, problems=problems,
                 md5=md5, shared_files=shared_files, locations=locations)


def _location_source(path, split_inputs, edition, table):
  """How the split's places were read, in words (for the summary and the manifest)."""
  if path:
    return path
  if np.isfinite(table.latitudes).any() or (edition and edition.inline_locations):
    return f"latitude/longitude in {os.path.basename(split_inputs.annotations)}"
  if edition is not None and edition.location_files.get(split_inputs.split):
    return (f"none: {edition.location_files[split_inputs.split]} not found in RAW_DIR "
            f"({edition.locations_published})")
  if edition is not None and edition.locations_published:
    return f"none: not in what the edition publishes ({edition.locations_published})"
  return "none"
