"""Long-tail remedies on real models: inat-adjust's stored classifier reaches inat-eval,
inat-predict and the exported SavedModel / TFLite alike; inat-train's loss flags and shot-bucket
val scores."""

import dataclasses
import glob
import json
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from inat_tf import adjust
from inat_tf import evaluate
from inat_tf import export
from inat_tf import long_tail
from inat_tf import predict
from inat_tf import preprocessing
from inat_tf import records
from inat_tf import schema
from inat_tf import train as train_lib
from inat_tf import trained_model
from tests import helpers
from tests.conftest import TRAINED_MODEL_GROUP
from tests.helpers import console_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crt_dir(trained_dir, tiny_built_dir, tmp_path_factory):
  """A copy of the trained model with a cRT classifier stored by inat-adjust (the shared model dir
  is left as it is for the other tests)."""
  path = tmp_path_factory.mktemp("crt") / "model"
  shutil.copytree(trained_dir, path)
  result = adjust.adjust(adjust.AdjustConfig(
      data_dir=str(tiny_built_dir), model_dir=str(path), method="crt", crt_epochs=2,
      crt_batch_size=16), log=lambda message: None)
  assert result["adjustment"].method == "crt"
  return path


@TRAINED_MODEL_GROUP
def test_export_and_predict_agree_with_an_adjustment_stored(crt_dir, tiny_built_dir, tmp_path):
  data_dir = str(tiny_built_dir)
  stored = np.load(long_tail.crt_path(str(crt_dir), "best"))
  trained = trained_model.load(str(crt_dir))
  kernel, bias = trained.model.get_layer(long_tail.CLASSIFIER_LAYER).get_weights()
  np.testing.assert_allclose(kernel.reshape(stored["kernel"].shape), stored["kernel"])
  np.testing.assert_allclose(bias, stored["bias"])
  adjusted = predict.from_keras(data_dir, str(crt_dir), "val")
  plain = trained_model.load(str(crt_dir), adjusted=False)
  scored = trained_model.predict(plain, data_dir, "val")
  unadjusted = predict.ByImage.of(
      scored.image_ids, np.asarray(plain.label_map.category_ids)[scored.top_indices])
  assert adjusted != unadjusted  # the stored classifier changes the answers ...

  info = export.export(str(crt_dir), str(tmp_path / "export"), tflite=False)
  assert info["long_tail_adjustment"].startswith("crt")
  served, invalid = predict.from_saved_model(data_dir, info["files"]["saved_model"], "val")
  assert not invalid
  assert served == adjusted  # ... and serving gives the same top-5 as inat-predict

  # Predicting val, whose tune half chose the adjustment: every row all the same, and one warning
  # naming the model and the tune half (inat-eval scores the report half only).
  assert info["long_tail_tuned_on"]["split"] == "val"
  assert info["long_tail_tuned_on"]["part"] == "tune"
  for source, where in ((dict(model_dir=str(crt_dir)), f"model dir {crt_dir} (best)"),
                        (dict(saved_model=str(tmp_path / "export")),
                         f"SavedModel {tmp_path / 'export'}")):
    lines = []
    output = str(tmp_path / "val.csv")
    predict.predict_to_csv(data_dir, "val", output, log=lines.append, **source)
    (warning,) = [l for l in lines if "long-tail adjustment" in l]
    assert warning.startswith(f"inat-predict: warning: the long-tail adjustment of {where} was "
                              f"chosen on the tune half of val")
    assert "optimistic" in warning
    assert len(open(output).read().splitlines()) == 1 + len(records.image_ids(data_dir)["val"])
  lines = []
  predict.predict_to_csv(data_dir, "test", str(tmp_path / "test.csv"), model_dir=str(crt_dir),
                         log=lines.append)
  assert not [l for l in lines if "long-tail adjustment" in l]

  examples = list(records.examples(data_dir, "val", [schema.ENCODED, schema.IMAGE_ID]))
  images = [preprocessing.eval_image(e[schema.ENCODED], trained.image_size).numpy()
            for e in examples]
  lite = helpers.tflite_probabilities(  # inat-export's model.tflite conversion of the same model
      helpers.float_tflite(trained, tmp_path / "model.tflite"), images)
  top1 = np.asarray(trained.label_map.category_ids)[np.argmax(lite, axis=1)]
  first = {i: ids[0] for i, ids in adjusted.to_dict().items()}
  agree = [t == first[int(e[schema.IMAGE_ID])] for t, e in zip(top1, examples)]
  assert np.mean(agree) >= 0.95


@TRAINED_MODEL_GROUP
def test_eval_scores_the_report_half_and_shows_the_shot_buckets(crt_dir, tiny_built_dir,
                                                                tmp_path):
  report = evaluate.evaluate(str(tiny_built_dir), str(crt_dir), "val", output_dir=str(tmp_path))
  # 13 species x 4 val images: 2 of each tune, 2 are reported.
  assert report["images"] == 26 and report["scored_part"].startswith("report half")
  assert report["long_tail_adjustment"]["method"] == "crt"
  assert set(report["shots"]) == {"many", "medium", "few"}
  assert report["shots"]["few"]["classes"] == 13  # 4 training images each
  text = (tmp_path / "report.md").read_text()
  assert "| Shots | Species | Images | Top-1 | Top-5 |" in text
  assert "- **Split**: val, report half (the adjustment was tuned on the other)" in text
  assert "crt (classifier re-trained on class-balanced train batches)" in text  # the settings


@TRAINED_MODEL_GROUP
def test_a_stale_adjustment_is_refused_and_none_removes_it(crt_dir, trained_dir, tmp_path):
  stale = tmp_path / "model"
  shutil.copytree(trained_dir, stale)
  for name in ("long_tail_adjustment-best.json", "long_tail_classifier-best.npz"):
    shutil.copy(crt_dir / name, stale / name)
  document = json.loads((stale / "long_tail_adjustment-best.json").read_text())
  document["base_sha256"] = "0" * 64  # as if best.keras had been retrained since
  (stale / "long_tail_adjustment-best.json").write_text(json.dumps(document))
  with pytest.raises(long_tail.LongTailError, match="made for other best.keras weights"):
    trained_model.load(str(stale))
  adjust.adjust(adjust.AdjustConfig("unused", str(stale), "none"), log=lambda message: None)
  assert trained_model.load(str(stale)).adjustment is None


def test_inat_adjust_refuses_to_tune_on_the_training_split(tmp_path):
  result = helpers.run([console_script("inat-adjust"), f"--data_dir={tmp_path}",
                        f"--model_dir={tmp_path}", "--method=tau_norm", "--tune_split=train"])
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert "the network has fit those images" in result.stderr.splitlines()[-1]


def test_remedy_flags_train_and_val_reports_shot_buckets(tiny_built_dir, tmp_path):
  config = train_lib.TrainConfig(
      data_dir=str(tiny_built_dir), model_dir=str(tmp_path), model="mobilenet_v1", image_size=32,
      batch_size=16, weights="none", learning_rate=0.02, bn_momentum=0.9, train_steps=8,
      log_steps=4, eval_every_epochs=1000, loss="logit_adjusted", sampling="balanced",
      deferred_start_epoch=1.0)  # 4 steps per epoch: the remedy from step 4 on
  lines = []
  summary = train_lib.train(config, log=lines.append)
  assert summary["final_val_shots"]["few"]["classes"] == 13
  assert any(re.search(r"top-1 many n/a, medium n/a, few \d+\.\d%", line) for line in lines), lines
  tags = set()
  for path in glob.glob(str(tmp_path / "logs" / "val" / "*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  assert {"top1_few_shot", "top5_few_shot", "top1", "top5"} <= tags
  with pytest.raises(train_lib.TrainError, match="defers a remedy"):
    train_lib.train(dataclasses.replace(config, loss="cross_entropy", sampling="uniform",
                                        model_dir=str(tmp_path / "other")),
                    log=lambda message: None)


@TRAINED_MODEL_GROUP
def test_inat_adjust_tunes_on_the_model_as_served_with_its_own_crop(trained_dir, tiny_built_dir,
                                                                     tmp_path):
  """A model trained with a non-default --eval_crop_fraction: inat-adjust's before and after rows
  for the report half equal inat-eval on that half, unadjusted and adjusted (it once prepared its
  images with the default 0.875 crop whatever the model's own)."""
  data_dir, model_dir = str(tiny_built_dir), tmp_path / "model"
  shutil.copytree(trained_dir, model_dir, ignore=shutil.ignore_patterns("long_tail_*", "eval-*"))
  config_path = model_dir / trained_model.TRAIN_CONFIG
  config = json.loads(config_path.read_text())
  config["eval_crop_fraction"] = 0.5  # as inat-train --eval_crop_fraction 0.5 records it
  config_path.write_text(json.dumps(config))
  result = adjust.adjust(adjust.AdjustConfig(data_dir, str(model_dir), "tau_norm"),
                         log=lambda message: None)

  plain = trained_model.load(str(model_dir), adjusted=False)
  assert plain.eval_crop_fraction == 0.5
  predictions = trained_model.predict(plain, data_dir, "val")
  keep = long_tail.reported_mask(predictions.labels, predictions.image_ids,
                                 result["adjustment"], "val")
  labels, top = predictions.labels[keep], predictions.top_indices[keep]
  before = result["report"]["before"]
  assert before["images"] == len(labels)
  assert before["top1"] == pytest.approx(np.mean(top[:, 0] == labels))
  assert before["top5"] == pytest.approx(np.mean([l in t for l, t in zip(labels, top)]))

  adjusted = evaluate.evaluate(data_dir, str(model_dir), "val")
  after = result["report"]["after"]
  assert adjusted["scored_part"].startswith("report half")
  assert (adjusted["images"], adjusted["top1"], adjusted["top5"]) == pytest.approx(
      (after["images"], after["top1"], after["top5"]))
