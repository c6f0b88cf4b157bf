"""inat-build on the generated download: round trip, bad inputs, resume, determinism, gfile I/O."""

import collections
import hashlib
import io
import json
import os
import shutil
import signal
import tarfile
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from inat_tf import records
from inat_tf import sample_download
from inat_tf import schema
from inat_tf.label_map import LabelMap
from tests import download_tools
from tests import helpers
from tests.helpers import console_script
from tfrecord_builder import build as build_lib
from tfrecord_builder import spill as spill_lib

TRAIN_VAL = sample_download.TRAIN_VAL_ARCHIVE


def run_build(raw_dir, data_dir, **flags):
  config = build_lib.BuildConfig(raw_dir=str(raw_dir), data_dir=str(data_dir), **flags)
  return build_lib.build(config, log=lambda message: None)


def read_split(data_dir, split):
  return list(records.examples(str(data_dir), split).as_numpy_iterator())


def manifest_of(data_dir):
  with tf.io.gfile.GFile(os.path.join(str(data_dir), "manifest.json")) as f:
    return json.load(f)


def manifest_facts(data_dir):
  """The manifest without its per-task section (flags such as --num_workers, and timings)."""
  return {key: value for key, value in manifest_of(data_dir).items() if key != "tasks"}


def shard_digests(data_dir):
  return {shard["file"]: shard["sha256"] for split in manifest_of(data_dir)["splits"].values()
          for shard in split["shards"]}


@pytest.fixture
def built(built_dir):
  return built_dir


def _expected_boxes(boxes, image):
  mine = boxes.get(image["id"], [])
  w, h = image["width"], image["height"]
  return ([x / w for x, y, bw, bh in mine], [y / h for x, y, bw, bh in mine],
          [(x + bw) / w for x, y, bw, bh in mine], [(y + bh) / h for x, y, bw, bh in mine])


@pytest.mark.slow
def test_round_trip_every_image_once_with_label_boxes_and_location(sample_dir, built):
  label_map = LabelMap.load(str(built))
  originals = {**download_tools.archive_members(sample_dir / TRAIN_VAL),
               **download_tools.archive_members(sample_dir / sample_download.TEST_ARCHIVE)}
  repaired = {r["file_name"] for r in manifest_of(built)["repaired"]}
  for split in ("train", "val", "test"):
    document = download_tools.load_json(sample_dir, f"{split}2017.json")
    categories = {c["id"]: c for c in document["categories"]}
    images = {image["id"]: image for image in document["images"]}
    labels = {a["image_id"]: a["category_id"] for a in document.get("annotations", [])}
    locations, boxes = {}, collections.defaultdict(list)
    if split != "test":
      locations = {r["id"]: r for r in download_tools.load_json(
          sample_dir, f"{split}2017_locations.json")}
      for box in download_tools.load_json(sample_dir, f"{split}_2017_bboxes.json")["annotations"]:
        boxes[box["image_id"]].append(box["bbox"])
    examples = read_split(built, split)
    assert sorted(e[schema.IMAGE_ID] for e in examples) == sorted(images)  # each exactly once
    for e in examples:
      image = images[e[schema.IMAGE_ID]]
      assert e[schema.FILENAME].decode() == image["file_name"]
      assert e[schema.SOURCE_ID].decode() == str(image["id"])
      assert (e[schema.WIDTH], e[schema.HEIGHT]) == (image["width"], image["height"])
      pixels = tf.io.decode_jpeg(e[schema.ENCODED], channels=3)
      assert pixels.shape == (image["height"], image["width"], 3)
      if image["file_name"] not in repaired:
        assert e[schema.ENCODED] == originals[image["file_name"]]  # not re-encoded
      if split == "test":
        assert (e[schema.LABEL], e[schema.CATEGORY_ID], e[schema.CLASS_TEXT]) == (-1, -1, b"")
        continue
      category = categories[labels[image["id"]]]
      assert e[schema.CATEGORY_ID] == category["id"]
      assert e[schema.LABEL] == label_map.index_of(category["id"])
      assert label_map.category_ids[e[schema.LABEL]] == category["id"]
      assert e[schema.CLASS_TEXT].decode() == category["name"]
      assert e[schema.SUPERCATEGORY_TEXT].decode() == category["supercategory"]
      assert label_map.supercategory_names[e[schema.SUPERCATEGORY]] == category["supercategory"]
      for key, expected in zip((schema.BBOX_XMIN, schema.BBOX_YMIN, schema.BBOX_XMAX,
                                schema.BBOX_YMAX), _expected_boxes(boxes, image)):
        np.testing.assert_allclose(e[key], expected, rtol=1e-6)
      assert list(e[schema.OBJECT_LABEL]) == [e[schema.LABEL]] * len(e[schema.BBOX_XMIN])
      location = locations[image["id"]]
      assert e[schema.HAS_COORDINATES] == (location["lat"] is not None)
      if location["lat"] is not None:
        assert e[schema.LATITUDE] == pytest.approx(location["lat"], abs=1e-4)
        assert e[schema.LONGITUDE] == pytest.approx(location["lon"], abs=1e-4)
      assert e[schema.HAS_DATE] == (location["date"] is not None)
      assert e[schema.DATE].decode() == (location["date"] or "")
      assert e[schema.USER_ID] == location["user_id"]


@pytest.mark.slow
def test_label_map_follows_ids_not_list_order(sample_dir, built):
  label_map = LabelMap.load(str(built))
  train = download_tools.load_json(sample_dir, "train2017.json")
  assert label_map.category_ids == tuple(sorted(c["id"] for c in train["categories"]))
  counts = collections.Counter(a["category_id"] for a in train["annotations"])
  assert label_map.train_counts == tuple(counts[c] for c in label_map.category_ids)


@pytest.mark.slow
def test_quirky_images_are_repaired_and_reported(built):
  repairs = {r["repair"] for r in manifest_of(built)["repaired"]}
  assert repairs == {"grayscale JPEG; re-encoded as RGB JPEG",
                     "CMYK JPEG; re-encoded as RGB JPEG", "PNG content; re-encoded as RGB JPEG"}


@pytest.mark.slow
def test_manifest_counts_sizes_and_checksums_match_the_files(built):
  manifest = manifest_of(built)
  for split, info in manifest["splits"].items():
    assert info["num_shards"] == len(records.shard_files(str(built), split))
    for shard in info["shards"]:
      data = (built / shard["file"]).read_bytes()
      assert len(data) == shard["bytes"]
      assert hashlib.sha256(data).hexdigest() == shard["sha256"]
      assert sum(1 for _ in tf.data.TFRecordDataset(str(built / shard["file"]))) == (
          shard["examples"])
  assert manifest["splits"]["train"]["num_shards"] == 5  # 1,262 examples, 300 per shard
  assert manifest["rejected"] == []
  assert set(manifest["inputs"]) >= {"train2017.json", "train_val_images.tar.gz"}
  archives = manifest["tasks"][0]["archives"]
  assert len(archives) == 2  # train_val read once for both splits, and test
  for path, info in archives.items():
    assert info["md5"] == hashlib.md5(open(path, "rb").read()).hexdigest()


@pytest.mark.slow
def test_tfds_builder_from_directory_yields_our_examples(built):
  import tensorflow_datasets as tfds
  builder = tfds.builder_from_directory(str(built))
  assert builder.info.splits["val"].num_examples == len(read_split(built, "val"))
  ours = {e[schema.IMAGE_ID]: e for e in read_split(built, "val")}
  for theirs in tfds.as_numpy(builder.as_dataset(split="val")):
    mine = ours.pop(theirs[schema.IMAGE_ID])
    assert theirs[schema.LABEL] == mine[schema.LABEL]
    assert theirs[schema.CATEGORY_ID] == mine[schema.CATEGORY_ID]
    np.testing.assert_array_equal(theirs[schema.BBOX_XMIN], mine[schema.BBOX_XMIN])
    np.testing.assert_array_equal(theirs[schema.ENCODED],
                                  tf.io.decode_jpeg(mine[schema.ENCODED], channels=3))
  assert not ours


@pytest.mark.slow
def test_same_output_for_any_worker_count_and_job_array(sample_dir, built, tmp_path):
  expected = shard_digests(built)
  status, _ = run_build(sample_dir, tmp_path / "one_worker", examples_per_shard=300,
                        num_workers=1)
  assert status == 0 and shard_digests(tmp_path / "one_worker") == expected
  assert manifest_facts(tmp_path / "one_worker") == manifest_facts(built)
  # A job array of two tasks with two workers each: each task writes its own shards; the last
  # one writes the manifest.
  for task in (0, 1):
    status, summary = run_build(sample_dir, tmp_path / "array", examples_per_shard=300,
                                task_index=task, num_tasks=2, num_workers=2)
    assert status == 0
    assert ("manifest.json is written when" in summary) == (task == 0)
  assert shard_digests(tmp_path / "array") == expected
  assert manifest_facts(tmp_path / "array") == manifest_facts(built)
  status, _ = run_build(sample_dir, tmp_path / "seed1", examples_per_shard=300, seed=1,
                        num_workers=2)
  assert shard_digests(tmp_path / "seed1") != expected
  status, _ = run_build(sample_dir, tmp_path / "seed1_one_worker", examples_per_shard=300,
                        seed=1, num_workers=1)
  assert shard_digests(tmp_path / "seed1_one_worker") == shard_digests(tmp_path / "seed1")


@pytest.mark.slow
def test_rerun_keeps_finished_shards_and_rebuilds_missing_ones(sample_dir, built, tmp_path):
  data_dir = tmp_path / "data"
  shutil.copytree(built, data_dir)
  victim = "train-00002-of-00005.tfrecord"
  (data_dir / victim).unlink()
  (data_dir / "manifest.json").unlink()
  untouched = {p.name: p.stat().st_mtime_ns for p in data_dir.glob("*.tfrecord")}
  status, _ = run_build(sample_dir, data_dir, examples_per_shard=300)
  assert status == 0
  assert {p.name: p.stat().st_mtime_ns for p in data_dir.glob("*.tfrecord")
          if p.name != victim} == untouched
  assert shard_digests(data_dir) == shard_digests(built)


def _children(pid):
  """The pids of a Linux process's children (/proc, kernel 3.5+)."""
  with open(f"/proc/{pid}/task/{pid}/children") as f:
    return [int(child) for child in f.read().split()]


def _alive(pid):
  """Running, not a zombie left for a PID 1 that does not reap (containers)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except FileNotFoundError:
    return False


@pytest.mark.slow
def test_kill_minus_nine_then_rerun_gives_identical_shards(tmp_path):
  """A real crash: the CLI is SIGKILLed while two worker processes check images; the rerun
  (one worker) resumes and ends identical to an uninterrupted one-worker build."""
  raw = tmp_path / "raw"
  sample_download.make_sample(str(raw), sample_download.SampleConfig(
      num_species=13, max_train_per_species=40, max_side=800, seed=5))
  status, _ = run_build(raw, tmp_path / "reference", examples_per_shard=64, num_workers=1)
  assert status == 0
  data_dir = tmp_path / "crashed"
  # --verify_decode makes the stream take seconds, so the kill lands inside it.
  process = helpers.start(
      [console_script("inat-build"), f"--raw_dir={raw}", f"--data_dir={data_dir}",
       "--examples_per_shard=64", "--verify_decode", "--num_workers=2"])
  spill_dir = data_dir / "_build" / "spill" / "task-00000-of-00001"
  deadline = time.monotonic() + 120
  while time.monotonic() < deadline and process.poll() is None:
    # Kill once the spill holds some whole records (flushed at least once a second).
    indexed = sum(p.stat().st_size for p in spill_dir.glob("*" + spill_lib.INDEX_SUFFIX)
                  ) if spill_dir.exists() else 0
    if indexed > 500:
      break
    time.sleep(0.02)
  workers = _children(process.pid)
  process.send_signal(signal.SIGKILL)
  assert process.wait() == -signal.SIGKILL, "the build finished before it could be killed"
  # Its worker processes end with it, instead of waiting forever as orphans.
  assert len(workers) == 2, workers
  deadline = time.monotonic() + 30
  while time.monotonic() < deadline and any(map(_alive, workers)):
    time.sleep(0.1)
  assert not any(map(_alive, workers)), "worker processes outlived the killed build"
  assert not list(data_dir.glob("train-*.tfrecord"))  # nothing looks finished
  lock = data_dir / "_build" / "lock-task-00000-of-00001"
  assert json.loads(lock.read_text())["pid"] == process.pid  # the dead owner's lock is left
  spilled = {key: ids for key, ids in spill_lib.SpillStore(str(spill_dir)).recover().items()}
  assert sum(map(len, spilled.values())) > 0
  status, _ = run_build(raw, data_dir, examples_per_shard=64, num_workers=1)  # takes the lock
  assert status == 0
  assert shard_digests(data_dir) == shard_digests(tmp_path / "reference")
  assert manifest_facts(data_dir) == manifest_facts(tmp_path / "reference")
  assert not list(data_dir.glob("*.incomplete*")) and not lock.exists()


def test_spill_recovery_drops_torn_records(tmp_path):
  store = spill_lib.SpillStore(str(tmp_path))
  for image_id in (1, 2, 3):
    store.append("s", image_id, "repaired" if image_id == 2 else "", f"{image_id:032x}",
                 b"x" * (100 * image_id))
  store.close("s")
  records_path = tmp_path / ("s" + spill_lib.RECORDS_SUFFIX)
  with open(records_path, "r+b") as f:
    f.truncate(os.path.getsize(records_path) - 50)  # the crash tore record 3
  store = spill_lib.SpillStore(str(tmp_path))
  assert store.recover() == {"s": {1, 2}}
  store.append("s", 4, "", "4" * 32, b"y" * 10)
  lines = [b"1\t" + b"1".zfill(32) + b"\t\n", b"2\t" + b"2".zfill(32) + b"\trepaired\n"]
  (tmp_path / ("s" + spill_lib.INDEX_SUFFIX)).write_bytes(b"".join(lines) + b"4\t" + b"4" * 32
                                                          + b"\t\n")
  store.close("s")
  # An index line lost with its record: the record without a line is dropped too.
  with open(tmp_path / ("s" + spill_lib.INDEX_SUFFIX), "r+b") as f:
    f.truncate(len(b"".join(lines)))
  store = spill_lib.SpillStore(str(tmp_path))
  assert store.recover() == {"s": {1, 2}}
  count, size, digest = store.finish("s", str(tmp_path / "s.tfrecord"), lambda *a: None)
  assert count == 2 and size == os.path.getsize(tmp_path / "s.tfrecord")
  assert [len(r) for r in tf.data.TFRecordDataset(str(tmp_path / "s.tfrecord"))
          .as_numpy_iterator()] == [100, 200]
  assert digest == hashlib.sha256((tmp_path / "s.tfrecord").read_bytes()).hexdigest()


# -- the bad-input corpus ---------------------------------------------------------------------

def _jpeg(size, colour="green", **options):
  out = io.BytesIO()
  Image.new("RGB", size, colour).save(out, "JPEG", **options)
  return out.getvalue()


def _lossless_marker(jpeg):
  """A JPEG whose frame says 'lossless' (SOF3): neither TensorFlow nor Pillow decodes that."""
  return jpeg.replace(b"\xff\xc0", b"\xff\xc3", 1)


@pytest.fixture(scope="module")
def corrupted(sample_dir, tmp_path_factory):
  """The sample with one broken thing of each kind; returns (raw dir, {victim: expected kind})."""
  raw = download_tools.copy_download(sample_dir, tmp_path_factory.mktemp("corrupt") / "raw")
  members = download_tools.archive_members(raw / TRAIN_VAL)
  train = download_tools.load_json(raw, "train2017.json")
  images = sorted(train["images"], key=lambda i: i["id"])
  plain = [i for i in images if members[i["file_name"]][:3] == b"\xff\xd8\xff"
           and b"\xff\xc0" in members[i["file_name"]][:2000]][:9]
  size = lambda i: (i["width"], i["height"])
  gif = io.BytesIO()
  Image.new("RGB", size(plain[0]), "blue").save(gif, "GIF")
  edits = {
      plain[0]["file_name"]: (gif.getvalue(), "repaired: GIF content"),
      plain[1]["file_name"]: (members[plain[1]["file_name"]][:1500], "rejected image: truncated"),
      plain[2]["file_name"]: (b"<html>404 Not Found</html>", "rejected image: not an image"),
      plain[3]["file_name"]: (b"", "rejected image: empty file"),
      plain[4]["file_name"]: (_lossless_marker(members[plain[4]["file_name"]]),
                              "rejected image: lossless JPEG"),
      plain[5]["file_name"]: (_jpeg((17, 23)), "rejected image: size mismatch"),
  }
  for name, (data, _) in edits.items():
    members[name] = data
  del members[plain[6]["file_name"]]
  edits[plain[6]["file_name"]] = (None, "missing image")
  symlink = tarfile.TarInfo("train_val_images/link.jpg")
  symlink.type, symlink.linkname = tarfile.SYMTYPE, "/etc/passwd"
  escaping = tarfile.TarInfo("../x.jpg")
  escaping.size = 3
  download_tools.write_archive(raw / TRAIN_VAL, members,
                               extra=[(escaping, b"abc"), (symlink, None)])
  # Annotation problems: an unknown image, an unknown category, a duplicated image id.
  train["annotations"].append({"id": 10**7, "image_id": 10**8, "category_id":
                               train["categories"][0]["id"]})
  labelled = next(a for a in train["annotations"] if a["image_id"] == plain[7]["id"])
  labelled["category_id"] = 99999
  edits[plain[7]["file_name"]] = (None, "unknown category id")
  duplicate = dict(plain[8], file_name=plain[8]["file_name"].replace(".jpg", "_copy.jpg"))
  train["images"].append(duplicate)
  edits[plain[8]["file_name"]] = (None, "duplicate image id")
  download_tools.write_json(raw, "train2017.json", train)
  return raw, edits


@pytest.mark.slow
def test_bad_inputs_are_reported_and_nothing_valid_is_lost(corrupted, tmp_path):
  raw, edits = corrupted
  status, summary = run_build(raw, tmp_path / "data", examples_per_shard=300)
  assert status == 1
  assert "exceed --max_rejects=0" in summary and "every valid image was written" in summary
  manifest = manifest_of(tmp_path / "data")
  problems = {(p["kind"], p["where"]): p["message"] for p in manifest["rejected"]}
  kinds = collections.Counter(kind for kind, _ in problems)
  repairs = {r["file_name"]: r["repair"] for r in manifest["repaired"]}
  for name, (_, expected) in edits.items():
    if expected.startswith("repaired"):
      assert "GIF content" in repairs[name]
    elif expected.startswith("rejected image"):
      assert expected.split(": ")[1] in problems[("rejected image", name)], name
    elif expected == "missing image":
      assert "not found in" in problems[("missing image", name)]
  assert kinds["unsafe archive member"] == 2
  assert "escapes the archive" in problems[("unsafe archive member", "../x.jpg")]
  assert kinds["annotation for unknown image"] == 1 and kinds["unknown category id"] == 1
  assert kinds["duplicate image id"] == 1
  # Everything valid is there: every train image of the JSON except the broken ones.
  train = download_tools.load_json(raw, "train2017.json")
  broken = {name for name, (_, expected) in edits.items() if not expected.startswith("repaired")}
  broken_ids = {i["id"] for i in train["images"] if i["file_name"] in broken}
  expected_ids = {i["id"] for i in train["images"]} - broken_ids
  assert {e[schema.IMAGE_ID] for e in read_split(tmp_path / "data", "train")} == expected_ids
  assert len(read_split(tmp_path / "data", "val")) == len(
      download_tools.load_json(raw, "val2017.json")["images"])
  # Allowed explicitly, the same build succeeds.
  status, _ = run_build(raw, tmp_path / "data", examples_per_shard=300,
                        max_rejects=len(manifest["rejected"]))
  assert status == 0


@pytest.mark.slow
def test_verify_decode_agrees_with_the_header_checks(corrupted, tmp_path):
  raw, _ = corrupted
  run_build(raw, tmp_path / "fast", examples_per_shard=300, num_workers=2)
  run_build(raw, tmp_path / "decoded", examples_per_shard=300, verify_decode=True, num_workers=1)
  assert shard_digests(tmp_path / "fast") == shard_digests(tmp_path / "decoded")
  # The same rejects and repairs, whatever the number of worker processes.
  assert manifest_facts(tmp_path / "fast") == manifest_facts(tmp_path / "decoded")


@pytest.mark.slow
def test_malformed_json_names_file_and_position(sample_dir, tmp_path):
  raw = download_tools.copy_download(sample_dir, tmp_path / "raw")
  text = (raw / "val2017.json").read_text()
  (raw / "val2017.json").write_text(text[:5000])
  with pytest.raises(build_lib.BuildError, match=r"val2017.json: malformed JSON at line 1 "
                                                 r"column \d+.*download it again"):
    run_build(raw, tmp_path / "data")
  assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_truncated_archive_keeps_what_was_read(sample_dir, tmp_path):
  raw = download_tools.copy_download(sample_dir, tmp_path / "raw")
  download_tools.truncate_gzip(raw / TRAIN_VAL, 0.5)
  status, summary = run_build(raw, tmp_path / "data", examples_per_shard=300)
  assert status == 1 and "truncated archive" in summary
  manifest = manifest_of(tmp_path / "data")
  truncated = [p for p in manifest["rejected"] if p["kind"] == "truncated archive"]
  assert len(truncated) == 1 and "ends early" in truncated[0]["message"]
  kept = manifest["splits"]["train"]["examples"] + manifest["splits"]["val"]["examples"]
  missing = sum(p["kind"] == "missing image" for p in manifest["rejected"])
  assert kept > 0 and missing > 0 and kept + missing == 1262 + 603
  assert manifest["splits"]["test"]["examples"] == 603


@pytest.mark.slow
def test_other_inputs_refuse_to_resume_until_overwrite(sample_dir, built, tmp_path):
  data_dir = tmp_path / "data"
  shutil.copytree(built, data_dir)
  with pytest.raises(build_lib.BuildError, match="seed: 0 then, 3 now.*--overwrite"):
    run_build(sample_dir, data_dir, examples_per_shard=300, seed=3)
  status, _ = run_build(sample_dir, data_dir, examples_per_shard=300, seed=3, overwrite=True)
  assert status == 0 and shard_digests(data_dir) != shard_digests(built)


@pytest.mark.slow
def test_ram_filesystem_output_proves_gfile_only_io(sample_dir, built):
  data_dir = "ram://inat-build-test/data"
  status, _ = run_build(sample_dir, data_dir, examples_per_shard=300,
                        spill_dir=str(built.parent / "ram_spill"))
  assert status == 0
  assert shard_digests(data_dir) == shard_digests(built)
  assert len(read_split(data_dir, "val")) == 603
  assert LabelMap.load(data_dir) == LabelMap.load(str(built))


@pytest.mark.slow
def test_extracted_folder_gives_the_same_examples(sample_dir, built, tmp_path):
  raw = tmp_path / "raw"
  raw.mkdir()
  for name in os.listdir(sample_dir):
    if name.endswith(".tar.gz"):
      with tarfile.open(sample_dir / name) as tar:
        tar.extractall(raw, filter="data")
    else:
      shutil.copy(sample_dir / name, raw / name)
  status, _ = run_build(raw, tmp_path / "data", examples_per_shard=300)
  assert status == 0
  for split in ("train", "test"):
    ours = {e[schema.IMAGE_ID]: (e[schema.LABEL], e[schema.ENCODED])
            for e in read_split(tmp_path / "data", split)}
    assert ours == {e[schema.IMAGE_ID]: (e[schema.LABEL], e[schema.ENCODED])
                    for e in read_split(built, split)}


def _as_inat2021(sample_dir, raw):
  """The sample rewritten in the iNat2021 layout: per-split archives, inline locations."""
  raw.mkdir()
  members = {**download_tools.archive_members(sample_dir / TRAIN_VAL),
             **download_tools.archive_members(sample_dir / sample_download.TEST_ARCHIVE)}
  for split, new_split in (("train", "train"), ("val", "val"), ("test", "public_test")):
    document = download_tools.load_json(sample_dir, f"{split}2017.json")
    for c in document["categories"]:
      c["common_name"] = c["name"].split()[0] + " bug"
      c["image_dir_name"] = f"{c['id']:05d}_{c['supercategory']}_{c['name'].replace(' ', '_')}"
    dirs = {c["id"]: c["image_dir_name"] for c in document["categories"]}
    labels = {a["image_id"]: a["category_id"] for a in document.get("annotations", [])}
    locations = {} if split == "test" else {r["id"]: r for r in download_tools.load_json(
        sample_dir, f"{split}2017_locations.json")}
    renamed = {}
    for image in document["images"]:
      old = image["file_name"]
      folder = dirs[labels[image["id"]]] if split != "test" else ""
      image["file_name"] = "/".join(filter(None, (new_split, folder, os.path.basename(old))))
      renamed[image["file_name"]] = members[old]
      location = locations.get(image["id"], {})
      image.update(latitude=location.get("lat"), longitude=location.get("lon"),
                   location_uncertainty=17, date=location.get("date"))
    download_tools.write_json(raw, f"{new_split}.json", document)
    download_tools.write_archive(raw / f"{new_split}.tar.gz", renamed)


@pytest.mark.slow
def test_inat2021_layout_builds(sample_dir, built, tmp_path):
  _as_inat2021(sample_dir, tmp_path / "raw2021")
  status, summary = run_build(tmp_path / "raw2021", tmp_path / "data", examples_per_shard=300)
  assert status == 0, summary
  ours = {e[schema.IMAGE_ID]: e for e in read_split(tmp_path / "data", "val")}
  reference = {e[schema.IMAGE_ID]: e for e in read_split(built, "val")}
  assert set(ours) == set(reference)
  for image_id, e in ours.items():
    assert e[schema.LABEL] == reference[image_id][schema.LABEL]
    assert e[schema.LATITUDE] == reference[image_id][schema.LATITUDE]
    assert e[schema.DATE] == reference[image_id][schema.DATE]
    assert e[schema.LOCATION_UNCERTAINTY] == 17
    assert len(e[schema.BBOX_XMIN]) == 0  # iNat2021 has no boxes
  assert len(read_split(tmp_path / "data", "test")) == 603


@pytest.mark.slow
def test_cli_exit_status_summary_and_bad_flags(corrupted, tmp_path):
  raw, _ = corrupted
  result = helpers.run([console_script("inat-build"), f"--raw_dir={raw}",
                        f"--data_dir={tmp_path / 'data'}", "--examples_per_shard=300"])
  assert result.returncode == 1
  assert "rejected:" in result.stdout and "truncated JPEG" in result.stdout
  assert "images/s" in result.stderr  # the progress line
  bad = helpers.run([console_script("inat-build"), f"--raw_dir={raw}",
                     f"--data_dir={tmp_path / 'data'}", "--task_index=2", "--num_tasks=2"])
  assert bad.returncode != 0 and "need 0 <= task_index < num_tasks" in bad.stderr


def test_missing_download_says_what_to_point_at(tmp_path):
  with pytest.raises(build_lib.BuildError, match="No annotation file in RAW_DIR.*train2017.json"):
    run_build(tmp_path, tmp_path / "data")
