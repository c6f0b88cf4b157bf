"""Where each split's files are in RAW_DIR, for the published editions (inat_tf/editions.py).

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
  locations: str = ""       # locations JSON, if published and present
  archive: str = ""         # .tar.gz holding the images, or
  folder: str = ""          # RAW_DIR itself, when the images were extracted there


def _join(raw_dir, name):
  return os.path.join(raw_dir, name) if name else ""


def detect_layout(raw_dir):
  """The editions.Edition whose train JSON is in raw_dir (the first, in editions.EDITIONS order)."""
  for edition in editions.EDITIONS.values():
    if tf.io.gfile.exists(_join(raw_dir, edition.splits["train"].annotations)):
      return edition
  expected = " or ".join(f"{edition.splits['train'].annotations} ({name})"
                         for name, edition in editions.EDITIONS.items())
  raise FileNotFoundError(
      f"No annotation file in RAW_DIR {raw_dir}: expected {expected}. Point --raw_dir at the "
      f"folder holding the downloaded files under their published names.")


def find_inputs(raw_dir, splits=SPLITS):
  """{split: SplitInputs}; raises FileNotFoundError naming what is missing and where."""
  edition = detect_layout(raw_dir)
  inputs = {}
  for split in splits:
    files = edition.splits[split]
    annotations_path = _join(raw_dir, files.annotations)
    if not tf.io.gfile.exists(annotations_path):
      raise FileNotFoundError(f"{annotations_path} not found (needed for the {split} split; "
                              f"leave the split out with --splits if you do not have it)")
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
    optional = {key: path for key, path in (("boxes", _join(raw_dir, files.boxes)),
                                            ("locations", _join(raw_dir, files.locations)))
                if path and tf.io.gfile.exists(path)}
    inputs[split] = SplitInputs(split=split, annotations=annotations_path, **optional, **source)
  return inputs
