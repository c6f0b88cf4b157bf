"""Recipes by name, train.flags, augmentation flags, and training with a recipe (issue 17)."""

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import zipfile

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import models
from inat_tf import augment
from inat_tf import export
from inat_tf import flag_config
from inat_tf import preprocessing
from inat_tf import recipes
from inat_tf import train as train_lib
from inat_tf import trained_model
from tests import helpers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = tf.constant([7, 11], tf.int64)


def parse(argv):
  """TrainConfig of an inat-train command line, resolved as `inat-train` resolves it."""
  flag_values = flags.FlagValues()
  flag_config.define_flags(train_lib.TrainConfig, flag_values)
  flag_values(recipes.expand(["inat-train"] + argv, flag_values))
  return flag_config.from_flags(train_lib.TrainConfig, flag_values)


# -- recipes by name ------------------------------------------------------------------------------

def test_every_network_has_a_scratch_recipe_and_every_modern_one_a_modern_recipe():
  names = recipes.available()
  assert {n for n in names if n.startswith("scratch/")} == {
      f"scratch/{m}" for m in models.MODEL_NAMES}
  assert {n for n in names if n.startswith("modern/")} == {
      f"modern/{m}" for m in models.MODEL_NAMES if m.startswith(("efficientnetv2", "convnext"))}
  assert len([n for n in names if n.startswith("table3/")]) == 9


@pytest.mark.parametrize("name", recipes.available())
def test_every_recipe_resolves_and_parses_outside_the_repository(name, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = parse([f"--recipe={name}", "--data_dir=D", "--model_dir=M"])
  group, network = name.split("/")
  assert config.model == network and config.recipe == name
  # The paper trains every network at 299 px; the other recipes use each network's ImageNet size.
  assert config.image_size == (
      299 if group == "table3" else models.registry.spec(network).default_image_size)
  augment.config_from(config).validate()
  if group == "scratch":
    assert (config.weights, config.optimizer, config.lr_schedule) == ("none", "adamw", "cosine")
    assert config.learning_rate == 0.001 and config.warmup_epochs > 0
  if group == "modern":
    assert (config.weights, config.optimizer, config.lr_schedule) == ("imagenet", "adamw", "cosine")
    assert config.warmup_epochs > 0 and config.label_smoothing > 0
    assert config.randaugment_ops > 0 and config.mixup_alpha > 0 and config.cutmix_factor > 0


def test_flags_given_before_or_after_a_recipe_override_it():
  config = parse(["--image_size=64", "--recipe=table3/inception_v3", "--epochs=2",
                  "--data_dir=D", "--model_dir=M"])
  assert (config.image_size, config.epochs) == (64, 2)
  assert (config.optimizer, config.learning_rate, config.aux_logits) == ("rmsprop", 0.0045, True)
  spaced = parse(["--recipe", "scratch/resnet50", "--learning_rate", "0.01", "--data_dir=D",
                  "--model_dir=M"])
  assert (spaced.model, spaced.learning_rate, spaced.recipe) == ("resnet50", 0.01,
                                                                 "scratch/resnet50")


# -- regularisation that follows the budget (recipes/budget.py, issue 31) -------------------------

SCALED = ("crop_min_area", "crop_min_aspect_ratio", "crop_max_aspect_ratio", "label_smoothing",
          "weight_decay", "eval_crop_fraction")


def _scaled(config):
  return tuple(getattr(config, name) for name in SCALED)


def test_a_scratch_recipe_at_a_quarter_of_its_epochs_gets_a_quarter_of_its_regularisation():
  full = parse(["--recipe=scratch/resnet50", "--data_dir=D", "--model_dir=M"])
  assert _scaled(full) == (0.08, 0.75, 4 / 3, 0.1, 0.05, 0.875)  # the file's own, exactly
  quarter = parse(["--recipe=scratch/resnet50", "--epochs=15", "--data_dir=D", "--model_dir=M"])
  assert _scaled(quarter) == pytest.approx(
      (1 - 0.25 * 0.92, 0.75 ** 0.25, (4 / 3) ** 0.25, 0.025, 0.0125, 1 - 0.25 * 0.125),
      rel=1e-3)
  longer = parse(["--recipe=scratch/resnet50", "--epochs=120", "--data_dir=D", "--model_dir=M"])
  assert _scaled(longer) == _scaled(full)
  # The run: Inception V3 for 30 epochs gets half (it had crops down to 8 %, smoothing
  # 0.1 and decay 0.05, and ended at 57 % train top-1).
  half = parse(["--recipe=scratch/inception_v3", "--epochs=30", "--data_dir=D", "--model_dir=M"])
  assert (half.crop_min_area, half.label_smoothing, half.weight_decay) == (0.54, 0.05, 0.025)
  # Given flags win, before or after the recipe; the others still follow the budget.
  given = parse(["--crop_min_area=0.08", "--recipe=scratch/resnet50", "--epochs=15",
                 "--label_smoothing=0.1", "--data_dir=D", "--model_dir=M"])
  assert (given.crop_min_area, given.label_smoothing) == (0.08, 0.1)
  assert given.weight_decay == quarter.weight_decay


@pytest.mark.parametrize("name", ["modern/convnext_tiny", "table3/inception_v3"])
def test_only_scratch_recipes_follow_the_budget(name):
  short = parse([f"--recipe={name}", "--epochs=3", "--data_dir=D", "--model_dir=M"])
  long = parse([f"--recipe={name}", "--epochs=300", "--data_dir=D", "--model_dir=M"])
  assert _scaled(short) == _scaled(long)


def test_budget_strength_is_linear_in_epochs_and_capped():
  from inat_tf.recipes import budget
  assert [budget.strength(e, 60) for e in (0, 15, 30, 60, 90)] == [0, 0.25, 0.5, 1, 1]
  values = budget.scaled_values({"crop_min_area": 0.08, "crop_min_aspect_ratio": 0.75,
                                 "crop_max_aspect_ratio": 4 / 3}, 30, 60)
  assert values["crop_min_area"] == pytest.approx(0.54)
  # Aspect ratios shrink on a log axis: still each other's inverse, as 3/4 and 4/3.
  assert values["crop_min_aspect_ratio"] * values["crop_max_aspect_ratio"] == pytest.approx(
      1, rel=1e-3)
  with pytest.raises(ValueError, match="needs its own --epochs"):
    budget.strength(10, 0)


def test_a_recipe_inside_a_flagfile_applies(tmp_path):
  flagfile = tmp_path / "mine.flags"
  flagfile.write_text("--recipe=scratch/mobilenet_v1\n--epochs=3\n")
  config = parse([f"--flagfile={flagfile}", "--data_dir=D", "--model_dir=M"])
  assert (config.model, config.optimizer, config.epochs) == ("mobilenet_v1", "adamw", 3)


@pytest.mark.parametrize("argv, message", [
    (["--recipe=table3/inception_v4"], "Did you mean 'table3/inception_v3'"),
    (["--recipe=inception_v3"], "Unknown recipe 'inception_v3'"),
    (["--recipe=scratch/resnet50", "--recipe=scratch/resnet101"], "Two recipes given"),
    (["--recipe"], "--recipe needs a name"),
])
def test_recipe_mistakes_are_named(argv, message):
  flag_values = flags.FlagValues()
  flag_config.define_flags(train_lib.TrainConfig, flag_values)
  with pytest.raises(recipes.RecipeError, match=re.escape(message)):
    recipes.expand(["inat-train"] + argv, flag_values)


def test_train_flags_text_reproduces_the_config(tmp_path):
  config = parse(["--recipe=modern/convnext_tiny", "--data_dir=/data with space",
                  "--model_dir=M", "--tpu=", "--noaux_logits", "--learning_rate=0.000123456789",
                  "--crop_max_aspect_ratio=1.7", "--nohorizontal_flip", "--seed=5"])
  text = recipes.flagfile_text(dataclasses.asdict(config), ["a header"])
  assert text.startswith("# a header\n--recipe=modern/convnext_tiny\n")
  path = tmp_path / "train.flags"
  path.write_text(text)
  assert parse([f"--flagfile={path}"]) == config


@pytest.mark.slow
def test_a_non_editable_install_ships_every_recipe(tmp_path):
  """The wheel (what `pip install .` installs) holds every recipe, and they resolve from it."""
  wheels, target = tmp_path / "wheels", tmp_path / "site"
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "-q", "-w", str(wheels), REPO], check=True, cwd=tmp_path)
  wheel = next(wheels.glob("inat_tf-*.whl"))
  shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".flags")}
  assert shipped == {f"inat_tf/recipes/{n}.flags" for n in recipes.available()}
  subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                  str(target), str(wheel)], check=True, cwd=tmp_path)
  script = ("import inat_tf.recipes as r, os; assert r.__file__.startswith(os.environ['T']); "
            "print(len(r.available())); print(open(r.path('table3/resnet152_drp')).read())")
  out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                       text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target),
                                                     "T": str(target)}).stdout
  assert out.splitlines()[0] == str(len(recipes.available()))
  assert "--model=resnet152_drp" in out


# -- augmentation ---------------------------------------------------------------------------------

def _jpeg(width, height):
  out = io.BytesIO()
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
                  ).save(out, "JPEG")
  return tf.constant(out.getvalue())


JPEG = _jpeg(160, 96)


def _eager_and_in_tf_data(function, *args):
  eager = function(*args)
  in_data = next(iter(tf.data.Dataset.from_tensors(args).map(function)))
  return eager, in_data


def _assert_equal(a, b):
  for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
    np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-4)


def test_crop_ranges_bound_the_window_eagerly_and_in_tf_data():
  def windows(seed):
    return tf.stack([preprocessing.random_crop_window(
        [96, 160, 3], tf.random.experimental.stateless_fold_in(seed, i),
        area_range=(0.5, 0.6), aspect_ratio_range=(1.9, 2.1)) for i in range(8)])
  eager, in_data = _eager_and_in_tf_data(windows, SEED)
  _assert_equal(eager, in_data)
  height, width = eager.numpy()[:, 2], eager.numpy()[:, 3]
  area = height * width / (96 * 160)
  assert (area > 0.45).all() and (area < 0.65).all()  # integer windows: a little slack
  assert (abs(width / height - 2) < 0.15).all()


def test_flip_off_and_eval_crop_fraction():
  no_flip = augment.AugmentConfig(crop_min_area=1.0, horizontal_flip=False)
  images = [preprocessing.train_image(JPEG, 32, tf.constant([s, 1], tf.int64), augment=no_flip)
            for s in range(6)]
  for image in images[1:]:  # whole image, never flipped: every seed gives the same view
    _assert_equal(image, images[0])
  flip = dataclasses.replace(no_flip, horizontal_flip=True)
  flipped = [preprocessing.train_image(JPEG, 32, tf.constant([s, 1], tf.int64), augment=flip)
             for s in range(6)]
  assert any(not np.allclose(f.numpy(), images[0].numpy()) for f in flipped)
  assert preprocessing.center_crop_window(tf.constant([96, 160, 3]), 0.5).numpy().tolist() == [
      24, 56, 48, 48]
  eager, in_data = _eager_and_in_tf_data(lambda b: preprocessing.eval_image(b, 32, 0.5), JPEG)
  _assert_equal(eager, in_data)
  assert not np.allclose(eager.numpy(), preprocessing.eval_image(JPEG, 32).numpy())


def test_rand_augment_is_keras_seeded_per_example_eagerly_and_in_tf_data():
  layer = augment.rand_augment_layer(augment.AugmentConfig(randaugment_ops=2))
  assert isinstance(layer, keras.layers.RandAugment)
  image = preprocessing.eval_image(JPEG, 32)

  def run(image, seed):
    return augment.apply(layer, image, seed)
  eager, in_data = _eager_and_in_tf_data(run, image, SEED)
  _assert_equal(eager, in_data)
  assert eager.shape == (32, 32, 3)
  others = [run(image, tf.constant([s, 3], tf.int64)).numpy() for s in range(4)]
  assert any(not np.allclose(o, eager.numpy()) for o in others)
  assert augment.rand_augment_layer(augment.AugmentConfig()) is None


@pytest.mark.parametrize("config", [augment.AugmentConfig(mixup_alpha=0.4),
                                    augment.AugmentConfig(cutmix_factor=1.0),
                                    augment.AugmentConfig(mixup_alpha=0.4, cutmix_factor=1.0)])
def test_mixup_and_cutmix_mix_images_and_labels_alike(config):
  layers = augment.mix_layers(config)
  images = tf.random.stateless_uniform([8, 16, 16, 3], [1, 2], 0, 255)
  one_hot = tf.one_hot(tf.range(8) % 4, 4)

  def run(images, one_hot, seed):
    return augment.mix_batch(layers, images, one_hot, seed)
  eager, in_data = _eager_and_in_tf_data(run, images, one_hot, SEED)
  _assert_equal(eager, in_data)
  mixed, labels = eager
  assert mixed.shape == images.shape and labels.shape == (8, 4) and labels.dtype == tf.float32
  np.testing.assert_allclose(tf.reduce_sum(labels, -1).numpy(), 1.0, atol=1e-5)
  assert not np.allclose(labels.numpy(), one_hot.numpy())  # some labels are mixed
  assert float(tf.reduce_min(mixed)) >= 0 and float(tf.reduce_max(mixed)) <= 255


@pytest.mark.parametrize("field, value, message", [
    ("crop_min_area", 0.0, "crop area range"), ("crop_max_area", 1.5, "crop area range"),
    ("crop_min_aspect_ratio", 2.0, "aspect-ratio range"), ("randaugment_ops", -1, "ops"),
    ("randaugment_magnitude", 2.0, "magnitude"), ("mixup_alpha", -1.0, "mixup_alpha"),
    ("cutmix_factor", 1.5, "cutmix_factor"),
])
def test_bad_augmentation_settings_are_named(field, value, message):
  with pytest.raises(ValueError, match=message):
    augment.AugmentConfig(**{field: value}).validate()


# -- training with a recipe (the modern backbones themselves: tests/test_models.py) ---------------

@pytest.mark.slow
def test_a_scratch_recipe_does_not_diverge(tiny_built_dir, tmp_path):
  """MobileNet V1 with scratch/mobilenet_v1 at 32 px: the loss falls and stays finite; the model
  dir's train.flags gives back the same config, and records the recipe and version."""
  losses = []

  def log(message):
    match = re.search(r"^step .* loss ([-\w.]+) ", message)
    if match:
      losses.append(float(match.group(1)))
  config = parse(["--recipe=scratch/mobilenet_v1", f"--data_dir={tiny_built_dir}",
                  f"--model_dir={tmp_path}", "--image_size=32", "--train_steps=60",
                  "--log_steps=10", "--eval_every_epochs=1000"])
  # 60 steps of 2 per epoch (52 images, batch 32): 30 of the recipe's 60 epochs, half strength.
  assert config.crop_min_area == pytest.approx(0.54) and config.label_smoothing == 0.05
  train_lib.train(config, log=log)
  # Measured 2.98 -> 2.39, 2.80 -> 2.53 and 2.84 -> 3.03 -> 2.53 (13 classes, label smoothing
  # 0.1; CPU training is not bit-deterministic, and a 10-step window early on can tick up 7 %):
  # it falls at least 10 % within the second half, ends below the start, and never rises 25 %
  # above it (divergence, as with RMSProp at 0.1 for Inception V3, went from ~3 to 17).
  assert len(losses) == 6 and np.isfinite(losses).all(), losses
  assert min(losses[3:]) < 0.9 * losses[0] and losses[-1] < losses[0], losses
  assert max(losses) <= 1.25 * losses[0], losses
  flagfile = (tmp_path / "train.flags").read_text()
  assert re.search(r"^# inat-tf \S+, recipe scratch/mobilenet_v1$", flagfile, re.M), flagfile
  assert parse([f"--flagfile={tmp_path / 'train.flags'}"]) == config
  # Training longer in the same model dir resumes the same run: its budget-scaled values stay
  # (fresh, 120 steps would be the full recipe); with --overwrite they follow the new budget.
  longer = ["--recipe=scratch/mobilenet_v1", f"--data_dir={tiny_built_dir}",
            f"--model_dir={tmp_path}", "--image_size=32", "--train_steps=120"]
  assert _scaled(parse(longer)) == _scaled(config)
  assert parse(longer + ["--overwrite"]).crop_min_area == 0.08


@pytest.mark.slow
def test_a_modern_backbone_trains_with_its_recipe_then_exports_and_converts(
    tiny_built_dir, tmp_path):
  """efficientnetv2_b0 through modern/efficientnetv2_b0 (RandAugment, MixUp/CutMix: soft labels)
  at 32 px, random weights (no download): trains, saves, reloads, exports with its eval crop,
  converts to TFLite."""
  model_dir, export_dir = tmp_path / "model", tmp_path / "export"
  config = parse(["--recipe=modern/efficientnetv2_b0", f"--data_dir={tiny_built_dir}",
                  f"--model_dir={model_dir}", "--weights=none", "--image_size=32",
                  "--batch_size=8", "--train_steps=1", "--eval_every_epochs=1000",
                  "--eval_crop_fraction=0.8"])
  summary = train_lib.train(config, log=lambda m: None)
  assert summary["steps"] == 1 and np.isfinite(summary["final_val_top1"])
  recorded = json.loads((model_dir / "train_config.json").read_text())
  assert recorded["recipe"] == "modern/efficientnetv2_b0" and recorded["inat_tf_version"]

  trained = trained_model.load(str(model_dir), "final")
  assert trained.eval_crop_fraction == 0.8
  info = export.export(str(model_dir), str(export_dir), which="final", tflite=False)
  assert info["eval_crop_fraction"] == 0.8 and info["model"] == "efficientnetv2_b0"
  served = tf.saved_model.load(str(export_dir / "saved_model" / "1"))  # TF Serving's version dir
  image = tf.io.encode_jpeg(tf.cast(tf.random.stateless_uniform([48, 64, 3], [1, 2], 0, 255),
                                    tf.uint8))
  scores = served.signatures["serving_default"](image_bytes=tf.stack([image]))["scores"].numpy()
  view = preprocessing.eval_image(image, 32, 0.8)[tf.newaxis]  # the same crop as inat-eval
  expected = tf.nn.softmax(trained.model(trained.normalize(view), training=False)).numpy()
  np.testing.assert_allclose(scores[0], np.sort(expected[0])[::-1][:len(scores[0])], atol=1e-4)
  lite = helpers.tflite_probabilities(  # model.tflite as inat-export converts it
      helpers.float_tflite(trained, export_dir / "model.tflite"), view.numpy())
  np.testing.assert_allclose(lite, expected, atol=1e-4)
