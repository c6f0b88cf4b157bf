"""Issue 12: nothing silently wrong on the way in. One test (at least) per kind of fault.

Inputs are built here from `inat-make-sample` output (13 species, a few images each, <= 48 px) and
tiny generated files. Build tests assert the record counts per split against the JSON (nothing
valid lost), the reason strings and the exit status.
"""

import collections
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from inat_tf import preprocessing
from inat_tf import records
from inat_tf import sample_download
from inat_tf import schema
from tests import download_tools
from tests import helpers
from tests.conftest import TRAINED_MODEL_GROUP
from tests.helpers import console_script
from tfrecord_builder import build as build_lib
from tfrecord_builder import image_check
from tfrecord_builder import lock as lock_lib

TRAIN_VAL = sample_download.TRAIN_VAL_ARCHIVE
TEST = sample_download.TEST_ARCHIVE
JSONS = {"train": "train2017.json", "val": "val2017.json", "test": "test2017.json"}
TINY = sample_download.SampleConfig(num_species=13, min_train_per_species=3,
                                    max_train_per_species=4, max_side=48, seed=7)


# -- helpers ------------------------------------------------------------------------------------

def _gradient(height, width, channels=3):
  """A smooth image (JPEG round trips keep it within a grey level or two)."""
  y, x = np.mgrid[0:height, 0:width]
  planes = [(x * 200 // max(width, 1)) + 20, (y * 200 // max(height, 1)) + 20,
            ((x + y) * 100 // max(width + height, 1)) + 60][:channels]
  return np.stack(planes, -1).astype(np.uint8)


def _jpeg(pixels, **options):
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, "JPEG", quality=95, **options)
  return out.getvalue()


def _decode(data):
  return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int64)


def _mad(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  assert a.shape == b.shape, (a.shape, b.shape)
  return float(np.abs(a - b).mean())


def _with_exif_orientation(jpeg, orientation, byte_order="II"):
  """The JPEG with an APP1 EXIF block holding only IFD0 Orientation, in either byte order."""
  fmt = "<" if byte_order == "II" else ">"
  tiff = (byte_order.encode() + struct.pack(fmt + "HI", 42, 8) + struct.pack(fmt + "H", 1)
          + struct.pack(fmt + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(fmt + "I", 0))
  payload = b"Exif\x00\x00" + tiff
  return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _png(pixels, bit_depth):
  """A PNG written by hand (Pillow cannot write 48-bit RGB): uint16 gray or RGB pixels."""
  colour_type = {2: 0, 3: 2}[pixels.ndim]
  height, width = pixels.shape[:2]
  rows = b"".join(b"\x00" + row.astype(">u2" if bit_depth == 16 else "u1").tobytes()
                  for row in pixels)

  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
  return (b"\x89PNG\r\n\x1a\n"
          + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
          + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _damaged_kinds(pixels):
  """{kind: JPEG bytes} of damage a header check cannot see (issue 12, item 1)."""
  good = _jpeg(pixels)
  sof = good.index(b"\xff\xc0")
  bad_table = bytearray(good)
  bad_table[sof + 4 + 6 + 3 + 2] = 3  # second component -> quantisation table 3, never defined
  scan = good.index(b"\xff\xda")
  middle = scan + (len(good) - scan) // 2
  # (A byte flipped mid-scan is caught only when the Huffman decoder loses sync, which on a
  # smooth image it may not: no per-image check can see it; the archive's checksum does.)
  return {
      "undefined quantisation table": bytes(bad_table),
      "scan cut short, end marker appended": good[:middle] + b"\xff\xd9",
      "junk before the end marker": good[:-2] + b"\x12\x34" * 20 + b"\xff\xd9",
  }


def run_build(raw_dir, data_dir, **flags):
  flags.setdefault("examples_per_shard", 16)
  config = build_lib.BuildConfig(raw_dir=str(raw_dir), data_dir=str(data_dir), **flags)
  return build_lib.build(config, log=lambda message: None)


def manifest_of(data_dir):
  with open(os.path.join(str(data_dir), "manifest.json"), encoding="utf-8") as f:
    return json.load(f)


def examples_by_id(data_dir, split):
  return {e[schema.IMAGE_ID]: e for e in records.examples(str(data_dir), split).as_numpy_iterator()}


def json_ids(raw, split):
  return {i["id"] for i in download_tools.load_json(raw, JSONS[split])["images"]}


def assert_counts(data_dir, raw, lost=None):
  """Every JSON image of every split is in the records except the `lost` ones (split -> ids)."""
  lost = lost or {}
  manifest = manifest_of(data_dir)
  for split in JSONS:
    kept = set(examples_by_id(data_dir, split))
    assert kept == json_ids(raw, split) - lost.get(split, set()), split
    assert manifest["splits"][split]["examples"] == len(kept)


def problems_of(data_dir):
  return [(p["kind"], p["where"], p["message"]) for p in manifest_of(data_dir)["rejected"]]


def shard_digests(data_dir):
  return {s["file"]: s["sha256"] for split in manifest_of(data_dir)["splits"].values()
          for s in split["shards"]}


@pytest.fixture(scope="module")
def tiny_raw(tmp_path_factory):
  raw = tmp_path_factory.mktemp("trust") / "raw"
  sample_download.make_sample(str(raw), TINY)
  return raw


@pytest.fixture(scope="module")
def reference(tiny_raw, tmp_path_factory):
  """The untouched tiny download, built: what a fixed download must rebuild to."""
  data_dir = tmp_path_factory.mktemp("trust_reference")
  status, summary = run_build(tiny_raw, data_dir)
  assert status == 0, summary
  return data_dir


def _copy(raw, destination):
  return download_tools.copy_download(raw, destination)


# -- 1. every stored image decodes cleanly, or is reported (pure function) ---------------------

def test_damaged_jpegs_are_rejected_with_libjpeg_reason():
  pixels = _gradient(120, 160)
  for kind, data in _damaged_kinds(pixels).items():
    with pytest.raises(image_check.ImageRejected, match=r"damaged JPEG \(libjpeg: ") as caught:
      image_check.check_image(data, (160, 120))
    print(kind, "->", caught.value)
  for message in ("Quantization table 0x03 was not defined", "premature end of data segment",
                  "extraneous bytes before marker 0xd9"):
    assert any(message in str(_reason(d)) for d in _damaged_kinds(pixels).values()), message


def _reason(data):
  try:
    image_check.check_image(data)
  except image_check.ImageRejected as e:
    return e
  return None


def test_padding_before_the_end_marker_is_cut_and_pixels_are_whole():
  good = _jpeg(_gradient(40, 56))
  padded = good[:-2] + b"\x00" * 37 + b"\xff\xd9"
  checked = image_check.check_image(padded, (56, 40))
  assert len(checked.jpeg) < len(padded) and "padding bytes before the end marker removed" in (
      checked.repair)
  assert checked.jpeg.startswith(good[:-2])  # the scan byte for byte, not re-encoded
  assert _mad(_decode(checked.jpeg), _decode(good)) == 0


# -- 2. one bad image never stops or empties a build (pure function) ---------------------------

def _bomb_png():
  """13,500 x 13,500 1-bit PNG (23 KB): Pillow's DecompressionBombError size."""
  out = io.BytesIO()
  Image.new("1", (13500, 13500)).save(out, "PNG")
  return out.getvalue()


def test_oversized_image_is_rejected_by_max_image_pixels():
  with pytest.raises(image_check.ImageRejected,
                     match=r"13500x13500 = 182,250,000 pixels exceeds --max_image_pixels="
                           r"100,000,000"):
    image_check.check_image(_bomb_png(), (13500, 13500))
  small = _jpeg(_gradient(30, 40))
  with pytest.raises(image_check.ImageRejected, match="1,200 pixels exceeds"):
    image_check.check_image(small, (40, 30), max_pixels=1000)
  assert image_check.check_image(small, (40, 30), max_pixels=0).width == 40


# -- 6. EXIF orientation honoured once, the same way everywhere (pure functions) ---------------

@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("byte_order", ["II", "MM"])
def test_exif_orientation_builder_and_serving_agree(orientation, byte_order):
  upright = _gradient(30, 48)
  reference = Image.fromarray(upright)
  # The file as a phone stores it: pixels such that applying the tag displays `upright`.
  inverse = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
             4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
             6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_270}[orientation]
  stored = np.asarray(reference.transpose(inverse) if inverse else reference)
  for channels in (3, 1):
    pixels = stored if channels == 3 else stored[..., 0]
    phone = _with_exif_orientation(_jpeg(pixels), orientation, byte_order)
    displayed = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(phone))).convert("RGB"))
    assert displayed.shape == (30, 48, 3)  # the tag we wrote is the one Pillow reads
    checked = image_check.check_image(phone, (48, 30))  # the JSON gives the displayed size
    assert (checked.width, checked.height) == (48, 30)
    assert _mad(_decode(checked.jpeg), displayed) <= 2
    assert int(preprocessing.exif_orientation(tf.constant(phone))) == orientation
    served = preprocessing.eval_view(tf.constant(phone), 24)
    from_records = preprocessing.eval_image(tf.constant(checked.jpeg), 24)
    assert _mad(served, from_records) <= 2


def test_exif_size_mismatch_names_the_rule():
  phone = _with_exif_orientation(_jpeg(_gradient(30, 48)), 6)
  with pytest.raises(image_check.ImageRejected,
                     match=r"JSON says 48x30, the image displays as 30x48 \(after its EXIF "):
    image_check.check_image(phone, (48, 30))


# -- 7. repairs keep the pixels (pure function) -------------------------------------------------

def test_every_repair_path_keeps_the_pixels():
  rgb = _gradient(36, 52)
  gray16 = (_gradient(36, 52, 1)[..., 0].astype(np.uint16) * 257 + 100)
  rgb48 = rgb.astype(np.uint16) * 257 + 55
  cases = {
      "16-bit grayscale PNG": (_png(gray16, 16), np.repeat(
          np.round(gray16 / 257.0)[..., None], 3, -1)),
      "48-bit RGB PNG": (_png(rgb48, 16), np.round(rgb48 / 257.0)),
      "8-bit RGB PNG": (_png(rgb, 8), rgb),
  }
  for fmt in ("GIF", "BMP", "TIFF", "WEBP"):
    out = io.BytesIO()
    image = Image.fromarray(rgb)
    if fmt == "GIF":  # palette content as GIFs hold it (undithered: flat areas)
      image = image.quantize(32, dither=Image.Dither.NONE)
    image.save(out, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    source = np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))
    cases[f"{fmt} content"] = (out.getvalue(), source)
  for mode in ("L", "CMYK"):
    out = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(out, "JPEG", quality=95)
    data = out.getvalue()
    cases[f"{mode} JPEG"] = (data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
  rgba = Image.fromarray(rgb).convert("RGBA")
  out = io.BytesIO()
  rgba.save(out, "PNG")
  cases["RGBA PNG (opaque)"] = (out.getvalue(), rgb)
  for name, (data, source) in cases.items():
    checked = image_check.check_image(data, (52, 36))
    assert checked.repair, name
    assert _mad(_decode(checked.jpeg), source) <= 2, name


# -- 15. tiny images survive every later stage (pure functions) --------------------------------

def test_one_pixel_jpeg_is_kept_and_decodes_in_every_view():
  one = _jpeg(np.full((1, 1, 3), 200, np.uint8))
  checked = image_check.check_image(one, (1, 1))
  assert checked.jpeg == one
  data = tf.constant(one)
  assert preprocessing.eval_image(data, 32).shape == (32, 32, 3)
  assert preprocessing.eval_views(data, 32, flip=True, multi_crop=True).shape == (10, 32, 32, 3)
  assert preprocessing.train_image(data, 32, tf.constant([1, 2])).shape == (32, 32, 3)
  assert preprocessing.eval_view(data, 32).shape == (32, 32, 3)


# -- a download with one fault of every per-image kind, built once ------------------------------

@pytest.fixture(scope="module")
def hostile(tiny_raw, tmp_path_factory):
  """The tiny download with damaged JPEGs, an oversized PNG, unsafe names, phone photos, a 16-bit
  PNG, shared files, boxes outside their image and NaN locations; built once.

  Returns (raw, data_dir, status, summary, facts) where facts says which id got what.
  """
  raw = _copy(tiny_raw, tmp_path_factory.mktemp("hostile") / "raw")
  (raw.parent / "secret.jpg").write_bytes(b"TOPSECRET" * 10)
  members = download_tools.archive_members(raw / TRAIN_VAL)
  train = download_tools.load_json(raw, JSONS["train"])
  val = download_tools.load_json(raw, JSONS["val"])
  test = download_tools.load_json(raw, JSONS["test"])
  plain = [i for i in sorted(train["images"], key=lambda i: i["id"])
           if members[i["file_name"]][:3] == b"\xff\xd8\xff"
           and b"\xff\xc0" in members[i["file_name"]][:2000]]
  facts = {"damaged": {}, "lost": collections.defaultdict(set)}
  victims = iter(plain)
  for kind, _ in _damaged_kinds(_gradient(8, 8)).items():
    image = next(victims)
    pixels = _gradient(image["height"], image["width"])
    members[image["file_name"]] = _damaged_kinds(pixels)[kind]
    facts["damaged"][image["file_name"]] = kind
    facts["lost"]["train"].add(image["id"])
  bomb = next(victims)
  members[bomb["file_name"]] = _bomb_png()
  facts["bomb"] = bomb["file_name"]
  facts["lost"]["train"].add(bomb["id"])
  # Phone photos: stored sideways with EXIF orientation 6, the JSON giving the upright size.
  facts["phones"] = {}
  for channels in (3, 1):
    image = next(victims)
    upright = _gradient(image["height"], image["width"])
    stored = np.rot90(upright, 1)  # orientation 6 displays it rotated 90 degrees clockwise
    members[image["file_name"]] = _with_exif_orientation(
        _jpeg(stored if channels == 3 else stored[..., 0].copy()), 6)
    facts["phones"][image["id"]] = upright if channels == 3 else np.repeat(
        upright[..., :1], 3, -1)
  image = next(victims)
  gray16 = _gradient(image["height"], image["width"], 1)[..., 0].astype(np.uint16) * 257 + 300
  members[image["file_name"]] = _png(gray16, 16)
  facts["gray16"] = (image["id"], np.repeat(np.round(gray16 / 257.0)[..., None], 3, -1))
  # Unsafe names: outside RAW_DIR by '..' and by an absolute path.
  labelled = train["annotations"][0]["category_id"]
  for offset, name in ((1, "train_val_images/../../secret.jpg"), (2, "/etc/passwd")):
    new_id = 10**6 + offset
    train["images"].append({"id": new_id, "file_name": name, "width": 9, "height": 9})
    train["annotations"].append({"id": 10**6 + offset, "image_id": new_id,
                                 "category_id": labelled})
    facts["lost"]["train"].add(new_id)
  # One file under two ids, in train and in test.
  shared = next(victims)
  twin = dict(shared, id=10**6 + 10)
  train["images"].append(twin)
  label = next(a["category_id"] for a in train["annotations"] if a["image_id"] == shared["id"])
  train["annotations"].append({"id": 10**6 + 10, "image_id": twin["id"], "category_id": label})
  test_twin = dict(test["images"][0], id=10**6 + 11)
  test["images"].append(test_twin)
  facts["shared"] = {"train": (shared["id"], twin["id"]),
                     "test": (test["images"][0]["id"], test_twin["id"])}
  # A box wholly outside its image, beside the image's real boxes.
  boxes = download_tools.load_json(raw, "train_2017_bboxes.json")
  touched = {i["id"] for i in plain if i["file_name"] in members
             and i is not None} & {i["id"] for i in [next(victims)]} | {
                 i["id"] for i in plain[:plain.index(shared) + 1]}
  boxed = next(b for b in boxes["annotations"] if b["image_id"] not in touched)
  target = next(i for i in train["images"] if i["id"] == boxed["image_id"])
  boxes["annotations"].append(dict(boxed, id=10**6 + 20, bbox=[target["width"] + 5, 2, 4, 4]))
  facts["boxed"] = (target["id"], sum(b["image_id"] == target["id"]
                                      for b in boxes["annotations"][:-1]))
  download_tools.write_json(raw, "train_2017_bboxes.json", boxes)
  # Missing locations spelled NaN and null.
  locations = download_tools.load_json(raw, "val2017_locations.json")
  for record, missing in zip(locations[:2], (float("nan"), None)):
    record.update(lat=missing, lon=missing, date_c=missing, location_uncertainty=missing)
  facts["no_location"] = [r["id"] for r in locations[:2]]
  with open(raw / "val2017_locations.json", "w", encoding="utf-8") as f:
    json.dump(locations, f)  # writes NaN, as Python and many tools do
  download_tools.write_archive(raw / TRAIN_VAL, members)
  download_tools.write_json(raw, JSONS["train"], train)
  download_tools.write_json(raw, JSONS["val"], val)
  download_tools.write_json(raw, JSONS["test"], test)
  data_dir = tmp_path_factory.mktemp("hostile_built")
  result = helpers.run([console_script("inat-build"), f"--raw_dir={raw}",
                        f"--data_dir={data_dir}", "--examples_per_shard=16"])
  return raw, data_dir, result, facts


@pytest.mark.slow
def test_hostile_download_builds_everything_valid_and_exits_1(hostile):
  raw, data_dir, result, facts = hostile
  assert result.returncode == 1
  assert "Traceback" not in result.stderr + result.stdout
  assert "every valid image was written" in result.stdout
  assert_counts(data_dir, raw, facts["lost"])


@pytest.mark.slow
def test_item1_damaged_jpegs_are_rejected_by_name(hostile):
  _, data_dir, _, facts = hostile
  rejected = {where: message for kind, where, message in problems_of(data_dir)
              if kind == "rejected image"}
  for name in facts["damaged"]:
    assert rejected[name].startswith("damaged JPEG (libjpeg: "), name


@pytest.mark.slow
def test_item2_oversized_png_is_one_rejection(hostile):
  _, data_dir, _, facts = hostile
  rejected = {where: message for kind, where, message in problems_of(data_dir)
              if kind == "rejected image"}
  assert "13500x13500 = 182,250,000 pixels exceeds --max_image_pixels" in rejected[facts["bomb"]]


@pytest.mark.slow
def test_item5_names_outside_raw_dir_are_never_read(hostile):
  _, data_dir, _, _ = hostile
  unsafe = [(where, message) for kind, where, message in problems_of(data_dir)
            if kind == "unsafe file_name"]
  assert len(unsafe) == 2
  assert all("points outside RAW_DIR; not read" in message for _, message in unsafe)
  assert "TOPSECRET" not in (data_dir / "manifest.json").read_text()


@pytest.mark.slow
def test_item6_phone_photos_are_upright_whatever_their_colour(hostile):
  _, data_dir, _, facts = hostile
  train = examples_by_id(data_dir, "train")
  repaired = {r["image_id"]: r["repair"] for r in manifest_of(data_dir)["repaired"]}
  for image_id, upright in facts["phones"].items():
    assert "EXIF orientation 6 applied" in repaired[image_id]
    assert _mad(_decode(train[image_id][schema.ENCODED]), upright) <= 2


@pytest.mark.slow
def test_item7_16_bit_png_keeps_its_grey_levels(hostile):
  _, data_dir, _, facts = hostile
  image_id, expected = facts["gray16"]
  assert _mad(_decode(examples_by_id(data_dir, "train")[image_id][schema.ENCODED]),
              expected) <= 2


@pytest.mark.slow
def test_item8_one_file_under_two_ids_gives_two_records(hostile):
  _, data_dir, _, facts = hostile
  for split, ids in facts["shared"].items():
    stored = examples_by_id(data_dir, split)
    assert stored[ids[0]][schema.ENCODED] == stored[ids[1]][schema.ENCODED]
  assert not [p for p in problems_of(data_dir) if "duplicate" in p[0]]


@pytest.mark.slow
def test_item9_box_outside_its_image_is_reported_not_stored(hostile):
  _, data_dir, _, facts = hostile
  image_id, real_boxes = facts["boxed"]
  outside = [p for p in problems_of(data_dir) if p[0] == "box outside its image"]
  assert len(outside) == 1 and "lies outside the" in outside[0][2]
  example = examples_by_id(data_dir, "train")[image_id]
  assert len(example[schema.BBOX_XMIN]) == real_boxes
  assert np.all(example[schema.BBOX_XMAX] > example[schema.BBOX_XMIN])


@pytest.mark.slow
def test_item10_missing_location_is_one_encoding(hostile):
  _, data_dir, _, facts = hostile
  val = examples_by_id(data_dir, "val")
  keys = (schema.LATITUDE, schema.LONGITUDE, schema.HAS_COORDINATES, schema.LOCATION_UNCERTAINTY,
          schema.DATE_C)
  nan_spelled, null_spelled = (tuple(val[i][k] for k in keys) for i in facts["no_location"])
  assert nan_spelled == null_spelled == (0.0, 0.0, 0, -1.0, -1.0)


# -- 3 and 4. damaged archives keep what was whole; a fixed download is rebuilt ----------------

@pytest.mark.slow
def test_item3_4_truncated_archive_keeps_whole_members_and_rerun_after_fix(
    tiny_raw, reference, tmp_path):
  raw = _copy(tiny_raw, tmp_path / "raw")
  download_tools.truncate_gzip(raw / TRAIN_VAL, 0.55)
  data_dir = tmp_path / "data"
  status, summary = run_build(raw, data_dir)
  assert status == 1 and "truncated archive" in summary
  manifest = manifest_of(data_dir)
  truncated = [p for p in manifest["rejected"] if p["kind"] == "truncated archive"]
  assert len(truncated) == 1 and truncated[0]["where"] == str(raw / TRAIN_VAL)
  assert "ends early: the file stops at byte" in truncated[0]["message"]
  missing = {p["where"] for p in manifest["rejected"] if p["kind"] == "missing image"}
  kept = manifest["splits"]["train"]["examples"] + manifest["splits"]["val"]["examples"]
  assert kept > 0.3 * (len(json_ids(raw, "train")) + len(json_ids(raw, "val")))
  assert kept + len(missing) == len(json_ids(raw, "train")) + len(json_ids(raw, "val"))
  # The user downloads the archive again; the same command rebuilds what the fix changed.
  shutil.copy(tiny_raw / TRAIN_VAL, raw / TRAIN_VAL)
  status, summary = run_build(raw, data_dir)
  assert status == 0, summary
  assert_counts(data_dir, raw)
  assert shard_digests(data_dir) == shard_digests(reference)
  assert all(info["md5"] for info in manifest_of(data_dir)["tasks"][0]["archives"].values())


@pytest.mark.slow
def test_item3_4_flipped_byte_is_reported_and_every_shard_rebuilt_after_fix(
    tiny_raw, reference, tmp_path):
  raw = _copy(tiny_raw, tmp_path / "raw")
  data = bytearray((raw / TRAIN_VAL).read_bytes())
  data[len(data) // 2] ^= 0x20
  (raw / TRAIN_VAL).write_bytes(bytes(data))
  data_dir = tmp_path / "data"
  status, summary = run_build(raw, data_dir)
  assert status == 1
  damaged = [p for p in manifest_of(data_dir)["rejected"] if p["kind"] == "damaged archive"]
  assert len(damaged) == 1 and damaged[0]["where"] == str(raw / TRAIN_VAL)
  assert "compressed data is damaged" in damaged[0]["message"] and "found in bytes" in (
      damaged[0]["message"])
  shutil.copy(tiny_raw / TRAIN_VAL, raw / TRAIN_VAL)
  status, summary = run_build(raw, data_dir)
  assert status == 0, summary
  assert shard_digests(data_dir) == shard_digests(reference)


def _extract(tiny_raw, raw):
  raw.mkdir()
  for name in os.listdir(tiny_raw):
    if name.endswith(".tar.gz"):
      with tarfile.open(tiny_raw / name) as tar:
        tar.extractall(raw, filter="data")
    else:
      shutil.copy(tiny_raw / name, raw / name)


@pytest.mark.slow
def test_item4_5_half_extracted_folder_then_fixed_and_symlinks_out(tiny_raw, tmp_path):
  raw = tmp_path / "raw"
  _extract(tiny_raw, raw)
  (tmp_path / "secret.jpg").write_bytes(b"TOPSECRET" * 10)
  train = download_tools.load_json(raw, JSONS["train"])
  held_back = sorted(i["file_name"] for i in train["images"])[:5]
  for name in held_back:
    (raw / name).rename(tmp_path / os.path.basename(name))  # "not extracted yet"
  linked = sorted(i["file_name"] for i in train["images"])[5]
  (raw / linked).rename(tmp_path / "linked.jpg")
  os.symlink(tmp_path / "secret.jpg", raw / linked)
  data_dir = tmp_path / "data"
  status, summary = run_build(raw, data_dir)
  assert status == 1
  rejected = {where: message for kind, where, message in problems_of(data_dir)}
  assert all("not found" in rejected[name] for name in held_back)
  assert "symlink (or under one) leading outside RAW_DIR" in rejected[linked]
  assert "TOPSECRET" not in (data_dir / "manifest.json").read_text()
  # The user finishes extracting: the rerun rebuilds exactly the shards that had problems.
  for name in held_back:
    (tmp_path / os.path.basename(name)).rename(raw / name)
  os.remove(raw / linked)
  (tmp_path / "linked.jpg").rename(raw / linked)
  before = {p.name: p.stat().st_mtime_ns for p in data_dir.glob("*.tfrecord")}
  status, summary = run_build(raw, data_dir)
  assert status == 0, summary
  assert_counts(data_dir, raw)
  status, _ = run_build(raw, tmp_path / "fresh")  # (folder order differs from archive order)
  assert shard_digests(data_dir) == shard_digests(tmp_path / "fresh")
  after = {p.name: p.stat().st_mtime_ns for p in data_dir.glob("*.tfrecord")}
  assert any(before[n] == after[n] for n in before)  # untouched shards stayed


# -- 13. two builds never share a data dir ------------------------------------------------------

@pytest.mark.slow
def test_item13_second_build_refuses_and_stale_lock_is_taken_over(tiny_raw, reference, tmp_path):
  data_dir = tmp_path / "data"
  holder = lock_lib.BuildLock(str(data_dir), "task-00000-of-00001")
  with holder:  # a live owner (this process); the CLI prints a BuildError as one line, exit 1
    with pytest.raises(build_lib.BuildError,
                       match=rf"is being built by another inat-build \(pid {os.getpid()} on "
                             rf"this host, since .*delete .*lock-task-00000-of-00001 and rerun"):
      run_build(tiny_raw, data_dir)
  assert not list(data_dir.glob("*.tfrecord"))
  # An owner killed with kill -9 leaves its lock: the next build takes it over.
  victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  lock_path = data_dir / "_build" / "lock-task-00000-of-00001"
  lock_path.write_text(json.dumps({"pid": victim.pid, "host": holder.owner["host"],
                                   "start": lock_lib._start_ticks(victim.pid),  # pylint: disable=protected-access
                                   "since": "then"}))
  victim.kill()
  victim.wait()
  status, summary = run_build(tiny_raw, data_dir)
  assert status == 0, summary
  assert shard_digests(data_dir) == shard_digests(reference)
  assert not lock_path.exists()


# -- 14. the manifest survives what the shards survive ------------------------------------------

@pytest.mark.slow
def test_item14_interrupted_final_stage_keeps_every_archive_in_the_manifest(
    tiny_raw, reference, tmp_path):
  raw = _copy(tiny_raw, tmp_path / "raw")
  members = download_tools.archive_members(raw / TEST)
  victim = sorted(members)[0]
  members[victim] = b"<html>404</html>"
  download_tools.write_archive(raw / TEST, members)
  data_dir = tmp_path / "data"
  status, _ = run_build(raw, data_dir, max_rejects=1)
  assert status == 0
  full = manifest_of(data_dir)
  # What a kill -9 while the train shards were being moved leaves: some gone, no manifest.
  (data_dir / "manifest.json").unlink()
  for shard in sorted(data_dir.glob("train-*.tfrecord"))[:2]:
    shard.unlink()
  status, _ = run_build(raw, data_dir, max_rejects=1)
  assert status == 0
  again = manifest_of(data_dir)
  assert again["rejected"] == full["rejected"] and len(again["rejected"]) == 1
  assert again["tasks"][0]["archives"] == full["tasks"][0]["archives"]
  assert shard_digests(data_dir) == shard_digests(full_dir := data_dir) and full_dir


@pytest.mark.slow
def test_item14_full_disk_says_what_to_do_and_rerun_completes(tiny_raw, reference, tmp_path):
  mount = tmp_path / "small_disk"
  mount.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                    capture_output=True).returncode != 0:
    pytest.skip("mounting a small tmpfs needs root; the full-disk path is not exercised here")
  try:
    data_dir = mount / "data"
    # A BuildError is what the CLI prints as one line (exit 1), never a traceback.
    with pytest.raises(build_lib.BuildError,
                       match=rf"^no space left on {mount} \(tmpfs\) while writing {data_dir}/"
                             rf".*; free space and rerun the same command"):
      run_build(tiny_raw, data_dir)
    subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
    status, summary = run_build(tiny_raw, data_dir)
    assert status == 0, summary
    assert shard_digests(data_dir) == shard_digests(reference)
    assert manifest_of(data_dir)["tasks"][0]["archives"] == {
        str(tiny_raw / name): info
        for name, info in ((os.path.basename(p), i) for p, i in
                           manifest_of(reference)["tasks"][0]["archives"].items())}
  finally:
    subprocess.run(["umount", str(mount)], check=False)


# -- 15. a 1 x 1 image the builder keeps passes inat-eval ---------------------------------------

# In the trained-model xdist group: on another worker, trained_dir would be trained a second time
# (~100 s of the suite).
@TRAINED_MODEL_GROUP
@pytest.mark.slow
def test_item15_one_pixel_val_image_through_inat_eval(trained_dir, tmp_path):
  from inat_tf import evaluate  # pylint: disable=g-import-not-at-top
  raw = tmp_path / "raw"
  # The same download the trained model's data dir was built from (conftest's tiny_built_dir).
  sample_download.make_sample(str(raw), sample_download.SampleConfig(
      num_species=13, min_train_per_species=4, max_train_per_species=4, max_side=64, seed=1))
  val = download_tools.load_json(raw, JSONS["val"])
  boxed = {b["image_id"] for b in download_tools.load_json(raw, "val_2017_bboxes.json")[
      "annotations"]}
  image = next(i for i in val["images"] if i["id"] not in boxed)
  image.update(width=1, height=1)
  members = download_tools.archive_members(raw / TRAIN_VAL)
  members[image["file_name"]] = _jpeg(np.full((1, 1, 3), 90, np.uint8))
  download_tools.write_archive(raw / TRAIN_VAL, members)
  download_tools.write_json(raw, JSONS["val"], val)
  data_dir = tmp_path / "data"
  status, summary = run_build(raw, data_dir, splits=("train", "val"))
  assert status == 0, summary
  assert examples_by_id(data_dir, "val")[image["id"]][schema.WIDTH] == 1
  report = evaluate.evaluate(str(data_dir), str(trained_dir), "val")
  assert report is not None
