"""`inat-detect-export`: a trained detector as a SavedModel serving image bytes.

  inat-detect-export --model_dir M --export_dir E

E/saved_model/N/  the SavedModel, in a numbered version dir as TF Serving expects of a model's
                 base path (E/saved_model): N = 1, or one more than the newest already there
                 (the same layout and helper as inat-export: inat_tf.export.next_version_dir).
  signature serving_default:
    image_bytes: [batch] encoded JPEG / PNG / GIF / BMP / WebP, any size (the name ends in
                 `_bytes`, so TF Serving's REST API takes {"instances": [{"image_bytes":
                 {"b64": ...}}]}); turned upright by its EXIF orientation first, as the builder
                 stores training images and as inat-export's classifier serves them
  → boxes [batch, K, 4] ymin, xmin, ymax, xmax in pixels of the image as displayed (upright);
    category_ids [batch, K] int64: JSON category ids (species), super-category indices
                 (superclass) or 1 (agnostic); class_names [batch, K]; scores [batch, K];
    num_detections [batch] int32; valid [batch] bool: whether the item decoded. Rows past
    num_detections have score 0, id -1, box 0; an item that does not decode (corrupt, empty, not
    an image) gets valid = false and no detections, and the other items of the batch their
    normal answer (inat-export's per-item `valid`).
E/export_info.json  granularity, backbone, image size, classes.

Everything (decoding, aspect-keeping resize, detector, NMS, mapping back) is TensorFlow ops in
the graph: `tf.saved_model.load` serves it in a process that never imports this package.
"""

import dataclasses
import json
import os

import tensorflow as tf

from inat_tf import export as classification_export
from inat_tf import flag_config
from inat_tf import preprocessing
from inat_tf.detection import data
from inat_tf.detection import model as model_lib


# What an item that could not be decoded gets, per output (and valid = false).
_FILLS = {"boxes": (0.0, tf.float32), "category_ids": (-1, tf.int64),
          "class_names": ("", tf.string), "scores": (0.0, tf.float32),
          "num_detections": (0, tf.int32)}


def serving_module(detector, config, classes):
  """A tf.Module with `from_bytes`; the detector's variables listed as plain tf.Variables
  (TF1-style loaders fail on Keras variables otherwise; see inat_tf/export.py)."""
  size = config.image_size
  ids = tf.constant(classes.ids, tf.int64)
  names = tf.constant(classes.names)
  module = tf.Module()
  module.detector_variables = [variable.value for variable in detector.variables]

  def prepare(image_bytes):
    image = tf.image.convert_image_dtype(preprocessing.decode_upright(image_bytes), tf.float32)
    padded, content = data.resize_and_pad(image, size)
    return padded, tf.shape(image)[:2], content

  def detect(images, original, content):
    out = model_lib.detect(detector, images)
    found = out["labels"] >= 0
    boxes = data.boxes_to_original(out["boxes"], original, content)
    index = tf.maximum(out["labels"], 0)
    return {"boxes": tf.where(found[..., tf.newaxis], boxes, 0.0),
            "category_ids": tf.where(found, tf.gather(ids, index), tf.constant(-1, tf.int64)),
            "class_names": tf.where(found, tf.gather(names, index), ""),
            "scores": tf.where(found, out["confidence"], 0.0),
            "num_detections": tf.cast(out["num_detections"], tf.int32)}

  def nothing_decoded():  # the detector is not called on an empty batch
    k = config.max_detections
    return {"boxes": tf.zeros([0, k, 4]), "category_ids": tf.zeros([0, k], tf.int64),
            "class_names": tf.fill([0, k], ""), "scores": tf.zeros([0, k]),
            "num_detections": tf.zeros([0], tf.int32)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
  def from_bytes(image_bytes):
    indices, (images, original, content) = classification_export.decode_each(
        image_bytes, prepare, (tf.TensorSpec([size, size, 3], tf.float32),
                               tf.TensorSpec([2], tf.int32), tf.TensorSpec([2], tf.int32)))
    outputs = tf.cond(tf.size(indices) > 0, lambda: detect(images, original, content),
                      nothing_decoded)
    return classification_export.scatter(outputs, indices, tf.size(image_bytes), _FILLS)

  module.from_bytes = from_bytes
  return module


def export(model_dir, export_dir):
  """Writes E/saved_model/N (the next version) and E/export_info.json; returns export_info."""
  detector, config, classes = model_lib.load(model_dir)
  module = serving_module(detector, config, classes)
  path = classification_export.next_version_dir(export_dir)
  tf.io.gfile.makedirs(export_dir)
  tf.saved_model.save(module, path, signatures={"serving_default": module.from_bytes},
                      options=classification_export.SERVING_SAVE_OPTIONS)
  info = {"saved_model": path, "model_dir": model_dir, "granularity": classes.granularity,
          "detector": dataclasses.asdict(config), "category_ids": list(classes.ids),
          "class_names": list(classes.names)}
  with tf.io.gfile.GFile(os.path.join(export_dir, "export_info.json"), "w") as f:
    json.dump(info, f, indent=1)
  return info


@dataclasses.dataclass(frozen=True)
class DetectExportConfig:
  """inat-detect-export's flags."""
  model_dir: str = flag_config.field(help="Model dir written by inat-detect-train.")
  export_dir: str = flag_config.field(help="Where to write (any gfile path).")


def run(argv=None):
  """Console entry point `inat-detect-export`."""

  def main(c, _):
    info = export(c.model_dir, c.export_dir)
    print(f"saved_model: {info['saved_model']}")

  flag_config.run_command("inat-detect-export", DetectExportConfig, main, argv=argv,
                          errors=(FileNotFoundError, ValueError, RuntimeError))


if __name__ == "__main__":
  run()
