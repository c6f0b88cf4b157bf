"""Every iNat edition: layout detection, taxonomy in the label map and records, rank accuracy,
each edition's Kaggle CSV through inat-score, the minival split and the overlap check."""

import collections
import io
import json
import os
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from inat_tf import editions
from inat_tf import predict
from inat_tf import rank_metrics
from inat_tf import sample_download
from inat_tf import score
from inat_tf.label_map import LabelMap
from tests import download_tools
from tests import helpers
from tests.helpers import console_script

# -- published facts -----------------------------------------------------------------------------


def test_each_editions_submission_format_is_the_published_one():
  formats = {name: (e.submission_header, e.submission_labels)
             for name, e in editions.EDITIONS.items()}
  assert formats == {"2017": (("id", "predicted"), 5), "2018": (("id", "predicted"), 3),
                     "2019": (("id", "predicted"), 1), "2021": (("Id", "Predicted"), 5),
                     "2021_mini": (("Id", "Predicted"), 5)}


def _touch(directory, *names):
  for name in names:
    (directory / name).write_text("{}")


def test_detection_by_published_file_names(tmp_path):
  for name, edition in editions.EDITIONS.items():
    raw = tmp_path / name
    raw.mkdir()
    _touch(raw, edition.splits["train"].annotations)
    assert editions.detect(str(raw)).name == name
  both = tmp_path / "both"
  both.mkdir()
  _touch(both, "train.json", "train_mini.json")
  with pytest.raises(editions.EditionError, match="--train_set=train or --train_set=train_mini"):
    editions.detect(str(both))
  assert editions.detect(str(both), "train_mini").name == "2021_mini"
  assert editions.detect(str(both), "train").name == "2021"
  with pytest.raises(editions.EditionError, match="train2017.json .iNat2017.*train_mini.json"):
    editions.detect(str(tmp_path / "2017" / "nothing_here"))


# -- rank accuracy ---------------------------------------------------------------------------------


def _hand_label_map():
  """Four species: A a and A b share genus A; B c is another genus of the same family F; D d is
  in family G. Orders: F and G are both in order O."""
  categories = [
      {"id": 10, "name": "A a", "supercategory": "S", "kingdom": "K", "phylum": "P",
       "class": "C", "order": "O", "family": "F", "genus": "A"},
      {"id": 11, "name": "A b", "supercategory": "S", "kingdom": "K", "phylum": "P",
       "class": "C", "order": "O", "family": "F", "genus": "A"},
      {"id": 12, "name": "B c", "supercategory": "S", "kingdom": "K", "phylum": "P",
       "class": "C", "order": "O", "family": "F", "genus": "B"},
      {"id": 13, "name": "D d", "supercategory": "T", "kingdom": "K", "phylum": "P",
       "class": "C", "order": "O", "family": "G", "genus": "D"},
  ]
  return LabelMap.from_categories(categories, {}, ranks=editions.TAXONOMY_RANKS, edition="2018")


def test_rank_accuracy_equals_the_hand_computed_table():
  label_map = _hand_label_map()
  labels = np.array([0, 0, 1, 2, 3, -1])
  top = np.array([[0, 1, 2, 3, 3],    # right species
                  [1, 3, 3, 3, 3],    # sister species (genus A): genus hit, species miss
                  [2, 0, 3, 3, 3],    # genus B for A b: family hit; A a at 2nd: genus top-5
                  [3, 3, 3, 3, 3],    # D d for B c: order hit only; never family F
                  [0, 1, 2, 2, 2],    # A a for D d: order hit; D never among 5
                  [0, 0, 0, 0, 0]])   # unlabelled: ignored
  rows = {row["rank"]: row for row in rank_metrics.rank_accuracy(labels, top, label_map)}
  # species: only image 0 is right, at top-1 and top-5 (the true species of 1, 2, 3, 4 is never
  # among their five).
  assert rows["species"]["top1"] == pytest.approx(1 / 5)
  assert rows["species"]["top5"] == pytest.approx(1 / 5)
  # genus: top-1 images 0 and 1 (A for A); top-5 adds image 2 (A a, genus A, second).
  assert rows["genus"]["top1"] == pytest.approx(2 / 5)
  assert rows["genus"]["top5"] == pytest.approx(3 / 5)
  # family: images 0, 1, 2 (F for F); 3 (G for F) and 4 (F for G) never.
  assert rows["family"]["top1"] == pytest.approx(3 / 5)
  assert rows["family"]["top5"] == pytest.approx(3 / 5)
  # order and above: every prediction is in order O.
  for rank in ("order", "class", "phylum", "kingdom"):
    assert rows[rank]["top1"] == rows[rank]["top5"] == 1.0
  # supercategory: S for S on images 0, 1, 2; image 3 sees only T, image 4 only S.
  assert rows["supercategory"]["top1"] == pytest.approx(3 / 5)
  assert rows["supercategory"]["top5"] == pytest.approx(3 / 5)
  assert [row["rank"] for row in rank_metrics.rank_accuracy(labels, top, label_map)] == [
      "supercategory", "kingdom", "phylum", "class", "order", "family", "genus", "species"]
  assert rows["genus"]["taxa"] == 3 and rows["family"]["taxa"] == 2


def test_taxa_are_compared_by_lineage_and_the_label_map_round_trips():
  label_map = _hand_label_map()
  assert label_map.taxon(1, "genus") == "A" and label_map.taxon(3, "family") == "G"
  assert LabelMap.from_json(json.loads(json.dumps(label_map.to_json()))) == label_map
  # Genus "A" in two families is two genera.
  twin = dataclasses_replace_taxa(label_map, 3, "genus", "A")
  assert len(set(twin.taxon_indices("genus"))) == 3


def dataclasses_replace_taxa(label_map, index, rank, name):
  import dataclasses  # pylint: disable=g-import-not-at-top
  taxa = [list(t) for t in label_map.taxa]
  taxa[index][label_map.ranks.index(rank)] = name
  return dataclasses.replace(label_map, taxa=tuple(tuple(t) for t in taxa))


# -- the scorer reads CSV as CSV -------------------------------------------------------------------


def _val_json(path, year):
  document = {"info": {"year": year},
              "images": [{"id": i, "width": 8, "height": 8, "file_name": f"v/{i}.jpg"}
                         for i in (1, 2, 3)],
              "categories": [{"id": c, "name": f"s{c}", "supercategory": "S"}
                             for c in range(6)],
              "annotations": [{"id": i, "image_id": i, "category_id": i} for i in (1, 2, 3)]}
  path.write_text(json.dumps(document))
  return document


@pytest.mark.parametrize("name", list(editions.NAMES))
def test_each_editions_csv_round_trips_through_the_scorer(name, tmp_path):
  edition = editions.get(name)
  annotations = tmp_path / "annotations.json"
  _val_json(annotations, edition.year)
  label_map = LabelMap.from_categories(
      [{"id": c, "name": f"s{c}", "supercategory": "S"} for c in range(6)], {}, edition=name)
  header, per_row = predict.submission_format(label_map)
  predicted = {i: [i, 4, 5, 0, 0][:per_row] for i in (1, 2, 3)}
  rows, _ = predict.submission_rows([1, 2, 3], predicted, fallback=[0] * per_row)
  path = str(tmp_path / "submission.csv")
  predict.write_submission(path, rows, header)
  assert open(path).readline().strip() == ",".join(edition.submission_header)
  result = score.score(path, str(annotations), edition=name)
  assert result["top1_error"] == 0 and result[f"top{per_row}_error"] == 0
  assert result["labels_per_row"] == edition.submission_labels


def test_scorer_accepts_quotes_bom_crlf_and_any_column_order(tmp_path):
  annotations = tmp_path / "val.json"  # iNat2021's name: Id,Predicted, 5 labels
  _val_json(annotations, 2021)
  text = ('\ufeff"Predicted","Id"\r\n"1 0 2 3 4","1"\r\n"2 0 1 3 4",2\r\n"5 4 3 2 1",3\r\n')
  (tmp_path / "excel.csv").write_bytes(text.encode("utf-8"))
  result = score.score(str(tmp_path / "excel.csv"), str(annotations))
  assert result["edition"] == "2021" and result["images"] == 3
  assert result["top1_error"] == pytest.approx(1 / 3) and result["top5_error"] == 0


@pytest.mark.parametrize("text, annotations_name, message", [
    ("id,predicted\n1,1 0 2 3 4\n", "val.json", "line 1: expected the header 'Id,Predicted' "
     "(iNat2021's spelling), found 'id,predicted'"),
    ("Id,Predicted\n1,1 0 2 3 4\n", "val2017.json", "line 1: expected the header 'id,predicted'"),
    ("id,predicted\n1,1 0 2\n2,2 0 1 3 4\n3,\"3 0 1 2 4\",9\n", "val2017.json",
     "line 2: image 1 has 3 predicted labels, expected 5"),
    ("id,predicted\n1,1 0 2 3 4\n2,2 0 1 3 4\n3,\"3 0 1 2 4\",9\n", "val2017.json",
     "line 4: expected 2 fields"),
    ("id,predicted\n1,1\n2,2\n3,3 4\n", "val2019.json", "line 4: image 3 has 2 predicted labels, "
     "expected 1 (iNat2019)"),
])
def test_scorer_names_the_problem_and_its_line(text, annotations_name, message, tmp_path):
  annotations = tmp_path / annotations_name
  _val_json(annotations, 2000)
  (tmp_path / "s.csv").write_text(text)
  with pytest.raises(score.ScoreError) as error:
    score.score(str(tmp_path / "s.csv"), str(annotations))
  assert message in str(error.value), str(error.value)


def test_annotations_record_without_category_id_is_named(tmp_path):
  annotations = tmp_path / "val2017.json"
  document = _val_json(annotations, 2017)
  del document["annotations"][1]["category_id"]
  annotations.write_text(json.dumps(document))
  (tmp_path / "s.csv").write_text("id,predicted\n1,1 0 2 3 4\n2,2 0 1 3 4\n3,3 0 1 2 4\n")
  with pytest.raises(score.ScoreError, match=r"annotations\[1\] = .*expected integer image_id "
                                             r"and category_id"):
    score.score(str(tmp_path / "s.csv"), str(annotations))


@pytest.mark.slow
def test_scorer_cli_never_shows_a_traceback(tmp_path):
  annotations = tmp_path / "val2017.json"
  document = _val_json(annotations, 2017)
  del document["annotations"][0]["category_id"]
  annotations.write_text(json.dumps(document))
  (tmp_path / "s.csv").write_text("id,predicted\n1,1 0 2 3 4\n")
  result = helpers.run([console_script("inat-score"), f"--predictions={tmp_path / 's.csv'}",
                        f"--annotations={annotations}"])
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert "annotations[0]" in result.stderr


# -- minival ---------------------------------------------------------------------------------------


def _catalog(labels):
  from tfrecord_builder import annotations  # pylint: disable=g-import-not-at-top
  records = {f"train/{i}.jpg": annotations.ImageRecord("train", i, f"train/{i}.jpg", 8, 8, c)
             for i, c in labels.items()}
  return annotations.Catalog(records={"train": records}, listed_ids={"train": sorted(labels)},
                             label_map=None, problems=[], md5={})


def test_stratified_minival_is_disjoint_complete_stratified_and_stable():
  from tfrecord_builder import build  # pylint: disable=g-import-not-at-top
  from tfrecord_builder import layout  # pylint: disable=g-import-not-at-top
  from tfrecord_builder import minival  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  labels = {int(i): int(c) for i, c in zip(rng.permutation(10_000)[:600],
                                           rng.integers(0, 20, size=600))}
  config = build.BuildConfig("", "", minival_fraction=0.2, seed=7)
  catalog = _catalog(labels)
  inputs = {"train": layout.SplitInputs("train", "train.json", archive="train.tar.gz")}
  description = minival.apply(catalog, inputs, config)
  held = {r.image_id for r in catalog.records["minival"].values()}
  kept = {r.image_id for r in catalog.records["train"].values()}
  assert not held & kept and held | kept == set(labels)                 # disjoint, complete
  assert catalog.listed_ids["minival"] == sorted(held)
  assert catalog.listed_ids["train"] == sorted(kept)
  per_class = collections.Counter(labels.values())
  held_per_class = collections.Counter(labels[i] for i in held)
  for c, n in per_class.items():                                        # stratified
    assert held_per_class[c] == min(n - 1, round(0.2 * n))
  assert description["images"] == len(held) and inputs["minival"].archive == "train.tar.gz"
  # Stable for a seed, whatever the order of the JSON; another seed, another split.
  shuffled = dict(reversed(list(labels.items())))
  assert minival.stratified_ids(shuffled, 0.2, 7) == sorted(held)
  assert minival.stratified_ids(labels, 0.2, 8) != sorted(held)


def test_minival_id_file_takes_listed_ids_and_refuses_unknown_ones(tmp_path):
  from tfrecord_builder import build  # pylint: disable=g-import-not-at-top
  from tfrecord_builder import layout  # pylint: disable=g-import-not-at-top
  from tfrecord_builder import minival  # pylint: disable=g-import-not-at-top
  labels = {i: i % 3 for i in range(30)}
  ids = tmp_path / "minival.txt"
  ids.write_text("3\n5\n\n7\n")
  inputs = {"train": layout.SplitInputs("train", "train.json", archive="a.tar.gz")}
  catalog = _catalog(labels)
  minival.apply(catalog, inputs, build.BuildConfig("", "", minival_ids=str(ids)))
  assert sorted(r.image_id for r in catalog.records["minival"].values()) == [3, 5, 7]
  ids.write_text("[3, 99]")
  with pytest.raises(minival.MinivalError, match="1 minival image id.*first: \\[99\\]"):
    minival.apply(_catalog(labels), dict(inputs), build.BuildConfig("", "", minival_ids=str(ids)))
  ids.write_text("3\nthree\n")
  with pytest.raises(minival.MinivalError, match="line 2: expected one integer"):
    minival.read_ids(str(ids))


# -- builds ----------------------------------------------------------------------------------------

TINY = dict(num_species=16, min_train_per_species=3, max_train_per_species=6, max_side=40,
            quirky_images=False, num_workers=1)


def _build(raw, data, **flags):
  from tfrecord_builder import build  # pylint: disable=g-import-not-at-top
  status, summary = build.build(build.BuildConfig(raw_dir=str(raw), data_dir=str(data),
                                                  examples_per_shard=64, **flags),
                                log=lambda message: None)
  assert status == 0, summary
  return data


def _examples(data_dir, split):
  from inat_tf import records  # pylint: disable=g-import-not-at-top
  return list(records.examples(str(data_dir), split).as_numpy_iterator())


@pytest.mark.slow
@pytest.mark.parametrize("name", list(editions.NAMES))
def test_each_editions_sample_builds_with_its_taxonomy(name, tmp_path):
  from inat_tf import schema  # pylint: disable=g-import-not-at-top
  edition = editions.get(name)
  raw = tmp_path / "raw"
  summary = sample_download.make_sample(str(raw), sample_download.SampleConfig(
      edition=name, **TINY))
  assert sorted(os.listdir(raw)) == sorted(
      {f for files in edition.splits.values() for f in (
          files.annotations, files.image_root + ".tar.gz", files.boxes, files.locations)} -
      {""} | ({edition.categories_file} - {""}))
  flags = {"minival_fraction": 0.25} if name == "2018" else {}
  data = _build(raw, tmp_path / "data", **flags)
  label_map = LabelMap.load(str(data))
  manifest = json.loads((data / "manifest.json").read_text())
  assert label_map.edition == manifest["edition"] == name
  assert f"iNaturalist {name} " in (data / "dataset_info.json").read_text()
  assert label_map.ranks == edition.ranks
  # The taxonomy is the published one (categories.json for 2018/2019, the train JSON otherwise).
  published = download_tools.load_json(raw, edition.categories_file or
                                       edition.splits["train"].annotations)
  published = {c["id"]: c for c in (published if isinstance(published, list)
                                     else published["categories"])}
  for index, category_id in enumerate(label_map.category_ids):
    assert label_map.names[index] == published[category_id]["name"]
    for rank in edition.ranks:
      assert label_map.taxon(index, rank) == published[category_id][rank]
  if "common_name" in edition.category_fields:
    assert label_map.common_names[0] == published[label_map.category_ids[0]]["common_name"]
  if name == "2019":  # no supercategory field: the folder it is published in
    folders = {e[schema.LABEL]: e[schema.FILENAME].decode().split("/")[1]
               for e in _examples(data, "train")}
    assert all(label_map.taxon(i, "supercategory") == f for i, f in folders.items())
  if edition.ranks:  # genera are shared, so genus accuracy is not species accuracy
    assert max(collections.Counter(label_map.taxon(i, "genus")
                                   for i in range(label_map.num_classes)).values()) >= 2
  # Every record's class index leads to its species' taxonomy; all listed images are there.
  val = _examples(data, "val")
  assert len(val) == summary["images"]["val"]
  for e in val:
    index = e[schema.LABEL]
    assert e[schema.CATEGORY_ID] == label_map.category_ids[index]
    assert e[schema.CLASS_TEXT].decode() == label_map.names[index]
  if name.startswith("2021"):
    assert any(e[schema.HAS_COORDINATES] for e in val) and any(e[schema.HAS_DATE] for e in val)
  if name == "2018":  # minival: by image id, disjoint from train, recorded in the manifest
    held = {int(e[schema.IMAGE_ID]) for e in _examples(data, "minival")}
    kept = {int(e[schema.IMAGE_ID]) for e in _examples(data, "train")}
    train_ids = {image["id"] for image in download_tools.load_json(raw, "train2018.json")[
        "images"]}
    assert held and not held & kept and held | kept == train_ids
    assert manifest["minival"]["images"] == len(held) == manifest["splits"]["minival"][
        "examples"]
    assert manifest["minival"]["fraction"] == 0.25


def _tfds_dummy_shaped_2021(raw):
  """Our own files with exactly the fields of TFDS's i_naturalist2021 dummy_data (train.json,
  val.json, public_test.json: ids 0..2, null location_uncertainty, test without categories)."""
  taxa = [("Ameiurus", "nebulosus", "Bullhead", "Ray-finned Fishes", "Actinopterygii",
           "Siluriformes", "Ictaluridae"),
          ("Marmota", "flaviventris", "Marmot", "Mammals", "Mammalia", "Rodentia", "Sciuridae"),
          ("Dipsosaurus", "dorsalis", "Iguana", "Reptiles", "Reptilia", "Squamata", "Iguanidae")]
  categories = []
  for i, (genus, epithet, common, supercategory, class_, order, family) in enumerate(taxa):
    dir_name = f"{i:05d}_Animalia_Chordata_{class_}_{order}_{family}_{genus}_{epithet}"
    categories.append({"id": i, "name": f"{genus} {epithet}", "common_name": common,
                       "supercategory": supercategory, "kingdom": "Animalia",
                       "phylum": "Chordata", "class": class_, "order": order, "family": family,
                       "genus": genus, "specific_epithet": epithet, "image_dir_name": dir_name})
  next_id = 0
  for split in ("train", "val", "public_test"):
    images, annotations, members = [], [], {}
    for c in categories:
      file_name = (f"{split}/{c['image_dir_name']}/{next_id:08x}-0000-4000-8000-000000000000.jpg"
                   if split != "public_test" else f"public_test/{next_id}.jpg")
      jpeg = io.BytesIO()
      Image.new("RGB", (40, 30), (40 * c["id"], 90, 30)).save(jpeg, "JPEG")
      members[file_name] = jpeg.getvalue()
      images.append({"id": next_id, "width": 40, "height": 30, "file_name": file_name,
                     "license": 0, "rights_holder": "someone",
                     "date": "2010-07-14 20:19:00+00:00", "latitude": 43.8 + c["id"],
                     "longitude": -71.2, "location_uncertainty": None})
      annotations.append({"id": next_id, "image_id": next_id, "category_id": c["id"]})
      next_id += 1
    document = {"images": images}
    if split != "public_test":
      document.update(annotations=annotations, categories=categories)
    download_tools.write_json(raw, f"{split}.json", document)
    download_tools.write_archive(str(raw / f"{split}.tar.gz"), members)
  return categories


@pytest.mark.slow
def test_a_tfds_dummy_shaped_2021_download_is_read(tmp_path):
  from inat_tf import schema  # pylint: disable=g-import-not-at-top
  raw = tmp_path / "raw"
  raw.mkdir()
  categories = _tfds_dummy_shaped_2021(raw)
  data = _build(raw, tmp_path / "data")
  label_map = LabelMap.load(str(data))
  assert label_map.edition == "2021" and label_map.ranks == editions.TAXONOMY_RANKS
  assert label_map.common_names == ("Bullhead", "Marmot", "Iguana")
  assert [label_map.taxon(i, "family") for i in range(3)] == [c["family"] for c in categories]
  val = _examples(data, "val")
  assert sorted(e[schema.CATEGORY_ID] for e in val) == [0, 1, 2]
  assert all(e[schema.HAS_COORDINATES] and e[schema.LOCATION_UNCERTAINTY] == -1 for e in val)
  assert len(_examples(data, "test")) == 3


@pytest.mark.slow
def test_overlap_of_two_builds_sharing_k_images_is_k(tmp_path):
  from tfrecord_builder import overlap  # pylint: disable=g-import-not-at-top
  raw = tmp_path / "raw"
  sample_download.make_sample(str(raw), sample_download.SampleConfig(**TINY))
  first = _build(raw, tmp_path / "train_only", splits=("train",))
  # A second download whose val JSON also lists k of the train images (new ids, same files).
  other = download_tools.copy_download(raw, tmp_path / "raw_other")
  train = download_tools.load_json(other, "train2017.json")
  val = download_tools.load_json(other, "val2017.json")
  labels = {a["image_id"]: a["category_id"] for a in train["annotations"]}
  k = 5
  for n, image in enumerate(train["images"][:k]):
    new_id = 10_000_000 + n
    val["images"].append({**image, "id": new_id})
    val["annotations"].append({"id": new_id, "image_id": new_id,
                               "category_id": labels[image["id"]]})
  download_tools.write_json(other, "val2017.json", val)
  for name in ("val_2017_bboxes.json", "val2017_locations.json"):
    os.remove(other / name)
  second = _build(other, tmp_path / "val_only", splits=("val",))
  result = overlap.compare(str(first), str(second))
  assert result["shared_images"] == k
  assert result["pairs"] == [{"split": "train", "other_split": "val", "shared": k}]
  cli = helpers.run([console_script("inat-overlap"), f"--data_dir={first}",
                     f"--other={second}"])
  assert cli.returncode == 0 and f"{k} image(s)" in cli.stdout, cli.stderr


def test_quickstart_knows_each_editions_complete_sample(tmp_path):
  from inat_tf import quickstart  # pylint: disable=g-import-not-at-top
  for name, edition in editions.EDITIONS.items():
    download = tmp_path / name
    download.mkdir()
    files = {f for split in edition.splits.values() for f in (
        split.annotations, split.image_root + ".tar.gz", split.boxes, split.locations)} - {""}
    _touch(download, *files | ({edition.categories_file} - {""}))
    assert quickstart._sample_is_complete(str(download), name)  # pylint: disable=protected-access
    other = "2017" if name != "2017" else "2021"
    assert not quickstart._sample_is_complete(str(download), other)  # pylint: disable=protected-access
    os.remove(download / edition.splits["val"].annotations)
    assert not quickstart._sample_is_complete(str(download), name)  # pylint: disable=protected-access


def test_scorer_names_unreadable_files(tmp_path):
  annotations = tmp_path / "val2017.json"
  _val_json(annotations, 2017)
  with pytest.raises(FileNotFoundError, match="missing.csv not found: expected the submission"):
    score.score(str(tmp_path / "missing.csv"), str(annotations))
  submission = tmp_path / "submission.csv"
  submission.write_text("id,predicted\n")
  with pytest.raises(FileNotFoundError, match="nothing.json not found: expected the annotations"):
    score.score(str(submission), str(tmp_path / "nothing.json"))
  (tmp_path / "broken.json").write_text("{")
  with pytest.raises(ValueError, match="broken.json: malformed JSON"):
    score.score(str(submission), str(tmp_path / "broken.json"))


def test_eval_report_and_markdown_carry_the_rank_table():
  from inat_tf import evaluate  # pylint: disable=g-import-not-at-top
  from inat_tf import trained_model  # pylint: disable=g-import-not-at-top
  from inat_tf.report import render  # pylint: disable=g-import-not-at-top
  from inat_tf.report import sections  # pylint: disable=g-import-not-at-top
  label_map = _hand_label_map()
  labels = np.array([0, 1, 2, 3])
  top = np.array([[0, 1, 2, 3, 3], [0, 1, 2, 3, 3], [3, 2, 1, 0, 0], [3, 0, 1, 2, 2]])
  predictions = trained_model.Predictions(np.arange(4), labels, top, np.ones((4, 5), np.float32))
  report = evaluate.summarize(predictions, label_map)
  rows = {row["rank"]: row for row in report["ranks"]}
  assert rows["species"]["top1"] == report["top1"] == 0.5
  assert rows["genus"]["top1"] == 0.75  # image 1: A a for A b, same genus
  text = render.markdown(sections.eval_sections(report))
  assert "| genus | 3 | 75.00% | 100.00% |" in text and "| species | 4 | 50.00%" in text
