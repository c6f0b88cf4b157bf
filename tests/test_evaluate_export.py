"""inat-eval, inat-predict, inat-score and inat-export on a model trained on the tiny sample."""

import collections
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from inat_tf import evaluate
from inat_tf import export
from inat_tf import predict
from inat_tf import records
from inat_tf import schema
from inat_tf import score
from inat_tf import trained_model
from tests import download_tools
from tests import helpers
from tests.conftest import TRAINED_MODEL_GROUP
from tests.helpers import console_script

pytestmark = TRAINED_MODEL_GROUP


@pytest.fixture(scope="module")
def model_dir(trained_dir):
  return trained_dir


@pytest.fixture(scope="module")
def export_dir(model_dir, tiny_built_dir, tmp_path_factory):
  path = tmp_path_factory.mktemp("export")
  export.export(str(model_dir), str(path), data_dir=str(tiny_built_dir))
  return path


@pytest.fixture(scope="module")
def tiny_raw_dir(tiny_built_dir):
  with open(os.path.join(tiny_built_dir, "_build", "task-00000-of-00001.json")) as f:
    return json.load(f)["flags"]["raw_dir"]


@pytest.mark.slow
def test_eval_report_matches_its_own_predictions(tiny_built_dir, model_dir, tiny_raw_dir,
                                                 tmp_path):
  report = evaluate.evaluate(str(tiny_built_dir), str(model_dir), "val",
                             output_dir=str(tmp_path))
  for name in ("report.json", "report.md", "report.html", "per_class.csv",
               "accuracy_vs_train_images.csv", "predictions.csv"):
    assert (tmp_path / name).exists(), name
  assert (tmp_path / "accuracy_vs_train_images.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # Recompute top-1 / top-5 from predictions.csv against the val JSON, as a third party would.
  val = download_tools.load_json(tiny_raw_dir, "val2017.json")
  labels = {a["image_id"]: a["category_id"] for a in val["annotations"]}
  rows = [line.split(",") for line in (tmp_path / "predictions.csv").read_text().splitlines()[1:]]
  assert sorted(int(r[0]) for r in rows) == sorted(labels)
  top5 = {int(r[0]): [int(c) for c in r[2].split()] for r in rows}
  assert report["top1"] == pytest.approx(np.mean([top5[i][0] == labels[i] for i in labels]))
  assert report["top5"] == pytest.approx(np.mean([labels[i] in top5[i] for i in labels]))
  assert report["top5_error"] == pytest.approx(1 - report["top5"])
  # Table 4: super-category accuracy is the mean over its species.
  assert len(report["supercategories"]) == 13
  for row in report["supercategories"]:
    species = [c for c in report["classes"] if c["supercategory"] == row["supercategory"]]
    assert row["top1"] == pytest.approx(np.mean([c["top1"] for c in species]))
  assert "| Super-category | Species | Avg train images | Top-1 | Top-5 |" in (
      tmp_path / "report.md").read_text()


@pytest.mark.slow
def _views_by_hand(jpeg, image_size):
  """The ten test-time views built from numpy slices: centre, four corners, and their mirrors."""
  from inat_tf import preprocessing
  image = tf.io.decode_jpeg(jpeg, channels=3).numpy().astype(np.float32)
  height, width = image.shape[:2]
  side = int(preprocessing.EVAL_CROP_FRACTION * min(height, width))
  crops = [image[(height - side + 1) // 2:][:side, (width - side + 1) // 2:][:, :side]] + [
      image[y:y + side, x:x + side]
      for y, x in ((0, 0), (0, width - side), (height - side, 0), (height - side, width - side))]
  views = [tf.image.resize(crop, [image_size, image_size]).numpy() for crop in crops]
  return np.stack(views + [view[:, ::-1] for view in views])


def test_eval_with_flips_and_crops_and_on_unlabelled_split(tiny_built_dir, model_dir):
  """flip + multi_crop averages the softmax over exactly the ten views, and scores that."""
  trained = trained_model.load(str(model_dir))
  got = trained_model.predict(trained, str(tiny_built_dir), "val", flip=True,
                              multi_crop=True)
  examples = list(records.examples(str(tiny_built_dir), "val",
                                   [schema.ENCODED, schema.LABEL, schema.IMAGE_ID]))
  assert got.image_ids.tolist() == [int(e[schema.IMAGE_ID]) for e in examples]
  expected = np.stack([tf.reduce_mean(tf.nn.softmax(trained.model(
      trained.normalize(_views_by_hand(e[schema.ENCODED], trained.image_size)))), axis=0).numpy()
      for e in examples])
  np.testing.assert_allclose(got.top_scores, -np.sort(-expected, axis=1)[:, :5], atol=1e-3)
  assert np.mean(got.top_indices[:, 0] == expected.argmax(axis=1)) >= 0.95  # ties aside
  plain = trained_model.predict(trained, str(tiny_built_dir), "val")
  assert not np.allclose(plain.top_scores, got.top_scores, atol=1e-3)  # the views are used
  report = evaluate.evaluate(str(tiny_built_dir), str(model_dir), "val", flip=True,
                             multi_crop=True)
  assert report["top1"] == pytest.approx(np.mean(got.top_indices[:, 0] == got.labels))
  assert report["top5"] == pytest.approx(np.mean([l in t for l, t in zip(got.labels,
                                                                         got.top_indices)]))
  with pytest.raises(ValueError, match="no labels.*inat-predict"):
    evaluate.evaluate(str(tiny_built_dir), str(model_dir), "test")


@pytest.mark.slow
def test_predict_then_score_equals_eval(tiny_built_dir, model_dir, tiny_raw_dir, tmp_path):
  report = evaluate.evaluate(str(tiny_built_dir), str(model_dir), "val")
  csv_path = str(tmp_path / "val.csv")
  result = helpers.run([console_script("inat-predict"), f"--data_dir={tiny_built_dir}",
                        f"--model_dir={model_dir}", "--split=val", f"--output={csv_path}"])
  assert result.returncode == 0, result.stderr[-2000:]
  scored = helpers.run([console_script("inat-score"), f"--predictions={csv_path}",
                        f"--annotations={tiny_raw_dir}/val2017.json"])
  assert scored.returncode == 0, scored.stderr
  assert f"top-5 error {100 * report['top5_error']:.2f}%" in scored.stdout
  assert score.score(csv_path, f"{tiny_raw_dir}/val2017.json")["top5_error"] == pytest.approx(
      report["top5_error"])


@pytest.mark.slow
def test_test_submission_has_one_row_per_json_image(tiny_built_dir, model_dir, tiny_raw_dir,
                                                    tmp_path):
  out = str(tmp_path / "submission.csv")
  predict.predict_to_csv(str(tiny_built_dir), "test", out, model_dir=str(model_dir),
                         log=lambda message: None)
  lines = open(out).read().splitlines()
  assert lines[0] == "id,predicted"
  test_ids = sorted(i["id"] for i in download_tools.load_json(tiny_raw_dir,
                                                              "test2017.json")["images"])
  assert [int(line.split(",")[0]) for line in lines[1:]] == test_ids
  categories = {c["id"] for c in download_tools.load_json(tiny_raw_dir,
                                                          "train2017.json")["categories"]}
  for line in lines[1:]:
    predicted = [int(c) for c in line.split(",")[1].split()]
    assert len(predicted) == len(set(predicted)) == 5 and set(predicted) <= categories


def test_images_the_builder_rejected_still_get_a_row():
  rows, filled = predict.submission_rows([3, 1, 2], {1: [9, 8, 7, 6, 5], 3: [5, 6, 7, 8, 9]},
                                         fallback=[1, 2, 3, 4, 5])
  assert list(rows) == ["1,9 8 7 6 5", "2,1 2 3 4 5", "3,5 6 7 8 9"] and filled == [2]
  with pytest.raises(predict.PredictError, match="not in the split's JSON"):
    predict.submission_rows([1], {1: [1] * 5, 4: [1] * 5}, fallback=[0] * 5)


def test_submission_rows_are_written_in_chunks_from_compact_arrays(tmp_path, monkeypatch):
  """Issue 26: 500 k rows from two arrays, never a dict or list of rows per image."""
  listed = [7, 3, 11, 5, 9]
  predicted = predict.ByImage.of([9, 3, 11, 7], [[1, 2], [3, 4], [5, 6], [7, 8]])
  assert predicted.category_ids.dtype == np.int32 and predicted.image_ids.tolist() == [3, 7, 9, 11]
  expected = ["3,3 4", "5,0 0", "7,7 8", "9,1 2", "11,5 6"]
  monkeypatch.setattr(predict, "ROWS_PER_WRITE", 2)  # chunk edges inside the list
  rows, filled = predict.submission_rows(listed, predicted, fallback=[0, 0])
  path = str(tmp_path / "rows.csv")
  assert predict.write_submission(path, rows, "id,predicted") == 5 and filled == [5]
  assert open(path).read().splitlines() == ["id,predicted"] + expected
  rows, filled = predict.submission_rows([2, 1], predict.ByImage.of([], []), fallback=[4])
  assert list(rows) == ["1,4", "2,4"] and filled == [1, 2]
  with pytest.raises(predict.PredictError, match="image id 3 appears twice"):
    predict.ByImage.of([3, 1, 3], [[1], [2], [3]])


@pytest.fixture
def valid_csv(tiny_built_dir, model_dir, tmp_path):
  path = str(tmp_path / "valid.csv")
  predict.predict_to_csv(str(tiny_built_dir), "val", path, model_dir=str(model_dir),
                         log=lambda message: None)
  return open(path).read().splitlines()


@pytest.mark.slow
def test_scorer_cli_rejects_a_malformed_submission(valid_csv, tiny_raw_dir, tmp_path):
  """Each malformed case is named by tests/test_fast_units.py; here the command's exit status."""
  path = tmp_path / "header.csv"
  path.write_text("\n".join(["image,labels"] + valid_csv[1:]) + "\n")
  result = helpers.run([console_script("inat-score"), f"--predictions={path}",
                        f"--annotations={tiny_raw_dir}/val2017.json"])
  assert result.returncode != 0 and "problem(s)" in result.stderr
  assert "expected the header 'id,predicted'" in result.stderr and "Traceback" not in result.stderr


def _saved_model(export_dir):
  return os.path.join(export_dir, "saved_model", "1")  # TF Serving's numbered version dir


@pytest.mark.slow
def test_saved_model_cli_shows_and_runs_the_signatures(export_dir, tmp_path):
  shown = helpers.run([os.path.join(os.path.dirname(sys.executable), "saved_model_cli"),
                       "show", "--dir", _saved_model(export_dir), "--all"])
  assert shown.returncode == 0, shown.stderr[-2000:]
  for text in ("signature_def['serving_default']", "inputs['image_bytes']",
               "signature_def['serving_images']", "signature_def['serving_examples']",
               "outputs['category_ids']", "outputs['class_names']", "outputs['scores']"):
    assert text in shown.stdout, text
  png = io.BytesIO()
  Image.new("RGB", (70, 50), (30, 160, 60)).save(png, "PNG")
  jpeg = io.BytesIO()
  Image.new("RGB", (70, 50), (30, 160, 60)).save(jpeg, "JPEG")
  np.save(tmp_path / "bytes.npy", np.array([jpeg.getvalue(), png.getvalue()], dtype=object),
          allow_pickle=True)
  ran = helpers.run([os.path.join(os.path.dirname(sys.executable), "saved_model_cli"), "run",
                     "--dir", _saved_model(export_dir), "--tag_set", "serve",
                     "--signature_def", "serving_default",
                     "--inputs", f"image_bytes={tmp_path / 'bytes.npy'}"])
  assert ran.returncode == 0, ran.stderr[-2000:]
  assert "Result for output key category_ids" in ran.stdout


@pytest.mark.slow
def test_saved_model_in_a_fresh_process_equals_keras(export_dir, tiny_built_dir, model_dir):
  """Loaded without this package; top-5 category ids equal the Keras model's on every val image."""
  script = (
      "import json, sys\n"
      "import tensorflow as tf\n"
      "serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
      "spec = {'image/encoded': tf.io.FixedLenFeature([], tf.string),\n"
      "        'image/id': tf.io.FixedLenFeature([], tf.int64)}\n"
      "out = {}\n"
      "for batch in tf.data.TFRecordDataset(sys.argv[2:]).map(\n"
      "    lambda r: tf.io.parse_single_example(r, spec)).batch(16):\n"
      "  top = serve(image_bytes=batch['image/encoded'])['category_ids'].numpy().tolist()\n"
      "  out.update(zip(batch['image/id'].numpy().tolist(), top))\n"
      "assert not [m for m in sys.modules if m.split('.')[0] in ('inat_tf', 'models')]\n"
      "print(json.dumps(out))\n")
  result = helpers.run([sys.executable, "-c", script, _saved_model(export_dir)] +
                       records.shard_files(str(tiny_built_dir), "val"), cwd="/")
  assert result.returncode == 0, result.stderr[-3000:]
  served = {int(k): v for k, v in json.loads(result.stdout.splitlines()[-1]).items()}
  assert served == predict.from_keras(str(tiny_built_dir), str(model_dir), "val").to_dict()
  from_export, invalid = predict.from_saved_model(str(tiny_built_dir), _saved_model(export_dir),
                                                  "val")
  assert (from_export.to_dict(), invalid) == (served, [])


@pytest.mark.slow
def test_bad_items_of_a_batch_are_marked_and_the_good_ones_answered(export_dir, tiny_built_dir):
  serve = tf.saved_model.load(_saved_model(export_dir)).signatures["serving_default"]
  good = [e[schema.ENCODED].numpy() for e in records.examples(
      str(tiny_built_dir), "val", [schema.ENCODED]).take(2)]
  tiny = io.BytesIO()
  Image.new("RGB", (1, 1), (30, 160, 60)).save(tiny, "JPEG")
  tiny_png = io.BytesIO()
  Image.new("RGB", (1, 1), (30, 160, 60)).save(tiny_png, "PNG")
  batch = [good[0], b"\xff\xd8\xff garbage, not a JPEG", b"", tiny.getvalue(), good[1],
           tiny_png.getvalue()]
  out = serve(image_bytes=tf.constant(batch))
  # A 1 x 1 image has a 1 x 1 central crop (issue 12), so it is answered like any other.
  assert out["valid"].numpy().tolist() == [True, False, False, True, True, True]
  alone = serve(image_bytes=tf.constant(good))
  np.testing.assert_array_equal(out["category_ids"].numpy()[[0, 4]], alone["category_ids"])
  assert (out["category_ids"].numpy()[[1, 2]] == -1).all()
  assert (out["scores"].numpy()[[1, 2]] == 0).all()
  assert (out["category_ids"].numpy()[[0, 3, 4, 5]] >= 0).all()
  assert not serve(image_bytes=tf.constant([b"x"]))["valid"].numpy().any()


@pytest.mark.slow
def test_predict_says_which_rows_the_server_marked_invalid(export_dir, tiny_built_dir, tmp_path):
  """A val record whose bytes the serving graph cannot decode, and one the builder never wrote:
  both get the fallback row, each warning says what happened to it (review finding)."""
  data_dir = tmp_path / "data"
  shutil.copytree(tiny_built_dir, data_dir)
  shard = records.shard_files(str(data_dir), "val")[0]
  serialized = [r.numpy() for r in tf.data.TFRecordDataset(shard)]
  garbled, dropped = (tf.train.Example.FromString(r) for r in serialized[:2])
  garbled_id, dropped_id = (e.features.feature[schema.IMAGE_ID].int64_list.value[0]
                            for e in (garbled, dropped))
  garbled.features.feature[schema.ENCODED].bytes_list.value[0] = b"\xff\xd8\xff not a JPEG"
  with tf.io.TFRecordWriter(shard) as writer:
    for record in [garbled.SerializeToString()] + serialized[2:]:
      writer.write(record)
  lines = []
  output = str(tmp_path / "val.csv")
  filled = predict.predict_to_csv(str(data_dir), "val", output, saved_model=str(export_dir),
                                  log=lines.append)
  assert filled == 2
  rejected = [l for l in lines if "rejected by inat-build" in l]
  invalid = [l for l in lines if "marked them invalid" in l]
  assert len(rejected) == len(invalid) == 1, lines
  assert rejected[0].startswith("inat-predict: warning: 1 images of the val split are not in "
                                "the records") and rejected[0].endswith(f"[{dropped_id}]")
  assert f"the SavedModel {export_dir} marked them invalid" in invalid[0]
  assert invalid[0].endswith(f"[{garbled_id}]")
  rows = dict(line.split(",") for line in open(output).read().splitlines()[1:])
  assert rows[str(garbled_id)] == rows[str(dropped_id)]  # both the fallback row


@pytest.mark.slow
def test_examples_signature_and_warmup_file(export_dir, tiny_built_dir):
  loaded = tf.saved_model.load(_saved_model(export_dir))
  serialized = next(iter(tf.data.TFRecordDataset(records.shard_files(str(tiny_built_dir),
                                                                     "val")).batch(4)))
  encoded = schema.parse(serialized, [schema.ENCODED])[schema.ENCODED]
  by_example = loaded.signatures["serving_examples"](examples=serialized)
  by_bytes = loaded.signatures["serving_default"](image_bytes=encoded)
  np.testing.assert_array_equal(by_example["category_ids"], by_bytes["category_ids"])
  from tensorflow_serving.apis import prediction_log_pb2
  warmup = os.path.join(_saved_model(export_dir), export.WARMUP_PATH)
  logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(warmup)]
  assert len(logs) == 1
  request = logs[0].predict_log.request
  assert request.model_spec.signature_name == "serving_default"
  assert tf.make_ndarray(request.inputs["image_bytes"]).shape == (1,)


def _tflite_top1(path, images):
  return np.argmax(helpers.tflite_probabilities(path, images), axis=1)


@pytest.mark.slow
def test_tflite_float_agrees_with_keras_on_val(export_dir, tiny_built_dir, model_dir):
  trained = trained_model.load(str(model_dir))
  from inat_tf import preprocessing
  val = list(records.examples(str(tiny_built_dir), "val", [schema.ENCODED, schema.LABEL]))
  images = [preprocessing.eval_image(e[schema.ENCODED], trained.image_size,
                                     trained.eval_crop_fraction).numpy() for e in val]
  keras_top1 = np.array([int(np.argmax(trained.model(trained.normalize(image[np.newaxis]))))
                         for image in images])
  float_top1 = _tflite_top1(str(export_dir / "model.tflite"), images)
  assert np.mean(float_top1 == keras_top1) >= 0.99
  int8_path = str(export_dir / "model_int8.tflite")
  int8_top1 = _tflite_top1(int8_path, images)
  # Really quantised: int8 weights and activations inside (float only at the two ends), a
  # quarter of the float model's bytes, and still the float model's answers.
  dtypes = collections.Counter(d["dtype"] for d in
                               tf.lite.Interpreter(model_path=int8_path).get_tensor_details())
  assert dtypes[np.int8] > 10 * dtypes[np.float32], dtypes
  assert os.path.getsize(int8_path) < 0.4 * os.path.getsize(export_dir / "model.tflite")
  agreement = np.mean(int8_top1 == float_top1)
  print(f"int8 top-1 agreement with float: {agreement:.3f} on {len(images)} val images")
  assert agreement >= 0.8, agreement
  # inat-export's own check (inat_tf.int8_check) measured the same thing on the same images
  # (val has fewer than its 200, so its sample is all of val), and the labels' top-1 of both.
  check = json.loads((export_dir / "export_info.json").read_text())["int8_check"]
  assert (check["split"], check["images"], check["labels"]) == ("val", len(images), True)
  assert sorted(check["models"]) == ["model_full_integer.tflite", "model_int8.tflite"]
  measured = check["models"]["model_int8.tflite"]
  labels = np.array([int(e[schema.LABEL]) for e in val])
  assert measured["agreement"] == pytest.approx(agreement)
  assert measured["top1_float"] == pytest.approx(np.mean(float_top1 == labels))
  assert measured["top1"] == pytest.approx(np.mean(int8_top1 == labels))
  assert 0.0 <= check["models"]["model_full_integer.tflite"]["agreement"] <= 1.0
  labels = (export_dir / "labels.txt").read_text().splitlines()
  assert len(labels) == trained.label_map.num_classes


@pytest.mark.slow
def test_export_refuses_tflite_that_would_not_fit_in_memory_before_writing(
    model_dir, tmp_path, monkeypatch):
  """A converter the kernel kills midway leaves a SavedModel without its TFLite models; inat-export
  refuses first, in one line naming what it needs and --notflite. The converter's factor made
  huge here stands for a model too large for this machine; --notflite then exports."""
  from inat_tf import tflite_memory
  monkeypatch.setattr(tflite_memory, "CONVERTER_PEAK_PER_MODEL_BYTE", 10**9)
  with pytest.raises(tflite_memory.NotEnoughMemory, match="--notflite") as refused:
    export.export(str(model_dir), str(tmp_path / "export"))
  assert "\n" not in str(refused.value) and str(model_dir) in str(refused.value)
  assert not (tmp_path / "export").exists()
  info = export.export(str(model_dir), str(tmp_path / "export"), tflite=False)
  assert set(info["files"]) == {"saved_model"}
