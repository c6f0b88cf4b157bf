"""The answer pipeline in the commands: inat-predict, inat-eval, inat-classify, inat-export, on the
session's trained model (tests/conftest.py trained_dir; nothing new is trained)."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from inat_tf import answer_options
from inat_tf import predict
from inat_tf import records
from inat_tf import schema
from inat_tf import trained_model
from tests.conftest import TRAINED_MODEL_GROUP

pytestmark = TRAINED_MODEL_GROUP


def _plain_top5_rows(data_dir, model_dir):
  """The Kaggle rows as they were before the pipeline: top-5 of softmax(logits), by image id."""
  trained = trained_model.load(model_dir)
  ids = np.asarray(trained.label_map.category_ids)
  rows = {}
  for batch in records.examples(data_dir, "val", [schema.ENCODED, schema.IMAGE_ID]).batch(64):
    images = tf.stack([trained.eval_views(e)[0] for e in batch[schema.ENCODED]])
    probabilities = tf.nn.softmax(tf.cast(trained.model(images, training=False), tf.float32))
    top = tf.math.top_k(probabilities, 5).indices.numpy()
    for image_id, indices in zip(batch[schema.IMAGE_ID].numpy(), top):
      rows[int(image_id)] = " ".join(str(c) for c in ids[indices])
  return [f"{i},{rows[i]}" for i in sorted(rows)]


@pytest.mark.slow
def test_kaggle_csv_is_unchanged_and_calibrations_are_stored_and_refused_when_stale(
    tiny_built_dir, trained_dir, tmp_path):
  model_dir = tmp_path / "model"
  shutil.copytree(trained_dir, model_dir)
  data_dir, model_dir = str(tiny_built_dir), str(model_dir)
  expected = _plain_top5_rows(data_dir, model_dir)
  quiet = lambda message: None
  for rule in ("argmax", "inat"):
    output = str(tmp_path / f"{rule}.csv")
    predict.predict_to_csv(data_dir, "val", output, model_dir=model_dir, log=quiet,
                           options=answer_options.Options(rule=rule))
    lines = open(output).read().splitlines()
    assert lines[1:] == expected, rule  # byte for byte, row by row
  # inat also wrote the answers beside, one row per image, ids in order.
  answer_lines = open(predict.answers_path(str(tmp_path / "inat.csv"))).read().splitlines()
  assert answer_lines[0].startswith("id,taxon,rank,score")
  assert [line.split(",")[0] for line in answer_lines[1:]] == [
      line.split(",")[0] for line in expected]

  # Restriction: only category ids of the checklist are listed first.
  label_map = trained_model.load(model_dir).label_map
  allowed = label_map.category_ids[:3]
  checklist = tmp_path / "three.txt"
  checklist.write_text("".join(f"{c}\n" for c in allowed))
  output = str(tmp_path / "restricted.csv")
  predict.predict_to_csv(data_dir, "val", output, model_dir=model_dir, log=quiet,
                         options=answer_options.Options(rule="argmax",
                                                        checklist=str(checklist)))
  for line in open(output).read().splitlines()[1:]:
    assert set(int(c) for c in line.split(",")[1].split()[:3]) == set(allowed)

  # A calibrated rule: calibrated on the tune half of val (no minival), stored, reused ...
  options = answer_options.Options(rule="precision", precision=0.9)
  predict.predict_to_csv(data_dir, "val", str(tmp_path / "p.csv"), model_dir=model_dir,
                         log=quiet, options=options)
  stored = answer_options.calibration_path(model_dir, "best")
  document = open(stored).read()
  assert '"precision@0.9/views=1"' in document and '"part": "tune"' in document
  trained = trained_model.load(model_dir)
  rule = answer_options.rule_for(options, answer_options.taxonomy_of(trained),
                                 model_dir=model_dir)  # no held_out: must be the stored one
  assert rule.name == "thresholds"
  # ... and refused once the model file changed.
  with open(os.path.join(model_dir, "best.keras"), "ab") as f:
    f.write(b"\0")
  with pytest.raises(answer_options.RollupError, match="calibrated for other best.keras"):
    answer_options.rule_for(options, answer_options.taxonomy_of(trained), model_dir=model_dir)


@pytest.mark.slow
def test_keras_saved_model_and_tflite_give_the_same_answer_on_every_val_image(
    tiny_built_dir, trained_dir, tmp_path):
  from inat_tf import answers
  from inat_tf import export
  from inat_tf import preprocessing
  from inat_tf import rollup
  data_dir = str(tiny_built_dir)
  export_dir = tmp_path / "export"
  info = export.export(str(trained_dir), str(export_dir))  # iNat's rule, no int8 (no data dir)
  assert info["rollup_rule"]["name"] == "inat"
  trained = trained_model.load(str(trained_dir))
  tree = answer_options.taxonomy_of(trained)
  config = answers.AnswerConfig(rule=rollup.InatRule())
  keras = trained_model.predict(trained, data_dir, "val", answer_config=config,
                                command="test").answers
  examples = list(records.examples(data_dir, "val", [schema.ENCODED, schema.IMAGE_ID]))
  encoded = tf.constant([e[schema.ENCODED].numpy() for e in examples])

  saved = tf.saved_model.load(export.find_saved_model(str(export_dir))[0])
  served = saved.signatures["serving_default"](image_bytes=encoded)
  names = [tree.node_names[t] if t >= 0 else "" for t in keras["taxon"]]
  assert [n.decode() for n in served["taxon_name"].numpy()] == names
  assert served["taxon"].numpy().tolist() == keras["taxon"].tolist()
  np.testing.assert_allclose(served["msp"].numpy(), keras["msp"], rtol=1e-4)
  np.testing.assert_allclose(served["energy"].numpy(), keras["energy"], rtol=1e-4, atol=1e-4)
  assert {"category_ids", "class_names", "scores", "valid"} <= set(served)  # old clients

  interpreter = tf.lite.Interpreter(model_path=str(export_dir / "model_answers.tflite"))
  runner = interpreter.get_signature_runner()
  unrestricted = np.ones(tree.num_classes, bool)
  tflite = [int(runner(images=preprocessing.eval_image(
      e[schema.ENCODED], trained.image_size).numpy()[np.newaxis], allowed=unrestricted)
      ["taxon"][0]) for e in examples]
  assert tflite == keras["taxon"].tolist()
  taxonomy_json = (export_dir / export.TAXONOMY).read_text()
  assert tree.node_names[0] in taxonomy_json

  # serving_restricted: per request; the same as Keras restricted to that taxon.
  taxon = tree.node_names[tree.ancestors[0, tree.num_ranks - 1]]  # a top-rank taxon
  restricted = saved.signatures["serving_restricted"](
      image_bytes=encoded, allowed_category_ids=tf.constant([], tf.int64),
      allowed_taxa=tf.constant([taxon]))
  allowed = tree.members(tree.find(taxon))
  keras_restricted = trained_model.predict(trained, data_dir, "val", answer_config=config,
                                           allowed=allowed, command="test")
  ids = np.asarray(trained.label_map.category_ids)
  assert restricted["category_ids"].numpy()[:, 0].tolist() == \
      ids[keras_restricted.top_indices[:, 0]].tolist()
  assert set(restricted["category_ids"].numpy()[:, 0]) <= set(ids[allowed])
  assert restricted["taxon"].numpy().tolist() == keras_restricted.answers["taxon"].tolist()
  with pytest.raises(tf.errors.InvalidArgumentError, match="allowed_category_ids"):
    saved.signatures["serving_restricted"](
        image_bytes=encoded[:1], allowed_category_ids=tf.constant([987654321], tf.int64),
        allowed_taxa=tf.constant([], tf.string))
