"""The generated download, parsed the way a third party would parse the real one."""

import collections
import hashlib
import json
import math
import tarfile

import dataclasses

import numpy as np
import pytest
from PIL import Image

from inat_tf import sample_download
from inat_tf import sample_images
from inat_tf.sample_download import SampleConfig
from tests import helpers
from tests.helpers import console_script

ALL_SUPERCATEGORIES = {name for name, _ in sample_download.SUPERCATEGORY_SPECIES_COUNTS}
INFO_FIELDS = {"year", "version", "description", "contributor", "url", "date_created"}
IMAGE_FIELDS = {"id", "width", "height", "file_name", "license", "rights_holder"}


def _load(directory, name):
  with open(directory / name, encoding="utf-8") as f:
    return json.load(f)


def _archive_images(path, decode_pixels=True):
  """{member name: PIL image} for every regular file in a .tar.gz, read as a user would."""
  images = {}
  with tarfile.open(path, "r:gz") as tar:
    for member in tar:
      if member.isfile():
        image = Image.open(tar.extractfile(member))
        if decode_pixels:
          image.load()
        images[member.name] = image
  return images


def check_download(directory, config, decode_pixels=True):
  """Every check a third party would run on the real download; returns the parsed JSONs.

  Without decode_pixels, images are opened (header parsed, size read) but not decoded.
  """
  docs = {split: _load(directory, f"{split}2017.json") for split in ("train", "val", "test")}
  for split, doc in docs.items():
    assert set(doc) >= {"info", "images", "categories", "licenses"}, split
    assert set(doc["info"]) == INFO_FIELDS
    assert all(set(image) == IMAGE_FIELDS for image in doc["images"])
    assert all(set(c) == {"id", "name", "supercategory"} for c in doc["categories"])
    assert all(set(lic) == {"id", "name", "url"} for lic in doc["licenses"])
    license_ids = {lic["id"] for lic in doc["licenses"]}
    assert all(image["license"] in license_ids for image in doc["images"])
  assert "annotations" not in docs["test"]

  # Ids are unique within each file and across the image splits.
  all_image_ids = [image["id"] for doc in docs.values() for image in doc["images"]]
  assert len(all_image_ids) == len(set(all_image_ids))
  categories = {c["id"]: c for c in docs["train"]["categories"]}
  assert len(categories) == len(docs["train"]["categories"]) == config.num_species
  assert docs["val"]["categories"] == docs["train"]["categories"] or {
      c["id"] for c in docs["val"]["categories"]} == set(categories)
  assert {c["supercategory"] for c in categories.values()} == ALL_SUPERCATEGORIES
  assert all(" " in c["name"] for c in categories.values())

  # One annotation per image, pointing at a known category.
  labels = {}
  for split in ("train", "val"):
    annotations = docs[split]["annotations"]
    assert len({a["id"] for a in annotations}) == len(annotations)
    assert sorted(a["image_id"] for a in annotations) == sorted(
        image["id"] for image in docs[split]["images"])
    assert all(a["category_id"] in categories for a in annotations)
    labels.update({a["image_id"]: a["category_id"] for a in annotations})

  # Archives hold exactly the JSON's files, each opening at the JSON's size.
  train_val = _archive_images(directory / sample_download.TRAIN_VAL_ARCHIVE, decode_pixels)
  test = _archive_images(directory / sample_download.TEST_ARCHIVE, decode_pixels)
  json_images = {image["file_name"]: image for doc in (docs["train"], docs["val"])
                 for image in doc["images"]}
  assert set(train_val) == set(json_images)
  assert set(test) == {image["file_name"] for image in docs["test"]["images"]}
  for name, image in list(train_val.items()) + list(test.items()):
    record = json_images.get(name) or next(i for i in docs["test"]["images"]
                                           if i["file_name"] == name)
    assert image.size == (record["width"], record["height"]), name
    assert max(image.size) <= config.max_side
  for image in docs["test"]["images"]:
    assert image["file_name"].startswith("test2017/") and image["file_name"].count("/") == 1
  for name in json_images:
    top, supercategory, species, base = name.split("/")
    category = categories[labels[json_images[name]["id"]]]
    assert (top, supercategory, species) == (
        "train_val_images", category["supercategory"], category["name"])
    assert len(base) == 36 and all(ch in "0123456789abcdef" for ch in base[:32])

  # The long tail: geometric from max to min train images per class; val 4..30.
  per_class = {split: collections.Counter(a["category_id"] for a in docs[split]["annotations"])
               for split in ("train", "val")}
  n = config.num_species
  ratio = config.min_train_per_species / config.max_train_per_species
  expected = sorted(round(config.max_train_per_species * ratio ** (r / (n - 1))) for r in range(n))
  assert sorted(per_class["train"][c] for c in categories) == expected
  assert all(4 <= per_class["val"][c] <= 30 for c in categories)

  _check_boxes(directory, docs, categories, labels)
  _check_locations(directory, docs)
  return docs


def _check_boxes(directory, docs, categories, labels):
  sizes = {image["id"]: (image["width"], image["height"])
           for doc in docs.values() for image in doc["images"]}
  for split in ("train", "val"):
    boxes = _load(directory, f"{split}_2017_bboxes.json")
    assert {c["supercategory"] for c in boxes["categories"]} == (
        sample_download.BOXED_SUPERCATEGORIES)
    per_image = collections.Counter(a["image_id"] for a in boxes["annotations"])
    assert len({a["id"] for a in boxes["annotations"]}) == len(boxes["annotations"])
    assert {image["id"] for image in boxes["images"]} == set(per_image)
    for box in boxes["annotations"]:
      x, y, w, h = box["bbox"]
      width, height = sizes[box["image_id"]]
      assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width and y + h <= height
      assert math.isclose(box["area"], w * h / 2, abs_tol=0.01)
      assert box["iscrowd"] == 0
      assert box["category_id"] == labels[box["image_id"]]
      assert categories[box["category_id"]]["supercategory"] in (
          sample_download.BOXED_SUPERCATEGORIES)
    assert max(per_image.values()) <= 10
    if split == "val":
      assert set(per_image.values()) == {1}
    else:
      assert max(per_image.values()) > 1  # some images show several animals


def _check_locations(directory, docs):
  for split in ("train", "val"):
    records = _load(directory, f"{split}2017_locations.json")
    assert isinstance(records, list)
    assert sorted(r["id"] for r in records) == sorted(i["id"] for i in docs[split]["images"])
    assert all(set(r) == {"id", "lat", "lon", "date", "date_c", "user_id"} for r in records)
    assert any(r["lat"] is None for r in records) and any(r["lat"] is not None for r in records)
    for r in records:
      assert (r["lat"] is None) == (r["lon"] is None)
      if r["lat"] is not None:
        assert -90 <= r["lat"] <= 90 and -180 <= r["lon"] <= 180
      if r["date_c"] is not None:
        assert 0 <= r["date_c"] <= 1


@pytest.mark.slow
def test_default_sample_passes_third_party_checks(sample_dir):
  check_download(sample_dir, SampleConfig())


@pytest.mark.slow
def test_default_ids_are_gapped_and_lists_unaligned(sample_dir):
  """Code that joins by list position instead of id must fail on the default sample."""
  train = _load(sample_dir, "train2017.json")
  ids = [c["id"] for c in train["categories"]]
  assert ids != sorted(ids) and sorted(ids) != list(range(len(ids)))
  pairs = zip(train["images"], train["annotations"])
  assert any(image["id"] != annotation["image_id"] for image, annotation in pairs)


@pytest.mark.slow
def test_siblings_differ_only_in_spot_count(sample_dir):
  categories = _load(sample_dir, "train2017.json")["categories"]
  genera = collections.defaultdict(set)
  for c in categories:
    genus, epithet = c["name"].split(" ")
    genera[genus].add(epithet)
  assert any(len(epithets) > 1 for epithets in genera.values())
  assert all(e in sample_download.SPOT_EPITHETS for es in genera.values() for e in es)


def test_genus_sizes_follow_their_flags_with_a_real_taxonomy(tmp_path):
  """--min/--max_species_per_genus: genera of 4-5 look-alike species, in families and orders
  (iNat2019 layout: six equal super-categories; one image per species and split, 32 px)."""
  config = SampleConfig(num_species=48, min_train_per_species=1, max_train_per_species=1,
                        val_per_species=1, max_side=32, edition="2019", min_species_per_genus=4,
                        max_species_per_genus=5, quirky_images=False, num_workers=1)
  sample_download.make_sample(str(tmp_path), config)
  records = json.loads((tmp_path / "categories.json").read_text())
  genera = collections.Counter((c["class"], c["family"], c["genus"]) for c in records)
  # Eight species per super-category (one class each): genera of 4 or 5, the last genus of a
  # super-category taking what is left (3 after a 5).
  assert set(genera.values()) <= {3, 4, 5} and sum(size >= 4 for size in genera.values()) > 6
  per_class = collections.Counter()
  for (class_, _, _), size in genera.items():
    per_class[class_] += size
  assert sorted(per_class.values()) == [8] * 6
  families = collections.Counter(family for _, family, _ in genera)
  assert max(families.values()) == 2  # two genera per family, as sample_editions.taxonomy makes


@pytest.mark.slow
def test_quirky_images_are_what_they_claim(sample_dir):
  """One grayscale, one CMYK, one PNG under a .jpg name, one progressive JPEG."""
  images = _archive_images(sample_dir / sample_download.TRAIN_VAL_ARCHIVE)
  modes = collections.Counter((image.format, image.mode) for image in images.values())
  assert modes[("JPEG", "L")] == 1
  assert modes[("JPEG", "CMYK")] == 1
  assert modes[("PNG", "RGB")] == 1
  assert sum(image.info.get("progressive", 0) for image in images.values()) == 1
  assert all(name.endswith(".jpg") for name in images)


def _digests(directory):
  return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_differs(sample_dir, tmp_path):
  sample_download.make_sample(str(tmp_path / "again"), SampleConfig(num_workers=1))
  sample_download.make_sample(str(tmp_path / "other"), SampleConfig(seed=1))
  assert _digests(tmp_path / "again") == _digests(sample_dir)
  assert _digests(tmp_path / "other") != _digests(sample_dir)
  assert not list(tmp_path.glob("*/*.partial"))


@pytest.mark.slow
def test_tfds_layout_is_what_the_tfds_builder_needs(tmp_path):
  config = SampleConfig(num_species=13, min_train_per_species=2, max_train_per_species=4,
                        species_names="tfds")
  sample_download.make_sample(str(tmp_path), config)
  train = _load(tmp_path, "train2017.json")
  # TFDS indexes categories by id and zips images with annotations.
  assert [c["id"] for c in train["categories"]] == list(range(13))
  assert all(image["id"] == annotation["image_id"]
             for image, annotation in zip(train["images"], train["annotations"]))
  import tensorflow_datasets as tfds
  names = (tfds.core.tfds_path("image_classification") / "inaturalist_labels.txt").read_text()
  assert [c["name"] for c in train["categories"]] == names.splitlines()[:13]


@pytest.mark.slow
def test_larger_setting_at_full_resolution(tmp_path):
  """More species than the default, at the real download's 800 px (~1,000 images; headers parsed,
  not decoded)."""
  config = SampleConfig(num_species=80, min_train_per_species=4, max_train_per_species=6,
                        max_side=800, seed=3)
  sample_download.make_sample(str(tmp_path), config)
  check_download(tmp_path, config, decode_pixels=False)


def test_a_chiral_species_has_its_head_on_its_own_side_and_its_mirror_twin_on_the_other():
  """Same randomness, opposite handedness: the same scene, the dark head on the right (+1) or
  left (-1) half of the animal's box."""
  look = sample_images.SpeciesLook(outline="ellipse", body_hue=0.3, dark_spots=False,
                                   spot_count=1, habitat_hue=0.8, handedness=1)
  head = np.array(sample_images._hsv(0.3, 0.9, 0.3))  # pylint: disable=protected-access
  drawn = {}
  for handedness in (1, -1):
    image, [(x, y, w, h)] = sample_images.draw_photo(
        dataclasses.replace(look, handedness=handedness), 96, 96, 1, np.random.default_rng(5))
    pixels = np.asarray(image).astype(int)
    near_head = np.abs(pixels - head).sum(axis=-1) < 40
    box = near_head[int(y):int(y + h), int(x):int(x + w)]
    left, right = box[:, :box.shape[1] // 2].sum(), box[:, box.shape[1] // 2:].sum()
    assert (right > 3 * left) if handedness > 0 else (left > 3 * right), (handedness, left, right)
    drawn[handedness] = pixels, (x, y, w, h)
  (a, box_a), (b, box_b) = drawn[1], drawn[-1]
  assert box_a == box_b
  outside = np.ones(a.shape[:2], bool)
  x, y, w, h = box_a
  outside[int(y):int(y + h) + 1, int(x):int(x + w) + 1] = False
  assert (a[outside] == b[outside]).all()


@pytest.mark.slow
def test_unlike_kinds_chiral_pairs_near_duplicates_small_subjects(tmp_path):
  """The departures benchmarks/recipes.py's data kinds use, in one small download: it still
  passes every third-party check; siblings come in dextro- / laevo- pairs; half the train images
  are near copies of a sibling's image; every animal is at most 0.5 x the default size."""
  config = SampleConfig(num_species=26, min_train_per_species=4, max_train_per_species=4,
                        max_side=48, seed=2, chiral=True, near_duplicates=0.5,
                        subject_scale=0.5)
  sample_download.make_sample(str(tmp_path), config)
  docs = check_download(tmp_path, config)
  names = [c["name"] for c in docs["train"]["categories"]]
  pairs = {n.split(" ")[0] + " " + n.split(" ")[1][len("dextro"):] for n in names
           if n.split(" ")[1].startswith("dextro")}
  assert sum(f"{p.split(' ')[0]} laevo{p.split(' ')[1]}" in names for p in pairs) >= 3
  assert all(n.split(" ")[1].startswith(("dextro", "laevo")) for n in names)

  images = _archive_images(tmp_path / sample_download.TRAIN_VAL_ARCHIVE)
  label = {a["image_id"]: a["category_id"] for a in docs["train"]["annotations"]}
  train = [(np.asarray(images[i["file_name"]].convert("RGB")).astype(int), label[i["id"]])
           for i in docs["train"]["images"]]
  # Twins and their partners: near-identical images of two species. (Two twins of one partner
  # are near-identical too, with one label.)
  in_a_pair = set()
  for k, (a, label_a) in enumerate(train):
    for m, (b, label_b) in enumerate(train[:k]):
      if label_a != label_b and a.shape == b.shape and np.abs(a - b).mean() < 8:
        in_a_pair |= {k, m}  # unrelated scenes differ by ~40 on average
  assert round(0.5 * len(train)) < len(in_a_pair) <= len(train)

  for box in _load(tmp_path, "train_2017_bboxes.json")["annotations"]:
    image = next(i for i in docs["train"]["images"] if i["id"] == box["image_id"])
    short = min(image["width"], image["height"])
    assert max(box["bbox"][2:]) <= 0.5 * 0.75 * 1.25 * short + 0.01


@pytest.mark.parametrize("kwargs, message", [
    ({"subject_scale": 0}, "subject_scale=0: must be in \\(0, 1\\]"),
    ({"near_duplicates": 1.5}, "near_duplicates=1.5"),
    ({"chiral": True, "species_names": "tfds"}, "chiral needs species_names='generated'"),
    ({"num_species": 5}, "at least 13"),
    ({"max_train_per_species": 4}, "below min_train_per_species"),
    ({"max_side": 10}, "max_side=10"),
    ({"species_names": "latin"}, "expected 'generated' or 'tfds'"),
    ({"min_species_per_genus": 4, "max_species_per_genus": 3}, "species per genus 4 to 3"),
    ({"max_species_per_genus": 8}, "one spot count per species of a genus"),
])
def test_bad_settings_are_named(kwargs, message, tmp_path):
  with pytest.raises(ValueError, match=message):
    sample_download.make_sample(str(tmp_path), SampleConfig(**kwargs))
  assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_console_script(tmp_path):
  result = helpers.run(
      [console_script("inat-make-sample"), f"--output_dir={tmp_path}", "--num_species=13",
       "--max_train_per_species=10", "--max_side=64"])
  assert result.returncode == 0, result.stderr[-2000:]
  assert "13 species" in result.stdout
  check_download(tmp_path, SampleConfig(num_species=13, max_train_per_species=10, max_side=64))
  bad = helpers.run([console_script("inat-make-sample"), f"--output_dir={tmp_path}",
                     "--num_species=3"])
  assert bad.returncode != 0 and "at least 13" in bad.stderr
