"""The factorised head (--head_rank) and the full-integer TFLite model (issue 29).

The phone bundle's test is in test_geo.py, beside the location prior it ships."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from inat_tf import export
from inat_tf import int8_check
from inat_tf import long_tail
from inat_tf import trained_model
from models import heads

NUM_CLASSES, RANK = 10_000, 256  # iNaturalist's phone model: rank 256


def _head_parameters(model):
  return sum(int(np.prod(w.shape)) for name in (heads.BOTTLENECK_LAYER, heads.CLASSIFIER_LAYER)
             if any(layer.name == name for layer in model.layers)
             for w in model.get_layer(name).weights)


@pytest.mark.slow  # builds full networks with 10,000 classes
@pytest.mark.parametrize("name, feature_dim", [("inception_v3", 2048), ("mobilenet_v1", 1024)])
def test_factorised_head_parameters_at_ten_thousand_classes(name, feature_dim):
  size = models.min_image_size(name)
  full = models.build(name, NUM_CLASSES, size)
  factorised = models.build(name, NUM_CLASSES, size, head_rank=RANK)
  assert _head_parameters(full) == heads.classifier_parameters(feature_dim, NUM_CLASSES) \
      == (feature_dim + 1) * NUM_CLASSES
  assert _head_parameters(factorised) == heads.classifier_parameters(
      feature_dim, NUM_CLASSES, RANK) == RANK * (feature_dim + 1) + (RANK + 1) * NUM_CLASSES
  # The backbone is untouched: the whole difference is in the head.
  assert full.count_params() - factorised.count_params() == \
      _head_parameters(full) - _head_parameters(factorised)
  ratio = _head_parameters(full) / _head_parameters(factorised)
  # R (d + C + 1) + C against (d + 1) C: about d / R when C >> d. At d = 2048 (Inception V3, the
  # ResNets) 6.6x; at MobileNet V1's d = 1024, 3.6x (4x needs R <= 231 there).
  assert ratio >= 4 if feature_dim >= 2048 else 3.5 < ratio < 4, ratio
  outputs = factorised(tf.zeros([1, size, size, 3]))
  assert outputs.shape == (1, NUM_CLASSES) and outputs.dtype == tf.float32


def test_int8_agreement_on_hand_made_outputs():
  """inat-export's int8 check (int8_check.agreement, below_bounds, problems) on outputs whose
  answers are known: 10 images, 3 classes, labels 0, 1, 2, 0, ..."""
  labels = np.arange(10) % 3
  float_top1 = np.array([0, 1, 2, 0, 1, 2, 0, 1, 1, 1])  # right on the first 8
  reference = np.full([10, 3], 0.1)
  reference[np.arange(10), float_top1] = 0.8
  reference[:2] = [[0.4, 0.35, 0.25], [0.3, 0.45, 0.25]]  # not sure on images 0 and 1
  int8 = reference.copy()
  int8[0] = [0.3, 0.4, 0.3]  # a near-tie flipped: 0 -> 1 (a wrong answer)
  int8[8] = [0.1, 0.2, 0.7]  # 1 -> 2 (a right one)
  result = int8_check.agreement(reference, int8, labels)
  assert result == {"images": 10, "agreement": 0.8, "agreement_where_sure": 7 / 8,
                    "sure_images": 8, "top1_float": 0.8, "top1": 0.8, "top1_change_points": 0.0}
  assert int8_check.agreement(reference, reference)["agreement"] == 1.0
  assert "top1" not in int8_check.agreement(reference, int8)  # no labels, no top-1
  # uint8 outputs of a full-integer model: the argmax is all that counts; ties go to the lower
  # class index on both sides.
  assert int8_check.agreement(np.uint8([[7, 7, 1]]), np.uint8([[7, 7, 7]]))["agreement"] == 1.0
  assert int8_check.below_bounds(result)  # 80 % < 97 %
  close = int8_check.agreement(reference, reference, labels)
  assert not int8_check.below_bounds(close)
  assert int8_check.below_bounds({**close, "top1": close["top1_float"] - 0.011})  # -1.1 points
  assert not int8_check.below_bounds({**close, "top1": close["top1_float"] - 0.01})
  check = {"split": "val", "images": 10, "models": {"m8.tflite": result, "ok.tflite": close}}
  (line,) = int8_check.problems(check, "f.tflite", "ship f.tflite")
  assert line == ("m8.tflite gives f.tflite's top-1 on only 80.0 % of 10 val images (goal >= "
                  "97 %): ship f.tflite")
  assert int8_check.describe(check, "f.tflite")[0] == (
      "m8.tflite: same top-1 as f.tflite on 80.0 % of 10 val images (87.5 % of the 8 where "
      "float's top-1 probability is >= 0.5); top-1 80.0 % against float's 80.0 % (+0.0 points)")
  nothing = {"split": None, "reason": "D has no val or minival images"}
  assert int8_check.problems(nothing, "f.tflite", "") == []
  assert int8_check.describe(nothing, "f.tflite") == [
      "int8 not checked against float: D has no val or minival images"]
  with pytest.raises(ValueError, match="same shape"):
    int8_check.agreement(reference, int8[:, :2])
  with pytest.raises(ValueError, match="expected 10 labels"):
    int8_check.agreement(reference, int8, labels[:3])


def test_head_rank_is_checked():
  with pytest.raises(ValueError, match="head_rank=13: a rank-13 bottleneck before 13 classes"):
    models.build("mobilenet_v1", 13, 32, head_rank=13)
  with pytest.raises(ValueError, match="head_rank=-1: expected 0"):
    models.build("mobilenet_v1", 13, 32, head_rank=-1)


def test_tau_norm_on_a_factorised_head_is_tau_norm_of_the_equal_full_classifier():
  rng = np.random.default_rng(0)
  d, r, c, tau = 12, 4, 9, 0.7
  u, b_u = rng.normal(size=(d, r)), rng.normal(size=r)
  w, b = rng.normal(size=(r, c)), rng.normal(size=c)
  features = rng.normal(size=(5, d))
  adjustment = long_tail.Adjustment("tau_norm", tau, {}, "")
  new_w, new_b = long_tail.adjusted_classifier(w, b, adjustment, np.ones(c),
                                               bottleneck=(u, b_u))
  factorised = (features @ u + b_u) @ new_w + new_b
  full_w = u @ w  # the same network as a full classifier (its bias b_u w + b is dropped)
  expected = features @ (full_w / np.linalg.norm(full_w, axis=0) ** tau)
  np.testing.assert_allclose(factorised, expected, rtol=1e-5, atol=1e-5)
  # Any re-parametrisation U A, A^-1 W of the same network gets the same adjusted logits.
  a = rng.normal(size=(r, r)) + 3 * np.eye(r)
  w2, b2 = long_tail.adjusted_classifier(np.linalg.solve(a, w), b, adjustment, np.ones(c),
                                         bottleneck=(u @ a, b_u @ a))
  np.testing.assert_allclose((features @ u @ a + b_u @ a) @ w2 + b2, expected, rtol=1e-4,
                             atol=1e-4)


@pytest.mark.slow  # builds a network
def test_stored_tau_norm_applies_to_a_factorised_keras_model(tmp_path):
  """apply_stored (what inat-eval, inat-predict and inat-export load) on a rank-4 MobileNet,
  whose head is a Dense pair: the adjusted network's logits are tau-norm's formula."""
  model = models.build("mobilenet_v1", 13, 32, head_rank=4)
  rng = np.random.default_rng(1)
  for name in (heads.BOTTLENECK_LAYER, heads.CLASSIFIER_LAYER):  # non-zero biases
    layer = model.get_layer(name)
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])
  images = rng.uniform(-1, 1, size=(3, 32, 32, 3)).astype(np.float32)
  features = keras.Model(model.input, model.get_layer(heads.BOTTLENECK_LAYER).input)(images)
  features = np.asarray(features, np.float64).reshape(3, -1)
  u, b_u = (np.asarray(w, np.float64) for w in model.get_layer(heads.BOTTLENECK_LAYER).weights)
  w, b = (np.asarray(v, np.float64) for v in model.get_layer(heads.CLASSIFIER_LAYER).weights)
  full_w = u.reshape(-1, 4) @ w.reshape(4, -1)
  long_tail.save_adjustment(str(tmp_path), "best", long_tail.Adjustment(
      "tau_norm", 1.0, {"split": "val"}, long_tail.classifier_digest(w, b)))
  assert long_tail.apply_stored(model, str(tmp_path), "best", [5] * 13).method == "tau_norm"
  expected = features @ (full_w / np.linalg.norm(full_w, axis=0))
  np.testing.assert_allclose(np.asarray(model(images)), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # builds a network
def test_a_factorised_model_round_trips_through_keras_files(tmp_path):
  model = models.build("efficientnetv2_b0", 13, 32, head_rank=4)
  images = np.random.default_rng(2).uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
  model.save(tmp_path / "m.keras")
  loaded = keras.models.load_model(tmp_path / "m.keras")
  assert loaded.get_layer(heads.BOTTLENECK_LAYER).units == 4
  np.testing.assert_array_equal(np.asarray(loaded(images)), np.asarray(model(images)))


@pytest.mark.slow
def test_head_rank_trains_evaluates_and_exports_to_tflite(tiny_built_dir, tmp_path):
  """inat-train --head_rank records the rank; load refuses a model file of another rank; the
  float, int8 and full-integer TFLite models answer as the Keras model (the full-integer one
  from uint8 pixels)."""
  from inat_tf import preprocessing
  from inat_tf import records
  from inat_tf import schema
  from inat_tf import train
  from tests import helpers
  model_dir = tmp_path / "model"
  train.train(train.TrainConfig(
      data_dir=str(tiny_built_dir), model_dir=str(model_dir), model="mobilenet_v1",
      image_size=32, batch_size=32, weights="none", optimizer="adamw", learning_rate=0.003,
      train_steps=40, lr_schedule="cosine", bn_momentum=0.5, log_steps=100,
      eval_every_epochs=1000, head_rank=4), log=lambda m: None)
  # bn_momentum 0.5: after 40 steps at 0.9 the moving statistics still hold their start values,
  # the network answers every image alike with near-equal probabilities, and which class wins
  # then flips with any rounding: the agreement below would be a coin toss (CI saw 0.0).
  assert json.loads((model_dir / "train_config.json").read_text())["head_rank"] == 4
  trained = trained_model.load(str(model_dir))
  assert trained.head_rank == 4
  paths = export.export_tflite(export.serving_module(trained, top_k=5), str(tmp_path),
                               str(tiny_built_dir), calibration_count=20)
  images = np.stack([preprocessing.eval_image(e[schema.ENCODED], 32).numpy() for e in
                     records.examples(str(tiny_built_dir), "val", [schema.ENCODED])])
  keras_top1 = np.argmax(trained.model(trained.normalize(images)), axis=1)
  float_top1 = np.argmax(helpers.tflite_probabilities(paths[export.TFLITE_FLOAT], images), 1)
  assert np.mean(float_top1 == keras_top1) >= 0.98
  assert len(set(float_top1)) >= 3, np.bincount(float_top1)  # it tells images apart
  # Full integer: uint8 in (the pixels themselves), int8 ops only inside, uint8 probabilities out.
  interpreter = tf.lite.Interpreter(model_path=paths[export.TFLITE_FULL_INTEGER])
  interpreter.allocate_tensors()
  (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
  assert source["dtype"] == np.uint8 and source["quantization"] == (1.0, 0)
  assert target["dtype"] == np.uint8 and target["quantization"] == (1 / 256, 0)
  with pytest.raises(ValueError, match="(?i)type|dtype"):
    interpreter.set_tensor(source["index"], images[:1])  # float pixels are refused
  # pylint: disable=protected-access
  float_ops = {op["op_name"] for op in interpreter._get_ops_details()
               if any(interpreter._get_tensor_details(t, 0)["dtype"] == np.float32
                      for t in list(op["inputs"]) + list(op["outputs"]) if t >= 0)}
  # pylint: enable=protected-access
  assert not float_ops, float_ops
  integer_probabilities = []
  for image in images:
    interpreter.set_tensor(source["index"], np.round(image).astype(np.uint8)[np.newaxis])
    interpreter.invoke()
    integer_probabilities.append(interpreter.get_tensor(target["index"])[0] / 256)
  integer_probabilities = np.array(integer_probabilities)
  float_probabilities = helpers.tflite_probabilities(paths[export.TFLITE_FLOAT], images)
  # 40 steps leave a weak model with close calls (measured: 0.88 agreement, mean |difference|
  # 0.008); the benchmark measures agreement on real models.
  assert np.mean(np.argmax(integer_probabilities, 1) == float_top1) >= 0.6
  assert np.abs(integer_probabilities - float_probabilities).mean() < 0.03
  # A model file of another run (here: a full head) under this train_config.json is refused.
  config = json.loads((model_dir / "train_config.json").read_text())
  (model_dir / "train_config.json").write_text(json.dumps({**config, "head_rank": 0}))
  with pytest.raises(ValueError, match="rank-4 classifier but .* records --head_rank 0"):
    trained_model.load(str(model_dir))


def test_a_model_dir_from_before_head_rank_resumes_as_a_full_head():
  from inat_tf import run_record
  recorded = {"model": "mobilenet_v1", "image_size": 64}  # train_config.json without head_rank
  assert run_record.differences(recorded, {**recorded, "head_rank": 0}) == []
  assert run_record.differences(recorded, {**recorded, "head_rank": 8}) == [
      "--head_rank: 0 in the model dir, 8 now"]


@pytest.mark.slow  # reads the tiny data dir (no model)
def test_int8_check_images_are_held_out_val_else_minival_never_train(tiny_built_dir, tmp_path):
  """inat-export's int8 check runs on a seeded uniform sample of val (else minival), never on
  train, where the calibration images come from; a data dir with neither is said, not guessed."""
  from inat_tf import preprocessing  # pylint: disable=g-import-not-at-top
  from inat_tf import records  # pylint: disable=g-import-not-at-top
  from inat_tf import schema  # pylint: disable=g-import-not-at-top
  data = str(tiny_built_dir)

  def every(split):
    return {preprocessing.eval_image(e[schema.ENCODED], 32).numpy().tobytes(): int(e[schema.LABEL])
            for e in records.examples(data, split, [schema.ENCODED, schema.LABEL])}
  val, train = every("val"), every("train")
  crop = preprocessing.EVAL_CROP_FRACTION
  split, images, labels = int8_check.held_out_images(data, 32, crop, count=30)
  assert split == "val" and images.shape == (30, 32, 32, 3) and images.dtype == np.float32
  pairs = [(image.tobytes(), label) for image, label in zip(images, labels)]
  assert all(val.get(key) == label for key, label in pairs)  # val images, with their labels
  assert not any(key in train for key, _ in pairs)
  assert len(set(key for key, _ in pairs)) == 30  # no image twice
  again = int8_check.held_out_images(data, 32, crop, count=30)[1]
  assert again.tobytes() == images.tobytes()  # seeded: the same images at every export
  assert len(int8_check.held_out_images(data, 32, crop, count=500)[1]) == len(val)  # all if fewer
  # Without val: minival (carved out of train by inat-build --minival_fraction).
  copy = tmp_path / "data"
  copy.mkdir()
  manifest = json.loads((tiny_built_dir / "manifest.json").read_text())
  manifest["splits"] = {"train": manifest["splits"]["train"], "minival": manifest["splits"]["val"]}
  (copy / "manifest.json").write_text(json.dumps(manifest))
  for path in records.shard_files(data, "train") + records.shard_files(data, "val"):
    name = os.path.basename(path).replace("val-", "minival-")
    os.symlink(path, copy / name)
  split, images, _ = int8_check.held_out_images(str(copy), 32, crop, count=30)
  assert split == "minival" and all(image.tobytes() in val for image in images)
  for path in copy.glob("minival-*"):
    path.unlink()
  assert int8_check.held_out_images(str(copy), 32, crop) == (None, None, None)
