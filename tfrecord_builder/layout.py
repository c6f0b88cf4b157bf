"""Where each split's files are in RAW_DIR, for every published edition (inat_tf.editions).

Images may be in the published `.tar.gz` (streamed, never extracted) or in a folder already
extracted from it; the JSON `file_name`s are paths relative to RAW_DIR either way.
"""

import dataclasses
import os

import tensorflow as tf

from inat_tf import editions

SPLITS = editions.SPLITS


@dataclasses.dataclass(frozen=True)
class SplitInputs:
  split: str
  annotations: str          # path of the COCO-style JSON
  boxes: str = ""           # bounding-box JSON, if published and present
  locations: str = ""       # locations JSON, if published and present (or the .zip holding it)
  locations_member: str = ""  # the JSON's name inside that .zip (2018's inat2018_locations.zip)
  archive: str = ""         # .tar.gz holding the images, or
  folder: str = ""          # RAW_DIR itself, when the images were extracted there


def _join(raw_dir, name):
  return os.path.join(raw_dir, name) if name else ""


def detect_layout(raw_dir, train_set=""):
  """The inat_tf.editions.Edition in raw_dir; FileNotFoundError says what was expected."""
  try:
    return editions.detect(raw_dir, train_set)
  except editions.EditionError as e:
    raise FileNotFoundError(str(e)) from None


def categories_file(raw_dir, edition):
  """2018/2019's un-obfuscated categories.json when it is in raw_dir, else ""."""
  path = _join(raw_dir, edition.categories_file)
  return path if path and tf.io.gfile.exists(path) else ""


def find_inputs(raw_dir, splits=SPLITS, train_set=""):
  """{split: SplitInputs}; raises FileNotFoundError naming what is missing and where."""
  edition = detect_layout(raw_dir, train_set)
  inputs = {}
  for split in splits:
    files = edition.splits[split]
    annotations_path = _join(raw_dir, files.annotations)
    if not tf.io.gfile.exists(annotations_path):
      raise FileNotFoundError(f"{annotations_path} not found (needed for the {split} split of "
                              f"iNat{edition.name}; leave the split out with --splits if you do "
                              f"not have it)")
    archive = _join(raw_dir, files.archive)
    folder = _join(raw_dir, files.image_root)
    if tf.io.gfile.exists(archive):
      source = {"archive": archive}
    elif tf.io.gfile.isdir(folder):
      source = {"folder": raw_dir}
    else:
      raise FileNotFoundError(
          f"Images for the {split} split not found: expected {archive} (as downloaded) or the "
          f"folder {folder} extracted from it.")
    optional = {key: path for key, path in (("boxes", _join(raw_dir, files.boxes)),)
                if path and tf.io.gfile.exists(path)}
    optional.update(_locations(raw_dir, edition, files))
    inputs[split] = SplitInputs(split=split, annotations=annotations_path, **optional, **source)
  return inputs


def _locations(raw_dir, edition, files):
  """{"locations": path[, "locations_member": name]} of a split's published locations JSON.

  Looked for as published and as extracted: RAW_DIR/<file>; for 2018, also the zip's own folder
  (RAW_DIR/inat2018_locations/<file>) and the zip itself (read without extracting). {} if none.
  """
  if not files.locations:
    return {}
  candidates = [_join(raw_dir, files.locations)]
  if edition.locations_archive:
    stem = edition.locations_archive.removesuffix(".zip")
    candidates.append(os.path.join(raw_dir, stem, files.locations))
  for path in candidates:
    if tf.io.gfile.exists(path):
      return {"locations": path}
  if edition.locations_archive:
    archive = _join(raw_dir, edition.locations_archive)
    if tf.io.gfile.exists(archive):
      import zipfile  # pylint: disable=g-import-not-at-top
      with tf.io.gfile.GFile(archive, "rb") as f, zipfile.ZipFile(f) as bundle:
        member = next((n for n in bundle.namelist()
                       if os.path.basename(n) == files.locations), "")
      if member:
        return {"locations": archive, "locations_member": member}
  return {}
