"""The location prior (inat_tf/geo): encoding, loss, combination, training, and its use by
inat-eval, inat-predict, inat-export and inat-classify."""

import csv
import io
import json
import math
import os
import signal
import sys

import numpy as np
import pillow_heif
import pytest
import tensorflow as tf
from PIL import ExifTags
from PIL import Image

from inat_tf import bundle
from inat_tf import classify
from inat_tf import evaluate
from inat_tf import export
from inat_tf import label_map as label_map_lib
from inat_tf import predict
from inat_tf import preprocessing
from inat_tf import records
from inat_tf import sample_download
from inat_tf import schema
from inat_tf import trained_model
from inat_tf.geo import encoding
from inat_tf.geo import model as geo_model
from inat_tf.geo import prior as prior_lib
from inat_tf.geo import report
from inat_tf.geo import train as geo_train
from inat_tf.report import render
from inat_tf.report import sections
from tests import helpers
from tests.conftest import QUICK_GEO
from tests.conftest import TRAINED_MODEL_GROUP
from tests.helpers import console_script

NAN = math.nan
# The phone bundle's int8 model against the SavedModel, top-1 on the tiny model's val images:
# at least what benchmarks/edge.py measured for its family, MobileNet V1 (91.9 % on 520 val
# images of a 62 % model; the tiny model here gave 52 of 52).
INT8_AGREEMENT = 0.9


# -- encoding -------------------------------------------------------------------------------------

def test_date_fraction_on_hand_made_dates():
  dates = ["2017-01-01 10:00:00+00:00", "2017-12-31", "2016-12-31", "2016-03-01", "2017-03-01",
           "2017:07:04 11:00:00", "2016-02-29", " 2017-06-01 ",
           "", "not a date", "2017-13-01", "2017-02-29", "2017-04-31", "2017-00-10"]
  expected = [0, 364 / 365, 365 / 366, 60 / 366, 59 / 365, 184 / 365, 59 / 366, 151 / 365] + \
      [NAN] * 6
  np.testing.assert_allclose(encoding.date_fraction(dates).numpy(), expected, rtol=1e-6)
  np.testing.assert_allclose(encoding.date_fraction_from_parts([2017, 2016, 0], [3, 3, 0],
                                                               [1, 1, 0]).numpy(),
                             [59 / 365, 60 / 366, NAN], rtol=1e-6)


def test_encoding_is_the_papers_sin_cos_of_scaled_coordinates():
  places = encoding.place([45.0, -90.0, 10.0, 95.0], [90.0, 180.0, -200.0, 0.0],
                          [0.25, 0.5, NAN, 0.0])
  got = places.numpy()
  # Out-of-range coordinates become missing, never a different real place.
  assert np.isnan(got[2, :2]).all() and np.isnan(got[3, :2]).all() and np.isnan(got[2, 2])
  np.testing.assert_array_equal(encoding.has_place(places).numpy(), [True, True, False, False])
  np.testing.assert_array_equal(encoding.has_place(places, use_date=False).numpy(),
                                [True, True, False, False])
  x = encoding.encode(places[:2]).numpy()
  lon, lat, day = np.array([0.5, 1.0]), np.array([0.5, -1.0]), np.array([-0.5, 0.0])
  expected = np.stack([np.sin(np.pi * lon), np.sin(np.pi * lat), np.cos(np.pi * lon),
                       np.cos(np.pi * lat), np.sin(np.pi * day), np.cos(np.pi * day)], axis=1)
  np.testing.assert_allclose(x, expected, atol=1e-6)
  assert encoding.encode(places, use_date=False).shape == (4, 4)
  assert np.isfinite(encoding.encode(places).numpy()).all()
  # Location without a date: usable only by a location-only prior.
  no_date = encoding.place([1.0], [2.0], [NAN])
  assert not encoding.has_place(no_date).numpy()[0]
  assert encoding.has_place(no_date, use_date=False).numpy()[0]


def test_random_background_places_are_uniform_on_the_sphere():
  places = geo_model.random_places(40000, tf.constant([3, 4])).numpy()
  assert (np.abs(places[:, 0]) <= 90).all() and (np.abs(places[:, 1]) <= 180).all()
  assert ((places[:, 2] >= 0) & (places[:, 2] < 1)).all()
  # A band |latitude| < 30° holds sin(30°) = half of the sphere's area (a uniform draw of
  # latitude would put a third there).
  assert np.mean(np.abs(places[:, 0]) < 30) == pytest.approx(0.5, abs=0.01)


# -- loss and combination -------------------------------------------------------------------------

def _log_sigmoid(z):
  return np.log(1 / (1 + np.exp(-z)))


def test_presence_only_loss_equals_the_papers_formula():
  logits = np.array([[2.0, -1.0, 0.5], [-3.0, 1.0, 0.0]], np.float32)
  background = np.array([[0.3, -2.0, 1.0], [-1.0, -1.0, 4.0]], np.float32)
  labels = np.array([0, 2])
  weight = 3.0
  expected = 0.0
  for n in range(2):
    for c in range(3):
      expected += (-weight * _log_sigmoid(logits[n, c]) if c == labels[n]
                   else -np.log(1 - 1 / (1 + np.exp(-logits[n, c]))))
      expected += -np.log(1 - 1 / (1 + np.exp(-background[n, c])))
  expected /= 6  # both terms are means over N × C
  got = geo_model.presence_only_loss(logits, background, labels, weight).numpy()
  assert got == pytest.approx(expected, rel=1e-5)
  # Finite for logits whose sigmoid rounds to 0 or 1 in float32.
  assert np.isfinite(geo_model.presence_only_loss(
      np.array([[200.0, -200.0]], np.float32), np.array([[300.0, -300.0]], np.float32),
      np.array([1]), 2.0).numpy())


def test_combination_equals_its_formula_and_leaves_rows_without_a_place_untouched():
  image = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.25, 0.5], [0.5, 0.5, 0.0]],
                   np.float32)
  prior_logits = np.array([[-2.0, 1.0, 0.0], [3.0, -3.0, 0.5], [5.0, 5.0, -5.0],
                           [-1.0, 2.0, 0.0]], np.float32)
  available = np.array([True, True, False, True])
  got = prior_lib.combine(image, prior_logits, available, floor=0.0).numpy()  # plain product
  product = image / 1.0 * (1 / (1 + np.exp(-prior_logits.astype(np.float64))))
  expected = product / product.sum(axis=1, keepdims=True)
  np.testing.assert_allclose(got[available], expected[available], rtol=1e-5, atol=1e-7)
  assert got[2].tobytes() == image[2].tobytes()  # bit for bit
  assert got[3, 2] == 0  # an impossible species stays impossible
  # No 0/0 when the prior makes every species very unlikely.
  tiny = prior_lib.combine(image[:1], np.full([1, 3], -300.0, np.float32), [True],
                          floor=0.0).numpy()
  np.testing.assert_allclose(tiny.sum(), 1.0, rtol=1e-5)


def test_side_by_side_report_on_hand_made_predictions():
  predictions = trained_model.Predictions(
      image_ids=np.arange(4), labels=np.array([0, 1, 2, -1]),
      top_indices=np.array([[1, 0], [1, 0], [0, 2], [0, 1]]), top_scores=np.zeros([4, 2]),
      geo_top_indices=np.array([[0, 1], [1, 0], [0, 2], [1, 0]]), geo_top_scores=np.zeros([4, 2]),
      has_place=np.array([True, True, False, True]))
  comparison = report.compare(predictions)
  rows = {row["name"]: row for row in comparison["subsets"]}
  assert rows["all images"]["images"] == 3  # the unlabelled image is not scored
  assert rows["all images"]["image_only"]["top1"] == pytest.approx(1 / 3)
  assert rows["all images"]["with_prior"]["top1"] == pytest.approx(2 / 3)
  assert rows["with a place"]["with_prior"]["top1"] == 1.0
  assert rows["without a place"]["image_only"] == rows["without a place"]["with_prior"]
  assert comparison["top1_changed"] == 2 and comparison["images_with_place"] == 3
  text = render.markdown([sections.location_prior({"location_prior": comparison})])
  assert "| with a place | 2 | 50.00% | 100.00% |" in text


def test_a_prior_for_other_classes_is_refused():
  ours = label_map_lib.LabelMap((3, 5), ("a b", "c d"), (0, 0), ("X",), (1, 1))
  other = label_map_lib.LabelMap((3, 6), ("a b", "c e"), (0, 0), ("X",), (1, 1))
  prior = prior_lib.GeoPrior(model=None, use_date=True, label_map=ours)
  prior.check_matches(ours, "M")
  with pytest.raises(prior_lib.GeoError, match="inat-train-geo"):
    prior.check_matches(other, "M")


# -- EXIF and the sample --------------------------------------------------------------------------

def _jpeg(pixels, latitude=None, longitude=None, date=None):
  """JPEG bytes of `pixels`, with EXIF GPS and DateTimeOriginal when given."""
  image = Image.fromarray(pixels)
  exif = Image.Exif()
  if latitude is not None:
    as_dms = lambda value: (float(int(value)), float(int(value * 60 % 60)),
                            round(value * 3600 % 60, 4))
    exif[ExifTags.IFD.GPSInfo] = {1: "N" if latitude >= 0 else "S", 2: as_dms(abs(latitude)),
                                  3: "E" if longitude >= 0 else "W", 4: as_dms(abs(longitude))}
  if date is not None:
    exif[ExifTags.IFD.Exif] = {36867: date.replace("-", ":") + " 10:30:00"}
  out = io.BytesIO()
  image.save(out, "JPEG", quality=95, exif=exif)
  return out.getvalue()


def test_exif_place_reads_gps_and_capture_date():
  pixels = np.full([40, 50, 3], 120, np.uint8)
  latitude, longitude, date = classify.exif_place(_jpeg(pixels, -33.8568, 151.2153, "2017-06-01"))
  assert latitude == pytest.approx(-33.8568, abs=1e-4)
  assert longitude == pytest.approx(151.2153, abs=1e-4)
  assert date == "2017-06-01"
  assert classify.exif_place(_jpeg(pixels)) == (None, None, None)
  assert classify.exif_place(b"not an image") == (None, None, None)


def test_exif_gps_of_exactly_zero_zero_is_no_position():
  """(0, 0) is what a phone without a fix writes (and Android's picker zeroes GPS to): no place,
  said so in the photo's line; flags still win; a real place near (0, 0) is kept."""
  pixels = np.full([40, 50, 3], 120, np.uint8)
  zero = _jpeg(pixels, 0.0, 0.0, "2017-06-01")
  assert classify.exif_place(zero) == (classify.NULL_ISLAND, classify.NULL_ISLAND, "2017-06-01")
  latitude, longitude, date, words = classify._place_for(  # pylint: disable=protected-access
      zero, classify.Place())
  assert (latitude, longitude, date) == (None, None, "2017-06-01")
  assert words.startswith("no position (EXIF GPS 0, 0")
  given = classify._place_for(zero, classify.Place(1.5, 2.5))  # pylint: disable=protected-access
  assert given[:2] == (1.5, 2.5) and given[3].startswith("position from flags")
  near = classify.exif_place(_jpeg(pixels, 0.0, 0.01))  # on the equator, a real place
  assert near[0] == 0.0 and near[1] == pytest.approx(0.01, abs=1e-4)


def _encoded(pixels, image_format, **options):
  if image_format == "HEIF":
    pillow_heif.register_heif_opener()  # Pillow writes HEIC through pillow-heif's plugin
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, image_format, **options)
  return out.getvalue()


def test_every_photo_format_is_sniffed_and_read_upright():
  """JPEG, PNG, GIF, BMP and WebP go to the graph unchanged; TIFF and HEIC are decoded by Pillow,
  turned upright and sent as a lossless PNG of their pixels; anything else is named not an image,
  whatever its extension."""
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, [30, 40, 3], dtype=np.uint8)
  for image_format, options in (("JPEG", {}), ("PNG", {}), ("GIF", {}), ("BMP", {}),
                                ("WEBP", {"lossless": True})):
    data = _encoded(pixels, image_format, **options)
    assert classify.sniff_format(data[:16]) == image_format
    assert classify.model_bytes(data) == (data, None)
  exif = Image.Exif()
  exif[0x0112] = 6  # stored sideways: displayed turned 90 degrees clockwise
  tiff = _encoded(pixels, "TIFF", exif=exif)
  assert classify.sniff_format(tiff[:16]) == "TIFF"
  png, reason = classify.model_bytes(tiff)
  assert reason is None and classify.sniff_format(png[:16]) == "PNG"
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), np.rot90(pixels, -1))
  heic = _encoded(pixels, "HEIF", quality=-1)  # pillow-heif: lossless
  assert classify.sniff_format(heic[:16]) == "HEIF"
  png, reason = classify.model_bytes(heic)
  assert reason is None and np.asarray(Image.open(io.BytesIO(png))).shape == (30, 40, 3)
  for not_an_image in (b"", b"plain text notes", b"\x00\x05\x16\x07" + b"\x00" * 40,
                       b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40):  # AppleDouble, MP4 video
    assert classify.model_bytes(not_an_image) == (None, classify.NOT_AN_IMAGE)


def test_sample_siblings_have_overlapping_ranges_and_seasons():
  config = sample_download.SampleConfig()
  make_species = sample_download.make_species
  species = make_species(config, np.random.default_rng(config.seed))
  by_genus = {}
  for sp in species:
    by_genus.setdefault(sp.genus, []).append(sp)
  siblings = [members for members in by_genus.values() if len(members) > 1]
  assert siblings
  for members in siblings:
    homes = np.array([sp.home for sp in members])
    # Apart (location helps) but within a few scatter widths (3° lat, 5° lon) of each other.
    assert len({tuple(h) for h in homes.tolist()}) == len(members)
    assert np.ptp(homes[:, 0]) <= 2 * sample_download.SIBLING_OFFSET[0] + 1e-9


# -- training and the commands (slow) ------------------------------------------------------------

@pytest.mark.slow
def test_train_places_are_compact_arrays_equal_to_the_records(tiny_built_dir):
  """16 bytes per place (issue 26: the trainer held ~2.7 KB per place at 10,000 species)."""
  for use_date in (True, False):
    places, labels, read = geo_train.split_places(str(tiny_built_dir), "train", use_date)
    assert places.dtype == np.float32 and places.shape[1] == 3 and labels.dtype == np.int32
    assert places.nbytes + labels.nbytes == 16 * len(labels)
    everything = list(records.examples(str(tiny_built_dir), "train",
                                       [schema.LABEL, *encoding.PLACE_KEYS]).batch(10_000))[0]
    expected = encoding.places_from_examples(everything).numpy()
    keep = encoding.has_place(tf.constant(expected), use_date).numpy()
    assert read == len(keep) == records.split_examples(str(tiny_built_dir), "train")
    assert 0 < len(labels) < read  # the sample leaves some places out
    np.testing.assert_array_equal(places, expected[keep])
    np.testing.assert_array_equal(labels, everything[schema.LABEL].numpy()[keep])


@pytest.mark.slow
def test_train_geo_resumes_where_it_stopped(tiny_built_dir, tmp_path):
  config = geo_train.GeoTrainConfig(str(tiny_built_dir), str(tmp_path), epochs=1, **QUICK_GEO)
  first = geo_train.train(config, log=lambda m: None)
  lines = []
  second = geo_train.train(geo_train.GeoTrainConfig(str(tiny_built_dir), str(tmp_path),
                                                    epochs=2, **QUICK_GEO), log=lines.append)
  assert any("resuming from" in line and f"at step {first['steps']}" in line for line in lines)
  assert second["steps"] == 2 * first["steps"] and second["steps_this_run"] == first["steps"]
  for name in ("best.keras", "final.keras", "geo_config.json", "label_map.json",
               "train_summary.json"):
    assert (tmp_path / name).exists(), name
  # Ctrl-C (a real SIGINT, sent when the first step of a third run is logged) stops between
  # steps with the resume message, not a traceback.
  def log_then_ctrl_c(line):
    if line.startswith("step "):
      os.kill(os.getpid(), signal.SIGINT)
  with pytest.raises(geo_train.image_train.TrainInterrupted,
                     match=r"interrupted at step [\d,]+; last checkpoint .*ckpt-\d+; rerun"):
    geo_train.train(geo_train.GeoTrainConfig(str(tiny_built_dir), str(tmp_path), epochs=3,
                                             **{**QUICK_GEO, "log_steps": 1}),
                    log=log_then_ctrl_c)
  with pytest.raises(geo_train.image_train.TrainError, match="other width"):
    geo_train.train(geo_train.GeoTrainConfig(str(tiny_built_dir), str(tmp_path), epochs=3,
                                             **{**QUICK_GEO, "width": 16}), log=lambda m: None)


@pytest.mark.slow
@TRAINED_MODEL_GROUP
def test_eval_reports_side_by_side_and_images_without_a_place_keep_their_answer(
    tiny_built_dir, trained_dir, geo_dir, tmp_path):
  report_ = evaluate.evaluate(str(tiny_built_dir), str(trained_dir), "val", geo_dir=str(geo_dir),
                              output_dir=str(tmp_path))
  prior = report_["location_prior"]
  assert prior["images"] == report_["images"] and 0 < prior["images_with_place"] < prior["images"]
  rows = {row["name"]: row for row in prior["subsets"]}
  # The headline is what the settings give (with the prior); the image-only figure beside it.
  assert rows["all images"]["with_prior"]["top1"] == pytest.approx(report_["top1"])
  assert rows["all images"]["image_only"]["top1"] == pytest.approx(report_["image_only"]["top1"])
  assert rows["without a place"]["image_only"] == rows["without a place"]["with_prior"]
  changes = prior["changes"]
  assert changes["changed"] == prior["top1_changed"]  # val: every image is labelled
  assert (changes["right_to_wrong"] + changes["wrong_to_right"] + changes["wrong_to_wrong"]
          == changes["changed"])
  assert (rows["all images"]["with_prior"]["top1"] - rows["all images"]["image_only"]["top1"]
          == pytest.approx((changes["wrong_to_right"] - changes["right_to_wrong"]) /
                           report_["images"]))
  # In every rendering the prior's comparison comes right after the headline, before accuracy.
  built = sections.eval_sections(report_)
  for text in (render.text(built), render.markdown(built),
               (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()):
    assert text.index("With and without the location prior") < text.index("Per super-category")
  assert "image only" in render.text(built).splitlines()[1]  # the headline line names both
  stored = json.loads((tmp_path / "report.json").read_text())
  assert stored["top1"] == report_["top1"] and stored["image_only"] == report_["image_only"]
  predictions_csv = (tmp_path / "predictions.csv").read_text().splitlines()
  assert predictions_csv[0] == ("id,label_category_id,top5_category_ids,"
                                "image_only_top5_category_ids,taxon,taxon_rank,msp,energy")
  predictions = trained_model.predict(trained_model.load(str(trained_dir)), str(tiny_built_dir),
                                      "val", geo_prior=prior_lib.load(str(geo_dir)))
  missing = ~predictions.has_place
  assert missing.any()
  assert predictions.geo_top_scores[missing].tobytes() == predictions.top_scores[missing].tobytes()
  assert (predictions.geo_top_indices[missing] == predictions.top_indices[missing]).all()


@pytest.fixture(scope="module")
def geo_export_dir(trained_dir, geo_dir, tiny_built_dir, tmp_path_factory):
  """inat-export with a prior and calibration images (int8 models), and its phone bundle."""
  path = tmp_path_factory.mktemp("geo_export")
  export.export(str(trained_dir), str(path), geo_dir=str(geo_dir), data_dir=str(tiny_built_dir))
  bundle.write(str(path))
  return path


_FRESH_PROCESS = """
import json, math, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
with_place, default = loaded.signatures['serving_with_place'], loaded.signatures['serving_default']
spec = {k: tf.io.FixedLenFeature([], t) for k, t in [
    ('image/encoded', tf.string), ('image/id', tf.int64), ('image/location/latitude', tf.float32),
    ('image/location/longitude', tf.float32), ('image/location/has_coordinates', tf.int64),
    ('image/location/date', tf.string)]}
out = {}
for b in tf.data.TFRecordDataset(sys.argv[2:]).map(
    lambda r: tf.io.parse_single_example(r, spec)).batch(16):
  has = b['image/location/has_coordinates'] > 0
  lat = tf.where(has, b['image/location/latitude'], math.nan)
  lon = tf.where(has, b['image/location/longitude'], math.nan)
  served = with_place(image_bytes=b['image/encoded'], latitude=lat, longitude=lon,
                      date=b['image/location/date'])
  alone = default(image_bytes=b['image/encoded'])
  for i, ids, used, alone_ids in zip(b['image/id'].numpy().tolist(),
                                     served['category_ids'].numpy().tolist(),
                                     served['used_place'].numpy().tolist(),
                                     alone['category_ids'].numpy().tolist()):
    out[i] = [ids, used, alone_ids]
assert not [m for m in sys.modules if m.split('.')[0] in ('inat_tf', 'models')]
print(json.dumps(out))
"""


@pytest.mark.slow
@TRAINED_MODEL_GROUP
def test_two_signature_saved_model_in_a_fresh_process_equals_inat_predict(
    geo_export_dir, tiny_built_dir, trained_dir, geo_dir):
  result = helpers.run([sys.executable, "-c", _FRESH_PROCESS,
                        str(geo_export_dir / "saved_model" / "1")] +
                       records.shard_files(str(tiny_built_dir), "val"), cwd="/")
  assert result.returncode == 0, result.stderr[-3000:]
  served = {int(k): v for k, v in json.loads(result.stdout.splitlines()[-1]).items()}
  image_only, combined, comparison = predict.from_keras_with_prior(
      str(tiny_built_dir), str(trained_dir), str(geo_dir), "val")
  assert {i: v[0] for i, v in served.items()} == combined.to_dict()
  assert {i: v[2] for i, v in served.items()} == image_only.to_dict()
  assert sum(v[1] for v in served.values()) == comparison["images_with_place"]
  for ids, used, alone in served.values():
    if not used:
      assert ids == alone
  # The TFLite model with place inputs agrees with the signature.
  interpreter = tf.lite.Interpreter(model_path=str(geo_export_dir / "model_with_place.tflite"))
  run = interpreter.get_signature_runner()  # named inputs and output (inat-export's signature)
  size = run.get_input_details()["images"]["shape"][1]
  from inat_tf import preprocessing  # pylint: disable=g-import-not-at-top
  category_ids = label_map_lib.LabelMap.load(str(trained_dir)).category_ids
  agree, count = 0, 0
  for e in records.examples(str(tiny_built_dir), "val", [schema.ENCODED, schema.IMAGE_ID,
                                                         *encoding.PLACE_KEYS]).take(12):
    has = int(e[schema.HAS_COORDINATES]) > 0
    date = e[schema.DATE].numpy().decode()
    parts = [int(date[:4]), int(date[5:7]), int(date[8:10])] if date else [0, 0, 0]
    probabilities = run(
        images=preprocessing.eval_image(e[schema.ENCODED], size).numpy()[np.newaxis],
        latitude=np.array([e[schema.LATITUDE] if has else NAN], np.float32),
        longitude=np.array([e[schema.LONGITUDE] if has else NAN], np.float32),
        date=np.array([parts], np.int32))["probabilities"]
    top1 = category_ids[int(np.argmax(probabilities))]
    agree += top1 == served[int(e[schema.IMAGE_ID])][0][0]
    count += 1
  assert agree == count


# An app's side of the bundle, in a process that never imports our package: README.md's own
# example (with TensorFlow's interpreter where ai-edge-litert is missing), preprocessing from
# bundle.json's facts with TensorFlow's image ops (an app uses its platform's), on the val
# records with their places. Prints {image id: category id of the top-1}.
_BUNDLE_APP = """
import json, math, os, re, sys
import numpy as np
import tensorflow as tf
bundle_dir, vision_file, shards = sys.argv[1], sys.argv[2], sys.argv[3:]
example = re.search(r"```python\\n(.*?)```", open(os.path.join(bundle_dir, "README.md")).read(),
                    re.S).group(1)
try:
  import ai_edge_litert  # noqa
except ImportError:
  example = example.replace("from ai_edge_litert.interpreter import Interpreter",
                            "Interpreter = tf.lite.Interpreter")
os.chdir(bundle_dir)
exec(example.replace("vision_float.tflite", vision_file))
pre = bundle["preprocessing"]
ids = {c["name"]: c["category_id"] for c in json.load(open("taxonomy.json"))["classes"]}
spec = {k: tf.io.FixedLenFeature([], t) for k, t in [
    ("image/encoded", tf.string), ("image/id", tf.int64), ("image/location/latitude", tf.float32),
    ("image/location/longitude", tf.float32), ("image/location/has_coordinates", tf.int64),
    ("image/location/date", tf.string)]}
out = {}
for record in tf.data.TFRecordDataset(shards):
  e = tf.io.parse_single_example(record, spec)
  pixels = tf.io.decode_jpeg(e["image/encoded"], channels=3)
  height, width = pixels.shape[0], pixels.shape[1]
  side = max(1, int(np.float32(pre["crop"]["fraction_of_short_side"]) *
                    np.float32(min(height, width))))
  top, left = (height - side + 1) // 2, (width - side + 1) // 2
  crop = tf.cast(pixels[top:top + side, left:left + side], tf.float32)
  image = tf.image.resize(crop, [pre["image_size"]] * 2, "bilinear").numpy()
  has = int(e["image/location/has_coordinates"]) > 0
  date = e["image/location/date"].numpy().decode()
  (name, _), = identify(image, float(e["image/location/latitude"]) if has else math.nan,
                        float(e["image/location/longitude"]) if has else math.nan,
                        (int(date[:4]), int(date[5:7]), int(date[8:10])) if date else (0, 0, 0),
                        k=1)
  out[int(e["image/id"])] = ids[name]
assert not [m for m in sys.modules if m.split(".")[0] in ("inat_tf", "models")]
print(json.dumps(out))
"""


@pytest.mark.slow
@TRAINED_MODEL_GROUP
def test_the_phone_bundle_run_by_an_app_gives_the_saved_models_answers(geo_export_dir,
                                                                       tiny_built_dir):
  target = geo_export_dir / bundle.BUNDLE_DIR
  manifest = json.loads((target / "bundle.json").read_text())
  assert sorted(p.name for p in target.iterdir()) == sorted([
      "README.md", "answer_taxonomy.json", "answers.tflite", "bundle.json", "labels.txt",
      "location.tflite", "taxonomy.json", "vision_float.tflite", "vision_full_integer.tflite",
      "vision_int8.tflite"])
  # The answer model: the server's roll-up on the phone (node names as serving's taxon_name).
  assert manifest["answer_model"]["rollup_rule"] == json.loads(
      (geo_export_dir / "export_info.json").read_text())["rollup_rule"]
  nodes = json.loads((target / "answer_taxonomy.json").read_text())["node_names"]
  runner = tf.lite.Interpreter(model_path=str(target / "answers.tflite")).get_signature_runner()
  size = manifest["preprocessing"]["image_size"]
  crop = manifest["preprocessing"]["crop"]["fraction_of_short_side"]
  encoded = [e[schema.ENCODED] for e in records.examples(
      str(tiny_built_dir), "val", [schema.ENCODED]).take(8)]
  on_phone = [runner(images=preprocessing.eval_image(e, size, crop).numpy()[np.newaxis],
                     allowed=np.ones(manifest["num_classes"], bool))["taxon"][0] for e in encoded]
  served = tf.saved_model.load(str(geo_export_dir / "saved_model" / "1")).signatures[
      "serving_default"](image_bytes=tf.stack(encoded))["taxon_name"].numpy()
  assert [nodes[t] if t >= 0 else "" for t in on_phone] == [n.decode() for n in served]
  taxonomy = json.loads((target / "taxonomy.json").read_text())["classes"]
  assert [c["name"] for c in taxonomy] == (target / "labels.txt").read_text().splitlines()
  assert taxonomy[0]["lineage"][0]["rank"] == "supercategory"
  assert taxonomy[0]["lineage"][-1] == {"rank": "species", "name": taxonomy[0]["name"]}
  assert manifest["location_model"]["use_date"] is not None
  # Each int8 model carries what inat-export measured of it against float (int8_check).
  check = json.loads((geo_export_dir / "export_info.json").read_text())["int8_check"]
  entries = {v["file"]: v["agreement_with_float"] for v in manifest["vision_models"]}
  assert entries["vision_float.tflite"] is None
  readme = (target / "README.md").read_text()
  for vision, exported in (("vision_int8.tflite", "model_int8.tflite"),
                           ("vision_full_integer.tflite", "model_full_integer.tflite")):
    measured = check["models"][exported]
    assert entries[vision]["measured"] and entries[vision]["split"] == "val"
    assert entries[vision]["agreement"] == measured["agreement"]
    assert entries[vision]["meets_goal"] == (measured["agreement"] >= 0.97 and
                                             measured["top1_change_points"] >= -1)
    assert (f"| `{vision}` |" in readme and f"{100 * measured['agreement']:.1f} % of "
            f"{check['images']} val images" in readme)
    assert (f"`{vision}`" in readme.split("**Measure before shipping")[-1].split("\n")[0]) == (
        not entries[vision]["meets_goal"])
  # What the server answers: serving_with_place's top-1 per val image.
  served = tf.saved_model.load(str(geo_export_dir / "saved_model" / "1")).signatures[
      "serving_with_place"]
  expected = {}
  for e in records.examples(str(tiny_built_dir), "val", [schema.ENCODED, schema.IMAGE_ID,
                                                         *encoding.PLACE_KEYS]).batch(64):
    has = e[schema.HAS_COORDINATES] > 0
    answer = served(image_bytes=e[schema.ENCODED], latitude=tf.where(has, e[schema.LATITUDE], NAN),
                    longitude=tf.where(has, e[schema.LONGITUDE], NAN), date=e[schema.DATE])
    expected.update(zip(e[schema.IMAGE_ID].numpy().tolist(),
                        answer["category_ids"][:, 0].numpy().tolist()))
  answers = {}
  for vision in ("vision_float.tflite", "vision_int8.tflite"):
    result = helpers.run([sys.executable, "-c", _BUNDLE_APP, str(target), vision] +
                         records.shard_files(str(tiny_built_dir), "val"), cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    answers[vision] = {int(k): v for k, v in json.loads(result.stdout.splitlines()[-1]).items()}
  assert answers["vision_float.tflite"] == expected
  agreement = np.mean([answers["vision_int8.tflite"][i] == expected[i] for i in expected])
  print(f"bundle int8 top-1 agreement with the SavedModel: {agreement:.3f} on {len(expected)}")
  assert agreement >= INT8_AGREEMENT, agreement


@pytest.mark.slow
@TRAINED_MODEL_GROUP
def test_serving_with_place_marks_bad_items_and_answers_the_good_ones(geo_export_dir,
                                                                      tiny_built_dir):
  signatures = tf.saved_model.load(str(geo_export_dir / "saved_model" / "1")).signatures
  good = [e[schema.ENCODED].numpy() for e in records.examples(
      str(tiny_built_dir), "val", [schema.ENCODED]).take(2)]
  place = dict(latitude=tf.constant([37.8, 10.0, 37.8, NAN]),
               longitude=tf.constant([-122.4, 20.0, -122.4, NAN]),
               date=tf.constant(["2017-06-01", "2017-06-01", "", ""]))
  out = signatures["serving_with_place"](
      image_bytes=tf.constant([good[0], b"not an image", good[1], b""]), **place)
  assert out["valid"].numpy().tolist() == [True, False, True, False]
  assert (out["category_ids"].numpy()[[1, 3]] == -1).all()
  assert not out["used_place"].numpy()[[1, 3]].any()
  # The good items get what they get alone, their places moved along with them.
  alone = signatures["serving_with_place"](
      image_bytes=tf.constant(good), latitude=tf.constant([37.8, 37.8]),
      longitude=tf.constant([-122.4, -122.4]), date=tf.constant(["2017-06-01", ""]))
  np.testing.assert_array_equal(out["category_ids"].numpy()[[0, 2]], alone["category_ids"])
  np.testing.assert_array_equal(out["used_place"].numpy()[[0, 2]], alone["used_place"])


@pytest.mark.slow
@TRAINED_MODEL_GROUP
def test_classify_reads_exif_like_flags_and_skips_unreadable_files(
    tiny_built_dir, trained_dir, geo_dir, tmp_path):
  example = next(iter(records.examples(str(tiny_built_dir), "val", [schema.ENCODED])))
  pixels = tf.io.decode_jpeg(example[schema.ENCODED]).numpy()
  place = dict(latitude=41.3851, longitude=2.1734, date="2017-06-01")
  photos = tmp_path / "photos"
  photos.mkdir()
  (photos / "with_exif.jpg").write_bytes(_jpeg(pixels, **place))
  (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
  jpeg = _jpeg(pixels)
  # libjpeg prints "Corrupt JPEG data: 300 extraneous bytes before marker 0xd9" (every pixel
  # decodes: answered) and "Premature end of JPEG file" (skipped) itself.
  (photos / "junk_before_end.jpg").write_bytes(jpeg[:-2] + b"\x13" * 300 + jpeg[-2:])
  (photos / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
  # Cut inside its headers: libjpeg prints "Improper call to JPEG library in state 201".
  (photos / "cut_in_header.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
  (photos / "sub").mkdir()  # a folder's every file, in sub-folders too, whatever its name
  (photos / "sub" / "IMG_0001.HEIC").write_bytes(_encoded(pixels, "HEIF"))
  (photos / "sub" / "scan.tif").write_bytes(_encoded(pixels, "TIFF"))
  (photos / "sub" / "shared.webp").write_bytes(_encoded(pixels, "WEBP"))
  (photos / "sub" / "notes.txt").write_text("seen near the pond")
  (photos / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 60)
  bare = tmp_path / "bare.jpg"
  bare.write_bytes(_jpeg(pixels))
  result = helpers.run(
      [console_script("inat-classify"), str(photos), f"--model_dir={trained_dir}",
       f"--geo_dir={geo_dir}", "--top_k=3", f"--output_csv={tmp_path / 'out.csv'}",
       f"--output_json={tmp_path / 'out.json'}"])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "position from EXIF GPS, date from EXIF" in result.stdout
  assert "Traceback" not in result.stderr
  # Every stderr line is ours (libjpeg's own lines do not get through), one per skipped file.
  assert all(line.startswith("inat-classify: ") for line in result.stderr.splitlines()), \
      result.stderr
  from_exif = json.loads((tmp_path / "out.json").read_text())
  skipped = {os.path.relpath(p["photo"], photos): p["reason"] for p in from_exif["skipped"]}
  damaged = "damaged: its image data does not decode"
  assert skipped == {".DS_Store": classify.NOT_AN_IMAGE, "sub/notes.txt": classify.NOT_AN_IMAGE,
                     "broken.jpg": damaged, "truncated.jpg": damaged,
                     "cut_in_header.jpg": damaged}
  assert "5 photos classified, 5 files skipped" in result.stderr
  for path in skipped:
    assert f"inat-classify: skipped {photos / path}: " in result.stderr
  answered = {os.path.relpath(p["photo"], photos): p for p in from_exif["photos"]}
  assert sorted(answered) == ["junk_before_end.jpg", "sub/IMG_0001.HEIC", "sub/scan.tif",
                              "sub/shared.webp", "with_exif.jpg"]
  exif_result = answered["with_exif.jpg"]
  assert exif_result["place"]["used"] and len(exif_result["predictions"]) == 3
  rows = list(csv.DictReader(open(tmp_path / "out.csv")))
  assert len(rows) == 5 * 3 + 5  # 3 predictions per answered photo, a row per skipped file
  assert {r["photo"]: r["skipped_reason"] for r in rows if r["skipped_reason"]} == {
      str(photos / p): reason for p, reason in skipped.items()}
  # Every kind of broken photo is marked invalid by the serving graph (decoded under tf.data's
  # ignore_errors), so no decode error reaches classify: skipped with a reason, image only and
  # with a prior alike, the good photo (given last) still answered.
  jpeg = _jpeg(pixels)
  broken = {"empty.jpg": b"", "text.png": b"just some text",
            "garbage.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
            "garbage.gif": b"GIF89a" + b"\x01" * 40, "truncated.jpg": jpeg[:len(jpeg) // 3]}
  paths = []
  for name, data in broken.items():
    (tmp_path / name).write_bytes(data)
    paths.append(str(tmp_path / name))
  answered = {}
  for kind, kwargs in (("image_only", {}),
                       ("with_flags", {"geo_dir": str(geo_dir), "given": classify.Place(**place)})):
    results, skipped = classify.classify(paths + [str(bare)], str(trained_dir), top_k=3,
                                         **kwargs)
    assert [r["photo"] for r in results] == [str(bare)]
    assert [s["photo"] for s in skipped] == paths
    assert {s["reason"] for s in skipped} == {classify.NOT_AN_IMAGE,
                                              "damaged: its image data does not decode"}
    answered[kind] = results[0]
  assert answered["with_flags"]["place"]["source"] == "position from flags, date from flags"
  as_pairs = lambda r: [(p["category_id"], round(p["probability"], 5)) for p in r["predictions"]]
  assert as_pairs(answered["with_flags"]) == as_pairs(exif_result)
  assert answered["image_only"]["place"] is None
  assert as_pairs(answered["image_only"]) != as_pairs(exif_result)  # the prior did take part
  with pytest.raises(classify.ClassifyError, match="give --geo_dir"):
    classify.classify([str(bare)], str(trained_dir), given=classify.Place(10.0, 20.0))
  with pytest.raises(classify.ClassifyError, match="expected a real date"):
    classify.classify([str(bare)], str(trained_dir), geo_dir=str(geo_dir),
                      given=classify.Place(date="2017-02-30"))
