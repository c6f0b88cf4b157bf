"""The answer pipeline in the commands: inat-predict, inat-eval, inat-classify, inat-export, on the
session's trained model (tests/conftest.py trained_dir; nothing new is trained)."""

import csv
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

  # Restriction: only category ids of the checklist are listed.
  label_map = trained_model.load(model_dir).label_map
  six = tmp_path / "six.txt"
  six.write_text("".join(f"{c}\n" for c in label_map.category_ids[:6]))
  output = str(tmp_path / "restricted.csv")
  predict.predict_to_csv(data_dir, "val", output, model_dir=model_dir, log=quiet,
                         options=answer_options.Options(rule="argmax", checklist=str(six)))
  for line in open(output).read().splitlines()[1:]:
    listed = [int(c) for c in line.split(",")[1].split()]
    assert len(listed) == 5 and set(listed) <= set(label_map.category_ids[:6])
  # Fewer allowed species than a row lists: refused before any image is read (the rows were
  # filled with outside species at probability 0).
  allowed = label_map.category_ids[:3]
  checklist = tmp_path / "three.txt"
  checklist.write_text("".join(f"{c}\n" for c in allowed))
  with pytest.raises(predict.PredictError, match="allows 3 species, fewer than the 5 a submission"):
    predict.predict_to_csv(data_dir, "val", str(tmp_path / "three.csv"), model_dir=model_dir,
                           log=quiet, options=answer_options.Options(rule="argmax",
                                                                     checklist=str(checklist)))
  # inat-eval under a restriction says how many scored images no restricted answer can get right.
  from inat_tf import evaluate  # pylint: disable=g-import-not-at-top
  report = evaluate.evaluate(data_dir, model_dir, "val", options=answer_options.Options(
      rule="argmax", checklist=str(checklist)))
  labels = np.concatenate([e[schema.LABEL].numpy() for e in records.examples(
      data_dir, "val", [schema.LABEL]).batch(256)])
  outside = int(np.sum(~np.isin(labels, np.arange(3))))
  assert 0 < outside < len(labels)
  assert report["settings"]["restriction"] == (
      f"checklist {checklist} (3 of {label_map.num_classes} species; {outside} of the "
      f"{len(labels)} scored images are of species outside it, wrong by construction)")
  # No top-5 hit outside the restriction (the filling species counted as hits: top-5 was above
  # the share of images inside it), at every rank of the rank table too.
  inside = (len(labels) - outside) / len(labels)
  assert report["top1"] <= report["top5"] <= inside + 1e-9
  species_row = [r for r in report["ranks"] if r["rank"] == "species"][0]
  assert species_row["top5"] == pytest.approx(report["top5"])

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
  # Two allowed species: the other slots are "no species" in every format, as in Keras.
  two = ids[:2]
  restricted = saved.signatures["serving_restricted"](
      image_bytes=encoded, allowed_category_ids=tf.constant(two, tf.int64),
      allowed_taxa=tf.constant([], tf.string))
  assert (restricted["category_ids"].numpy()[:, 2:] == -1).all()
  assert (restricted["class_names"].numpy()[:, 2:] == b"").all()
  assert (restricted["scores"].numpy()[:, 2:] == 0).all()
  assert set(restricted["category_ids"].numpy()[:, :2].ravel()) == set(two)
  mask = np.isin(np.arange(tree.num_classes), [0, 1])
  keras_two = trained_model.predict(trained, data_dir, "val", answer_config=config, allowed=mask,
                                    command="test")
  assert (keras_two.top_indices[:, 2:] == -1).all()
  first = runner(images=preprocessing.eval_image(examples[0][schema.ENCODED],
                                                 trained.image_size).numpy()[np.newaxis],
                 allowed=mask)
  assert first["top_classes"][0].tolist() == keras_two.top_indices[0].tolist()
  with pytest.raises(tf.errors.InvalidArgumentError, match="allowed_category_ids"):
    saved.signatures["serving_restricted"](
        image_bytes=encoded[:1], allowed_category_ids=tf.constant([987654321], tf.int64),
        allowed_taxa=tf.constant([], tf.string))


@pytest.mark.slow
def test_holdout_species_build_and_eval_reports_answers_beyond_the_species(
    tiny_built_dir, trained_dir, tmp_path):
  import json
  from inat_tf import evaluate
  from inat_tf import label_map as label_map_lib
  from inat_tf.report import render
  from inat_tf.report import sections
  from tfrecord_builder import build
  with open(os.path.join(tiny_built_dir, "_build", "task-00000-of-00001.json")) as f:
    raw_dir = json.load(f)["flags"]["raw_dir"]
  data_dir = str(tmp_path / "holdout")
  status, summary = build.build(build.BuildConfig(raw_dir=raw_dir, data_dir=data_dir,
                                                  examples_per_shard=32,
                                                  holdout_species="0.25"), log=lambda m: None)
  assert status == 0, summary
  manifest = records.read_manifest(data_dir)
  held = manifest["holdout_species"]["category_ids"]
  label_map = label_map_lib.LabelMap.load(data_dir)
  assert len(held) == round(0.25 * label_map.num_classes) and held == sorted(held)
  # The label map keeps every class at its index; the held-out ones have no train images.
  assert label_map.category_ids == label_map_lib.LabelMap.load(str(tiny_built_dir)).category_ids
  assert [label_map.train_counts[label_map.index_of(c)] for c in held] == [0] * len(held)
  held_indices = {label_map.index_of(c) for c in held}
  train_labels = {int(e[schema.LABEL]) for e in records.examples(data_dir, "train",
                                                                  [schema.LABEL])}
  val_labels = [int(e[schema.LABEL]) for e in records.examples(data_dir, "val", [schema.LABEL])]
  assert not train_labels & held_indices and held_indices <= set(val_labels)
  assert manifest["holdout_species"]["train_images_left_out"] > 0
  # inat-train's val scores the seen species only, as inat-eval does (it scored every val image,
  # the held-out species' never right, below inat-eval's figure for the same model).
  from inat_tf import train as train_lib  # pylint: disable=g-import-not-at-top
  train_lib.train(train_lib.TrainConfig(
      data_dir=data_dir, model_dir=str(tmp_path / "holdout_model"), model="mobilenet_v1",
      image_size=32, batch_size=16, train_steps=1, weights="none", log_steps=1),
      log=lambda message: None)
  summary = json.loads((tmp_path / "holdout_model" / "train_summary.json").read_text())
  assert summary["final_val_images"] == sum(label not in held_indices for label in val_labels)
  # Resuming that data dir without the held-out species (or others) is refused, not mixed.
  for other in ("", "0.5"):
    with pytest.raises(build.BuildError, match="holdout_species"):
      build.build(build.BuildConfig(raw_dir=raw_dir, data_dir=data_dir, examples_per_shard=32,
                                    holdout_species=other), log=lambda m: None)
  # A later run that builds no train split rewrites label_map.json: the held-out species stay at
  # train_count 0 there (they had their JSON counts back), and manifest.json still lists them.
  status, summary = build.build(build.BuildConfig(raw_dir=raw_dir, data_dir=data_dir,
                                                  examples_per_shard=32, splits=("test",)),
                                log=lambda m: None)
  assert status == 0, summary
  label_map = label_map_lib.LabelMap.load(data_dir)
  assert [label_map.train_counts[label_map.index_of(c)] for c in held] == [0] * len(held)
  assert records.read_manifest(data_dir)["holdout_species"]["category_ids"] == held

  # inat-eval on it (the session's model saw every species, so the AUROC is not meaningful
  # here; the benchmark measures it): the headline on seen species, the answers per rule.
  report = evaluate.evaluate(data_dir, str(trained_dir), "val",
                             output_dir=str(tmp_path / "report"))
  unseen = sum(label in held_indices for label in val_labels)
  assert report["images"] == len(val_labels) - unseen
  found = report["answers"]
  assert [r["rule"] for r in found["rules"]] == ["argmax", "inat", "precision", "risk"]
  assert found["unseen_images"] == unseen and 0 <= found["open_set"]["msp"] <= 1
  argmax = found["rules"][0]
  assert argmax["species_coverage"] == 1.0 and argmax["answered"] == 1.0
  for rule in found["rules"]:
    assert 0 <= rule["unseen"]["placed"] <= 1
  assert found["held_out"]["part"] == "tune" and "report half" in found["scored"]
  text = render.text(sections.eval_sections(report))
  assert "Answers beyond the species" in text and "AUROC of seen against unseen" in text
  html = (tmp_path / "report" / "report.html").read_text()
  assert "Answers beyond the species" in html
  assert (tmp_path / "report" / "answers_precision_coverage.png").stat().st_size > 1000

  # The other way round: a model trained on the held-out build (its label map says train_count 0
  # for those species), evaluated on the full build, whose manifest holds nothing out: the same
  # species are unseen, not scored as seen ones the model merely gets wrong.
  model_dir = tmp_path / "trained_without_them"
  shutil.copytree(trained_dir, model_dir)
  model_labels = json.loads((model_dir / "label_map.json").read_text())
  for entry in model_labels["classes"]:
    if entry["category_id"] in held:
      entry["train_count"] = 0
  (model_dir / "label_map.json").write_text(json.dumps(model_labels))
  assert not records.read_manifest(str(tiny_built_dir))["holdout_species"]
  report = evaluate.evaluate(str(tiny_built_dir), str(model_dir), "val")
  assert report["images"] == len(val_labels) - unseen
  assert report["answers"]["unseen_images"] == unseen
  assert report["answers"]["holdout_species"] == len(held)
  assert "seen species only (%d the model was not trained on)" % len(held) in report["scored_part"]


@pytest.mark.slow
def test_eval_leaves_out_the_rule_comparison_that_would_not_fit_in_memory(
    tiny_built_dir, trained_dir, tmp_path, monkeypatch):
  """Issue 26 against issue 27: at iNat2021's counts the comparison would hold 100,000 x 10,000
  float32 probabilities (4 GB). Above answer_options.COMPARISON_BYTES (here made tiny) inat-eval
  says why in the report, still writes the chosen rule's taxon per image from the streaming
  pipeline, and a calibrated rule it would have to calibrate on too many images is refused in
  one line naming --minival_fraction."""
  from inat_tf import evaluate
  from inat_tf.report import render
  from inat_tf.report import sections
  model_dir = tmp_path / "model"
  shutil.copytree(trained_dir, model_dir)
  for stored in model_dir.glob("rollup-*.json"):  # earlier tests' calibrations: none here
    stored.unlink()
  monkeypatch.setattr(answer_options, "COMPARISON_BYTES", 1)
  report = evaluate.evaluate(str(tiny_built_dir), str(model_dir), "val",
                             output_dir=str(tmp_path / "eval"),
                             options=answer_options.Options(rule="inat"))
  assert "would take" in report["answers"]["not_computed"]
  text = render.text([sections.answers_beyond_species(report)])
  assert "The roll-up rules are not compared here" in text and "inat rule's answers" in text
  with open(tmp_path / "eval" / "predictions.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == report["images"] and "taxon" in rows[0]
  assert any(row["taxon"] for row in rows)  # iNat's rule answered, through the pipeline
  with pytest.raises(answer_options.RollupError, match="--minival_fraction"):
    evaluate.evaluate(str(tiny_built_dir), str(model_dir), "val",
                      options=answer_options.Options(rule="precision"))
