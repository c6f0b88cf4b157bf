"""Detection (inat_tf/detection): a RetinaNet trained once on a handful of tiny sample images and
shared by the tests of this group; the evaluator on hand-computed cases; keras-hub 0.32's traps."""

import io
import json
import math
import os
import sys

import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import models
from inat_tf import label_map as label_map_lib
from inat_tf import records
from inat_tf import sample_download
from inat_tf import schema
from inat_tf.detection import backbones
from inat_tf.detection import classes as classes_lib
from inat_tf.detection import coco
from inat_tf.detection import data
from inat_tf.detection import decoder
from inat_tf.detection import evaluate
from inat_tf.detection import export
from inat_tf.detection import model as model_lib
from inat_tf.detection import train
from tests import helpers
from tests.conftest import make_and_build

pytestmark = pytest.mark.xdist_group("detector")

TRAIN_STEPS, INTERRUPT_AT = 120, 20


class Interrupted(Exception):
  """Stands for a kill after the first checkpoint."""


@pytest.fixture(scope="module")
def det_data_dir(tmp_path_factory):
  """13 species x 1 train image at most 64 px: 9 train images with one box each (the nine boxed
  super-categories), 31 single-instance val images."""
  return str(make_and_build(tmp_path_factory, "det", sample_download.SampleConfig(
      num_species=13, min_train_per_species=1, max_train_per_species=1, max_side=64, seed=1)))


def _train_config(data_dir, model_dir, **overrides):
  return train.DetectTrainConfig(**{
      "data_dir": data_dir, "model_dir": model_dir, "granularity": "species",
      "backbone": "mobilenet_v1", "image_size": 64, "batch_size": 8,
      "train_steps": TRAIN_STEPS, "learning_rate": 1e-3, "warmup_steps": 10, "weights": "none",
      "anchor_size": 1.0, "head_convs": 1, "bn_momentum": 0.5, "log_steps": 20,
      "checkpoint_steps": INTERRUPT_AT, **overrides})


@pytest.fixture(scope="module")
def trained(det_data_dir, tmp_path_factory):
  """A species detector: a first run killed after its step-20 checkpoint, then the same command
  again, which must resume and finish at step 80. Returns (model_dir, logs of both runs, summary
  of the second run)."""
  model_dir = str(tmp_path_factory.mktemp("detector"))
  config = _train_config(det_data_dir, model_dir)
  first = []

  def log_then_die(message):
    first.append(message)
    if message == f"checkpoint saved at step {INTERRUPT_AT}":
      raise Interrupted()

  with pytest.raises(Interrupted):
    train.train(config, log=log_then_die)
  second = []
  summary = train.train(config, log=second.append)
  return model_dir, first, second, summary


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("det_eval"))


@pytest.fixture(scope="module")
def report(trained, det_data_dir, eval_dir):
  """inat-detect-eval on the training images (the overfitting check)."""
  return evaluate.evaluate(det_data_dir, trained[0], split="train", output_dir=eval_dir,
                           log=lambda m: None)


# -- training, evaluation, export on the trained detector ---------------------------------------

@pytest.mark.slow
def test_resume_continues_at_the_saved_step(trained):
  model_dir, first, second, summary = trained
  assert not any("resuming" in m for m in first)
  assert any(m.startswith("inat-detect-train: resuming from ") and
             m.endswith(f"at step {INTERRUPT_AT}") for m in second), second
  assert summary["steps"] == TRAIN_STEPS
  assert summary["steps_this_run"] == TRAIN_STEPS - INTERRUPT_AT
  assert summary["last_loss"] < 0.1


@pytest.mark.slow
def test_detector_overfits_its_training_images(report):
  overall = report["tables"]["species"]["Overall"]
  assert report["images"] == 9
  # AP50 is the mean over the nine species (one image each): measured 0.94-1.0; >= 0.85 allows
  # one of them to be found at half precision, as CPU training is not bit-deterministic.
  assert overall["AP50"] >= 0.85, report["tables"]
  # Every one of the nine super-categories has its own row, each with its one image.
  rows = report["tables"]["species"]
  assert sorted(rows) == sorted(sample_download.BOXED_SUPERCATEGORIES | {"Overall"})
  assert all(rows[name]["images"] == 1 for name in rows if name != "Overall")
  # Table 6: the species detector is also scored as super-classes and class-agnostic.
  for granularity in ("superclass", "agnostic"):
    table = report["tables"][granularity]
    assert {name: row["images"] for name, row in table.items()} == {
        name: row["images"] for name, row in rows.items()}
    assert table["Overall"]["AP50"] > 0.5


@pytest.mark.slow
def test_eval_writes_coco_results_and_report(report, eval_dir, det_data_dir):
  from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top
  with open(os.path.join(eval_dir, "detections_species.json")) as f:
    results = json.load(f)
  assert results and set(results[0]) == {"image_id", "category_id", "bbox", "score"}
  gt = COCO(os.path.join(eval_dir, "ground_truth_species.json"))
  label_map = label_map_lib.LabelMap.load(det_data_dir)
  assert {r["category_id"] for r in results} <= set(label_map.category_ids)
  assert gt.loadRes(results).getImgIds()
  with open(os.path.join(eval_dir, "detection_report.md")) as f:
    text = f.read()
  assert "| Overall | 9 |" in text and "Table 6" in text
  with open(os.path.join(eval_dir, "detection_metrics.json")) as f:
    assert json.load(f)["tables"]["species"]["Overall"]["AP50"] == \
        report["tables"]["species"]["Overall"]["AP50"]


@pytest.mark.slow
def test_export_serves_image_bytes_in_a_fresh_process(trained, det_data_dir, tmp_path):
  model_dir = trained[0]
  export_dir = tmp_path / "export"
  (export_dir / "saved_model" / "7").mkdir(parents=True)  # an older version a server may hold
  info = export.export(model_dir, str(export_dir))
  # TF Serving's layout, as inat-export writes it: the next numbered version under saved_model/.
  assert info["saved_model"] == str(export_dir / "saved_model" / "8")
  assert (export_dir / "saved_model" / "8" / "saved_model.pb").exists()
  examples = list(records.examples(det_data_dir, "train", [schema.ENCODED, schema.IMAGE_ID])
                  .take(2))
  inputs = []
  for i, example in enumerate(examples):
    path = tmp_path / f"image{i}.jpg"
    path.write_bytes(example[schema.ENCODED].numpy())
    inputs.append(str(path))
  # A phone photo of the first image's pixels, stored sideways with EXIF orientation 6, beside
  # the same pixels stored upright (both JPEG quality 100); and an item that is not an image.
  pixels = tf.io.decode_jpeg(examples[0][schema.ENCODED]).numpy()
  exif = Image.Exif()
  exif[0x0112] = 6  # displayed turned 90 degrees clockwise
  for name, stored, options in (("upright.jpg", pixels, {}),
                                ("sideways.jpg", np.rot90(pixels, 1), {"exif": exif}),
                                ("broken.jpg", None, None)):
    out = io.BytesIO()
    if stored is None:
      out.write(b"\xff\xd8\xff not a JPEG")
    else:
      Image.fromarray(np.ascontiguousarray(stored)).save(out, "JPEG", quality=100, **options)
    (tmp_path / name).write_bytes(out.getvalue())
    inputs.append(str(tmp_path / name))
  script = (
      "import json, sys\n"
      "import tensorflow as tf\n"
      f"model = tf.saved_model.load({info['saved_model']!r})\n"
      f"images = [open(p, 'rb').read() for p in {inputs!r}]\n"
      "out = model.signatures['serving_default'](image_bytes=tf.constant(images))\n"
      "assert not [m for m in sys.modules if m.startswith(('inat_tf', 'keras_hub', 'models'))]\n"
      "print(json.dumps({k: v.numpy().tolist() for k, v in out.items()\n"
      "                  if k != 'class_names'}))\n")
  run = helpers.run([sys.executable, "-c", script], timeout=300, cwd=tmp_path)
  assert run.returncode == 0, run.stderr[-3000:]
  served = json.loads(run.stdout.strip().splitlines()[-1])
  # The same images through the evaluator's path, in this process.
  detector, config, classes = model_lib.load(model_dir)
  expected = {d["image_id"]: d for d in evaluate.predict(
      detector, config, classes, det_data_dir, "train", batch_size=8)}
  for i, example in enumerate(examples):
    mine = expected[int(example[schema.IMAGE_ID])]
    assert served["num_detections"][i] == len(mine["scores"])
    np.testing.assert_allclose(served["boxes"][i][0], mine["boxes"][0], atol=0.5)
    assert served["category_ids"][i][0] == classes.ids[int(mine["classes"][0])]
    assert served["scores"][i][0] == pytest.approx(float(mine["scores"][0]), abs=1e-4)
  # Each item has its own status: the broken one is marked, the others answered as alone.
  assert served["valid"] == [True, True, True, True, False]
  assert served["num_detections"][4] == 0 and served["category_ids"][4][0] == -1
  # The sideways photo is seen upright: boxes in the displayed frame, as the upright copy's.
  upright, sideways = 2, 3
  assert served["num_detections"][sideways] > 0
  assert served["category_ids"][sideways][0] == served["category_ids"][upright][0]
  np.testing.assert_allclose(served["boxes"][sideways][0], served["boxes"][upright][0], atol=2.0)


# -- the evaluator against hand-computed cases --------------------------------------------------

def _label_map():
  """Three species: two birds (Aves), one insect (Insecta); and a plant (no boxes)."""
  categories = [{"id": 10, "name": "bird a", "supercategory": "Aves"},
                {"id": 11, "name": "bird b", "supercategory": "Aves"},
                {"id": 20, "name": "bug", "supercategory": "Insecta"},
                {"id": 30, "name": "fern", "supercategory": "Plantae"}]
  return label_map_lib.LabelMap.from_categories(categories, {})


def _images():
  # Image 1: bird a at x 0-10, y 0-10; image 2: bird a at x 20-30; image 3: the bug.
  return [{"image_id": 1, "height": 40, "width": 40, "boxes": [[0, 0, 10, 10]], "species": [0],
           "areas": [100.0]},
          {"image_id": 2, "height": 40, "width": 40, "boxes": [[0, 20, 10, 30]], "species": [0],
           "areas": [100.0]},
          {"image_id": 3, "height": 40, "width": 40, "boxes": [[5, 5, 25, 25]], "species": [2],
           "areas": [400.0]}]


def test_classes_at_each_granularity():
  label_map = _label_map()
  species = classes_lib.detection_classes(label_map, "species")
  assert species.ids == (10, 11, 20) and species.species_to_class == (0, 1, 2, -1)
  superclass = classes_lib.detection_classes(label_map, "superclass")
  assert superclass.names == ("Aves", "Insecta") and superclass.species_to_class == (0, 0, 1, -1)
  assert superclass.ids == (0, 1)  # label-map super-category indices (Aves, Insecta, Plantae)
  agnostic = classes_lib.detection_classes(label_map, "agnostic")
  assert agnostic.ids == (1,) and agnostic.species_to_class == (0, 0, 0, -1)


def test_evaluator_agrees_with_a_hand_computed_case():
  classes = classes_lib.detection_classes(_label_map(), "species")
  images = _images()[:2]
  truth = coco.ground_truth_json(images, classes)
  # Image 1: an exact hit (score 0.9). Image 2: IoU 0.62 (box 6.2 high instead of 10; 0.8).
  detections = [{"image_id": 1, "boxes": [[0, 0, 10, 10]], "scores": [0.9], "classes": [0]},
                {"image_id": 2, "boxes": [[0, 20, 6.2, 30]], "scores": [0.8], "classes": [0]}]
  scores = coco.score(truth, coco.results_json(detections, classes))
  # IoU thresholds 0.50:0.05:0.95. At 0.50, 0.55, 0.60 both are hits: precision 1 at recall 1.
  # At the 7 others only the first is: precision 1 up to recall 0.5, so 51 of COCO's 101 recall
  # points have precision 1 and AP = 51/101.
  half = 51 / 101
  assert scores["AP50"] == pytest.approx(1.0)
  assert scores["AP75"] == pytest.approx(half)
  assert scores["AP"] == pytest.approx((3 * 1.0 + 7 * half) / 10)
  assert scores["AR1"] == pytest.approx((3 * 1.0 + 7 * 0.5) / 10)
  assert scores["AR10"] == pytest.approx(scores["AR1"])
  assert coco.score(truth, []) == {m: 0.0 for m in coco.METRICS}


def test_per_supercategory_rows_and_coarser_scoring():
  label_map = _label_map()
  species = classes_lib.detection_classes(label_map, "species")
  images = _images()
  # Image 1: right species. Image 2: right box, wrong species of the same genus (bird b).
  # Image 3: the bug found, right species.
  detections = [{"image_id": 1, "boxes": [[0, 0, 10, 10]], "scores": [0.9], "classes": [0]},
                {"image_id": 2, "boxes": [[0, 20, 10, 30]], "scores": [0.8], "classes": [1]},
                {"image_id": 3, "boxes": [[5, 5, 25, 25]], "scores": [0.7], "classes": [2]}]
  results = coco.results_json(detections, species)
  by_species = [label_map.supercategory_names[s] for s in label_map.supercategories]
  rows = coco.table(coco.ground_truth_json(images, species), results, species, images,
                    by_species)
  assert rows["Aves"]["images"] == 2 and rows["Insecta"]["images"] == 1
  assert "Plantae" not in rows
  # Aves: bird a has 2 boxes, one found at 0.9 (recall 0.5: 51/101); bird b has no ground truth
  # (left out of the mean); so Aves AP50 = 51/101. Insecta is perfect on its own.
  assert rows["Aves"]["AP50"] == pytest.approx(51 / 101)
  assert rows["Insecta"]["AP50"] == pytest.approx(1.0)
  # Overall: the mean over bird a (51/101) and bug (1); bird b has no ground truth.
  assert rows["Overall"]["AP50"] == pytest.approx((51 / 101 + 1.0) / 2)
  # Scored as super-classes (Table 6), the wrong bird is a right bird: every row is perfect.
  for granularity in ("superclass", "agnostic"):
    target = classes_lib.detection_classes(label_map, granularity)
    coarse = coco.convert_results(results, species, target)
    rows = coco.table(coco.ground_truth_json(images, target), coarse, target, images,
                      by_species)
    assert {name: row["AP50"] for name, row in rows.items()} == pytest.approx(
        {"Overall": 1.0, "Aves": 1.0, "Insecta": 1.0}), granularity
  # An agnostic row keeps only its super-category's images: a false alarm on the bug's image
  # lowers Insecta's AP, not Aves'.
  agnostic = classes_lib.detection_classes(label_map, "agnostic")
  noisy = coco.convert_results(results, species, agnostic) + [
      {"image_id": 3, "category_id": 1, "bbox": [30, 30, 5, 5], "score": 0.95}]
  rows = coco.table(coco.ground_truth_json(images, agnostic), noisy, agnostic, images,
                    by_species)
  assert rows["Aves"]["AP50"] == pytest.approx(1.0)
  assert rows["Insecta"]["AP50"] < 0.6


# -- keras-hub 0.32's traps ---------------------------------------------------------------------

def test_trap_default_decoder_drops_scores_below_one_half():
  boxes = tf.constant([[[0, 0, 10, 10], [20, 20, 30, 30]]], tf.float32)
  logits = tf.math.log(tf.constant([[[0.9, 0.01], [0.01, 0.3]]]) / (1 - tf.constant(
      [[[0.9, 0.01], [0.01, 0.3]]])))
  default = keras_hub.layers.NonMaxSuppression(bounding_box_format="yxyx", from_logits=True)
  assert default.confidence_threshold == 0.5  # the trap
  assert int(default(boxes, logits)["num_detections"][0]) == 1  # the 0.3 box is gone
  ours = decoder.PerClassNMS(confidence_threshold=0.05)(boxes, logits)
  assert int(ours["num_detections"][0]) == 2
  np.testing.assert_allclose(ours["confidence"][0, :2], [0.9, 0.3], atol=1e-5)
  assert ours["labels"][0, :2].numpy().tolist() == [0, 1]
  detector = model_lib.build(model_lib.DetectorConfig(backbone="mobilenet_v1", image_size=64,
                                                      num_classes=3))
  assert detector.prediction_decoder.confidence_threshold == 0.05
  # keras-hub's own prior-probability bias sits on the box head; ours on the classifier.
  np.testing.assert_allclose(detector.classification_head.prediction_layer.bias.numpy(),
                             -math.log(0.99 / 0.01), rtol=1e-6)
  np.testing.assert_allclose(detector.box_head.prediction_layer.bias.numpy(), 0.0)


@pytest.mark.slow  # builds a full-size network
def test_trap_inception_odd_maps_are_padded_to_the_anchor_grid():
  size = 96
  network = models.build("inception_v3", 2, size)
  raw = {f"P{level}": network.get_layer(tap).output
         for level, tap in zip(backbones.LEVELS, backbones.TAPS["inception_v3"])}
  assert [tuple(t.shape[1:3]) for t in raw.values()] == [(9, 9), (4, 4), (1, 1)]
  encoder = keras_hub.models.FeaturePyramidBackbone(inputs=network.input, outputs=raw)
  encoder.pyramid_outputs = raw
  unpadded = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3, max_level=7,
                                                use_p5=False)
  with pytest.raises(ValueError, match="incompatible shapes"):
    unpadded(np.zeros((1, size, size, 3), np.float32))
  ours = backbones.pyramid_encoder("inception_v3", size)
  assert {k: tuple(v.shape[1:3]) for k, v in ours.pyramid_outputs.items()} == {
      "P3": (12, 12), "P4": (6, 6), "P5": (3, 3)}
  pyramid = keras_hub.models.RetinaNetBackbone(image_encoder=ours, min_level=3, max_level=7,
                                               use_p5=False, image_shape=(size, size, 3))
  out = pyramid(np.zeros((1, size, size, 3), np.float32))
  assert {k: v.shape[1] for k, v in out.items()} == {
      f"P{level}": math.ceil(size / 2 ** level) for level in range(3, 8)}
  with pytest.raises(ValueError, match="multiple of 32"):
    backbones.check_image_size("inception_v3", 100)


@pytest.mark.slow
def test_trap_targets_are_dense_pixels_padded_with_minus_one(det_data_dir):
  label_map = label_map_lib.LabelMap.load(det_data_dir)
  classes = classes_lib.detection_classes(label_map, "species")
  truth = {i["image_id"]: i for i in coco.read_ground_truth(det_data_dir, "train")}
  images, targets, meta = next(iter(data.eval_dataset(
      det_data_dir, "train", classes.species_to_class, 64, 9, max_boxes=5)))
  assert targets["boxes"].shape == (9, 5, 4) and targets["labels"].shape == (9, 5)
  assert targets["labels"].dtype == tf.int32 and not isinstance(targets["boxes"], tf.RaggedTensor)
  np.testing.assert_array_equal(targets["labels"][:, 1:], -1)
  np.testing.assert_array_equal(targets["boxes"][:, 1:], -1.0)
  for i, image_id in enumerate(meta["image_id"].numpy()):
    # Pixels of the 64 x 64 input = original pixels x (content / original size).
    scale = np.tile(meta["content_size"][i].numpy() / meta["original_size"][i].numpy(), 2)
    np.testing.assert_allclose(targets["boxes"][i, 0], np.array(truth[image_id]["boxes"][0]) *
                               scale, atol=1e-3)
    assert int(targets["labels"][i, 0]) == classes.species_to_class[truth[image_id]["species"][0]]
  # A detector's loss is finite on them, and zero on a batch of padding only.
  detector = model_lib.build(model_lib.DetectorConfig(backbone="mobilenet_v1", image_size=64,
                                                      num_classes=classes.num_classes,
                                                      anchor_size=1.0, head_convs=1))
  loss = detector.compute_loss(x=images, y=targets, y_pred=detector(images), sample_weight=None)
  assert np.isfinite(float(loss)) and float(loss) > 0
  empty = {"boxes": -tf.ones_like(targets["boxes"]), "labels": -tf.ones_like(targets["labels"])}
  assert float(detector.compute_loss(x=images, y=empty, y_pred=detector(images),
                                     sample_weight=None)) == 0.0


@pytest.mark.slow
def test_trap_inputs_in_unit_range_normalised_once(det_data_dir):
  label_map = label_map_lib.LabelMap.load(det_data_dir)
  classes = classes_lib.detection_classes(label_map, "species")
  batches = data.train_dataset(det_data_dir, classes.species_to_class, 64, 8, 5, seed=3)
  images, targets = next(iter(batches))
  assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 1.0
  assert float(tf.reduce_max(images)) > 0.5  # [0, 1], not [0, 1/255]
  encoder = backbones.pyramid_encoder("mobilenet_v1", 64)
  taps = encoder.get_layer("mobilenet_v1_taps")
  expected = taps(models.preprocess_input("mobilenet_v1")(images * 255.0))
  got = encoder(images)
  for level, feature in zip(backbones.LEVELS, expected):
    np.testing.assert_allclose(got[f"P{level}"], feature, rtol=1e-4, atol=1e-4)
  # Flips move the boxes with the pixels: the box content of a flipped image is the mirror of
  # the unflipped one (same element, seeds chosen to flip and not to flip).
  features = next(iter(data.boxed_examples(det_data_dir, "train")))
  flips = {}
  for seed in range(8):
    image, target, _ = data.example_to_inputs(features, classes.species_to_class, 64, 5,
                                              flip_seed=tf.constant([seed, 0], tf.int64))
    flips.setdefault(bool(tf.random.stateless_uniform([], [seed, 0]) < 0.5), (image, target))
  (plain, plain_t), (flipped, flipped_t) = flips[False], flips[True]
  y0, x0, y1, x1 = np.round(plain_t["boxes"][0].numpy()).astype(int)
  fy0, fx0, fy1, fx1 = np.round(flipped_t["boxes"][0].numpy()).astype(int)
  assert (fy0, fy1) == (y0, y1) and fx1 - fx0 == x1 - x0
  np.testing.assert_allclose(flipped.numpy()[fy0:fy1, fx0:fx1][:, ::-1],
                             plain.numpy()[y0:y1, x0:x1], atol=0.1)


# -- bad input -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_bad_flags_are_reported(det_data_dir, tmp_path):
  with pytest.raises(train.DetectTrainError, match="granularity='genus'.*species, superclass"):
    train.train(_train_config(det_data_dir, str(tmp_path), granularity="genus"))
  with pytest.raises(train.DetectTrainError, match="image_size=100.*multiple of 32"):
    train.train(_train_config(det_data_dir, str(tmp_path), image_size=100))
  with pytest.raises(train.DetectTrainError, match="--epochs"):
    train.train(_train_config(det_data_dir, str(tmp_path), train_steps=0))
  with pytest.raises(FileNotFoundError, match="detector.json.*inat-detect-train"):
    evaluate.evaluate(det_data_dir, str(tmp_path))


@pytest.mark.slow
def test_data_dir_without_boxes_is_reported(det_data_dir, tmp_path):
  """The same records with their box features removed: the error names the dir and the fix."""
  no_boxes = tmp_path / "no_boxes"
  no_boxes.mkdir()
  tf.io.gfile.copy(os.path.join(det_data_dir, "label_map.json"),
                   str(no_boxes / "label_map.json"))
  for path in records.shard_files(det_data_dir, "train"):
    with tf.io.TFRecordWriter(str(no_boxes / os.path.basename(path))) as writer:
      for serialized in tf.data.TFRecordDataset(path):
        example = tf.train.Example.FromString(serialized.numpy())
        for key in data.BOX_KEYS + (schema.OBJECT_LABEL,):
          del example.features.feature[key]
        writer.write(example.SerializeToString())
  with pytest.raises(data.DetectionDataError, match=f"No train example in {no_boxes}.*"
                     "train_2017_bboxes.json.*inat-build"):
    train.train(_train_config(str(no_boxes), str(tmp_path / "model")))


def test_species_on_one_box_are_one_detection_at_coarser_levels():
  """Per-class NMS keeps two bird species on image 1's box; as super-classes they are one bird,
  not a bird and a duplicate ranked above image 2's bird."""
  label_map = _label_map()
  species = classes_lib.detection_classes(label_map, "species")
  images = _images()[:2]
  detections = [{"image_id": 1, "boxes": [[0, 0, 10, 10], [0, 0, 10, 10]], "scores": [0.9, 0.8],
                 "classes": [0, 1]},
                {"image_id": 2, "boxes": [[0, 20, 10, 30]], "scores": [0.7], "classes": [0]}]
  results = coco.results_json(detections, species)
  for granularity in ("superclass", "agnostic"):
    target = classes_lib.detection_classes(label_map, granularity)
    coarse = coco.convert_results(results, species, target)
    assert sorted(r["score"] for r in coarse) == [0.7, 0.9], granularity
    scores = coco.score(coco.ground_truth_json(images, target), coarse)
    assert scores["AP50"] == pytest.approx(1.0), granularity
