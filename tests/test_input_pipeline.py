"""The tf.data pipeline and its preprocessing functions, on the built sample."""

import collections
import dataclasses
import io
import os
import re
import signal
import shutil
import socket

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import models
from inat_tf import input_pipeline
from inat_tf import preprocessing
from inat_tf import records
from inat_tf import schema
from inat_tf.label_map import LabelMap
from tests import helpers
from tests.helpers import console_script

SEED = tf.constant([7, 11], tf.int64)


def _jpeg(width, height):
  rng = np.random.default_rng(0)
  out = io.BytesIO()
  Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(out, "JPEG")
  return tf.constant(out.getvalue())


JPEG = _jpeg(160, 96)

# Each function with fixed arguments, and the shape its output must have.
FUNCTIONS = {
    "decode_and_random_crop": (lambda b, s: preprocessing.decode_and_random_crop(b, 64, s),
                               (64, 64, 3)),
    "train_image": (lambda b, s: preprocessing.train_image(b, 64, s), (64, 64, 3)),
    "train_image_colour": (lambda b, s: preprocessing.train_image(b, 64, s,
                                                                  color_distortion=True),
                           (64, 64, 3)),
    "train_image_boxes": (lambda b, s: preprocessing.train_image(
        b, 64, s, boxes=tf.constant([[0.1, 0.2, 0.6, 0.7]])), (64, 64, 3)),
    "eval_image": (lambda b, s: preprocessing.eval_image(b, 64), (64, 64, 3)),
    "random_flip": (lambda b, s: preprocessing.random_flip(tf.cast(tf.io.decode_jpeg(b),
                                                                   tf.float32), s), (96, 160, 3)),
    "distort_color": (lambda b, s: preprocessing.distort_color(tf.cast(tf.io.decode_jpeg(b),
                                                                       tf.float32), s),
                      (96, 160, 3)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_preprocessing_eagerly_and_in_tf_data_agree(name):
  function, shape = FUNCTIONS[name]
  eager = function(JPEG, SEED)
  in_data = next(iter(tf.data.Dataset.from_tensors((JPEG, SEED)).map(function)))
  assert eager.shape == shape and eager.dtype == tf.float32
  assert 0.0 <= float(tf.reduce_min(eager)) and float(tf.reduce_max(eager)) <= 255.0
  np.testing.assert_allclose(eager.numpy(), in_data.numpy(), atol=1e-3)


def test_random_crops_lie_inside_the_image_and_vary():
  shape = tf.constant([96, 160, 3])
  windows = set()
  for i in range(300):
    y, x, h, w = preprocessing.random_crop_window(shape, tf.constant([i, 1])).numpy().tolist()
    assert 0 <= y and 0 <= x and h >= 1 and w >= 1 and y + h <= 96 and x + w <= 160
    assert 0.08 * 96 * 160 * 0.9 <= h * w <= 96 * 160
    windows.add((y, x, h, w))
  assert len(windows) > 250


def test_box_hints_keep_the_animal_in_the_crop():
  shape = tf.constant([100, 100, 3])
  box = tf.constant([[0.7, 0.7, 0.9, 0.9]])  # a small animal in a corner
  for i in range(100):
    y, x, h, w = preprocessing.random_crop_window(shape, tf.constant([i, 2]), boxes=box).numpy()
    overlap = max(0, min(y + h, 90) - max(y, 70)) * max(0, min(x + w, 90) - max(x, 70))
    assert overlap >= 0.1 * 400 - 1


def test_center_crop_window():
  assert preprocessing.center_crop_window(tf.constant([100, 200, 3])).numpy().tolist() == [
      7, 57, 87, 87]


def _config(built_dir, **overrides):
  return dataclasses.replace(input_pipeline.InputConfig(
      data_dir=str(built_dir), model_name="inception_v3", image_size=75, global_batch_size=16),
      **overrides)


@pytest.mark.slow
def test_train_batches_have_static_shapes_and_model_ranges(built_dir):
  label_map = LabelMap.load(str(built_dir))
  for model_name, low, high in (("inception_v3", -1.0, 1.0), ("resnet50", -124.0, 152.0)):
    ds = input_pipeline.train_dataset(_config(built_dir, model_name=model_name))
    assert ds.element_spec[0].shape == (16, 75, 75, 3)
    assert ds.element_spec[1].shape == (16,)
    for images, labels in ds.take(3):
      assert low <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= high
      assert 0 <= int(tf.reduce_min(labels)) and int(tf.reduce_max(labels)) < label_map.num_classes
  bf16 = input_pipeline.train_dataset(_config(built_dir, dtype="bfloat16"))
  assert bf16.element_spec[0].dtype == tf.bfloat16


@pytest.mark.slow
def test_deterministic_mode_repeats_itself(built_dir):
  config = _config(built_dir, deterministic=True, seed=3, color_distortion=True)
  first = [b[1].numpy().tolist() for b in input_pipeline.train_dataset(config).take(4)]
  again = [b[1].numpy().tolist() for b in input_pipeline.train_dataset(config).take(4)]
  other = [b[1].numpy().tolist() for b in input_pipeline.train_dataset(
      dataclasses.replace(config, seed=4)).take(4)]
  assert first == again and first != other


def _label_histogram(built_dir, sampling, batches=150):
  histogram = collections.Counter()
  ds = input_pipeline.train_dataset(_config(built_dir, sampling=sampling, global_batch_size=32,
                                            image_size=75, shuffle_buffer=256))
  for _, labels in ds.take(batches):
    histogram.update(labels.numpy().tolist())
  return histogram


@pytest.mark.slow
def test_long_tail_samplers_reach_their_target_distributions(built_dir):
  counts = np.array(LabelMap.load(str(built_dir)).train_counts, np.float64)
  draws = 150 * 32
  for sampling, power in (("balanced", 0.0), ("sqrt", 0.5), ("uniform", 1.0)):
    histogram = _label_histogram(built_dir, sampling)
    observed = np.array([histogram[i] for i in range(len(counts))], np.float64)
    expected = draws * counts ** power / (counts ** power).sum()
    chi_square = ((observed - expected) ** 2 / expected).sum()
    # 39 degrees of freedom: the 99.9 % quantile is 72. Far from the other targets.
    assert chi_square < 80, (sampling, chi_square)
    if sampling == "balanced":
      assert observed.max() / observed.min() < 1.8
      assert ((observed - draws * counts / counts.sum()) ** 2 /
              (draws * counts / counts.sum())).sum() > 500  # not the uniform-over-images one


@pytest.mark.slow
def test_sharding_over_two_pipelines_is_disjoint_and_complete(built_dir):
  for split in ("train", "val"):
    every = [int(e[schema.IMAGE_ID]) for e in records.examples(str(built_dir), split,
                                                              [schema.IMAGE_ID])]
    seen = []
    for pipeline in (0, 1):
      context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                           num_replicas_in_sync=2)
      ds = input_pipeline.eval_dataset(_config(built_dir, split=split), context, with_ids=True)
      seen.append([int(i) for batch in ds for i in batch["image_id"].numpy()])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(every)
  # 3 val shards over 4 pipelines: by record, with a warning.
  ids = []
  for pipeline in range(4):
    context = tf.distribute.InputContext(num_input_pipelines=4, input_pipeline_id=pipeline)
    ds = input_pipeline.eval_dataset(_config(built_dir, split="val"), context, with_ids=True)
    ids += [int(i) for batch in ds for i in batch["image_id"].numpy()]
  assert len(ids) == len(set(ids)) == 603


@pytest.mark.slow
def test_train_pipelines_get_their_share_of_the_global_batch(built_dir):
  context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                       num_replicas_in_sync=2)
  ds = input_pipeline.train_dataset(_config(built_dir, global_batch_size=16), context)
  assert ds.element_spec[0].shape[0] == 8


@pytest.mark.slow
def test_test_split_keeps_ids_and_label_minus_one(built_dir):
  ds = input_pipeline.eval_dataset(_config(built_dir, split="test"), with_ids=True)
  labels, ids = [], []
  for batch in ds:
    labels += batch["label"].numpy().tolist()
    ids += batch["image_id"].numpy().tolist()
  assert set(labels) == {-1} and len(ids) == len(set(ids)) == 603


@pytest.mark.slow
def test_padded_eval_batches_weigh_padding_zero(built_dir):
  ds = input_pipeline.eval_dataset(_config(built_dir, split="val", global_batch_size=50),
                                   pad_final_batch=True)
  batches = list(ds)
  assert all(images.shape[0] == 50 for images, _, _ in batches)
  assert sum(float(tf.reduce_sum(w)) for _, _, w in batches) == 603
  _, labels, weights = batches[-1]
  assert set(labels.numpy()[weights.numpy() == 0]) == {-1}
  # Species held out of training (inat-train passes those without train images) weigh 0 too,
  # so val scores what inat-eval scores.
  ds = input_pipeline.eval_dataset(_config(built_dir, split="val", global_batch_size=50,
                                           unscored_classes=(0, 3)), pad_final_batch=True)
  labels, weights = (np.concatenate(parts) for parts in zip(
      *[(l.numpy(), w.numpy()) for _, l, w in ds]))
  assert set(labels[weights == 0]) == {-1, 0, 3}
  assert weights.sum() == np.sum((labels >= 0) & ~np.isin(labels, [0, 3])) > 0


@pytest.mark.slow
def test_synthetic_mode_is_one_random_batch_repeated(built_dir):
  synthetic = input_pipeline.train_dataset(_config(built_dir, synthetic=True))
  first, second = list(synthetic.take(2))
  assert first[0].shape == (16, 75, 75, 3) and first[1].shape == (16,)
  np.testing.assert_array_equal(first[0], second[0])
  assert -1 <= float(tf.reduce_min(first[0])) < float(tf.reduce_max(first[0])) <= 1


@pytest.mark.parametrize("cache", [True, False])
def test_cache_serves_later_epochs_from_memory(tiny_built_dir, tmp_path, cache):
  """With cache, the epochs after the first read no file (the shards are gone by then); without,
  the same run fails: a test that caching is really used, not just accepted as a setting."""
  data_dir = tmp_path / "data"
  shutil.copytree(tiny_built_dir, data_dir)
  config = _config(data_dir, split="val", global_batch_size=8, cache=cache)
  evaluation = input_pipeline.eval_dataset(config, with_ids=True)
  first = [int(i) for batch in evaluation for i in batch["image_id"]]
  training = iter(input_pipeline.train_dataset(dataclasses.replace(config, shuffle_buffer=1)))
  next(training)  # the buffer of one: the first epoch is read as the batches are drawn
  epoch_batches = -(-len(first) // 8)
  for _ in range(epoch_batches):  # past the end of the first epoch: its cache is complete
    next(training)
  for path in records.shard_files(str(data_dir), "val"):
    os.remove(path)

  def read_again():
    again = [int(i) for batch in evaluation for i in batch["image_id"]]
    for _ in range(4 * epoch_batches):
      next(training)
    return again
  if cache:
    assert read_again() == first
  else:
    with pytest.raises(tf.errors.NotFoundError):
      read_again()


@pytest.mark.slow
def test_bad_settings_are_named(built_dir, tmp_path):
  with pytest.raises(ValueError, match="sampling='inverse'"):
    input_pipeline.train_dataset(_config(built_dir, sampling="inverse"))
  with pytest.raises(ValueError, match="image_size=40 is below inception_v3's minimum of 75"):
    input_pipeline.train_dataset(_config(built_dir, image_size=40))
  with pytest.raises(FileNotFoundError, match="inat-build"):
    input_pipeline.train_dataset(_config(tmp_path))


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_tf_data_service_on_loopback(built_dir):
  """A dispatcher and a worker as real processes; training batches come through them."""
  port = _free_port()
  servers = [helpers.start([console_script("inat-data-service"), "--role=dispatcher",
                            f"--port={port}"])]
  try:
    assert "dispatcher serving on" in servers[0].first_stdout_line()
    servers.append(helpers.start(
        [console_script("inat-data-service"), "--role=worker", f"--dispatcher=localhost:{port}",
         f"--port={_free_port()}"]))
    assert re.search(r"worker serving on localhost:\d+", servers[1].first_stdout_line())
    ds = input_pipeline.train_dataset(_config(built_dir, data_service=f"localhost:{port}"))
    batches = list(ds.take(3))
    assert [b[0].shape for b in batches] == [(16, 75, 75, 3)] * 3
  finally:
    for server in servers:
      server.send_signal(signal.SIGKILL)
      server.wait()
