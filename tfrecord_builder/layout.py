"""Where each split's files are in RAW_DIR, for the published iNat2017 and iNat2021 layouts.

Images may be in the published `.tar.gz` (streamed, never extracted) or in a folder already
extracted from it; the JSON `file_name`s are paths relative to RAW_DIR either way.
"""

import dataclasses
import os

import tensorflow as tf

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class SplitInputs:
  split: str
  annotations: str          # path of the COCO-style JSON
  boxes: str = ""           # bounding-box JSON, if published and present
  locations: str = ""       # locations JSON, if published and present
  archive: str = ""         # .tar.gz holding the images, or
  folder: str = ""          # RAW_DIR itself, when the images were extracted there


# Per layout and split: (annotations, boxes, locations, image root). The image root is both the
# archive's stem and the first path component of every file_name.
_LAYOUTS = {
    "inat2017": {
        "train": ("train2017.json", "train_2017_bboxes.json", "train2017_locations.json",
                  "train_val_images"),
        "val": ("val2017.json", "val_2017_bboxes.json", "val2017_locations.json",
                "train_val_images"),
        "test": ("test2017.json", "", "", "test2017"),
    },
    "inat2021": {
        "train": ("train.json", "", "", "train"),
        "val": ("val.json", "", "", "val"),
        "test": ("public_test.json", "", "", "public_test"),
    },
}


def _join(raw_dir, name):
  return os.path.join(raw_dir, name) if name else ""


def detect_layout(raw_dir):
  for name, files in _LAYOUTS.items():
    if tf.io.gfile.exists(_join(raw_dir, files["train"][0])):
      return name
  expected = " or ".join(f"{files['train'][0]} ({name})" for name, files in _LAYOUTS.items())
  raise FileNotFoundError(
      f"No annotation file in RAW_DIR {raw_dir}: expected {expected}. Point --raw_dir at the "
      f"folder holding the downloaded files under their published names.")


def find_inputs(raw_dir, splits=SPLITS):
  """{split: SplitInputs}; raises FileNotFoundError naming what is missing and where."""
  layout = detect_layout(raw_dir)
  inputs = {}
  for split in splits:
    annotations, boxes, locations, image_root = _LAYOUTS[layout][split]
    annotations_path = _join(raw_dir, annotations)
    if not tf.io.gfile.exists(annotations_path):
      raise FileNotFoundError(f"{annotations_path} not found (needed for the {split} split; "
                              f"leave the split out with --splits if you do not have it)")
    archive = _join(raw_dir, image_root + ".tar.gz")
    folder = _join(raw_dir, image_root)
    if tf.io.gfile.exists(archive):
      source = {"archive": archive}
    elif tf.io.gfile.isdir(folder):
      source = {"folder": raw_dir}
    else:
      raise FileNotFoundError(
          f"Images for the {split} split not found: expected {archive} (as downloaded) or the "
          f"folder {folder} extracted from it.")
    optional = {key: path for key, path in (("boxes", _join(raw_dir, boxes)),
                                            ("locations", _join(raw_dir, locations)))
                if path and tf.io.gfile.exists(path)}
    inputs[split] = SplitInputs(split=split, annotations=annotations_path, **optional, **source)
  return inputs
