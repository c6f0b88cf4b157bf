"""Fast tier: the pure functions and small-graph ops behind the commands, on hand-made inputs.

Data-dir and model-dir contracts, published facts, the shared run plumbing, the one centre crop
shared by eval and export, resampling weights, the label map, the scorer and the report summary.
"""

import fnmatch
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from inat_tf import editions
from inat_tf import evaluate
from inat_tf import input_pipeline
from inat_tf import label_map as label_map_lib
from inat_tf import preprocessing
from inat_tf import records
from inat_tf import run_common
from inat_tf import score
from inat_tf import trained_model
from tfrecord_builder import layout


def _encoded(pixels, fmt):
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, fmt)
  return out.getvalue()


# -- one centre crop and resize, for evaluation and serving ------------------------------------

def test_serving_views_equal_the_evaluation_view():
  """A PNG (export's decode path), an image tensor (serving_images) and a batch all give exactly
  the evaluation view of the JPEG whose pixels they hold, at any size and chroma subsampling."""
  rng = np.random.default_rng(0)
  for height, width, subsampling in ((50, 70, 2), (64, 34, 2), (41, 64, 1), (57, 57, 0),
                                     (96, 80, 2), (33, 130, 2)):
    smooth = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(
        (width, height), Image.BILINEAR)  # colour edges across the crop's borders
    out = io.BytesIO()
    smooth.save(out, "JPEG", subsampling=subsampling)
    jpeg = out.getvalue()
    expected = preprocessing.eval_image(jpeg, 32).numpy()
    decoded = tf.io.decode_jpeg(jpeg, channels=3).numpy()
    assert expected.shape == (32, 32, 3)
    np.testing.assert_array_equal(
        preprocessing.center_crop_and_resize(tf.constant(decoded, tf.float32), 32), expected)
    batch = preprocessing.center_crop_and_resize(
        tf.constant(np.stack([decoded] * 2), tf.float32), 32)
    assert batch.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(batch[1], expected)
    png = _encoded(decoded, "PNG")  # the JPEG's own pixels, losslessly: the other-formats branch
    np.testing.assert_array_equal(preprocessing.eval_view(tf.constant(png), 32), expected)
    np.testing.assert_array_equal(preprocessing.eval_view(tf.constant(jpeg), 32), expected)


def test_a_cropped_decode_equals_the_full_decode_cut():
  """decode_window is the full decode's pixels for any window, including windows whose edges
  fall inside a chroma block (where decode_and_crop_jpeg alone is off by up to 40 levels)."""
  rng = np.random.default_rng(1)
  plain_differs = 0
  for subsampling in (0, 1, 2):
    for _ in range(6):
      height, width = (int(v) for v in rng.integers(8, 120, 2))
      smooth = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize(
          (width, height), Image.BILINEAR)
      out = io.BytesIO()
      smooth.save(out, "JPEG", subsampling=subsampling, quality=90)
      full = tf.io.decode_jpeg(out.getvalue(), channels=3).numpy()
      for _ in range(4):
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        window = tf.constant([y, x, h, w])
        np.testing.assert_array_equal(
            preprocessing.decode_window(out.getvalue(), window, tf.constant(full.shape)),
            full[y:y + h, x:x + w])
        plain = tf.image.decode_and_crop_jpeg(out.getvalue(), window, channels=3).numpy()
        plain_differs += not np.array_equal(plain, full[y:y + h, x:x + w])
  assert plain_differs > 0  # the windows do reach the case decode_window exists for


# -- the data-dir contract ---------------------------------------------------------------------

def test_shard_names_match_their_glob_and_tfds_template():
  names = [records.shard_file("train", i, 12) for i in range(12)]
  assert names[3] == "train-00003-of-00012.tfrecord"
  assert all(fnmatch.fnmatch(name, records.shard_pattern("train")) for name in names)
  assert not fnmatch.fnmatch(names[0], records.shard_pattern("val"))
  assert records.FILENAME_TEMPLATE == "{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}"


def test_data_dir_readers(tmp_path):
  for split, count in (("train", 3), ("val", 1)):
    for i in range(count):
      (tmp_path / records.shard_file(split, i, count)).write_bytes(b"")
  (tmp_path / "train-00000-of-00003.tfrecord-partial").write_bytes(b"")  # not a shard
  manifest = {"splits": {"train": {"examples": 65, "shards": [
      {"examples": 22}, {"examples": 22}, {"examples": 21}]}}}
  (tmp_path / records.MANIFEST).write_text(json.dumps(manifest))
  (tmp_path / records.IMAGE_IDS).write_text(json.dumps({"test": [5, 3, 9]}))
  assert [os.path.basename(f) for f in records.shard_files(str(tmp_path), "train")] == [
      records.shard_file("train", i, 3) for i in range(3)]
  assert records.has_shards(str(tmp_path), "val") and not records.has_shards(str(tmp_path),
                                                                             "test")
  with pytest.raises(FileNotFoundError, match="No test shards.*inat-build"):
    records.shard_files(str(tmp_path), "test")
  with pytest.raises(ValueError, match="split='dev'"):
    records.shard_files(str(tmp_path), "dev")
  assert records.shard_examples(str(tmp_path), "train") == [22, 22, 21]
  assert [records.steps_per_epoch(str(tmp_path), "train", b) for b in (1, 32, 65, 66, 1000)] == [
      65, 3, 1, 1, 1]
  assert records.image_ids(str(tmp_path)) == {"test": [5, 3, 9]}
  with pytest.raises(FileNotFoundError, match="manifest.json not found.*inat-build"):
    records.read_manifest(str(tmp_path / "elsewhere"))


# -- the published facts -----------------------------------------------------------------------

def test_editions_hold_the_published_names():
  assert editions.INAT2017.file_names() == (
      "train_val_images.tar.gz", "test2017.tar.gz", "train2017.json", "train_2017_bboxes.json",
      "train2017_locations.json", "val2017.json", "val_2017_bboxes.json",
      "val2017_locations.json", "test2017.json")
  assert editions.INAT2021.archives() == ("train.tar.gz", "val.tar.gz", "public_test.tar.gz")
  assert len(editions.INAT2017.boxed_supercategories) == 9  # paper, Sec. 3.3
  assert sum(n for _, n in editions.INAT2017.supercategory_species) == 5089
  assert editions.INAT2017.boxed_supercategories < {
      name for name, _ in editions.INAT2017.supercategory_species}
  for edition in editions.EDITIONS.values():
    assert tuple(edition.splits) == editions.SPLITS == records.SPLITS


def test_layout_is_detected_from_the_editions_names(tmp_path):
  for edition in editions.EDITIONS.values():
    raw = tmp_path / edition.name
    raw.mkdir()
    with pytest.raises(FileNotFoundError,
                       match="train2017.json \\(iNat2017\\).*train.json \\(iNat2021\\)"):
      layout.find_inputs(str(raw))
    for files in edition.splits.values():
      (raw / files.annotations).write_text("{}")
      (raw / files.archive).write_bytes(b"")
    assert layout.detect_layout(str(raw)) is edition
    inputs = layout.find_inputs(str(raw))
    assert inputs["test"].archive == str(raw / edition.splits["test"].archive)


# -- the model-dir contract and the shared run plumbing ------------------------------------------

def test_which_model_and_its_file():
  assert [trained_model.model_file(w) for w in trained_model.CHOICES] == ["best.keras",
                                                                          "final.keras"]
  with pytest.raises(ValueError, match="which='last': expected one of best, final"):
    trained_model.model_file("last")


def test_missing_model_dir_says_what_it_needs(tmp_path):
  with pytest.raises(FileNotFoundError, match="best.keras.*train_config.json.*inat-train"):
    trained_model.load(str(tmp_path))


def test_loop_stops_at_every_boundary():
  stop = run_common.steps_to_next_stop
  assert stop(0, 1000, every=(50, 500)) == 50
  assert stop(50, 1000, every=(50, 500)) == 50
  assert stop(990, 1000, every=(50, 500)) == 10                      # the end
  assert stop(0, 1000, every=(50,), stops=(7, 30)) == 7               # steps per loop
  assert stop(30, 1000, every=(50,), stops=(37, 30)) == 7             # a past stop is ignored
  assert stop(0, 1000, every=(100,), stops=(1, 40)) == 1


def test_weights_argument_and_atomic_json(tmp_path):
  assert [run_common.weights_argument(w) for w in ("", "none", "Random", "imagenet", "/w.h5")] == [
      None, None, None, "imagenet", "/w.h5"]
  path = str(tmp_path / "a.json")
  run_common.write_json(path, {"b": 1, "a": [2]})
  assert run_common.read_json(path) == {"a": [2], "b": 1}
  assert os.listdir(tmp_path) == ["a.json"]  # no temporary file left behind


def test_batch_norm_momentum_reaches_nested_layers():
  import keras  # pylint: disable=g-import-not-at-top
  inner = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
  outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.BatchNormalization()])
  run_common.set_batch_norm_momentum(outer, -1.0)
  assert [l.momentum for l in (inner.layers[0], outer.layers[1])] == [0.99, 0.99]
  run_common.set_batch_norm_momentum(outer, 0.9)
  assert [l.momentum for l in (inner.layers[0], outer.layers[1])] == [0.9, 0.9]


def test_ctrl_c_is_a_stop_request_then_an_interrupt():
  """A real SIGINT inside CtrlC: the first only asks the loop to stop at its next check; the
  second interrupts at once; outside, Python's own handler is back."""
  import signal  # pylint: disable=g-import-not-at-top
  before = signal.getsignal(signal.SIGINT)
  with run_common.CtrlC() as ctrl_c:
    ctrl_c.check()  # nothing pressed: goes on
    os.kill(os.getpid(), signal.SIGINT)
    assert ctrl_c.pressed  # delivered, and no KeyboardInterrupt raised here
    with pytest.raises(KeyboardInterrupt):
      ctrl_c.check()
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
      for _ in range(1000):  # the handler runs at the next bytecode
        pass
  assert signal.getsignal(signal.SIGINT) is before


# -- resampling weights, label map ----------------------------------------------------------------

def test_resampling_weights_reach_their_target_shares():
  counts = np.array([100, 25, 4, 1])
  for sampling, power in (("uniform", 1.0), ("sqrt", 0.5), ("balanced", 0.0)):
    weights = input_pipeline.resampling_weights(counts, sampling)
    drawn = weights * counts                                       # expected copies per class
    np.testing.assert_allclose(drawn / drawn.sum(), counts ** power / (counts ** power).sum())
    np.testing.assert_allclose(drawn.sum(), counts.sum())         # an epoch keeps its length
  np.testing.assert_allclose(input_pipeline.resampling_weights(counts, "uniform"), 1.0)


def _label_map():
  categories = [{"id": 30, "name": "c", "supercategory": "Aves"},
                {"id": 7, "name": "a", "supercategory": "Plantae"},
                {"id": 12, "name": "b", "supercategory": "Aves"}]
  return label_map_lib.LabelMap.from_categories(categories, {7: 5, 30: 2})


def test_label_map_orders_by_id_and_round_trips():
  label_map = _label_map()
  assert label_map.category_ids == (7, 12, 30) and label_map.names == ("a", "b", "c")
  assert label_map.supercategory_names == ("Aves", "Plantae")
  assert label_map.supercategories == (1, 0, 0) and label_map.train_counts == (5, 0, 2)
  assert label_map.index_of(30) == 2
  with pytest.raises(KeyError, match="category_id 8 is not in the label map"):
    label_map.index_of(8)
  assert label_map_lib.LabelMap.from_json(json.loads(json.dumps(label_map.to_json()))) == \
      label_map


# -- scoring and the report ----------------------------------------------------------------------

def test_report_summary_counts_per_species_and_super_category():
  label_map = _label_map()
  predictions = trained_model.Predictions(
      image_ids=np.array([1, 2, 3, 4, 5]), labels=np.array([0, 0, 1, 2, -1]),
      top_indices=np.array([[0, 1, 2, 0, 0], [1, 0, 2, 0, 0], [2, 0, 1, 0, 0],
                            [0, 1, 2, 0, 0], [0, 1, 2, 0, 0]]),
      top_scores=np.zeros((5, 5)))
  report = evaluate.summarize(predictions, label_map)
  assert report["images"] == 4                                    # the unlabelled one left out
  assert report["top1"] == pytest.approx(1 / 4) and report["top5"] == pytest.approx(1.0)
  assert [(c["category_id"], c["top1"], c["eval_images"]) for c in report["classes"]] == [
      (7, 0.5, 2), (12, 0.0, 1), (30, 0.0, 1)]
  rows = {r["supercategory"]: r for r in report["supercategories"]}
  assert rows["Aves"]["top1"] == 0.0 and rows["Plantae"]["top1"] == 0.5   # mean over species
  assert rows["Aves"]["avg_train_images"] == 1.0
  assert [b["train_images"] for b in report["train_count_bins"]] == ["0-9"]
  assert report["chance_top5"] == 1.0
  with pytest.raises(ValueError, match="no labels.*inat-predict"):
    evaluate.summarize(trained_model.Predictions(
        np.array([1]), np.array([-1]), np.zeros((1, 5), int), np.zeros((1, 5))), label_map)


@pytest.fixture
def annotations(tmp_path):
  """Six labelled images, seven categories (ids with gaps), as the published JSON has them."""
  document = {"images": [{"id": i} for i in (11, 12, 13, 14, 15, 16)],
              "categories": [{"id": c} for c in (1, 2, 3, 4, 5, 6, 9)],
              "annotations": [{"image_id": i, "category_id": c} for i, c in (
                  (11, 1), (12, 2), (13, 3), (14, 4), (15, 5), (16, 9))]}
  path = tmp_path / "val2017.json"  # the 2017 edition's name: its format, id,predicted with 5 ids
  path.write_text(json.dumps(document))
  return str(path)


VALID = ["id,predicted", "11,1 2 3 4 5", "12,1 2 3 4 5", "13,9 1 2 4 5", "14,4 1 2 3 5",
         "15,1 2 3 4 6", "16,9 1 2 3 4"]


def test_scorer_counts_top1_and_top5_errors(annotations, tmp_path):
  path = tmp_path / "valid.csv"
  path.write_text("\n".join(VALID) + "\n")
  # Top-1 right: 11, 14, 16; in the top 5: all but 13 (no 3) and 15 (no 5).
  assert score.score(str(path), annotations) == {
      "images": 6, "edition": "2017", "labels_per_row": 5,
      "top1_error": pytest.approx(3 / 6), "top5_error": pytest.approx(2 / 6)}


def test_scorer_reads_local_files_without_tensorflow_and_others_through_gfile(annotations,
                                                                              tmp_path):
  """Local paths are read with open() (inat-score then never imports TensorFlow); a ram:// path,
  like gs://, goes through tf.io.gfile; both give the same scores and the same missing-file
  error."""
  local = tmp_path / "valid.csv"
  local.write_text("\n".join(VALID) + "\n")
  remote = "ram://scorer/"
  tf.io.gfile.makedirs(remote)
  tf.io.gfile.copy(str(local), remote + "valid.csv", overwrite=True)
  tf.io.gfile.copy(annotations, remote + "val2017.json", overwrite=True)
  assert score.score(remote + "valid.csv", remote + "val2017.json") == score.score(
      str(local), annotations)
  for missing in (str(tmp_path / "none.csv"), remote + "none.csv"):
    with pytest.raises(FileNotFoundError, match=f"{missing} not found: expected the submission"):
      score.score(missing, annotations)
  code = ("import sys; from inat_tf import score; "
          "print(score.score(sys.argv[1], sys.argv[2])['images'], 'tensorflow' in sys.modules)")
  ran = subprocess.run([sys.executable, "-c", code, str(local), annotations],
                       capture_output=True, text=True, check=True)
  assert ran.stdout.split() == ["6", "False"]


@pytest.mark.parametrize("case, edit, message", [
    ("header", lambda lines: ["image,labels"] + lines[1:], "expected the header 'id,predicted'"),
    ("malformed", lambda lines: lines[:3] + ["12;1 2 3 4 5"] + lines[4:], "line 4: expected"),
    ("not numbers", lambda lines: lines[:2] + ["abc,1 2 3 4 5"] + lines[3:],
     "ids must be integers"),
    ("four labels", lambda lines: lines[:1] + [" ".join(lines[1].split()[:-1])] + lines[2:],
     "has 4 predicted labels, expected 5"),
    ("unknown image", lambda lines: lines + ["99999999,1 2 3 4 5"], "99999999 is not in the"),
    ("twice", lambda lines: lines + [lines[1]], "again (first on line 2)"),
    ("unknown category", lambda lines: lines[:1] + [lines[1].split(",")[0] + ",77777 1 2 3 4"] +
     lines[2:], "unknown category ids [77777"),
    ("missing", lambda lines: lines[:-1], "have no row"),
])
def test_scorer_names_each_malformed_case(case, edit, message, annotations, tmp_path):
  path = tmp_path / f"{case}.csv"
  path.write_text("\n".join(edit(list(VALID))) + "\n")
  with pytest.raises(score.ScoreError) as error:
    score.score(str(path), annotations)
  assert message in str(error.value), str(error.value)


def test_scorer_shows_malformed_records_and_every_repeat(annotations, tmp_path):
  """Records are compacted while the JSON is decoded (issue 26); malformed ones stay whole in
  the message, and a row repeated twice is named twice, each time with the first line."""
  document = json.loads(open(annotations).read())
  document["annotations"].append({"id": 3, "image_id": "x", "category_id": 1})
  document["images"].append({"id": "y", "file_name": "a.jpg"})
  (tmp_path / "broken").mkdir()
  broken = tmp_path / "broken" / "val2017.json"
  broken.write_text(json.dumps(document))
  path = tmp_path / "valid.csv"
  path.write_text("\n".join(VALID) + "\n")
  with pytest.raises(score.ScoreError) as error:
    score.score(str(path), str(broken))
  assert "annotations[6] = {'id': 3, 'image_id': 'x', 'category_id': 1}: expected" in str(
      error.value)
  assert "images[6] = {'id': 'y', 'file_name': 'a.jpg'}: expected an object" in str(error.value)
  path.write_text("\n".join(VALID + [VALID[3], VALID[3]]) + "\n")
  with pytest.raises(score.ScoreError) as error:
    score.score(str(path), annotations)
  assert error.value.problems == ["line 8: image id 13 again (first on line 4)",
                                  "line 9: image id 13 again (first on line 4)"]


# -- one flags-to-config mechanism ----------------------------------------------------------------

def _config_classes():
  from inat_tf import sample_download  # pylint: disable=g-import-not-at-top
  from inat_tf import train  # pylint: disable=g-import-not-at-top
  from inat_tf.detection import train as detect_train  # pylint: disable=g-import-not-at-top
  from tfrecord_builder import build  # pylint: disable=g-import-not-at-top
  return {"inat-train": (train.TrainConfig, ["--data_dir=D", "--model_dir=M"]),
          "inat-detect-train": (detect_train.DetectTrainConfig, ["--data_dir=D", "--model_dir=M"]),
          "inat-build": (build.BuildConfig, ["--raw_dir=R", "--data_dir=D"]),
          "inat-make-sample": (sample_download.SampleConfig, [])}


@pytest.mark.parametrize("command", ["inat-train", "inat-detect-train", "inat-build",
                                     "inat-make-sample"])
def test_every_config_field_is_a_flag_with_its_default(command):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from inat_tf import flag_config  # pylint: disable=g-import-not-at-top
  import dataclasses  # pylint: disable=g-import-not-at-top
  config_class, required = _config_classes()[command]
  flag_values = flags.FlagValues()
  flag_config.define_flags(config_class, flag_values)
  fields = dataclasses.fields(config_class)
  assert sorted(flag_values) == sorted(f.name for f in fields)
  assert all(flag_values[f.name].help for f in fields)
  flag_values([command] + required)
  parsed = flag_config.from_flags(config_class, flag_values)
  for f in fields:
    if f.default is not dataclasses.MISSING:
      assert getattr(parsed, f.name) == f.default, f.name
  if required:
    with pytest.raises(flags.IllegalFlagValueError, match="--" + required[0][2:].split("=")[0]):
      empty = flags.FlagValues()
      flag_config.define_flags(config_class, empty)
      empty.mark_as_parsed()
      empty.validate_all_flags()


def test_flags_reach_the_config_with_their_types():
  from absl import flags  # pylint: disable=g-import-not-at-top
  from inat_tf import flag_config  # pylint: disable=g-import-not-at-top
  config_class, required = _config_classes()["inat-build"]
  flag_values = flags.FlagValues()
  flag_config.define_flags(config_class, flag_values)
  flag_values(["inat-build", *required, "--splits=val,test", "--seed=3", "--overwrite"])
  config = flag_config.from_flags(config_class, flag_values)
  assert (config.splits, config.seed, config.overwrite) == (("val", "test"), 3, True)
  train_class, required = _config_classes()["inat-train"]
  flag_values = flags.FlagValues()
  flag_config.define_flags(train_class, flag_values)
  with pytest.raises(flags.IllegalFlagValueError, match="should be one of"):
    flag_values(["inat-train", *required, "--model=vgg16"])


def test_tflite_conversion_freezes_variables_and_keeps_the_names():
  """export.tflite_bytes: the converter freezes the variables the function reads (no variable
  ops, the values inside) and keeps the argument and output names an app finds them by; a
  flatbuffer whose outputs lost their names is refused."""
  from inat_tf import export  # pylint: disable=g-import-not-at-top
  weights = tf.Variable([1.0, 2.0, 3.0])

  @tf.function(input_signature=[tf.TensorSpec([3], tf.float32)])
  def scaled(pixels):
    return {"scores": weights * pixels, "total": tf.reduce_sum(weights * pixels)}
  content = export.tflite_bytes(scaled)
  interpreter = tf.lite.Interpreter(model_content=content)
  assert interpreter.get_signature_list() == {
      "serving_default": {"inputs": ["pixels"], "outputs": ["scores", "total"]}}
  result = interpreter.get_signature_runner()(pixels=np.array([1.0, 1.0, 2.0], np.float32))
  np.testing.assert_allclose(result["scores"], [1.0, 2.0, 6.0])
  np.testing.assert_allclose(result["total"], 9.0)
  with pytest.raises(RuntimeError, match=r"named the outputs \['scores', 'total'\], expected "
                                         r"\['output_0'\]"):
    export._check_converted(content, ["output_0"])  # pylint: disable=protected-access


def test_a_checkpoint_of_another_classifier_layout_is_refused_with_what_still_works(tmp_path):
  """A MobileNet V1 run checkpointed with the 1x1-conv classifier (before 2026-12-07) meets a
  Dense one: one line that names the change and the way on, not a fall-back through every older
  checkpoint to "none can be read" (they all have the same layout)."""
  import keras  # pylint: disable=g-import-not-at-top
  from inat_tf import train  # pylint: disable=g-import-not-at-top

  def model(conv_head):
    inputs = keras.Input((4,))
    features = keras.layers.Dense(4, name="features")(inputs)
    if conv_head:
      pixel = keras.layers.Reshape((1, 1, 4))(features)
      logits = keras.layers.Reshape((3,))(keras.layers.Conv2D(3, 1, name="head_logits")(pixel))
    else:
      logits = keras.layers.Dense(3, name="head_logits")(keras.layers.Reshape((4,))(features))
    return keras.Model(inputs, logits)

  directory = str(tmp_path / "checkpoints")
  old = tf.train.Checkpoint(model=model(conv_head=True))
  manager = tf.train.CheckpointManager(old, directory, max_to_keep=5)
  manager.save()
  manager.save()
  new = tf.train.Checkpoint(model=model(conv_head=False))
  lines = []
  with pytest.raises(train.TrainError) as raised:
    train._restore(  # pylint: disable=protected-access
        new, tf.train.CheckpointManager(new, directory, max_to_keep=5), lines.append)
  message = str(raised.value)
  newest = manager.checkpoints[-1]
  assert message.startswith(f"checkpoint {newest} does not fit this model ("), message
  assert "1x1 conv until 2026-12-07 and is a Dense now" in message, message
  assert message.endswith("use a new --model_dir, or --overwrite"), message
  assert "\n" not in message and not lines  # one line; no "trying the one before it"


def test_build_summary_says_why_a_split_has_no_places():
  """2017's test split has no locations file: the summary said "(from none (...))"."""
  from tfrecord_builder import annotations  # pylint: disable=g-import-not-at-top
  from tfrecord_builder import build  # pylint: disable=g-import-not-at-top
  edition = editions.get("2017")
  table = type("Table", (), {"latitudes": np.full(3, np.nan)})
  source = annotations._location_source(  # pylint: disable=protected-access
      "", type("Inputs", (), {"split": "test", "annotations": "test2017.json"}), edition, table)
  lines = build._fact_lines({"locations": {  # pylint: disable=protected-access
      "val": {"source": "val2017_locations.json", "images": 603, "with_place": 558},
      "test": {"source": source, "images": 603, "with_place": 0}}})
  held = build._fact_lines({"holdout_species": {  # pylint: disable=protected-access
      "category_ids": [5, 9, 10], "fraction": 0.2, "seed": 0, "train_images_left_out": 117}})
  assert held == ["  held out of train (--holdout_species): 3 species (category ids 5, 9, 10), "
                  "117 train images left out; their val and test images stay, for the open-set "
                  "test"]
  assert lines == [
      "  places, val: 558 of 603 images (from val2017_locations.json)",
      "  places, test: 0 of 603 images (none: not in what the edition publishes "
      "(train2017_locations.json and val2017_locations.json, 2017 README))"]
