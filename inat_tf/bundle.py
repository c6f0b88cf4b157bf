"""The phone bundle (`inat-export --bundle`): one folder an app ships, written beside an export.

  EXPORT_DIR/bundle/
    vision_float.tflite         float32 [1, S, S, 3] RGB in [0, 255] -> probabilities float32 [1, C]
    vision_int8.tflite          the same interface, int8 inside (with --data_dir: calibrated)
    vision_full_integer.tflite  uint8 [1, S, S, 3] pixels -> uint8 [1, C] probabilities x 256
                                (int8 ops end to end: NPUs, Edge TPU-class accelerators)
    location.tflite             (with --geo_dir) the location prior alone, no image: latitude [1],
                                longitude [1] float32 degrees (NaN = unknown), date [1, 3] int32
                                year, month, day (0 = unknown) -> log_prior float32 [1, C]
                                (log sigmoid of the prior's logits) and available bool [1]
    answers.tflite              the answer beyond the species on the phone: float32 image as
                                vision_float's and allowed [C] bool (a checklist; all true for
                                none) -> taxon (node index into answer_taxonomy.json), rank,
                                score, species, msp, energy, top_classes, top_scores, ...: the
                                SavedModel's roll-up rule (export_info.json's rollup_rule)
    answer_taxonomy.json        the nodes answers.tflite's taxon and rank indices refer to
                                (inat_tf.taxonomy.Taxonomy.to_json)
    labels.txt                  line i: class i's name (the TFLite label-file convention)
    taxonomy.json               per class: index, category id, name, common name, lineage
    bundle.json                 the files, their inputs and outputs, each int8 model's measured
                                top-1 agreement with the float one (inat-export's check,
                                inat_tf.int8_check), the preprocessing facts (size, crop,
                                resize, input range), the combination rule
    README.md                   for app developers: which model to ship, preprocessing, and a
                                20-line example running both models and combining them

The vision models are inat-export's TFLite files (model.tflite, model_int8.tflite,
model_full_integer.tflite), copied; an app ships one of the three. The location model is
converted here from the prior of export_info.json's geo_dir; the combination is
inat_tf.geo.prior.combine's, restated in README.md, so that the app's answer is the SavedModel's
serving_with_place answer (tested in a process that never imports this package).

`write(export_dir)` needs only what inat-export left in export_dir (export_info.json names the
model dir and geo dir), so a bundle can also be made after an export.
"""

import json
import os

import tensorflow as tf

from inat_tf import export as export_lib
from inat_tf import int8_check
from inat_tf import label_map as label_map_lib
from inat_tf import taxonomy as taxonomy_lib
from inat_tf.geo import encoding as geo_encoding
from inat_tf.geo import prior as geo_prior_lib

BUNDLE_DIR = "bundle"
FORMAT = "inat-tf phone bundle 1"
VISION_FILES = {  # inat-export's file -> the bundle's name, what it is for
    export_lib.TFLITE_FLOAT: ("vision_float.tflite", "GPU delegates and exact answers"),
    export_lib.TFLITE_INT8: ("vision_int8.tflite", "phone CPUs: a quarter of the size, faster"),
    export_lib.TFLITE_FULL_INTEGER: (
        "vision_full_integer.tflite", "NPUs and Edge TPU-class accelerators (integer only)"),
}
LOCATION_FILE = "location.tflite"
ANSWER_FILE, ANSWER_TAXONOMY = "answers.tflite", "answer_taxonomy.json"


class BundleError(ValueError):
  """The bundle cannot be written from this export; the message says why and what to do."""


def bundle_dir(export_dir):
  return os.path.join(export_dir, BUNDLE_DIR)


def taxonomy(label_map):
  """Per class, top rank first: [{"index", "category_id", "name", "common_name", "lineage":
  [{"rank", "name"}, ...]}], the lineage being the super-category, then the ranks of
  inat_tf.taxonomy (kingdom ... genus as published from iNat2018 on; for iNat2017 the genus read
  from the binomial name), then the species itself. Also the ranks, top first."""
  ranks = taxonomy_lib.ranks_of(label_map)  # lowest first, species first
  classes = []
  for i in range(label_map.num_classes):
    names, _ = taxonomy_lib.class_lineage(label_map, i)
    lineage = [{"rank": rank, "name": name} for rank, name in reversed(list(zip(ranks, names)))]
    if taxonomy_lib.SUPERCATEGORY not in ranks:
      lineage.insert(0, {"rank": taxonomy_lib.SUPERCATEGORY,
                         "name": label_map.taxon(i, taxonomy_lib.SUPERCATEGORY)})
    classes.append({"index": i, "category_id": label_map.category_ids[i],
                    "name": label_map.names[i],
                    "common_name": label_map.common_names[i] if label_map.common_names else "",
                    "lineage": lineage})
  return [entry["rank"] for entry in classes[0]["lineage"]] if classes else [], classes


def location_function(geo_prior, floor):
  """The location prior alone as a tf.function for TFLite: latitude [1], longitude [1] float32
  degrees (NaN = unknown), date [1, 3] int32 (year, month, day; 0 = unknown) -> {"log_prior":
  [1, C] float32 log max(sigmoid(f(place)), floor), "available": [1] bool}. Missing-value rules
  are the SavedModel's (inat_tf.geo.encoding); the factor is geo.prior.log_location_factor, the
  one the SavedModel's combination adds, with the export's floor."""
  @tf.function(input_signature=[tf.TensorSpec([1], tf.float32), tf.TensorSpec([1], tf.float32),
                                tf.TensorSpec([1, 3], tf.int32)])
  def location(latitude, longitude, date):
    fraction = geo_encoding.date_fraction_from_parts(date[:, 0], date[:, 1], date[:, 2])
    places = geo_encoding.place(latitude, longitude, fraction)
    logits = geo_prior.logits(places)
    return {"log_prior": geo_prior_lib.log_location_factor(logits, floor),
            "available": geo_prior.available(places)}
  return location


def _preprocessing(info):
  size, fraction = info["image_size"], info["eval_crop_fraction"]
  return {
      "image_size": size,
      "color": "RGB, upright: apply the photo's EXIF orientation first",
      "crop": {"shape": "central square", "fraction_of_short_side": fraction,
               "side": f"floor({fraction} * min(height, width)), at least 1 pixel",
               "top_left": "((height - side + 1) // 2, (width - side + 1) // 2)"},
      "resize": {"to": [size, size], "method": "bilinear", "antialias": False,
                 "half_pixel_centers": True,
                 "as": "tf.image.resize(crop, [size, size], 'bilinear')"},
      "input_range": {"float": "float32 pixel values in [0, 255], not normalised: each model "
                               "normalises inside",
                      "full_integer": "uint8 pixel values 0-255 (the resized floats rounded)"},
      "source": "inat_tf.preprocessing.eval_image: what inat-eval and the SavedModel do",
  }


def _agreement(exported, info):
  """What inat-export measured of an int8 model against float (inat_tf.int8_check): {"split",
  "images", "agreement", "agreement_where_sure", "top1", "top1_float", "meets_goal"}; None for
  the float model; {"measured": False, "why": ...} when it was not measured."""
  if exported == export_lib.TFLITE_FLOAT:
    return None
  check = info.get("int8_check")
  if not check or check.get("split") is None:
    why = check["reason"] if check else "exported before inat-export measured it: export again"
    return {"measured": False, "why": why}
  measured = check["models"][exported]
  return {"measured": True, "split": check["split"], "images": check["images"],
          **{key: measured.get(key) for key in ("agreement", "agreement_where_sure", "top1",
                                                 "top1_float")},
          "meets_goal": not int8_check.below_bounds(measured),
          "goal": {"agreement": int8_check.AGREEMENT_BOUND,
                   "top1_drop_points": 100 * int8_check.TOP1_DROP_BOUND}}


def _vision_entry(name, use, content_path, info, exported):
  size, classes = info["image_size"], info["num_classes"]
  integer = name == VISION_FILES[export_lib.TFLITE_FULL_INTEGER][0]
  return {"file": name, "use": use, "bytes": tf.io.gfile.stat(content_path).length,
          "agreement_with_float": _agreement(exported, info),
          "input": {"name": "images", "shape": [1, size, size, 3],
                    "dtype": "uint8" if integer else "float32",
                    "quantization": {"scale": 1.0, "zero_point": 0} if integer else None},
          "output": {"name": "probabilities", "shape": [1, classes],
                     "dtype": "uint8" if integer else "float32",
                     "quantization": {"scale": 1 / 256, "zero_point": 0} if integer else None}}


def write(export_dir):
  """Writes bundle_dir(export_dir) from what inat-export wrote there; returns {file: path}.

  Raises BundleError when the export has no TFLite models, FileNotFoundError when
  export_info.json is missing.
  """
  info_path = os.path.join(export_dir, "export_info.json")
  if not tf.io.gfile.exists(info_path):
    raise FileNotFoundError(f"{info_path} not found: run inat-export into {export_dir} first")
  with tf.io.gfile.GFile(info_path) as f:
    info = json.load(f)
  if export_lib.TFLITE_FLOAT not in info["files"]:
    raise BundleError(f"{export_dir} has no TFLite models (exported with --notflite): export "
                      f"again without it")
  target = bundle_dir(export_dir)
  if tf.io.gfile.exists(target):  # never a mix of an old and a new bundle
    tf.io.gfile.rmtree(target)
  tf.io.gfile.makedirs(target)
  files, vision = {}, []
  for exported, (name, use) in VISION_FILES.items():
    if exported in info["files"]:
      files[name] = os.path.join(target, name)
      tf.io.gfile.copy(info["files"][exported], files[name])
      vision.append(_vision_entry(name, use, files[name], info, exported))
  answer = None
  if export_lib.TFLITE_ANSWERS in info["files"]:  # exports before the answer pipeline lack it
    for name, source in ((ANSWER_FILE, info["files"][export_lib.TFLITE_ANSWERS]),
                         (ANSWER_TAXONOMY, os.path.join(export_dir, export_lib.TAXONOMY))):
      files[name] = os.path.join(target, name)
      tf.io.gfile.copy(source, files[name])
    answer = {"file": ANSWER_FILE, "taxonomy": ANSWER_TAXONOMY,
              "rollup_rule": info.get("rollup_rule"),
              "inputs": {"images": "as vision_float.tflite's",
                         "allowed": f"bool [{info['num_classes']}]: the species the answer may "
                                    f"be (a checklist, a taxon); all true restricts nothing"},
              "outputs": {"taxon": "int32: node index into answer_taxonomy.json's node_names "
                                   "(-1: no answer)",
                          "rank": "int32: index into its ranks (species first); len(ranks) "
                                  "when taxon is -1",
                          "top_classes": "int32 [1, k]: class indices, best first; -1 past the "
                                         "allowed species (fewer than k allowed)",
                          "score": "float32: the answered taxon's probability",
                          "msp, energy": "open-set scores: low MSP / high energy = perhaps a "
                                         "species the model does not know"}}
  label_map = label_map_lib.LabelMap.load(info["model_dir"])
  location = None
  if info.get("geo_dir"):
    geo_prior = geo_prior_lib.load(info["geo_dir"])
    floor = info["location_floor"]  # the SavedModel's serving_with_place combines with it
    geo_prior.check_matches(label_map, info["model_dir"])
    files[LOCATION_FILE] = os.path.join(target, LOCATION_FILE)
    with tf.io.gfile.GFile(files[LOCATION_FILE], "wb") as f:
      f.write(export_lib.tflite_bytes(location_function(geo_prior, floor)))
    location = {
        "file": LOCATION_FILE, "use_date": geo_prior.use_date,
        "inputs": {"latitude": "float32 [1], degrees; NaN = unknown",
                   "longitude": "float32 [1], degrees; NaN = unknown",
                   "date": "int32 [1, 3]: year, month, day; 0 = unknown"},
        "floor": floor,
        "outputs": {"log_prior": f"float32 [1, C]: log max(sigmoid(f_y(place, date)), {floor})",
                    "available": "bool [1]: false when the place (or, for a prior trained with "
                                 "dates, the date) is missing or invalid: then use the image "
                                 "probabilities alone"}}
  ranks, classes = taxonomy(label_map)
  names = {"labels.txt": "".join(f"{name}\n" for name in label_map.names),
           "taxonomy.json": json.dumps({"ranks": ranks, "classes": classes}, indent=1,
                                       ensure_ascii=False)}
  manifest = {
      "format": FORMAT, "model": info["model"], "num_classes": info["num_classes"],
      "edition": label_map.edition, "head_rank": info.get("head_rank", 0),
      "vision_models": vision, "location_model": location, "answer_model": answer,
      "preprocessing": _preprocessing(info),
      "combination": COMBINATION,
      "long_tail_adjustment": info.get("long_tail_adjustment"),
      "labels": "labels.txt", "taxonomy": "taxonomy.json"}
  names["bundle.json"] = json.dumps(manifest, indent=1)
  names["README.md"] = readme(manifest)
  for name, text in names.items():
    files[name] = os.path.join(target, name)
    with tf.io.gfile.GFile(files[name], "w") as f:
      f.write(text)
  return files


# Restated from inat_tf.geo.prior.combine's docstring (Mac Aodha et al. 2019, Sec. 3.1, with a
# floor on the prior as iNaturalist's vision service has). When that function changes, this text,
# README_EXAMPLE and location_function change with it; the bundle test in tests/test_geo.py
# compares the bundle's answers with the SavedModel's.
COMBINATION = ("p(y | image, place) = p(y | image) * max(sigmoid(f_y), floor) / sum_c "
               "p(c | image) * max(sigmoid(f_c), floor), computed as softmax(log p(y | image) + "
               "log_prior_y), log_prior being the location model's output (the floor is inside "
               "it) where "
               "available; p(y | image) unchanged where not (inat_tf.geo.prior.combine; Mac Aodha "
               "et al. 2019, 'Presence-Only Geographical Priors for Fine-Grained Image "
               "Classification', Sec. 3.1)")

README_EXAMPLE = '''\
import json
import numpy as np
from ai_edge_litert.interpreter import Interpreter  # pip install ai-edge-litert

bundle = json.load(open("bundle.json"))  # the preprocessing facts, the files
names = [c["name"] for c in json.load(open("taxonomy.json"))["classes"]]
vision = Interpreter("vision_float.tflite").get_signature_runner()
location = Interpreter("location.tflite").get_signature_runner()

def identify(image, latitude=np.nan, longitude=np.nan, date=(0, 0, 0), k=5):
    """image: [S, S, 3] float32 RGB in [0, 255], cropped and resized as bundle.json says."""
    p = vision(images=image[np.newaxis].astype(np.float32))["probabilities"][0]
    where = location(latitude=np.float32([latitude]), longitude=np.float32([longitude]),
                     date=np.int32([date]))
    if where["available"][0]:  # p(y | image) * max(sigmoid(f_y(place)), floor), renormalised
        with np.errstate(divide="ignore"):  # log 0 = -inf: that species stays at 0
            z = np.log(p) + where["log_prior"][0]
        p = np.exp(z - z.max())
        p = p / p.sum()
    top = np.argsort(-p, kind="stable")[:k]
    return [(names[i], float(p[i])) for i in top]
'''


def _agreement_cell(measured):
  """The README's agreement column: e.g. "93.0 % of 200 val images (top-1 61.0 %, float
  59.5 %)"."""
  if measured is None:
    return "(the reference)"
  if not measured["measured"]:
    return f"not measured: {measured['why']}"
  top1 = (f" (top-1 {100 * measured['top1']:.1f} %, float {100 * measured['top1_float']:.1f} %)"
          if measured["top1"] is not None else "")
  return f"{100 * measured['agreement']:.1f} % of {measured['images']} {measured['split']} " \
         f"images{top1}"


def answers_text(answer):
  """The README's paragraph on answers.tflite (None: the bundle has none)."""
  if answer is None:
    return ("This bundle has no answer model (exported before inat-export wrote "
            "model_answers.tflite): export again for roll-up on the phone.")
  return (f"`{answer['file']}` answers the way the server's SavedModel does: the image "
          f"(preprocessed as above) and an `allowed` mask over the classes (all true, or the "
          f"species of a checklist) give `taxon`, an index into `{answer['taxonomy']}`'s "
          f"`node_names` (`node_ranks` says its rank: a genus or family where the model is not "
          f"sure of the species; -1 is no answer), its `score`, and the open-set scores `msp` and "
          f"`energy`. The roll-up rule is the export's: `{json.dumps(answer['rollup_rule'])}`. "
          f"It gives no location boost; with a place, combine `vision_*` and `location.tflite` "
          f"as below and roll up on the result.")


def readme(manifest):
  """README.md of a bundle, for app developers."""
  pre = manifest["preprocessing"]
  crop = pre["crop"]
  rows = "\n".join(f"| `{v['file']}` | {v['input']['dtype']} {v['input']['shape']} | "
                   f"{v['output']['dtype']} {v['output']['shape']} | {v['bytes'] / 1e6:.2f} MB | "
                   f"{_agreement_cell(v['agreement_with_float'])} | {v['use']} |"
                   for v in manifest["vision_models"])
  short = [v["file"] for v in manifest["vision_models"]
           if v["agreement_with_float"] and not v["agreement_with_float"].get("meets_goal")]
  caution = (f"\n**Measure before shipping {', '.join(f'`{f}`' for f in short)}**: "
             f"{'they miss' if len(short) > 1 else 'it misses'} the goal of "
             f">= {100 * int8_check.AGREEMENT_BOUND:.0f} % top-1 agreement with the float model "
             f"and <= {100 * int8_check.TOP1_DROP_BOUND:.0f} point of top-1 lost (or was not "
             f"measured): where answers must be the server's, ship `vision_float.tflite`.\n"
             if short else "")
  location = manifest["location_model"]
  if location is None:
    where = ("This bundle has **no location model** (the export had no `--geo_dir`): use the "
             "image probabilities alone, i.e. drop the `location` lines of the example.")
  else:
    needs_date = "; without a date it is not used" if location["use_date"] else ""
    where = (f"`{location['file']}` is the location prior alone: it needs no image, only where "
             f"and when (latitude, longitude in degrees, NaN when unknown; the date as year, "
             f"month, day, 0 when unknown{needs_date}). "
             f"It returns `log_prior` (per species, the log of max(sigmoid of the prior's logit, "
             f"{location['floor']}): the floor demotes a species outside its known range, never "
             f"erases it) and `available`.")
  adjustment = manifest["long_tail_adjustment"]
  return f"""# {manifest['model']} for phones: {manifest['num_classes']} species

Made by `inat-export --bundle` (inat-tf). Everything an app needs to identify a species from a
photo, and from where and when it was taken.

## Vision models: ship one

| file | input | output | size | top-1 agreement with float | for |
|---|---|---|---|---|---|
{rows}
{caution}
Outputs are probabilities over the {manifest['num_classes']} classes, in the order of
`labels.txt` (line i = class i) and `taxonomy.json` (`classes[i]`: category id, name, common
name, lineage from super-category to species). The full-integer model's output is the
probability times 256 as uint8 (scale 1/256, so it saturates at 255 = 0.996): divide by 256.
{f"The classifier carries a long-tail adjustment: {adjustment}." if adjustment else ""}

## Preprocessing (the same as the server's)

1. Decode the photo as RGB and turn it upright by its EXIF orientation.
2. Crop the central square: side = floor({crop['fraction_of_short_side']} x the short side) (at
   least 1 pixel), top-left corner ((height - side + 1) // 2, (width - side + 1) // 2).
3. Resize it to {pre['image_size']} x {pre['image_size']}, bilinear, no antialiasing, half-pixel
   centres (`tf.image.resize`; Android's `Bitmap.createScaledBitmap(..., true)` is close).
   Pillow's `resize(..., Image.BILINEAR)` antialiases when it shrinks: its pixels, and so the
   answers, differ (a new user's top-1 changed on some photos); use `tf.image.resize` to match.
4. Feed the pixel values as they are, [0, 255]: float32 for the float and int8 models, uint8
   (rounded) for the full-integer one. Do not normalise: each model does it inside.

## Answers beyond the species

{answers_text(manifest["answer_model"])}

## Location

{where}

Combination, exactly as the server's SavedModel (signature `serving_with_place`):
{manifest['combination']}.

## Example (Python; the same few lines in Kotlin or Swift with the LiteRT interpreter)

```python
{README_EXAMPLE}```

Call it as `identify(pixels)` or `identify(pixels, 37.77, -122.42, (2017, 6, 1))`, with
`pixels` preprocessed as above. For the full-integer model feed `np.uint8` pixels and read
`probabilities / 256`.
"""
