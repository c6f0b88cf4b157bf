"""models: every network by name (the paper's and the modern backbones), checked against
keras.applications.

Each model is built once (module-scoped `built` fixture, one model alive at a time) at the smallest
size its family accepts, and shared by the architecture and training tests.
"""

import functools
import logging
import os
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import models
from inat_tf import label_map as label_map_lib
from inat_tf import trained_model
from models import heads
from tests import helpers

NUM_CLASSES = 7
# The SE Inceptions are built with the auxiliary head, so the training test also covers the
# {"logits", "aux_logits"} output and the 0.4-weighted aux loss for both Inception families.
WITH_AUX = ("inception_v3_se", "inception_resnet_v2_se")

# keras.applications constructor and smallest input of each base network.
REFERENCES = {
    "inception_v3": (keras.applications.InceptionV3, 75),
    "inception_resnet_v2": (keras.applications.InceptionResNetV2, 75),
    "resnet50": (keras.applications.ResNet50, 32),
    "resnet101": (keras.applications.ResNet101, 32),
    "resnet152": (keras.applications.ResNet152, 32),
    "mobilenet_v1": (keras.applications.MobileNet, 32),
}
REFERENCE_TOP_LAYERS = ("predictions", "conv_preds")  # keras.applications' classifier layers

# Output channels of the modules that get an SE block (Szegedy et al.; keras.applications' shapes).
SE_CHANNELS = {
    "inception_v3_se": [256, 288, 288] + [768] * 5 + [1280, 2048, 2048],
    "inception_resnet_v2_se": [320] * 11 + [1088] * 21 + [2080] * 11,
}
# Channels of the auxiliary head's input: mixed7 (V3) and the last block17 (Inception-ResNet V2).
AUX_TAP_CHANNELS = {"inception_v3_se": 768, "inception_resnet_v2_se": 1088}


def base_name(name):
  return name.removesuffix("_se").removesuffix("_drp")


def se_parameters(channels):
  """Dense C -> C/16 (relu) and Dense C/16 -> C (sigmoid), with biases."""
  return sum(2 * c * c // 16 + c // 16 + c for c in channels)


def aux_parameters_at_75px(tap_channels, num_classes):
  """The aux head at 75 px: the tapped map is 3x3, pooled to 1x1, so the spatial conv is 1x1."""
  conv_1x1 = tap_channels * 128 + 3 * 128   # no bias; BN without scale: beta, mean, variance
  conv_spatial = 1 * 1 * 128 * 768 + 3 * 768
  return conv_1x1 + conv_spatial + 768 * num_classes + num_classes


@functools.lru_cache(maxsize=None)
def reference(base):
  """keras.applications' model with its top for NUM_CLASSES: parameter count and weight shapes."""
  constructor, size = REFERENCES[base]
  model = constructor(weights=None, include_top=True, classes=NUM_CLASSES,
                      input_shape=(size, size, 3))
  top = [w for layer in model.layers if layer.name in REFERENCE_TOP_LAYERS for w in layer.weights]
  assert top, f"no classifier layer found in keras.applications' {base}"
  backbone_shapes = sorted(tuple(w.shape) for layer in model.layers
                           if layer.name not in REFERENCE_TOP_LAYERS for w in layer.weights)
  return model.count_params(), sum(int(np.prod(w.shape)) for w in top), backbone_shapes


def outputs_as_arrays(outputs):
  if isinstance(outputs, dict):
    return {key: np.asarray(value) for key, value in outputs.items()}
  return {"logits": np.asarray(outputs)}


# The paper's networks; the modern backbones (models/modern.py) are below and in test_recipes.py.
PAPER_NAMES = tuple(n for n in models.MODEL_NAMES
                    if n.startswith(("inception", "resnet", "mobilenet")))


# One xdist group per network: its tests run on one worker, so the model is built once, not once
# per worker that happens to get one of them.
@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=pytest.mark.xdist_group(f"model_{name}")) for name in PAPER_NAMES])
def built(request):
  name = request.param
  return name, models.build(name, NUM_CLASSES, models.min_image_size(name),
                            aux_logits=name in WITH_AUX)


def test_names_and_minimum_sizes():
  assert set(models.MODEL_NAMES) == {
      "inception_v3", "inception_v3_se", "inception_resnet_v2", "inception_resnet_v2_se",
      "resnet50", "resnet101", "resnet152", "resnet50_drp", "resnet101_drp", "resnet152_drp",
      "mobilenet_v1", "efficientnetv2_b0", "efficientnetv2_b1", "efficientnetv2_b2",
      "efficientnetv2_b3", "efficientnetv2_s", "convnext_tiny", "convnext_small"}
  assert len(models.MODEL_NAMES) == 18 and len(PAPER_NAMES) == 11
  assert {name: models.min_image_size(name) for name in models.MODEL_NAMES} == {
      name: 75 if name.startswith("inception") else 32 for name in models.MODEL_NAMES}


@pytest.mark.slow
def test_architecture_matches_keras_applications(built):
  name, model = built
  reference_count, reference_top, reference_backbone_shapes = reference(base_name(name))
  se = se_parameters(SE_CHANNELS.get(name, []))
  aux = aux_parameters_at_75px(AUX_TAP_CHANNELS[name], NUM_CLASSES) if name in WITH_AUX else 0
  if name in SE_CHANNELS:
    assert se > 0
  assert model.count_params() == reference_count + se + aux

  # The split new_layers makes: the rest is exactly keras.applications' backbone, weight by
  # weight, and the new layers hold exactly the classifier, SE blocks and aux head.
  new_layers = models.new_layers(model)
  new_ids = {id(layer) for layer in new_layers}
  backbone_shapes = sorted(tuple(w.shape) for layer in model.layers if id(layer) not in new_ids
                           for w in layer.weights)
  assert backbone_shapes == reference_backbone_shapes
  assert sum(int(np.prod(w.shape)) for layer in new_layers for w in layer.weights) == (
      reference_top + se + aux)
  assert model.get_layer("head_logits") in new_layers
  # A Dense in every network, MobileNet V1 included: oneDNN runs keras.applications' 1x1-conv top
  # several times slower at many classes (models/heads.py).
  assert isinstance(model.get_layer("head_logits"), keras.layers.Dense)

  if name in SE_CHANNELS:
    expand_units = [layer.units for layer in model.layers if layer.name.endswith("_se_expand")]
    assert sorted(expand_units) == sorted(SE_CHANNELS[name])
    # Cloned, not shared, layers: intermediate outputs belong to this model's graph.
    tap = "mixed7_se_scale" if name == "inception_v3_se" else "block17_20_ac"
    features = keras.Model(model.inputs, model.get_layer(tap).output)
    assert features.output.shape[-1] == AUX_TAP_CHANNELS[name]


def train_a_step_then_save_and_load(name, model, tmp_path):
  """One training step moves the first and the classifier's weights with a finite loss; the
  `.keras` file loads without custom objects and gives the same outputs. Returns the loaded
  model."""
  size = model.input_shape[1]
  images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
  labels = np.array([0, NUM_CLASSES - 1])
  loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  aux = name in WITH_AUX
  assert isinstance(model.output, dict) == aux
  # Eager: one step of these graphs is ~10x faster than tracing them on CPU. The smallest one
  # takes a traced (tf.function) step, the trainer's path.
  model.compile(
      # Per-variable clipping: at 32 px a ResNet's last stage is 1x1, and batch norm over 2 pixels
      # gives gradients of ~1e10; clipped, every variable still moves, none explodes.
      optimizer=keras.optimizers.SGD(0.01, clipnorm=1.0),
      loss={"logits": loss, "aux_logits": loss} if aux else loss,
      loss_weights={"logits": 1.0, "aux_logits": 0.4} if aux else None,
      run_eagerly=name != "mobilenet_v1", jit_compile=False)
  first_conv = next(layer for layer in model.layers if layer.weights)
  watched = [first_conv, model.get_layer("head_logits")]
  if aux:
    watched.append(model.get_layer("head_aux_logits"))
  before = [layer.weights[0].numpy() for layer in watched]

  logs = model.train_on_batch(
      images, {"logits": labels, "aux_logits": labels} if aux else labels, return_dict=True)

  assert np.isfinite(logs["loss"])
  for layer, old in zip(watched, before):
    assert not np.array_equal(layer.weights[0].numpy(), old), f"{layer.name} did not train"
  predictions = outputs_as_arrays(model(images, training=False))
  assert sorted(predictions) == (["aux_logits", "logits"] if aux else ["logits"])
  for value in predictions.values():
    assert value.shape == (2, NUM_CLASSES) and value.dtype == np.float32
    assert np.isfinite(value).all()

  path = tmp_path / f"{name}.keras"
  model.save(path)
  loaded = keras.models.load_model(path)  # no custom_objects: standard layers only
  assert isinstance(loaded, keras.Model) and loaded.name == name
  assert [layer.name for layer in models.new_layers(loaded)] == [
      layer.name for layer in models.new_layers(model)]
  again = outputs_as_arrays(loaded(images, training=False))
  assert sorted(again) == sorted(predictions)
  for key in predictions:
    assert np.array_equal(again[key], predictions[key]), key
  return loaded


@pytest.mark.slow
def test_training_step_and_save_load_round_trip(built, tmp_path):
  name, model = built
  if name in ("resnet101_drp", "resnet152_drp"):  # suite time (under 5 minutes)
    pytest.skip("the same backbone as resnet101 / resnet152 and the same dropout head as "
                "resnet50_drp, both round-tripped here")
  train_a_step_then_save_and_load(name, model, tmp_path)


# The modern backbones: one of each preprocessing mode and layer family, at 64 px, where
# ConvNeXt's last map is 2 x 2. EfficientNetV2-B0 trains, saves, exports and converts in
# test_recipes' inat-train / inat-export test, ConvNeXt Tiny here; the other sizes (B1-B3, S,
# ConvNeXt Small) are the same keras.applications code with other widths and depths
# (benchmarks/modern_backbones.py runs every one through all of it; the suite has no time).
def _perturbed(model, rng):
  """model's weights plus seeded noise. keras.applications' initialisation leaves biases at 0,
  batch-norm statistics at 0 / 1 and ConvNeXt's layer scales at 1e-6 (its blocks nearly the
  identity), which would hide a wrong input scale or a skipped block; variances stay positive."""
  weights = []
  for variable, value in zip(model.weights, model.get_weights()):
    value = value + rng.normal(0, 0.1 * (float(value.std()) or 0.1), value.shape)
    weights.append((np.abs(value) if "variance" in variable.path else value).astype(np.float32))
  return weights


@pytest.mark.slow
@pytest.mark.parametrize("name, round_trip_and_tflite", [
    pytest.param("efficientnetv2_b0", False, id="efficientnetv2_b0"),
    pytest.param("efficientnetv2_s", False, id="efficientnetv2_s"),
    pytest.param("convnext_tiny", True, id="convnext_tiny-round_trip-tflite")])
def test_modern_backbone_is_keras_applications_network(name, round_trip_and_tflite, tmp_path):
  """Ours, with keras.applications' weights copied in and our preprocess_input in front, computes
  what keras.applications' network with include_top=True and its own preprocessing layers
  computes from raw pixels: the same normalisation and the same top (ConvNeXt: pool, then
  LayerNormalization, then dense, as the paper; a norm per position before the pool would not
  match). Then a training step, a .keras round trip, and inat-export's TFLite conversion."""
  keras.utils.set_random_seed(0)
  size, spec = 64, models.registry.spec(name)
  ours = models.build(name, NUM_CLASSES, size)
  reference = getattr(keras.applications, spec.backbone_name)(
      include_top=True, weights=None, classes=NUM_CLASSES, input_shape=(size, size, 3),
      classifier_activation=None)
  assert any(isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization))
             for layer in reference.layers[:4]), "keras.applications no longer preprocesses"
  assert ours.count_params() == reference.count_params()
  weights = _perturbed(reference, np.random.default_rng(0))
  reference.set_weights(weights)
  ours.set_weights(weights)
  pixels = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
  expected = reference(pixels).numpy()
  np.testing.assert_allclose(ours(models.preprocess_input(name)(pixels)).numpy(), expected,
                             atol=1e-5 + 1e-4 * np.abs(expected).max(), rtol=1e-4)
  if not round_trip_and_tflite:
    return
  loaded = train_a_step_then_save_and_load(name, ours, tmp_path)
  label_map = label_map_lib.LabelMap(  # ids, names, super-category of each, its names, counts
      tuple(range(NUM_CLASSES)), tuple(map(str, range(NUM_CLASSES))), (0,) * NUM_CLASSES, ("X",),
      (1,) * NUM_CLASSES)
  trained = trained_model.TrainedModel(model=loaded, model_name=name, image_size=size,
                                       label_map=label_map)
  view = pixels[:1]
  probabilities = tf.nn.softmax(loaded(trained.normalize(view), training=False)).numpy()
  lite = helpers.tflite_probabilities(helpers.float_tflite(trained, tmp_path / "model.tflite"),
                                      view)
  np.testing.assert_allclose(lite, probabilities, atol=1e-4)


@pytest.mark.slow  # builds a full-size network
def test_aux_head_is_tf_slims_at_299_px():
  model = models.build("inception_v3", NUM_CLASSES, 299, aux_logits=True)
  pool = model.get_layer("head_aux_avg_pool")
  assert pool.pool_size == (5, 5) and pool.strides == (3, 3)  # 17x17 -> 5x5
  assert model.get_layer("head_aux_conv_1x1").kernel.shape == (1, 1, 768, 128)
  assert model.get_layer("head_aux_conv_spatial").kernel.shape == (5, 5, 128, 768)  # 5x5 -> 1x1
  assert pool.input is model.get_layer("mixed7").output
  assert model.get_layer("head_aux_logits").units == NUM_CLASSES
  assert model.output["aux_logits"].shape == (None, NUM_CLASSES)


@pytest.mark.parametrize("height, expected", [
    (17, ((5, 5), (3, 3), (5, 5))),   # 299 px, TF-slim
    (10, ((5, 5), (3, 3), (2, 2))),   # 200 px
    (7, ((5, 5), (3, 3), (1, 1))),
    (4, ((4, 4), (3, 3), (1, 1))),
    (3, ((3, 3), (3, 3), (1, 1))),    # 75 px
])
def test_aux_kernel_sizes_fit_small_maps(height, expected):
  assert heads.aux_kernel_sizes(height, height) == expected


@pytest.mark.slow  # builds a full-size network
def test_mixed_precision_keeps_logits_float32():
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    model = models.build("inception_v3_se", 3, 75, aux_logits=True)
    assert model.get_layer("mixed3_se_expand").compute_dtype == "float16"
    outputs = model(np.zeros((1, 75, 75, 3), np.float32), training=False)
    assert {key: value.dtype for key, value in outputs.items()} == {
        "logits": tf.float32, "aux_logits": tf.float32}

    mobilenet = models.build("mobilenet_v1", 3, 32)
    assert mobilenet.get_layer("conv1").compute_dtype == "float16"
    assert mobilenet.output.dtype == "float32"
    # A training step with the loss scaling Keras adds for float16; eager, because tracing it
    # takes ~8 s on CPU (the float32 training test takes a traced step).
    mobilenet.compile(optimizer="sgd", run_eagerly=True,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert isinstance(mobilenet.optimizer, keras.optimizers.LossScaleOptimizer)
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    logs = mobilenet.train_on_batch(images, np.array([0, 1, 2, 0]), return_dict=True)
    assert np.isfinite(logs["loss"])
    assert mobilenet(images).dtype == tf.float32
  finally:
    keras.mixed_precision.set_global_policy(previous)


@pytest.mark.slow
@pytest.mark.parametrize("name, constructor, size", [
    ("inception_v3_se", keras.applications.InceptionV3, 75),
    ("resnet50_drp", keras.applications.ResNet50, 32),
])
def test_weights_file_loads_every_shared_layer_bit_exactly(name, constructor, size, tmp_path,
                                                           caplog):
  # keras.applications leaves Inception conv/BN layers unnamed: Keras numbers them per session
  # (conv2d, conv2d_1, ... then conv2d_94, ...). A fresh session numbers both builds alike, as in
  # a fresh training process, so the layers can be matched by name.
  keras.backend.clear_session(free_memory=False)
  keras.utils.set_random_seed(1)
  source = constructor(include_top=False, weights=None, input_shape=(size, size, 3))
  path = tmp_path / "backbone.weights.h5"
  source.save_weights(path)
  saved = {layer.name: [w.numpy() for w in layer.weights] for layer in source.layers
           if layer.weights}
  del source
  keras.backend.clear_session(free_memory=False)
  keras.utils.set_random_seed(2)  # another seed: an ignored file cannot look loaded
  with caplog.at_level(logging.INFO, logger="models"):
    model = models.build(name, NUM_CLASSES, size, weights=str(path))

  weighted = {layer.name: layer for layer in model.layers if layer.weights}
  new = {layer.name for layer in models.new_layers(model) if layer.weights}
  assert set(weighted) - set(saved) == new
  assert set(saved) <= set(weighted)
  for layer_name, arrays in saved.items():
    loaded = [w.numpy() for w in weighted[layer_name].weights]
    assert len(loaded) == len(arrays)
    assert all(np.array_equal(a, b) for a, b in zip(loaded, arrays)), layer_name
  for layer_name in new:  # new layers keep their initialisation: Dense/conv biases start at 0
    assert not np.any(weighted[layer_name].weights[1].numpy()), layer_name

  records = [r for r in caplog.records if r.name.startswith("models")]
  assert len(records) == 1
  message = records[0].getMessage()
  assert str(path) in message and f"{len(new)} new layers" in message
  assert all(layer_name in message for layer_name in new)
  if name == "inception_v3_se":
    assert "mixed10_se_expand" in message and "head_logits" in message
  keras.backend.clear_session(free_memory=False)


def write_published_layout_h5(model, path):
  """model's weights in the legacy HDF5 layout of Keras's published ImageNet files (by h5py)."""
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.1.5"
    for layer in model.layers:
      group = f.create_group(layer.name)
      weights = layer.trainable_weights + layer.non_trainable_weights  # legacy order
      names = [f"{layer.name}/{w.name}:0".encode() for w in weights]
      group.attrs["weight_names"] = names
      for weight_name, weight in zip(names, weights):
        group.create_dataset(weight_name.decode(), data=weight.numpy())


@pytest.fixture(scope="module")
def mobilenet_h5(tmp_path_factory):
  """A random MobileNet backbone (alpha 1.0) saved under the name of Keras's ImageNet file."""
  keras.utils.set_random_seed(3)
  source = keras.applications.MobileNet(include_top=False, weights=None, input_shape=(32, 32, 3))
  path = tmp_path_factory.mktemp("keras_home") / "models" / "mobilenet_1_0_224_tf_no_top.h5"
  path.parent.mkdir()
  write_published_layout_h5(source, path)
  return path, {layer.name: [w.numpy() for w in layer.weights] for layer in source.layers
                if layer.weights}


@pytest.mark.slow
def test_legacy_h5_weights_file(mobilenet_h5):
  path, saved = mobilenet_h5
  keras.utils.set_random_seed(4)
  model = models.build("mobilenet_v1", NUM_CLASSES, 64, weights=str(path))
  for layer_name, arrays in saved.items():  # MobileNet's layers are all named explicitly
    loaded = [w.numpy() for w in model.get_layer(layer_name).weights]
    assert all(np.array_equal(a, b) for a, b in zip(loaded, arrays)), layer_name
  assert {layer.name for layer in model.layers if layer.weights} - set(saved) == {"head_logits"}


@pytest.mark.slow
def test_imagenet_weights_come_through_keras_applications(mobilenet_h5):
  # keras.applications fetches ImageNet weights with keras.utils.get_file into
  # $KERAS_HOME/models and uses a file already there (MobileNet's have no published hash), so a
  # fresh process with KERAS_HOME pointing at our file runs the real weights="imagenet" path,
  # offline. Any download attempt would fail here: the machine has no internet.
  path, _ = mobilenet_h5
  script = f"""
import logging, sys
import h5py, numpy as np
import models
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
model = models.build("mobilenet_v1", 3, 224, weights="imagenet")
checked = 0
with h5py.File({str(path)!r}, "r") as f:
  for layer_name in f.attrs["layer_names"]:
    group = f[layer_name]
    arrays = [np.asarray(group[n]) for n in group.attrs["weight_names"]]
    if arrays:
      layer = model.get_layer(getattr(layer_name, "decode", lambda: layer_name)())
      weights = layer.trainable_weights + layer.non_trainable_weights
      assert len(weights) == len(arrays), layer.name
      assert all(np.array_equal(np.asarray(w), a) for w, a in zip(weights, arrays)), layer.name
      checked += 1
print("checked", checked, "layers")
"""
  environment = dict(os.environ, KERAS_HOME=str(path.parent.parent), TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True,
                          text=True, timeout=300, check=False,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Keras's ImageNet weights" in result.stdout and "head_logits" in result.stdout
  assert "checked 54 layers" in result.stdout  # conv1 + its BN, 13 x (dw, BN, pw, BN)


@pytest.mark.slow
def test_weights_errors_name_the_file(tmp_path, mobilenet_h5):
  missing = tmp_path / "nowhere.weights.h5"
  with pytest.raises(ValueError, match="does not exist") as error:
    models.build("mobilenet_v1", 3, 32, weights=str(missing))
  assert str(missing) in str(error.value) and "save_weights" in str(error.value)

  not_weights = tmp_path / "labels.txt"
  not_weights.write_text("x")
  with pytest.raises(ValueError, match="not a Keras weights file") as error:
    models.build("mobilenet_v1", 3, 32, weights=not_weights)
  assert str(not_weights) in str(error.value)

  unrelated = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
  unrelated_path = tmp_path / "unrelated.weights.h5"
  unrelated.save_weights(unrelated_path)
  with pytest.raises(ValueError, match="does not fit mobilenet_v1's backbone") as error:
    models.build("mobilenet_v1", 3, 32, weights=unrelated_path)
  assert str(unrelated_path) in str(error.value)

  other_network, _ = mobilenet_h5
  with pytest.raises(ValueError, match="does not fit resnet50's backbone") as error:
    models.build("resnet50", 3, 32, weights=str(other_network))
  assert str(other_network) in str(error.value) and "ResNet50" in str(error.value)


@pytest.mark.parametrize("arguments, expected", [
    (dict(name="resnet51"), ["Unknown model name 'resnet51'", "mobilenet_v1", "Did you mean "
                                                                              "'resnet50'"]),
    (dict(num_classes=1), ["num_classes=1", "integer >= 2"]),
    (dict(num_classes=2.5), ["num_classes=2.5", "integer >= 2"]),
    (dict(image_size=74), ["image_size=74", ">= 75", "InceptionV3", "image_size=75"]),
    (dict(name="resnet50", image_size=31), ["image_size=31", ">= 32"]),
    (dict(image_size=True), ["image_size=True"]),
    (dict(dropout_rate=1.0), ["dropout_rate=1.0", "[0, 1)"]),
    (dict(name="resnet50", image_size=32, aux_logits=True), [
        "aux_logits=True but resnet50 has no auxiliary head", "inception_resnet_v2_se"]),
    (dict(weights=42), ["weights=42", "'imagenet'"]),
    (dict(num_classes=0, image_size=10), ["num_classes=0", "image_size=10"]),  # all problems
])
def test_bad_arguments_explain_themselves(arguments, expected):
  call = dict(name="inception_v3", num_classes=5, image_size=75) | arguments
  with pytest.raises(ValueError) as error:
    models.build(**call)
  for text in expected:
    assert text in str(error.value)


def test_helpers_reject_unknown_names():
  with pytest.raises(ValueError, match="Unknown model name 'vgg16'"):
    models.min_image_size("vgg16")
  with pytest.raises(ValueError, match="Unknown model name 'vgg16'"):
    models.preprocess_input("vgg16")


@pytest.mark.parametrize("name, keras_module", [
    ("inception_v3", keras.applications.inception_v3),
    ("inception_resnet_v2_se", keras.applications.inception_resnet_v2),
    ("mobilenet_v1", keras.applications.mobilenet),
    ("resnet152_drp", keras.applications.resnet),
])
def test_preprocess_input_matches_keras_applications(name, keras_module):
  preprocess = models.preprocess_input(name)
  images = np.random.default_rng(0).uniform(0, 255, (2, 3, 5, 5, 3)).astype("float32")
  expected = keras_module.preprocess_input(images.copy())
  np.testing.assert_allclose(preprocess(tf.constant(images)).numpy(), expected, atol=1e-4)
  np.testing.assert_allclose(preprocess(tf.constant(images[0, 0])).numpy(), expected[0, 0],
                             atol=1e-4)
  # TensorFlow ops only: runs in tf.data and in a traced graph (as in an exported SavedModel).
  dataset = tf.data.Dataset.from_tensor_slices(images[0]).map(preprocess).batch(3)
  np.testing.assert_allclose(next(iter(dataset)).numpy(), expected[0], atol=1e-4)
  traced = tf.function(preprocess, input_signature=[tf.TensorSpec([None, None, None, 3])])
  np.testing.assert_allclose(traced(images[1]).numpy(), expected[1], atol=1e-4)
  if name.startswith("resnet"):  # caffe: BGR order, ImageNet mean removed, no scaling
    pixel = preprocess(tf.constant([10.0, 20.0, 30.0])).numpy()
    np.testing.assert_allclose(pixel, [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-4)
  else:
    np.testing.assert_allclose(preprocess(tf.constant([0.0, 127.5, 255.0])).numpy(), [-1, 0, 1])
