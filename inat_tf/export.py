"""`inat-export`: a trained model as a SavedModel for TF Serving, and as TFLite models.

  inat-export --model_dir M --export_dir E [--data_dir D] [--top_k 5] [--notflite] [--geo_dir G]
              [--bundle] [--rollup_rule inat|argmax|precision|risk] [--rollup_precision 0.95]
              [--location_floor 0.02]

Every classifying signature runs the answer pipeline (inat_tf.answers.answer: probabilities ->
location -> restriction -> roll-up), the same as inat-eval, inat-predict and inat-classify, with
the roll-up rule of --rollup_rule (default iNat's published rule; a calibrated rule is the one
inat-eval stored in MODEL_DIR/rollup-<which>.json, or with --data_dir is calibrated now) and the
taxonomy as constant tables in the graph.

E/saved_model/N/ the SavedModel, in a numbered version dir as TF Serving expects of a model's
                 base path (E/saved_model): N = 1, or one more than the newest already there, so
                 a server watching E/saved_model picks a re-export up as a new version.
                 Signatures (all return category_ids, class_names, scores: the top-k, best first
                 (-1, "", 0 in the slots past the allowed species of a restriction with fewer
                 than k), and valid: whether the item could be classified; and the answer, per
                 item:
                 taxon_name, taxon_rank ("" = no answer), taxon_score, msp (maximum softmax
                 probability, high = a known species), energy (-logsumexp of the logits, low =
                 known), and the explanation: vision_rank, vision_score, location_factor,
                 allowed_mass, taxon (node index in E/taxonomy.json, -1 none), rank (its index in
                 the taxonomy's ranks), species (class index the answer rolled up from))
  serving_default     image_bytes: [batch] encoded JPEG/PNG/GIF/BMP; decoded, centre-cropped
                      and resized in the graph. The name ends in `_bytes`, so TF Serving's REST
                      API accepts {"instances": [{"image_bytes": {"b64": "..."}}]}.
  serving_restricted  image_bytes as serving_default, plus allowed_category_ids [K] int64 and
                      allowed_taxa [K'] string (exact taxon names, any rank) for the whole
                      request: answers only among those species, renormalised exactly; empty
                      lists restrict nothing; an unknown id or name fails the request
                      (InvalidArgumentError naming it). REST: the columnar form,
                      {"inputs": {"image_bytes": [{"b64": ...}], "allowed_category_ids": [3],
                      "allowed_taxa": []}}.
  serving_images      images: [batch, height, width, 3] float RGB in [0, 255], any size.
  serving_examples    examples: [batch] serialized tf.Example with image/encoded (our records).
  serving_with_place  (with --geo_dir) image_bytes as serving_default, plus per image latitude,
                      longitude ([batch] float32 degrees; NaN = unknown) and date ([batch] string
                      "YYYY-MM-DD..."; "" = unknown); the location prior is folded in as a boost
                      with the floor (inat_tf.geo.prior.combine); an image without a place (or
                      without a date, for a prior trained with dates) gets exactly
                      serving_default's answer: send NaN for a captive or cultivated organism.
                      Also returns used_place: [batch] bool.
  serving_restricted_with_place   (with --geo_dir) both of the above.
  assets.extra/tf_serving_warmup_requests   one request, so TF Serving loads the model warm.
E/model.tflite, E/model_int8.tflite   [1, size, size, 3] float RGB [0, 255] -> probabilities;
                      int8 is quantised with images from the train records (needs --data_dir):
                      int8 weights and activations, float at the two ends.
E/model_answers.tflite  the float model with the answer pipeline inside (builtins only): images
                      as model.tflite, allowed [C] bool (all true: unrestricted) -> taxon (node
                      index in taxonomy.json, -1 none), rank, score, species, msp, energy,
                      top_classes (-1 past the allowed species), top_scores, vision_rank,
                      vision_score, allowed_mass.
E/taxonomy.json       the tree (inat_tf.taxonomy.Taxonomy.to_json): node names, ranks, ancestors.
E/model_full_integer.tflite   (with --data_dir) int8 ops end to end, for NPUs and Edge TPU-class
                      accelerators: [1, size, size, 3] uint8 pixels (scale 1, zero point 0: the
                      pixel values themselves) -> uint8 probabilities x 256 (scale 1/256).
                      All TFLite models carry a signature (serving_default) with named inputs
                      (images, latitude, longitude, date) and output (probabilities).
E/model_with_place.tflite   (with --geo_dir) inputs image as model.tflite, latitude [1],
                      longitude [1] float32 (NaN = unknown), date [1, 3] int32 year, month, day
                      (0 = unknown) -> probabilities with the prior folded in (the same floor).
E/labels.txt          class index -> category id and name, for the TFLite models.
E/export_info.json    image size, model, head rank, top-k, files, the roll-up rule, the location
                      floor, the long-tail adjustment and the images it was chosen on
                      (inat-predict warns when predicting those), and int8_check: the int8 and
                      full-integer models' top-1 agreement with model.tflite (and top-1 of both)
                      on up to 200 held-out images of --data_dir (val, else minival;
                      inat_tf.int8_check).
E/bundle/             (with --bundle) the phone bundle: vision and location TFLite models,
                      taxonomy, labels, preprocessing facts, a README for app developers
                      (inat_tf/bundle.py).
inat-export prints each file it wrote with its size, then the int8 models' agreement with float,
with a warning when an int8 model misses issue 29's bounds (>= 97 % agreement, <= 1 point top-1
lost).

Each item of a batch has its own status: an item that cannot be decoded (corrupt, empty, not an
image) gets valid = false, category id -1, name "" and score 0, and the other items of the
batch their normal answer.
"""

import functools
import gc
import json
import os
import time
import warnings

import numpy as np
import tensorflow as tf

from inat_tf import cli
from inat_tf import int8_check
from inat_tf import label_map as label_map_lib
from inat_tf import preprocessing
from inat_tf import progress
from inat_tf import records
from inat_tf import rollup
from inat_tf import run_common
from inat_tf import schema
from inat_tf import tflite_memory
from inat_tf import trained_model
from inat_tf.geo import encoding as geo_encoding
from inat_tf.geo import prior as geo_prior_lib
from inat_tf.commands.export import ExportConfig  # pylint: disable=unused-import

WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")


def decode_each(image_bytes, view, item_signature):
  """The items of a [batch] of encoded images that decode, each through `view`: (indices [n]
  int32, views), views being view(bytes) of each surviving item stacked along a new first axis
  (a nest shaped as item_signature, a nest of tf.TensorSpec of ONE item's view).

  A graph cannot catch a decode error, but tf.data can drop the elements that raise one: decode
  in a dataset with ignore_errors, and keep each survivor's place in the batch (`scatter` puts
  the answers back). Shared by inat-export and inat-detect-export."""
  def one(index, encoded):
    return index, view(encoded)
  decoded = (tf.data.Dataset.from_tensor_slices((tf.range(tf.size(image_bytes)), image_bytes))
             .map(one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
             .ignore_errors().batch(64))
  empty = (tf.zeros([0], tf.int32), tf.nest.map_structure(
      lambda spec: tf.zeros([0] + spec.shape.as_list(), spec.dtype), item_signature))
  return decoded.reduce(empty, lambda state, batch: tf.nest.map_structure(
      lambda done, more: tf.concat([done, more], 0), state, batch))


def _decode_valid(image_bytes, size, crop_fraction):
  """(indices [n] int32, images [n, size, size, 3] float32): decode_each with the evaluation
  view (preprocessing.eval_view), refusing non-finite pixels."""
  def view(encoded):
    image = preprocessing.eval_view(encoded, size, crop_fraction)
    tf.debugging.assert_all_finite(image, "image")
    return image
  return decode_each(image_bytes, view, tf.TensorSpec([size, size, 3], tf.float32))


def _no_answers(top_k, with_place=False):
  """The outputs for a batch where not a single image decoded: the model is not called on an
  empty batch (oneDNN rejects it)."""
  empty = {key: tf.zeros([0] + ([top_k] if key in TOP_K_OUTPUTS else []), dtype)
           for key, (_, dtype) in _FILLS.items() if key != "used_place" or with_place}
  return empty


# The answer outputs every classifying signature returns beside category_ids, class_names and
# scores (inat_tf.answers.answer; explained in the module docstring).
TOP_K_OUTPUTS = ("category_ids", "class_names", "scores")
ANSWER_OUTPUTS = ("taxon_name", "taxon_rank", "taxon_score", "msp", "energy", "vision_rank",
                  "vision_score", "location_factor", "allowed_mass", "taxon", "rank", "species")
# What an item that could not be classified gets, per output.
_FILLS = {"category_ids": (-1, tf.int64), "class_names": ("", tf.string),
          "scores": (0.0, tf.float32), "taxon_name": ("", tf.string),
          "taxon_rank": ("", tf.string), "taxon_score": (0.0, tf.float32),
          "msp": (0.0, tf.float32), "energy": (0.0, tf.float32), "vision_rank": (0, tf.int32),
          "vision_score": (0.0, tf.float32), "location_factor": (1.0, tf.float32),
          "allowed_mass": (0.0, tf.float32), "taxon": (-1, tf.int32), "rank": (-1, tf.int32),
          "species": (-1, tf.int32), "used_place": (False, tf.bool)}


def scatter(outputs, indices, batch, fills=None):
  """The answers for the items `indices` ([n] int32) of a batch of `batch`, back in their places;
  the other items get valid = false and, per output, the fill of `fills` ({name: (value, dtype)};
  default _FILLS: id -1, name "", score 0). Shared with inat-detect-export."""
  fills = _FILLS if fills is None else fills
  indices = indices[:, tf.newaxis]

  def place(values, fill):
    shape = tf.concat([[batch], tf.shape(values)[1:]], 0)
    return tf.tensor_scatter_nd_update(tf.fill(shape, fill), indices, values)
  scattered = {key: place(values, tf.constant(*fills[key])) for key, values in outputs.items()}
  scattered["valid"] = place(tf.ones_like(indices[:, 0], tf.bool), tf.constant(False))
  return scattered


def default_answer_config():
  """The export's answer settings when none are given: iNat's published roll-up, the default
  location floor."""
  from inat_tf import answers  # pylint: disable=g-import-not-at-top
  from inat_tf import rollup  # pylint: disable=g-import-not-at-top
  return answers.AnswerConfig(rule=rollup.InatRule())


# The serving functions' tf.function: graph code as written, not converted by autograph (see
# serving_module's docstring).
graph_function = functools.partial(tf.function, autograph=False)


def serving_module(trained, top_k, geo_prior=None, *, answer_config=None):
  """A tf.Module holding the classifier with its preprocessing, label map and taxonomy, as
  tf.functions: from_bytes, from_images, from_examples, from_bytes_restricted (the signatures),
  from_bytes_masked (a [C] bool mask, for inat-classify), probabilities and answers (TFLite);
  with geo_prior (inat_tf.geo.prior.GeoPrior) also from_bytes_and_place,
  from_bytes_and_place_restricted, from_bytes_and_place_masked and probabilities_with_place.

  Every classifying function runs THE answer pipeline (inat_tf.answers.answer) under
  answer_config (default: default_answer_config; its top_k is replaced by `top_k`), the roll-up's
  taxonomy as constant tables in the graph.

  The Keras model is captured by the functions, and its variables are listed as the underlying
  tf.Variables: tracked any other way (the model as an attribute, or its keras.Variable objects),
  TF1-style loaders (TF Serving, saved_model_cli run) fail with "Could not find variable" for
  some of them, although tf.saved_model.load works.

  The functions are traced with autograph=False: the answer pipeline is graph code as written
  (no Python control flow on tensors; such code would fail at tracing; a Python print of a
  tensor would print once, at tracing: use tf.print), and
  autograph's source conversion of its ~20 functions cost ~1.5 s of every inat-classify,
  inat-eval and inat-export run (BUILD_NOTES, "Start-up").
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  from inat_tf import answers  # pylint: disable=g-import-not-at-top
  from inat_tf import restriction  # pylint: disable=g-import-not-at-top
  from inat_tf import taxonomy as taxonomy_lib  # pylint: disable=g-import-not-at-top
  model, normalize, size = trained.model, trained.normalize, trained.image_size
  fraction = trained.eval_crop_fraction  # the same central crop as inat-eval
  top_k = min(top_k, trained.label_map.num_classes)
  config = dataclasses.replace(answer_config or default_answer_config(), top_k=top_k)
  tree = taxonomy_lib.from_label_map(trained.label_map)
  num_classes = trained.label_map.num_classes
  category_ids = tf.constant(trained.label_map.category_ids, tf.int64)
  class_names = tf.constant(trained.label_map.names)
  node_names = tf.constant(list(tree.node_names))
  rank_names = tf.constant(list(tree.ranks) + [""])  # index num_ranks: no answer
  module = tf.Module()
  module.model_variables = [variable.value for variable in model.variables]
  module.image_size, module.top_k, module.eval_crop_fraction = size, top_k, fraction
  module.answer_config, module.taxonomy = config, tree

  # One traced copy of the network, called by every signature (tracing a large Keras model is
  # most of an export's time).
  @graph_function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
  def image_logits(images):
    return tf.cast(model(normalize(images), training=False), tf.float32)

  def answer(images, allowed=None, places=None, opt_out=None):
    """The pipeline's outputs as the signatures name them, for decoded images."""
    inputs = answers.Inputs(logits=image_logits(images), allowed=allowed)
    if places is not None:
      inputs = dataclasses.replace(inputs, prior_logits=geo_prior.logits(places),
                                   has_place=geo_prior.available(places), opt_out=opt_out)
    out = answers.answer(inputs, tree, config)
    taxon = out["taxon"]
    listed, top = out["top_classes"] >= 0, tf.maximum(out["top_classes"], 0)  # -1: no species
    outputs = {"category_ids": tf.where(listed, tf.gather(category_ids, top),
                                        tf.constant(-1, category_ids.dtype)),
               "class_names": tf.where(listed, tf.gather(class_names, top), ""),
               "scores": out["top_scores"],
               "taxon_name": tf.where(taxon >= 0, tf.gather(node_names, tf.maximum(taxon, 0)),
                                      ""),
               "taxon_rank": tf.gather(rank_names, out["rank"]), "taxon_score": out["score"]}
    outputs.update({key: out[key] for key in ANSWER_OUTPUTS if key in out})
    if places is not None:
      outputs["used_place"] = out["used_place"]
    return outputs

  def from_encoded(image_bytes, allowed=None):
    indices, images = _decode_valid(image_bytes, size, fraction)
    outputs = tf.cond(tf.size(indices) > 0, lambda: answer(images, allowed),
                      lambda: _no_answers(top_k))
    return scatter(outputs, indices, tf.size(image_bytes))

  def request_mask(allowed_category_ids, allowed_taxa):
    return tf.logical_and(restriction.mask_from_category_ids(category_ids, allowed_category_ids),
                          restriction.mask_from_taxa(tree, allowed_taxa))

  @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
  def from_bytes(image_bytes):
    return from_encoded(image_bytes)

  @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"),
                                   tf.TensorSpec([None], tf.int64, name="allowed_category_ids"),
                                   tf.TensorSpec([None], tf.string, name="allowed_taxa")])
  def from_bytes_restricted(image_bytes, allowed_category_ids, allowed_taxa):
    return from_encoded(image_bytes, request_mask(allowed_category_ids, allowed_taxa))

  @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"),
                                   tf.TensorSpec([num_classes], tf.bool, name="allowed")])
  def from_bytes_masked(image_bytes, allowed):
    return from_encoded(image_bytes, allowed)

  @graph_function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
  def from_images(images):
    outputs = answer(preprocessing.center_crop_and_resize(images, size, fraction))
    return {**outputs, "valid": tf.ones_like(outputs["scores"][:, 0], tf.bool)}

  @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
  def from_examples(examples):
    return from_bytes(schema.parse(examples, [schema.ENCODED])[schema.ENCODED])

  @graph_function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32)])
  def probabilities(images):
    """For TFLite: [1, size, size, 3] in [0, 255] (already cropped and resized) -> softmax."""
    return {"probabilities": tf.nn.softmax(image_logits(images))}

  @graph_function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32),
                                   tf.TensorSpec([num_classes], tf.bool)])
  def answers_tflite(images, allowed):
    """For TFLite (model_answers.tflite): image as `probabilities`, allowed [C] bool (all true:
    unrestricted) -> the pipeline's answer: taxon (node index of taxonomy.json, -1 none), rank
    (index into its ranks; num_ranks: none), score, species, msp, energy, top_classes,
    top_scores, vision_rank, vision_score, allowed_mass."""
    out = answers.answer(answers.Inputs(logits=image_logits(images), allowed=allowed), tree,
                         config)
    return {key: out[key] for key in TFLITE_ANSWER_OUTPUTS}

  module.from_bytes, module.from_images = from_bytes, from_images
  module.from_examples, module.probabilities = from_examples, probabilities
  module.from_bytes_restricted, module.from_bytes_masked = from_bytes_restricted, from_bytes_masked
  module.answers = answers_tflite
  if geo_prior is not None:
    _add_place_functions(module, geo_prior, size, image_logits, answer, request_mask)
  return module


TFLITE_ANSWER_OUTPUTS = ("taxon", "rank", "score", "species", "msp", "energy", "top_classes",
                         "top_scores", "vision_rank", "vision_score", "allowed_mass")


def _add_place_functions(module, geo_prior, size, image_logits, answer, request_mask):
  """from_bytes_and_place (signature serving_with_place), its restricted and masked variants,
  and probabilities_with_place (TFLite): the image model's probabilities, then the one
  combination of inat_tf.geo.prior inside the answer pipeline."""
  module.geo_variables = [variable.value for variable in geo_prior.model.variables]
  place_specs = [tf.TensorSpec([None], tf.float32, name="latitude"),
                 tf.TensorSpec([None], tf.float32, name="longitude"),
                 tf.TensorSpec([None], tf.string, name="date")]

  def with_place(image_bytes, latitude, longitude, date, *, allowed=None, opt_out=None):
    indices, images = _decode_valid(image_bytes, size, module.eval_crop_fraction)
    places = tf.gather(geo_encoding.place(latitude, longitude, geo_encoding.date_fraction(date)),
                       indices)
    kept_opt_out = None if opt_out is None else tf.gather(opt_out, indices)
    outputs = tf.cond(tf.size(indices) > 0,
                      lambda: answer(images, allowed, places, kept_opt_out),
                      lambda: _no_answers(module.top_k, with_place=True))
    return scatter(outputs, indices, tf.size(image_bytes))

  @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
                  + place_specs)
  def from_bytes_and_place(image_bytes, latitude, longitude, date):
    return with_place(image_bytes, latitude, longitude, date)

  @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
                  + place_specs + [tf.TensorSpec([None], tf.int64, name="allowed_category_ids"),
                                   tf.TensorSpec([None], tf.string, name="allowed_taxa")])
  def from_bytes_and_place_restricted(image_bytes, latitude, longitude, date,
                                      allowed_category_ids, allowed_taxa):
    return with_place(image_bytes, latitude, longitude, date,
                      allowed=request_mask(allowed_category_ids, allowed_taxa))

  @graph_function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
                  + place_specs + [tf.TensorSpec([module.taxonomy.num_classes], tf.bool,
                                                 name="allowed"),
                                   tf.TensorSpec([None], tf.bool, name="opt_out")])
  def from_bytes_and_place_masked(image_bytes, latitude, longitude, date, allowed, opt_out):
    return with_place(image_bytes, latitude, longitude, date, allowed=allowed, opt_out=opt_out)

  @graph_function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32),
                                   tf.TensorSpec([1], tf.float32), tf.TensorSpec([1], tf.float32),
                                   tf.TensorSpec([1, 3], tf.int32)])
  def probabilities_with_place(images, latitude, longitude, date):
    """For TFLite: image as `probabilities`; latitude, longitude (NaN = unknown); date as
    (year, month, day), 0 = unknown -> softmax with the prior folded in."""
    fraction = geo_encoding.date_fraction_from_parts(date[:, 0], date[:, 1], date[:, 2])
    places = geo_encoding.place(latitude, longitude, fraction)
    return {"probabilities": geo_prior.apply(tf.nn.softmax(image_logits(images)), places,
                                             floor=module.answer_config.floor)}

  module.from_bytes_and_place = from_bytes_and_place
  module.from_bytes_and_place_restricted = from_bytes_and_place_restricted
  module.from_bytes_and_place_masked = from_bytes_and_place_masked
  module.probabilities_with_place = probabilities_with_place


def _warmup_request(example_jpeg):
  """One PredictRequest for serving_default, in TF Serving's warm-up file format."""
  from tensorflow_serving.apis import model_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  request = predict_pb2.PredictRequest(
      model_spec=model_pb2.ModelSpec(name="inat", signature_name="serving_default"))
  request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([example_jpeg]))
  return prediction_log_pb2.PredictionLog(
      predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString()


def _sample_jpeg(data_dir, image_size):
  """A real image from the val or train records, else a plain grey JPEG of the model's size."""
  for split in ("val", "train"):
    try:
      for example in records.examples(data_dir, split, [schema.ENCODED]).take(1):
        return example[schema.ENCODED].numpy()
    except (FileNotFoundError, ValueError):
      continue
  return tf.io.encode_jpeg(tf.fill([image_size, image_size, 3], tf.constant(128, tf.uint8)))\
      .numpy()


def _versions(base):
  """The numbered version dirs under a TF Serving model base path, as ints."""
  if not tf.io.gfile.isdir(base):
    return []
  return sorted(int(name.rstrip("/")) for name in tf.io.gfile.listdir(base)
                if name.rstrip("/").isdigit())


def find_saved_model(path):
  """(SavedModel dir, export dir) from inat-export's --export_dir, its saved_model/ base path
  (the newest version) or a version dir; FileNotFoundError when none holds a saved_model.pb."""
  path = path.rstrip("/")
  parent, grandparent = os.path.dirname(path), os.path.dirname(os.path.dirname(path))
  candidates = [(path, grandparent)]  # a version dir
  for base, export_dir in ((os.path.join(path, "saved_model"), path), (path, parent)):
    candidates += [(os.path.join(base, str(v)), export_dir) for v in _versions(base)[-1:]]
  for saved_model, export_dir in candidates:
    if tf.io.gfile.exists(os.path.join(saved_model, "saved_model.pb")):
      return saved_model, export_dir
  raise FileNotFoundError(
      f"no SavedModel in {path}: give the --export_dir of inat-export, its saved_model/ dir or "
      f"one of its numbered version dirs (each holds a saved_model.pb)")


def next_version_dir(export_dir):
  """export_dir/saved_model/N: where the next SavedModel goes in TF Serving's layout (a model's
  base path holding numbered version dirs, the newest served). N is 1, or one more than the
  newest version already there, so a re-export never overwrites the version being served.
  Shared by inat-export and inat-detect-export."""
  base = os.path.join(export_dir, "saved_model")
  return os.path.join(base, str((_versions(base) or [0])[-1] + 1))


# A serving SavedModel is never differentiated: not tracing the custom gradients (swish, ...)
# saves seconds per export. Shared with inat-detect-export.
SERVING_SAVE_OPTIONS = tf.saved_model.SaveOptions(experimental_custom_gradients=False)


def export_saved_model(module, export_dir, sample_jpeg):
  """Writes next_version_dir(export_dir); returns that path."""
  path = next_version_dir(export_dir)
  signatures = {"serving_default": module.from_bytes, "serving_images": module.from_images,
                "serving_examples": module.from_examples,
                "serving_restricted": module.from_bytes_restricted}
  if hasattr(module, "from_bytes_and_place"):
    signatures["serving_with_place"] = module.from_bytes_and_place
    signatures["serving_restricted_with_place"] = module.from_bytes_and_place_restricted

  def save(folder):
    tf.saved_model.save(module, folder, signatures=signatures, options=SERVING_SAVE_OPTIONS)
    tf.io.gfile.makedirs(os.path.join(folder, "assets.extra"))
    with tf.io.TFRecordWriter(os.path.join(folder, WARMUP_PATH)) as writer:
      writer.write(_warmup_request(sample_jpeg))
  run_common.save_folder(save, path)  # whole or not at all: TF Serving watches saved_model/
  return path


# The TFLite models export_tflite writes, by file name: what each takes and gives.
TFLITE_FLOAT = "model.tflite"                   # float32 image in [0, 255] -> float32 probabilities
TFLITE_INT8 = "model_int8.tflite"               # the same interface, int8 weights and activations
TFLITE_FULL_INTEGER = "model_full_integer.tflite"  # uint8 pixels -> uint8 probabilities x 256
TFLITE_WITH_PLACE = "model_with_place.tflite"
TFLITE_ANSWERS = "model_answers.tflite"  # float image, allowed mask -> the pipeline's answer
TAXONOMY = "taxonomy.json"  # the tree model_answers.tflite's taxon and rank indices refer to
# What inat-export's warning advises when an int8 model misses int8_check's bounds.
INT8_ADVICE = (f"ship {TFLITE_FLOAT} (float) where answers must be the SavedModel's, or "
               f"measure this model on your own images first")
CALIBRATION_IMAGES = 100  # TensorFlow's post-training quantization guide: "100-500 samples"


def calibration_images(data_dir, image_size, crop_fraction, count=CALIBRATION_IMAGES):
  """[n, 1, size, size, 3] float32 train images in [0, 255] (the first `count` of the train
  records, which inat-build shuffled across species), as inat-eval sees them: for int8
  calibration. Decoded once and shared by the int8 and full-integer conversions."""
  dataset = records.examples(data_dir, "train", [schema.ENCODED]).take(count).map(
      lambda e: preprocessing.eval_image(e[schema.ENCODED], image_size, crop_fraction))
  images = []
  total = min(count, records.split_examples(data_dir, "train"))
  with progress.Progress("inat-export (int8 calibration images)", total) as bar:
    for image in dataset:
      images.append(image.numpy()[np.newaxis])
      bar.images += 1
  return images


def _representative(images, pin_input_range=False):
  """The converter's representative_dataset over calibration images. pin_input_range: the first
  image gets one pixel of 0 and one of 255, so the calibrated input range is exactly [0, 255] and
  a uint8 input's quantisation is scale 1, zero point 0 (the raw pixel values); otherwise it
  would be whatever range the images happen to span (e.g. scale 0.94 for images in [10, 240])."""
  def generate():
    for i, image in enumerate(images):
      if pin_input_range and i == 0:
        image = image.copy()
        image[0, 0, 0, :], image[0, 0, 1, :] = 0.0, 255.0
      yield [image]
  return generate


def tflite_converter(function):
  """tf.lite.TFLiteConverter of a tf.function with an input_signature and dict outputs, given
  the concrete function with a trackable object that holds the variables it reads: TF's
  converter then saves them as a SavedModel and freezes them inside its own importer, keeping the
  argument names and dict keys as the "serving_default" signature. Freezing in Python first
  (convert_variables_to_constants_v2, inat-export until 2026-12-07) gave the same flatbuffer at
  4x the converter's peak memory: +1,758 MB against +441 MB for MobileNet V1 at 10,000 classes
  (benchmarks/tflite_memory.py; issue 26)."""
  concrete = function.get_concrete_function()
  owner = tf.Module()
  owner.captured_variables = list(concrete.variables)
  return tf.lite.TFLiteConverter.from_concrete_functions([concrete], owner)


def tflite_bytes(function, *, quantize=None, images=None):
  """A TFLite flatbuffer of a tf.function with an input_signature and dict outputs.

  quantize: None (float), "int8" (int8 weights and activations, float input and output, the
  builtin int8 kernels only) or "full_integer" (the same with uint8 input and output: scale 1,
  zero point 0 at the input, see _representative; 1/256, 0 at a softmax output). images:
  calibration_images, for the two quantised kinds.

  Converted by tflite_converter. RuntimeError if a variable was left unfrozen (VAR_HANDLE /
  READ_VARIABLE ops, which apps' TFLite runtimes cannot run) or the outputs lost their names
  (TF's converter falls back to freezing without a word when it cannot save the function, and
  names the outputs output_0, ...).
  """
  converter = tflite_converter(function)
  if quantize:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(images, quantize == "full_integer")
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  if quantize == "full_integer":
    converter.inference_input_type = converter.inference_output_type = tf.uint8
  content = converter.convert()
  _check_converted(content, sorted(function.get_concrete_function().structured_outputs))
  return content


_VARIABLE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")


def _interpreter(content):
  """tf.lite.Interpreter of a flatbuffer, for reading its signature, ops and quantisation."""
  with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": its reading is not
    warnings.simplefilter("ignore", UserWarning)  # (ai-edge-litert is not a dependency)
    return tf.lite.Interpreter(model_content=content)


def _check_converted(content, output_names):
  """RuntimeError if the flatbuffer still reads variables (a function read a variable that
  tflite_bytes' owner did not track) or its serving_default signature's outputs are not
  output_names."""
  interpreter = _interpreter(content)
  ops = interpreter._get_ops_details()  # pylint: disable=protected-access
  left = sorted({op["op_name"] for op in ops if op["op_name"] in _VARIABLE_OPS})
  if left:
    raise RuntimeError(f"the TFLite converter left variable ops ({', '.join(left)}): the "
                       f"function reads variables it does not capture; the model would not run "
                       f"on a phone's TFLite runtime")
  got = sorted(interpreter.get_signature_list().get("serving_default", {}).get("outputs", []))
  if got != output_names:
    raise RuntimeError(f"the TFLite converter named the outputs {got}, expected {output_names}: "
                       f"apps find the outputs by name")


def _check_full_integer(content):
  """RuntimeError unless the full-integer model takes raw uint8 pixels (scale 1, zero point 0)
  and gives uint8 probabilities (scale 1/256, zero point 0), as bundle.json tells apps."""
  interpreter = _interpreter(content)
  (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
  got = (source["dtype"], source["quantization"], target["dtype"], target["quantization"])
  if got != (np.uint8, (1.0, 0), np.uint8, (1 / 256, 0)):
    raise RuntimeError(f"{TFLITE_FULL_INTEGER}: the converter gave input {got[0].__name__} "
                       f"(scale, zero point) {got[1]} and output {got[2].__name__} {got[3]}; "
                       f"expected uint8 (1.0, 0) and uint8 (0.00390625, 0)")


def export_tflite(module, export_dir, data_dir, calibration_count=CALIBRATION_IMAGES):
  """model.tflite (float) and, with data_dir, model_int8.tflite and model_full_integer.tflite
  calibrated on `calibration_count` train images; model_with_place.tflite with a location
  prior. Returns {file name: path}."""
  variants = {TFLITE_FLOAT: (module.probabilities, None), TFLITE_ANSWERS: (module.answers, None)}
  images = None
  if data_dir:
    images = calibration_images(data_dir, module.image_size, module.eval_crop_fraction,
                                calibration_count)
    variants[TFLITE_INT8] = (module.probabilities, "int8")
    variants[TFLITE_FULL_INTEGER] = (module.probabilities, "full_integer")
  if hasattr(module, "probabilities_with_place"):
    variants[TFLITE_WITH_PLACE] = (module.probabilities_with_place, None)
  paths = {}
  for name, (function, quantize) in variants.items():
    content = tflite_bytes(function, quantize=quantize, images=images)
    if quantize == "full_integer":
      _check_full_integer(content)
    paths[name] = os.path.join(export_dir, name)
    run_common.write_bytes(paths[name], content)
    # tflite_bytes' converter is freed only by the cycle collector: without this one
    # conversion's memory stayed while the next converted (measured with the converter of
    # before 2026-12-07: ~270 MB at 10,000 classes; issue 26).
    gc.collect()
  return paths


def check_int8(files, data_dir, trained, model_dir):
  """int8_check.check of the int8 models among `files` against model.tflite, on held-out
  images of data_dir; their labels count only where data_dir's classes are the model's."""
  try:
    label_map_lib.check_same(data_dir, model_dir)
    labels_usable = True
  except (label_map_lib.LabelMapMismatch, FileNotFoundError):
    labels_usable = False  # agreement needs no labels
  quantized = {name: files[name] for name in (TFLITE_INT8, TFLITE_FULL_INTEGER) if name in files}
  return int8_check.check(quantized, files[TFLITE_FLOAT], data_dir, trained.image_size,
                          trained.eval_crop_fraction, labels_usable=labels_usable)


def export(model_dir, export_dir, *, data_dir="", which="best", top_k=5, tflite=True,
           geo_dir="", options=None):
  """Writes the SavedModel (and TFLite models); returns export_info.

  geo_dir: a location prior (inat-train-geo) to fold into serving_with_place and
  model_with_place.tflite; serving_default and model.tflite stay image-only.
  options: the answer flags (answer_options.Options: the roll-up rule, its target, the location
  floor; default: iNat's rule); a calibrated rule is the one stored in the model dir, or, with
  data_dir, calibrated on its held-out images and stored.
  """
  from inat_tf import answer_options  # pylint: disable=g-import-not-at-top
  from inat_tf import answers  # pylint: disable=g-import-not-at-top
  options = options or answer_options.Options()
  trained = trained_model.load(model_dir, which)
  too_large = tflite and tflite_memory.problem(trained.model.count_params(),
                                               tflite_memory.available_bytes())
  if too_large:  # before anything is written: the kernel would kill the converter midway
    raise tflite_memory.NotEnoughMemory(f"{model_dir}: {too_large}")
  geo_prior = geo_prior_lib.load(geo_dir) if geo_dir else None
  if geo_prior is not None:
    geo_prior.check_matches(trained.label_map, model_dir)
  rule = answer_options.rule_for_model(options, trained, model_dir, which, data_dir=data_dir,
                                       command="inat-export")
  module = serving_module(trained, top_k, geo_prior,
                          answer_config=answers.AnswerConfig(rule=rule, floor=options.floor))
  tf.io.gfile.makedirs(export_dir)
  files = {"saved_model": export_saved_model(module, export_dir,
                                            _sample_jpeg(data_dir, trained.image_size))}
  int8 = None
  if tflite:
    files.update(export_tflite(module, export_dir, data_dir))
    if data_dir:
      int8 = check_int8(files, data_dir, trained, model_dir)
  label_map = trained.label_map
  run_common.write_text(os.path.join(export_dir, TAXONOMY),
                        json.dumps(module.taxonomy.to_json(), indent=1))
  run_common.write_text(os.path.join(export_dir, "labels.txt"), "".join(
      f"{i}\t{cid}\t{name}\n" for i, (cid, name) in enumerate(
          zip(label_map.category_ids, label_map.names))))
  info = {"model": trained.model_name, "image_size": trained.image_size,
          "eval_crop_fraction": trained.eval_crop_fraction,
          "num_classes": label_map.num_classes, "head_rank": trained.head_rank,
          "top_k": module.top_k, "files": files, "model_dir": model_dir, "which": which,
          "geo_dir": geo_dir,
          "geo_use_date": geo_prior.use_date if geo_prior is not None else None,
          # the floor serving_with_place combines the prior with (geo.prior.combine)
          "location_floor": options.floor if geo_prior is not None else None,
          # the roll-up inside every classifying signature and model_answers.tflite
          "rollup_rule": rollup.rule_to_json(rule),
          # inside the exported graphs too (trained_model.load applied it): serving = inat-eval
          "long_tail_adjustment": trained.adjustment.describe() if trained.adjustment else None,
          # which images chose it: inat-predict warns when predicting that split (predict.py)
          "long_tail_tuned_on": trained.adjustment.tuned_on if trained.adjustment else None,
          # int8 and full-integer against float TFLite on held-out images (inat_tf.int8_check)
          "int8_check": int8}
  run_common.write_text(os.path.join(export_dir, "export_info.json"), json.dumps(info, indent=1))
  return info


def _size(path):
  """Bytes of a file, or of every file under a directory."""
  if not tf.io.gfile.isdir(path):
    return tf.io.gfile.stat(path).length
  return sum(tf.io.gfile.stat(os.path.join(root, name)).length
             for root, _, names in tf.io.gfile.walk(path) for name in names)


def file_size(size):
  """A byte count as people read it: `12.35 MB`, `4.2 kB`, `310 B` (SI units, as `ls -h --si`)."""
  if size >= 1e6:
    return f"{size / 1e6:.2f} MB"
  return f"{size / 1e3:.1f} kB" if size >= 1e3 else f"{size} B"


def describe_files(files):
  """Lines `  name  12.35 MB  path` for {name: path}, as inat-export prints what it wrote (a
  label file of a few kB is not `0.00 MB`)."""
  width = max(len(name) for name in files)
  return "\n".join(f"  {name:<{width}}  {file_size(_size(path)):>9}  {path}"
                   for name, path in files.items())


def main(c, _):
  """inat-export's work once its flags are parsed (inat_tf/commands/export.py)."""
  start = time.monotonic()
  tflite = ("TFLite float" + (f" and int8 (calibrated on train images of {c.data_dir})"
                              if c.data_dir else " (no --data_dir: no int8)")) if c.tflite else ""
  cli.say(f"{os.path.join(c.model_dir, trained_model.model_file(c.which))} to {c.export_dir}: "
          f"the next SavedModel version{', ' + tflite if tflite else ''}"
          f"{', with the location prior ' + c.geo_dir if c.geo_dir else ''}; top {c.top_k}")
  from inat_tf import answer_options  # pylint: disable=g-import-not-at-top
  info = export(c.model_dir, c.export_dir, data_dir=c.data_dir, which=c.which, top_k=c.top_k,
                tflite=c.tflite, geo_dir=c.geo_dir, options=answer_options.Options.from_config(c))
  print(f"inat-export: wrote to {c.export_dir}:\n{describe_files(info['files'])}", flush=True)
  if info["int8_check"] is not None:
    for line in int8_check.describe(info["int8_check"], TFLITE_FLOAT):
      cli.say(line)
    for line in int8_check.problems(info["int8_check"], TFLITE_FLOAT, INT8_ADVICE):
      cli.warn(line)
  if c.bundle:
    from inat_tf import bundle  # pylint: disable=g-import-not-at-top
    files = bundle.write(c.export_dir)
    print(f"inat-export: the phone bundle, {bundle.bundle_dir(c.export_dir)}:\n"
          f"{describe_files(files)}", flush=True)
  written = [os.path.relpath(path, c.export_dir) for path in info["files"].values()]
  written += [TAXONOMY, "labels.txt"] + ([bundle.BUNDLE_DIR + "/"] if c.bundle else [])
  cli.say(f"done in {progress.duration(time.monotonic() - start)}: {', '.join(written)} and "
          f"export_info.json in {c.export_dir}")

