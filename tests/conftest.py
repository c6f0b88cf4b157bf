"""Shared fixtures: generated downloads, their builds, and one trained model, once per session.

Tests run on two pytest-xdist workers (pytest.ini); the tests that use the trained model are in
one xdist group (TRAINED_MODEL_GROUP), so it is trained once.
"""

import atexit
import os
import sys

import pytest

TRAINED_MODEL_GROUP = pytest.mark.xdist_group("trained_model")
TRAINED_DIR_STEPS = 200  # trained_dir's training length, which some tests check

from inat_tf import sample_download


def build_download(raw_dir, data_dir, examples_per_shard):
  """inat-build of raw_dir into data_dir, which it returns; any rejected image fails the test."""
  from tfrecord_builder import build  # pylint: disable=g-import-not-at-top  (imports TensorFlow)
  status, summary = build.build(build.BuildConfig(raw_dir=str(raw_dir), data_dir=str(data_dir),
                                                  examples_per_shard=examples_per_shard),
                                log=lambda m: None)
  assert status == 0, summary
  return data_dir


def make_and_build(tmp_path_factory, name, sample_config, examples_per_shard=32):
  """A generated download `name`_download per sample_config, built into `name`_built."""
  raw = tmp_path_factory.mktemp(f"{name}_download")
  sample_download.make_sample(str(raw), sample_config)
  return build_download(raw, tmp_path_factory.mktemp(f"{name}_built"), examples_per_shard)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
  """The default sample download: 40 species, ~2,500 images at most 128 px."""
  path = tmp_path_factory.mktemp("sample_download")
  sample_download.make_sample(str(path), sample_download.SampleConfig())
  return path



@pytest.fixture(scope="session")
def built_dir(sample_dir, tmp_path_factory):
  """The sample built by inat-build, 300 examples per shard: train 5 shards, val 3, test 3."""
  return build_download(sample_dir, tmp_path_factory.mktemp("built"), examples_per_shard=300)


@pytest.fixture(scope="session")
def tiny_built_dir(tmp_path_factory):
  """13 species x 4 train images at most 64 px, built: small enough to overfit in a minute."""
  return make_and_build(tmp_path_factory, "tiny", sample_download.SampleConfig(
      num_species=13, min_train_per_species=4, max_train_per_species=4, max_side=64, seed=1))


@pytest.fixture(scope="session")
def trained_dir(tiny_built_dir, tmp_path_factory):
  """MobileNet V1 trained from scratch on the tiny set until it knows it (~100 % train top-1)."""
  from inat_tf import train  # pylint: disable=g-import-not-at-top
  model_dir = tmp_path_factory.mktemp("trained")
  train.train(train.TrainConfig(
      data_dir=str(tiny_built_dir), model_dir=str(model_dir), model="mobilenet_v1",
      image_size=64, batch_size=32, weights="none", optimizer="rmsprop", learning_rate=0.15,
      # Cosine decay to zero settles the last steps: with a constant rate this reached 88-98 %.
      # 150 steps gave 96-100 % train top-1 in seven runs alone but 88.5 % once in the suite;
      # 200 gave 100 % in three.
      train_steps=TRAINED_DIR_STEPS, lr_schedule="cosine", bn_momentum=0.9, log_steps=50,
      eval_every_epochs=1000),
      log=lambda message: None)
  return model_dir


# The location prior's settings for tests: small and fast (the paper's width 256 and 4 blocks are
# the command's defaults).
QUICK_GEO = dict(batch_size=16, learning_rate=0.005, width=32, num_blocks=2, log_steps=1000)


@pytest.fixture(scope="session")
def geo_dir(tiny_built_dir, tmp_path_factory):
  """A location prior (inat-train-geo) trained on tiny_built_dir's train places, 30 epochs."""
  from inat_tf.geo import train as geo_train  # pylint: disable=g-import-not-at-top
  path = tmp_path_factory.mktemp("geo")
  geo_train.train(geo_train.GeoTrainConfig(str(tiny_built_dir), str(path), epochs=30,
                                           **QUICK_GEO), log=lambda m: None)
  return path


# Fixtures that generate, build or train: a test that asks for one is in the slow tier even if
# its author forgot the mark, so the fast tier (-m "not slow") stays fast.
SLOW_FIXTURES = {"sample_dir", "built_dir", "tiny_built_dir", "trained_dir"}


def pytest_collection_modifyitems(items):
  for item in items:
    if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
      item.add_marker(pytest.mark.slow)
  # Longest first, so the two workers end together: the trained-model group (one worker runs it
  # all, ~2.5 minutes), then the detector and cli groups (~50 s each) and the slow tests that take 8 s or
  # more, then the other slow tests, then the quick ones that fill the gaps. Stable: each file's
  # own order is kept within each part.
  def part(item):
    marker = item.get_closest_marker("xdist_group")
    group = marker.args[0] if marker and marker.args else None
    if group == "trained_model":
      return 0
    if group in ("detector", "cli") or item.nodeid.split("::", 1)[-1] in LONGEST_TESTS:
      return 1
    return 2 if item.get_closest_marker("slow") else 3
  items.sort(key=part)


# Tests outside the shared groups measured at 8 s or more on two busy cores (pytest --durations).
# Only the order depends on this list: a renamed test just runs in its file's place, later.
LONGEST_TESTS = {
    "test_every_stage_runs_at_a_tiny_scale",  # ~2 minutes: ten stages, each a fresh process
    "test_head_rank_trains_evaluates_and_exports_to_tflite",
    "test_larger_setting_at_full_resolution",
    "test_a_modern_backbone_trains_with_its_recipe_then_exports_and_converts",
    "test_quickstart_runs_every_stage_and_reuses_them",
    "test_aux_logits_train_and_are_dropped_from_saved_models",
    "test_loss_and_val_count_do_not_depend_on_the_number_of_replicas",
    "test_kill_minus_nine_then_resume_continues_the_step_count",
    "test_ctrl_c_then_truncated_checkpoint_then_overwrite",
    "test_a_scratch_recipe_does_not_diverge",
    "test_two_workers_on_loopback_end_with_identical_weights",
    "test_head_only_phase_leaves_the_backbone_as_loaded",
    "test_model_files_tensorboard_and_ema_on_a_gfile_filesystem",
    "test_remedy_flags_train_and_val_reports_shot_buckets",
    "test_a_failing_stage_stops_the_quickstart_with_its_exit_status",
    "test_kill_minus_nine_then_rerun_gives_identical_shards",
    "test_modern_backbone_is_keras_applications_network[convnext_tiny-round_trip-tflite]",
}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
  """An xdist worker leaves without Python's finalisation once its results are sent: tearing
  down TensorFlow's state took up to 6 s after the last test, with both cores otherwise idle.
  Registered last, this exit handler runs first; the kernel closes the zygotes' pipes."""
  if os.environ.get("PYTEST_XDIST_WORKER"):
    def leave():
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(session.exitstatus)  # pylint: disable=protected-access
    atexit.register(leave)
