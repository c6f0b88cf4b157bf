"""Issue 25, the builder's part: items 1 (one file under several ids), 2 (EXIF size in either
frame), 4 (every edition's published locations) and 11 (repair what is whole).

The pure-function tests run in the fast tier; one doctored 2017 download and one doctored 2018
download are built once each (slow tier) for the build-level assertions.
"""

import io
import json
import re
import zlib

import numpy as np
import pytest
import simplejpeg
from PIL import Image, ImageDraw

from inat_tf import editions
from inat_tf import sample_download
from inat_tf import schema
from tests import download_tools
from tests.test_build_trust import (JSONS, TRAIN_VAL, TEST, _decode, _gradient, _jpeg, _mad,
                                    _with_exif_orientation, examples_by_id, manifest_of,
                                    problems_of, run_build)
from tfrecord_builder import image_check


# -- item 2: a JSON size in either frame of an EXIF-rotated photo (pure functions) ---------------

_INVERSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_270}


_APPLY = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
          6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}


def _phone_photo(upright, orientation, byte_order="II", gray=False):
  """JPEG bytes a phone stores: pixels such that applying `orientation` displays `upright`."""
  stored = np.asarray(Image.fromarray(upright).transpose(_INVERSE[orientation]))
  return _with_exif_orientation(_jpeg(stored[..., 0].copy() if gray else stored), orientation,
                                byte_order)


@pytest.mark.parametrize("orientation,byte_order,gray", [(6, "II", False), (8, "MM", True),
                                                         (5, "II", False), (7, "MM", False)])
def test_json_giving_the_stored_sideways_size_is_kept_upright_and_recorded(
    orientation, byte_order, gray):
  upright = _gradient(30, 48)  # displays 48 wide, 30 high; stored 30 x 48
  phone = _phone_photo(upright, orientation, byte_order, gray)
  expected = np.repeat(upright[..., :1], 3, -1) if gray else upright
  for json_size, frame in (((30, 48), "stored"), ((48, 30), "displayed")):
    checked = image_check.check_image(phone, json_size)
    assert (checked.width, checked.height, checked.json_frame) == (48, 30, frame)
    assert checked.orientation == orientation
    assert _mad(_decode(checked.jpeg), expected) <= 2
    stored_note = "the JSON gives the stored (sideways) size 30x48; stored upright as 48x30"
    assert (stored_note in checked.repair) == (frame == "stored"), checked.repair


def test_size_matching_neither_frame_names_both():
  phone = _phone_photo(_gradient(30, 48), 6)
  with pytest.raises(image_check.ImageRejected,
                     match=r"JSON says 31x48, the image displays as 48x30 \(after its EXIF "
                           r"orientation 6; stored sideways as 30x48\)"):
    image_check.check_image(phone, (31, 48))
  # Orientation 3 keeps the sides: its stored frame is its displayed frame, no second chance.
  flipped = _phone_photo(_gradient(30, 48), 3)
  with pytest.raises(image_check.ImageRejected, match=r"displays as 48x30 \(after its EXIF"):
    image_check.check_image(flipped, (30, 48))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_box_follows_the_pixels(orientation):
  """A box drawn on the stored pixels lands, via orient_box, on the same object upright."""
  stored = Image.new("L", (40, 24), 0)
  ImageDraw.Draw(stored).rectangle([5, 3, 14, 9], fill=255)  # x 5-14, y 3-9 inclusive
  box = (5 / 40, 3 / 24, 15 / 40, 10 / 24)
  # What exif_transpose does to the stored pixels: the inverse of what the phone did.
  displayed = stored.transpose(_APPLY[orientation]) if orientation != 1 else stored
  ys, xs = np.nonzero(np.asarray(displayed))
  width, height = displayed.size
  found = (xs.min() / width, ys.min() / height, (xs.max() + 1) / width, (ys.max() + 1) / height)
  np.testing.assert_allclose(image_check.orient_box(box, orientation), found, atol=1e-9)


# -- item 11: repair what is whole (pure functions) ----------------------------------------------

def _noisy_photo(height=120, width=160, seed=3):
  """A JPEG whose scan is photo-like (noise): where a flipped byte can desync the decoder."""
  rng = np.random.default_rng(seed)
  pixels = np.clip(_gradient(height, width).astype(np.int16) + rng.normal(0, 18, (height, width, 3)),
                   0, 255).astype(np.uint8)
  return _jpeg(pixels)


_JUNK = {
    "text": b"Edited with SomePhotoApp 3.1 (c) nobody; this is not image data. " * 5,
    "repeated pattern": b"\x12\x34" * 150,
    "one repeated byte": b"\x07" * 300,
}


@pytest.mark.parametrize("junk", sorted(_JUNK))
@pytest.mark.parametrize("progressive", [False, True])
def test_junk_before_the_end_marker_is_cut_and_every_pixel_kept(junk, progressive):
  pixels = _gradient(60, 88)
  good = _jpeg(pixels, progressive=progressive)
  damaged = good[:-2] + _JUNK[junk] + b"\xff\xd9"
  with pytest.raises(ValueError, match="extraneous bytes before marker 0xd9"):
    simplejpeg.decode_jpeg(damaged, strict=True)  # libjpeg's own complaint, as in the issue
  checked = image_check.check_image(damaged, (88, 60))
  removed = int(re.match(r"(\d+) junk bytes before the end marker removed \(not scan data: "
                         r"deflate packs them to \d+%\); the image decodes whole without them$",
                         checked.repair).group(1))
  # libjpeg counts from where its bit buffer stopped reading, a few bytes into the junk at most;
  # those few stay behind the scan, where no decoder reads them.
  assert len(_JUNK[junk]) - 8 <= removed <= len(_JUNK[junk])
  assert checked.jpeg.startswith(good[:-2]) and checked.jpeg.endswith(b"\xff\xd9")
  assert _mad(_decode(checked.jpeg), _decode(good)) == 0


def _flip_leaving_extraneous_bytes(good):
  """A copy of `good` with one scan byte changed such that libjpeg finishes the scan early and
  reports the unread real tail as 'N extraneous bytes before marker 0xd9' (found by search)."""
  scan = good.index(b"\xff\xda")
  for position in range(scan + 20, len(good) - 2, 7):
    for value in (0x00, 0x5A, 0xA5):
      if good[position] in (value, 0xFF) or good[position - 1] == 0xFF:
        continue
      flipped = good[:position] + bytes([value]) + good[position + 1:]
      try:
        simplejpeg.decode_jpeg(flipped, strict=True)
      except ValueError as e:
        if re.fullmatch(r"Corrupt JPEG data: \d+ extraneous bytes before marker 0xd9", str(e)):
          return flipped
  raise AssertionError("no such flip found")


def test_a_byte_damaged_mid_scan_is_still_rejected_though_libjpeg_says_the_same():
  good = _noisy_photo()
  flipped = _flip_leaving_extraneous_bytes(good)
  with pytest.raises(image_check.ImageRejected,
                     match=r"damaged JPEG \(libjpeg: Corrupt JPEG data: \d+ extraneous bytes "
                           r"before marker 0xd9\); the \d+ bytes before the end marker look like "
                           r"scan data .*as a byte damaged mid-scan leaves them"):
    image_check.check_image(flipped, (160, 120))
  # The tail it leaves would decode "cleanly" once cut, with wrong pixels: why it is not cut.
  message = ""
  try:
    simplejpeg.decode_jpeg(flipped, strict=True)
  except ValueError as e:
    message = str(e)
  count = int(re.search(r"(\d+) extraneous", message).group(1))
  end = flipped.rfind(b"\xff\xd9")
  cut = flipped[:end - count] + flipped[end:]
  simplejpeg.decode_jpeg(cut, strict=True)
  assert _mad(_decode(cut), _decode(good)) > 1
  assert len(zlib.compress(flipped[end - count:end], 9)) >= count


def test_random_bytes_before_the_end_marker_cannot_be_told_from_scan_data():
  good = _jpeg(_gradient(40, 56))
  noise = bytes(np.random.default_rng(5).integers(0, 255, 300, dtype=np.uint8))  # no 0xFF
  with pytest.raises(image_check.ImageRejected, match=r"the 29\d bytes before the end marker "
                                                      r"look like scan data"):
    image_check.check_image(good[:-2] + noise + b"\xff\xd9", (56, 40))


# -- one doctored 2017 download, built once by the console script -------------------------------

def _label_of(document, image_id):
  return next(a["category_id"] for a in document["annotations"] if a["image_id"] == image_id)


def _add_image(document, image, category_id=None):
  document["images"].append(image)
  if category_id is not None:
    document["annotations"].append({"id": 10**7 + image["id"], "image_id": image["id"],
                                    "category_id": category_id})


@pytest.fixture(scope="module")
def doctored(tmp_path_factory):
  """A tiny 2017 download with shared files (item 1), a sideways phone photo whose JSON and box
  use the stored frame (item 2) and text junk before an end marker (item 11). Returns
  (raw, data_dir, completed inat-build command, facts)."""
  from tests import helpers  # pylint: disable=g-import-not-at-top
  from tests.helpers import console_script  # pylint: disable=g-import-not-at-top
  raw = tmp_path_factory.mktemp("round3") / "raw"
  sample_download.make_sample(str(raw), sample_download.SampleConfig(
      num_species=13, min_train_per_species=3, max_train_per_species=4, max_side=48, seed=11))
  members = download_tools.archive_members(raw / TRAIN_VAL)
  train, val = (download_tools.load_json(raw, JSONS[s]) for s in ("train", "val"))
  boxes = download_tools.load_json(raw, "train_2017_bboxes.json")
  boxed = {b["image_id"] for b in boxes["annotations"]}
  images = sorted(train["images"], key=lambda i: i["id"])
  free = iter(i for i in images if i["id"] not in boxed)
  labels = sorted({a["category_id"] for a in train["annotations"]})
  facts = {}
  # Item 1 (a): one train file under two ids with different labels: both left out.
  first = next(free)
  other_label = next(c for c in labels if c != _label_of(train, first["id"]))
  _add_image(train, dict(first, id=900001), other_label)
  facts["conflict"] = (first["file_name"], first["id"], 900001)
  # Item 1 (b): a train file listed again by val, same label: kept in train only.
  second = next(free)
  _add_image(val, dict(second, id=900002), _label_of(train, second["id"]))
  facts["leak"] = (second["file_name"], second["id"], 900002)
  # Item 1 (c): a train file listed by val with another label: left out of both.
  third = next(free)
  _add_image(val, dict(third, id=900003),
             next(c for c in labels if c != _label_of(train, third["id"])))
  facts["leak_conflict"] = (third["file_name"], third["id"], 900003)
  # Item 1 (d): the same bytes under a second name, in val: a fact found by content.
  fourth = next(free)
  copy_name = fourth["file_name"].rsplit("/", 1)[0] + "/copy-of-fourth.jpg"
  members[copy_name] = members[fourth["file_name"]]
  _add_image(val, dict(fourth, id=900004, file_name=copy_name), _label_of(train, fourth["id"]))
  facts["same_pixels"] = (fourth["id"], 900004)
  # Item 11: text junk before the end marker.
  fifth = next(free)
  good = _jpeg(_gradient(fifth["height"], fifth["width"]))
  members[fifth["file_name"]] = good[:-2] + _JUNK["text"] + b"\xff\xd9"
  facts["junk"] = (fifth["id"], good)
  # Item 2: a phone photo stored sideways, its JSON size and its box in the stored frame.
  phone = next(i for i in images if i["id"] in boxed)
  upright = np.full((30, 48, 3), 40, np.uint8)
  upright[6:18, 30:44] = (250, 250, 250)  # the animal: x 30-43, y 6-17 of the 48 x 30 upright view
  stored = np.ascontiguousarray(np.rot90(upright, 1))  # orientation 6 turns it back
  members[phone["file_name"]] = _with_exif_orientation(_jpeg(stored), 6)
  phone.update(width=30, height=48)  # the stored frame
  ys, xs = np.nonzero(stored[..., 0] > 200)
  boxes["annotations"] = [b for b in boxes["annotations"] if b["image_id"] != phone["id"]] + [
      {"id": 10**7, "image_id": phone["id"], "category_id": _label_of(train, phone["id"]),
       "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                int(ys.max() - ys.min() + 1)], "area": 168.0}]
  facts["phone"] = (phone["id"], upright, (30 / 48, 6 / 30, 44 / 48, 18 / 30))
  download_tools.write_archive(raw / TRAIN_VAL, members)
  for split, document in (("train", train), ("val", val)):
    download_tools.write_json(raw, JSONS[split], document)
  download_tools.write_json(raw, "train_2017_bboxes.json", boxes)
  data_dir = tmp_path_factory.mktemp("round3_built")
  result = helpers.run([console_script("inat-build"), f"--raw_dir={raw}",
                        f"--data_dir={data_dir}", "--examples_per_shard=16"])
  return raw, data_dir, result, facts


@pytest.mark.slow
def test_item1_shared_files_are_reported_by_name_and_resolved_by_rule(doctored):
  raw, data_dir, result, facts = doctored
  assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
  train, val = examples_by_id(data_dir, "train"), examples_by_id(data_dir, "val")
  name, kept, dropped = facts["conflict"]
  assert kept not in train and dropped not in train  # the same pixels, two labels: neither
  problems = {(kind, where): message for kind, where, message in problems_of(data_dir)}
  assert "the same pixels would teach 2 labels" in problems["file under several labels", name]
  name, in_train, in_val = facts["leak"]
  assert in_train in train and in_val not in val
  assert "would inflate val accuracy" in problems["file in several splits", name]
  name, in_train, in_val = facts["leak_conflict"]
  assert in_train not in train and in_val not in val
  assert ("file under several labels", name) in problems
  shared = {f["file_name"]: f for f in manifest_of(data_dir)["shared_files"]}
  assert set(shared) == {facts[k][0] for k in ("conflict", "leak", "leak_conflict")}
  for fact_name in shared:  # on the terminal, by name
    assert fact_name in result.stdout
  assert "file names listed more than once: 3" in result.stdout
  assert "2 file under several labels" in result.stdout  # (a) and (c), counted by kind


@pytest.mark.slow
def test_item1_variant_same_bytes_under_two_names_is_a_reported_fact(doctored):
  _, data_dir, result, facts = doctored
  same = manifest_of(data_dir)["same_pixels"]
  train_id, val_id = facts["same_pixels"]
  groups = [g["images"] for g in same["groups"]]
  assert {"train": [train_id], "val": [val_id]} in groups
  assert same["across_splits"] >= 1
  assert "same image bytes under several image ids" in result.stdout
  assert val_id in examples_by_id(data_dir, "val")  # a fact: kept, not rejected


@pytest.mark.slow
def test_item2_box_in_the_stored_frame_turns_with_the_pixels(doctored):
  _, data_dir, _, facts = doctored
  image_id, upright, box = facts["phone"]
  example = examples_by_id(data_dir, "train")[image_id]
  assert (example[schema.WIDTH], example[schema.HEIGHT]) == (48, 30)
  assert _mad(_decode(example[schema.ENCODED]), upright) <= 3
  found = (example[schema.BBOX_XMIN][0], example[schema.BBOX_YMIN][0],
           example[schema.BBOX_XMAX][0], example[schema.BBOX_YMAX][0])
  np.testing.assert_allclose(found, box, atol=1e-6)
  repaired = {r["image_id"]: r["repair"] for r in manifest_of(data_dir)["repaired"]}
  assert "the JSON gives the stored (sideways) size 30x48" in repaired[image_id]


@pytest.mark.slow
def test_item11_junk_before_the_end_marker_is_stored_repaired_and_listed(doctored):
  _, data_dir, result, facts = doctored
  image_id, good = facts["junk"]
  example = examples_by_id(data_dir, "train")[image_id]
  assert _mad(_decode(example[schema.ENCODED]), _decode(good)) == 0
  repaired = {r["image_id"]: r["repair"] for r in manifest_of(data_dir)["repaired"]}
  assert "junk bytes before the end marker removed" in repaired[image_id]
  assert re.search(r"repaired: [1-9]", result.stdout)


@pytest.mark.slow
def test_item4_2017_summary_names_the_location_files(doctored):
  _, data_dir, result, _ = doctored
  places = manifest_of(data_dir)["locations"]
  assert places["train"]["source"] == "train2017_locations.json"
  assert 0 < places["train"]["with_place"] <= places["train"]["images"]
  assert (f"places, train: {places['train']['with_place']:,} of {places['train']['images']:,} "
          f"images (from train2017_locations.json)") in result.stdout


# -- item 4: iNat2018's published locations ------------------------------------------------------

def _zip_locations(raw):
  """What the 2018 README publishes: inat2018_locations.zip holding inat2018_locations/*.json."""
  import zipfile  # pylint: disable=g-import-not-at-top
  with zipfile.ZipFile(raw / "inat2018_locations.zip", "w") as bundle:
    for name in ("train2018_locations.json", "val2018_locations.json"):
      bundle.write(raw / name, f"inat2018_locations/{name}")
      (raw / name).unlink()


@pytest.mark.slow
def test_item4_2018_locations_from_the_published_zip_reach_the_records(tmp_path):
  from tfrecord_builder import layout  # pylint: disable=g-import-not-at-top
  raw = tmp_path / "raw"
  sample_download.make_sample(str(raw), sample_download.SampleConfig(
      edition="2018", num_species=14, min_train_per_species=2, max_train_per_species=2,
      max_side=32, seed=2))
  written = {r["id"]: r for r in download_tools.load_json(raw, "train2018_locations.json")}
  _zip_locations(raw)
  inputs = layout.find_inputs(str(raw), ("train", "val"))
  assert inputs["train"].locations_member == "inat2018_locations/train2018_locations.json"
  data_dir = tmp_path / "data"
  status, summary = run_build(raw, data_dir)
  assert status == 0, summary
  assert ("from inat2018_locations.zip: inat2018_locations/train2018_locations.json)"
          in summary)
  train = examples_by_id(data_dir, "train")
  placed = [i for i, r in written.items() if r["lat"] is not None]
  assert placed and all(train[i][schema.HAS_COORDINATES] == 1 for i in placed)
  for image_id in placed:
    assert train[image_id][schema.LATITUDE] == pytest.approx(written[image_id]["lat"], abs=1e-4)
  assert manifest_of(data_dir)["locations"]["train"]["with_place"] == len(placed)
  # Variants: the zip extracted into its own folder, or its JSONs beside the others.
  import zipfile  # pylint: disable=g-import-not-at-top
  with zipfile.ZipFile(raw / "inat2018_locations.zip") as bundle:
    bundle.extractall(raw)
  (raw / "inat2018_locations.zip").unlink()
  assert layout.find_inputs(str(raw), ("val",))["val"].locations == str(
      raw / "inat2018_locations" / "val2018_locations.json")
  (raw / "inat2018_locations" / "val2018_locations.json").rename(raw / "val2018_locations.json")
  assert layout.find_inputs(str(raw), ("val",))["val"].locations == str(
      raw / "val2018_locations.json")


def test_item4_every_edition_names_its_location_source():
  published = {name: edition.locations_published for name, edition in editions.EDITIONS.items()}
  assert "inat2018_locations.zip" in published["2018"]
  assert "no locations" in published["2019"]
  assert editions.EDITIONS["2021"].inline_locations
  assert editions.EDITIONS["2018"].location_files == {"train": "train2018_locations.json",
                                                      "val": "val2018_locations.json"}


def test_item4_train_geo_hint_names_each_editions_source():
  from inat_tf.geo import train as geo_train  # pylint: disable=g-import-not-at-top
  for name in ("2017", "2018", "2021"):
    hint = geo_train.no_places_hint(name)
    assert editions.get(name).locations_published in hint, hint
  assert "iNat2019 publishes no locations" in geo_train.no_places_hint("2019")
  assert "only" not in geo_train.no_places_hint("2018")


# -- tar_stream: the builder's own tar walk reads what tarfile reads -----------------------------

def _tar_bytes(fmt):
  import tarfile  # pylint: disable=g-import-not-at-top
  out = io.BytesIO()
  with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
    for name, data in (("short.jpg", b"a" * 10), ("dir" * 30 + "/" + "long" * 20 + ".jpg", b"b" * 700),
                       ("ü/ñame.jpg", b"c" * 512), ("empty.jpg", b"")):
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
    folder = tarfile.TarInfo("folder")
    folder.type = tarfile.DIRTYPE
    tar.addfile(folder)
    link = tarfile.TarInfo("link.jpg")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(link)
  return out.getvalue()


@pytest.mark.parametrize("fmt", ["PAX_FORMAT", "GNU_FORMAT", "USTAR_FORMAT"])
def test_tar_stream_reads_what_tarfile_reads(fmt):
  import tarfile  # pylint: disable=g-import-not-at-top
  from tfrecord_builder import tar_stream  # pylint: disable=g-import-not-at-top
  # A 175-character path: ustar splits it over its prefix and name fields, PAX and GNU write
  # their own long-name records.
  data = _tar_bytes(getattr(tarfile, fmt))
  with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
    theirs = [(m.name, m.type, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
  ours = [(m.name, m.type, d) for m, d in tar_stream.TarStream(io.BytesIO(data))]
  assert ours == theirs
  # Cut inside the second member: the first whole, the second short, the walk ends.
  cut = tar_stream.TarStream(io.BytesIO(data[:data.index(b"b" * 100) + 300]))
  members = list(cut)
  assert members[0][1] == b"a" * 10 and len(members[-1][1]) < members[-1][0].size
  # A damaged header after the first member ends the walk quietly where it stands.
  broken = bytearray(data)
  header = 1024  # the second header block (the first member's 10 bytes take one block)
  broken[header + 150] ^= 0xFF
  walk = tar_stream.TarStream(io.BytesIO(bytes(broken)))
  assert [m.name for m, _ in walk] == ["short.jpg"] and walk.offset == header
  assert next(walk.rest())[:100] == bytes(broken[header:header + 100])
  with pytest.raises(tar_stream.TarStreamError, match="invalid header"):
    list(tar_stream.TarStream(io.BytesIO(b"<html>not a tar</html>".ljust(512, b" "))))
