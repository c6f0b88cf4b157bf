"""A download in an edition's published layout at its published counts × scale, with tiny JPEGs.

  python benchmarks/full_count_download.py --output_dir /tmp/inat2021-x0.05 --edition 2021 --scale 0.05

What benchmarks/full_count.py builds, trains, evaluates and predicts on. Scale 1.0 is the
published size of the edition (visipedia/inat_comp 2017/README.md and 2021/README.md, "Details"):

  2017  5,089 species; 579,184 train / 95,986 val / 182,707 test images
        train_val_images.tar.gz, test2017.tar.gz, train2017.json, val2017.json, test2017.json,
        train_2017_bboxes.json, val_2017_bboxes.json (the nine animal super-categories),
        train2017_locations.json, val2017_locations.json (id, lat, lon, date, date_c, user_id)
  2021  10,000 species with the full taxonomy and common names; 2,686,843 train / 100,000 val /
        500,000 public test images; train.tar.gz, val.tar.gz, public_test.tar.gz, train.json,
        val.json, public_test.json (images carry date, latitude, longitude,
        location_uncertainty; the test JSON lists images only)

Every scale keeps every species (the label map, reports and heads are full size); the images of
each split are `scale` × the published count, shared out over the super-categories as the README
tables publish them and within one over its species along a long tail (at least one train image
per species). The test images' hidden labels go to `<split JSON stem>_labels.json` beside the
download (Kaggle's solution file, so inat-score can score a full-size submission); it is not part
of the download.

Why not inat-make-sample (inat_tf/sample_download.py): it draws every photo with Pillow and keeps
a Python object per image, minutes and gigabytes at 3.3 million images. Here each image is one of
a few base JPEGs (40-64 px) made distinct by a COM segment naming its image id: every per-image
cost of the pipeline is paid (a tar member, a decode check, a sha256, a record), the archive stays
small (~1 KB per image), the declared width and height are the JPEG's own, and per-image data
lives in numpy arrays. The species (names, taxonomy, common names, category records, ranges and
seasons), the tar and gzip writers, the JSON `info`/`licenses` and the locations' rules are
inat-make-sample's own (sample_download, sample_editions). 2017 uses TFDS's 5,089 species names
and aligned lists, so TFDS's i_naturalist2017 builder can read the same files.
"""

import argparse
import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
import struct
import sys

import numpy as np
from PIL import Image

from inat_tf import editions
from inat_tf import sample_download

# Published images per super-category, (train, val), from the README tables; test is published
# as a total only. 2021's val is 10 per species.
PUBLISHED = {
    "2017": {"test": 182_707, "supercategories": {
        "Plantae": (158_407, 38_206), "Insecta": (100_479, 18_076), "Aves": (214_295, 21_226),
        "Reptilia": (35_201, 5_680), "Mammalia": (29_333, 3_490), "Fungi": (5_826, 1_780),
        "Amphibia": (15_318, 2_385), "Mollusca": (7_536, 1_841), "Animalia": (5_228, 1_362),
        "Arachnida": (4_873, 1_086), "Actinopterygii": (1_982, 637), "Chromista": (398, 144),
        "Protozoa": (308, 73)}},
    "2021": {"test": 500_000, "supercategories": {
        "Plants": (1_148_702, 42_710), "Insects": (663_682, 25_260), "Birds": (414_847, 14_860),
        "Fungi": (90_048, 3_410), "Reptiles": (86_830, 3_130), "Mammals": (68_917, 2_460),
        "Ray-finned Fishes": (45_166, 1_830), "Amphibians": (46_252, 1_700),
        "Mollusks": (44_670, 1_690), "Arachnids": (40_687, 1_530), "Animalia": (37_042, 1_420)}},
}
EDITIONS = tuple(PUBLISHED)
# Commonest / rarest species' train images within a super-category: 2017 is long-tailed (the
# paper's Fig. 2), 2021 nearly balanced ("doesn't necessarily focus on the long tail").
TAIL_RATIO = {"2017": 100.0, "2021": 2.0}
# (width, height) of the base JPEGs; each image is one of them.
BASE_SIZES = ((64, 48), (48, 64), (56, 42), (42, 56), (48, 48), (64, 40), (40, 64), (60, 45))
CHUNK = 50_000  # JSON records per json.dumps call: bounded memory at any scale


def published_counts(edition_name):
  """{"species", "train", "val", "test"}: the published totals (scale 1.0)."""
  table = PUBLISHED[edition_name]["supercategories"]
  species = sum(n for _, n in editions.get(edition_name).supercategory_species)
  return {"species": species, "train": sum(t for t, _ in table.values()),
          "val": sum(v for _, v in table.values()), "test": PUBLISHED[edition_name]["test"]}


def _apportion(total, weights, minimum=0):
  """Integers >= minimum summing to max(total, minimum * len), proportional to weights (largest
  remainder)."""
  weights = np.asarray(weights, np.float64)
  total = max(int(total), minimum * len(weights))
  shares = (total - minimum * len(weights)) * weights / weights.sum()
  counts = np.floor(shares).astype(np.int64)
  left = total - minimum * len(weights) - int(counts.sum())
  counts[np.argsort(counts - shares, kind="stable")[:left]] += 1
  return counts + minimum


def _species_counts(species, edition_name, scale, rng):
  """{"train", "val", "test"}: int64 [num_species] images per species at this scale.

  Each split's total is round(scale x published), shared out over the super-categories in the
  published proportions, then over each one's species along the edition's tail.
  """
  table = PUBLISHED[edition_name]["supercategories"]
  names = list(table)
  members = {name: [] for name in names}
  for i, sp in enumerate(species):
    members[sp.supercategory].append(i)
  counts = {split: np.zeros(len(species), np.int64) for split in ("train", "val", "test")}
  shares = {split: _apportion(round(scale * sum(table[name][column] for name in names)),
                              [table[name][column] for name in names])
            for column, split in enumerate(("train", "val"))}
  for k, name in enumerate(names):
    n = len(members[name])
    tail = TAIL_RATIO[edition_name] ** -(np.arange(n) / max(1, n - 1))
    weights = tail[rng.permutation(n)]
    # At least one train image per species: the label map and heads stay full size.
    counts["train"][members[name]] = _apportion(shares["train"][k], weights, minimum=1)
    # 2021: 10 val images per species; 2017: more for the commoner species.
    counts["val"][members[name]] = _apportion(
        shares["val"][k], np.ones(n) if edition_name == "2021" else np.sqrt(weights))
  # Kaggle's hidden test labels: in proportion to val, as the splits were drawn alike.
  counts["test"] = _apportion(round(scale * PUBLISHED[edition_name]["test"]),
                              counts["val"] + 1e-9)
  return counts


def _base_jpegs(seed):
  """Small baseline JPEGs (smooth noise), bytes of each of BASE_SIZES."""
  rng = np.random.default_rng([seed, 7])
  bases = []
  for width, height in BASE_SIZES:
    coarse = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=75)
    bases.append(out.getvalue())
  return bases


def jpeg_bytes(base, image_id):
  """The base JPEG with a COM segment (JPEG spec T.81, B.2.4.5) naming the image: distinct bytes
  and sha256 per image, the same pixels and size."""
  comment = f"inat-tf full-count image {image_id}".encode()
  return base[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + base[2:]


@dataclasses.dataclass
class Split:
  """Per image of one split, as arrays: species index, image id, base JPEG, file name stem."""
  name: str
  species: np.ndarray   # int32 [N] index into the species list
  image_ids: np.ndarray  # int64 [N]
  base: np.ndarray      # int8 [N] index into BASE_SIZES

  def __len__(self):
    return len(self.image_ids)


def _file_stem(edition, image_id, seed):
  """The published name of an image without folder: 32 hex digits (2017) or a UUID (2021)."""
  digest = hashlib.md5(f"{seed}:{image_id}".encode()).hexdigest()
  if edition.year == 2021:
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"
  return digest


def _folder(edition, split, sp):
  from inat_tf import sample_editions  # pylint: disable=g-import-not-at-top
  return sample_editions.species_folder(edition, split, sp)


def _file_name(edition, split, sp, image_id, seed):
  return f"{_folder(edition, split, sp)}/{_file_stem(edition, image_id, seed)}.jpg"


def _write_archive(path, edition, splits, species, seed, rng, bases):
  """The split(s)' images, one tar member each, species folders in random order."""
  raw, gz, tar = sample_download.deterministic_gzip_tar(path)
  entry = sample_download.tar_entry
  with raw, gz, tar:
    for split in splits:
      order = np.argsort(split.species, kind="stable")
      boundaries = np.flatnonzero(np.diff(split.species[order])) + 1
      groups = np.split(order, boundaries) if len(order) else []
      added = set()
      for group in (groups[i] for i in rng.permutation(len(groups))):
        sp = species[int(split.species[group[0]])]
        folder = _folder(edition, split.name, sp)
        parts = folder.split("/")
        for depth in range(1, len(parts) + 1):
          directory = "/".join(parts[:depth])
          if directory not in added:
            tar.addfile(entry(directory + "/", is_dir=True))
            added.add(directory)
        for i in group:
          image_id = int(split.image_ids[i])
          data = jpeg_bytes(bases[split.base[i]], image_id)
          name = f"{folder}/{_file_stem(edition, image_id, seed)}.jpg"
          tar.addfile(entry(name, size=len(data)), io.BytesIO(data))


@dataclasses.dataclass
class Places:
  """Per image of a split (arrays): latitude, longitude (NaN: unknown), date text, date_c (day of
  the year / 366), whether dated, location uncertainty in metres."""
  lat: np.ndarray
  lon: np.ndarray
  text: np.ndarray
  date_c: np.ndarray
  dated: np.ndarray
  uncertainty: np.ndarray


def _places(split, species, rng):
  """Where and when each image was taken, around its species' range and season, by
  inat-make-sample's rules (RANGE_SCATTER; 8 % without coordinates, 4 % without a date)."""
  n = len(split)
  home = np.asarray([sp.home for sp in species], np.float64)[split.species]
  peak = np.asarray([sp.peak_day for sp in species], np.int64)[split.species]
  scatter = sample_download.RANGE_SCATTER
  lat = np.round(np.clip(home[:, 0] + rng.normal(0, scatter[0], n), -89.9, 89.9), 5)
  lon = np.round((home[:, 1] + rng.normal(0, scatter[1], n) + 180) % 360 - 180, 5)
  unknown = rng.uniform(size=n) <= 0.08
  lat[unknown] = np.nan
  lon[unknown] = np.nan
  day = (peak + rng.normal(0, scatter[2], n).astype(np.int64)) % 365
  moments = (np.datetime64("2008-01-01T00:00:00", "s")
             + (365 * rng.integers(0, 9, n) + day) * np.timedelta64(1, "D")
             + rng.integers(6 * 3600, 20 * 3600, n) * np.timedelta64(1, "s"))
  day_of_year = (moments.astype("datetime64[D]") - moments.astype("datetime64[Y]")).astype(
      np.int64) + 1
  return Places(lat, lon, np.datetime_as_string(moments, unit="s"),
                np.round(day_of_year / 366.0, 5), rng.uniform(size=n) > 0.04,
                rng.integers(3, 5000, n))


def _date(text):
  return text[:10] + " " + text[11:] + "+00:00"  # "2014-06-01 12:34:56+00:00", as published


def _number(value):
  return None if math.isnan(value) else float(value)


def _user_id(sp, split_name, position):
  # Observers are disjoint between splits of a taxon (inat-make-sample's rule).
  return sp.category_id * 100 + {"train": 0, "val": 1, "test": 2}[split_name] * 10 + position % 7


def _image_record(edition, split, sp, i, seed):
  image_id = int(split.image_ids[i])
  width, height = BASE_SIZES[split.base[i]]
  return {"id": image_id, "width": width, "height": height,
          "file_name": _file_name(edition, split.name, sp, image_id, seed),
          "license": image_id % len(sample_download.LICENSES) + 1,
          "rights_holder": f"observer_{_user_id(sp, split.name, i)}"}


def _image_records(edition, split, species, seed, places, start, stop):
  records = []
  for i in range(start, stop):
    record = _image_record(edition, split, species[int(split.species[i])], i, seed)
    if edition.year == 2021:  # inline; "possible ... to be `nan`" (README, Annotation Format)
      known = not math.isnan(places.lat[i])
      record.update(date=_date(places.text[i]) if places.dated[i] else None,
                    latitude=float(places.lat[i]), longitude=float(places.lon[i]),
                    location_uncertainty=int(places.uncertainty[i]) if known else math.nan)
    records.append(record)
  return records


class _JsonWriter:
  """Writes one JSON document whose big lists are streamed in chunks (json.dumps per chunk)."""

  def __init__(self, path):
    self.file = open(path, "w", encoding="utf-8")
    self.first = True

  def key(self, name, value):
    self._comma()
    self.file.write(json.dumps(name) + ":" + json.dumps(value, ensure_ascii=False,
                                                        separators=(",", ":")))

  def list(self, name, chunks):
    self._comma()
    self.file.write(json.dumps(name) + ":[")
    first = True
    for chunk in chunks:
      if chunk:
        self.file.write(("" if first else ",") + json.dumps(
            chunk, ensure_ascii=False, separators=(",", ":"))[1:-1])
        first = False
    self.file.write("]")

  def _comma(self):
    self.file.write("{" if self.first else ",")
    self.first = False

  def close(self):
    self.file.write("}" if not self.first else "{}")
    self.file.close()


def _chunks(n, make):
  for start in range(0, n, CHUNK):
    yield make(start, min(n, start + CHUNK))


def _write_split_json(path, edition, split, species, seed, places, with_labels=True,
                      with_categories=True):
  writer = _JsonWriter(path)
  writer.key("info", sample_download.info_record(split.name, edition.name))
  writer.list("images", _chunks(len(split), lambda a, b: _image_records(
      edition, split, species, seed, places, a, b)))
  if with_categories:
    writer.key("categories", [sp.record for sp in species])  # in id order, as published
  if with_labels:
    writer.list("annotations", _chunks(len(split), lambda a, b: [
        {"id": i, "image_id": int(split.image_ids[i]),
         "category_id": species[int(split.species[i])].category_id} for i in range(a, b)]))
  writer.key("licenses", sample_download.LICENSES)
  writer.close()


def _write_locations_json(path, split, species, places):
  """2017's locations file: a list of {id, lat, lon, date, date_c, user_id}."""
  def chunk(start, stop):
    return [{"id": int(split.image_ids[i]), "lat": _number(places.lat[i]),
             "lon": _number(places.lon[i]),
             "date": _date(places.text[i]) if places.dated[i] else None,
             "date_c": float(places.date_c[i]) if places.dated[i] else None,
             "user_id": _user_id(species[int(split.species[i])], split.name, i)}
            for i in range(start, stop)]
  with open(path, "w", encoding="utf-8") as f:
    f.write("[")
    for n, records in enumerate(_chunks(len(split), chunk)):
      f.write(("," if n else "") + json.dumps(records, separators=(",", ":"))[1:-1])
    f.write("]")


def _write_boxes_json(path, edition, split, species, seed):
  """COCO boxes for the nine animal super-categories: in train one box per image and a second
  on every fifth (496,164 boxes over 414,245 images, README); val keeps 7 of 8 images, one box
  each (single-instance images only)."""
  boxed = edition.boxed_supercategories
  chosen = [i for i in range(len(split)) if species[int(split.species[i])].supercategory in boxed
            and (split.name == "train" or i % 8)]
  images, annotations = [], []
  for i in chosen:
    sp = species[int(split.species[i])]
    image = _image_record(edition, split, sp, i, seed)
    images.append(image)
    image_id, width, height = image["id"], image["width"], image["height"]
    boxes = [(width // 4, height // 4, width // 2, height // 2)]
    if split.name == "train" and i % 5 == 0:
      boxes.append((0, 0, width // 3, height // 3))
    for x, y, w, h in boxes:
      annotations.append({"id": len(annotations), "image_id": image_id,
                          "category_id": sp.category_id, "bbox": [x, y, w, h],
                          "area": w * h / 2.0, "iscrowd": 0})
  document = {"info": sample_download.info_record(split.name), "images": images,
              "categories": [sp.record for sp in species if sp.supercategory in boxed],
              "annotations": annotations, "licenses": sample_download.LICENSES}
  sample_download.write_json(path, document)


def _plan_splits(species, counts, rng):
  """Split arrays: ids train, then val, then test, each split's images grouped by species."""
  splits, next_id = {}, 0
  for name in editions.SPLITS:
    species_of_image = np.repeat(np.arange(len(species), dtype=np.int32), counts[name])
    n = len(species_of_image)
    splits[name] = Split(name, species_of_image,
                         np.arange(next_id, next_id + n, dtype=np.int64),
                         rng.integers(0, len(BASE_SIZES), n).astype(np.int8))
    next_id += n
  return splits


def _species(edition_name, seed):
  counts = published_counts(edition_name)
  config = sample_download.SampleConfig(
      num_species=counts["species"], edition=edition_name, seed=seed,
      species_names="tfds" if edition_name == "2017" else "generated")
  return sample_download.make_species(config, np.random.default_rng(seed))


def labels_file(output_dir, edition_name):
  """Where the test split's hidden labels go (beside the download, not in it)."""
  test_json = editions.get(edition_name).splits["test"].annotations
  return os.path.join(os.path.dirname(os.path.abspath(output_dir)),
                      os.path.basename(os.path.abspath(output_dir)) + "-"
                      + test_json.replace(".json", "_labels.json"))


def make_download(output_dir, edition_name="2021", scale=0.05, seed=0):
  """Writes the download into output_dir; returns {"species", "train", "val", "test", "files"}.

  Each file is written under a `.partial` name and renamed when complete.
  """
  if edition_name not in PUBLISHED:
    raise ValueError(f"edition {edition_name!r}: expected one of {', '.join(EDITIONS)}")
  if not 0 < scale <= 1:
    raise ValueError(f"scale={scale}: expected a fraction in (0, 1] of the published counts")
  edition = editions.get(edition_name)
  rng = np.random.default_rng([seed, 1])
  species = sorted(_species(edition_name, seed), key=lambda sp: sp.category_id)
  counts = _species_counts(species, edition_name, scale, rng)
  splits = _plan_splits(species, counts, rng)
  bases = _base_jpegs(seed)
  os.makedirs(output_dir, exist_ok=True)
  written = {}

  def commit(path, write):
    write(path + ".partial")
    os.replace(path + ".partial", path)
    written[os.path.basename(path)] = path

  by_archive = {}
  for name in editions.SPLITS:
    by_archive.setdefault(edition.splits[name].archive, []).append(splits[name])
  for archive, members in by_archive.items():
    commit(os.path.join(output_dir, archive), lambda path, members=members: _write_archive(
        path, edition, members, species, seed, rng, bases))
  for name in editions.SPLITS:
    split, files = splits[name], edition.splits[name]
    places = _places(split, species, rng)
    is_test = name == "test"
    commit(os.path.join(output_dir, files.annotations), lambda path: _write_split_json(
        path, edition, split, species, seed, places, with_labels=not is_test,
        with_categories=not (is_test and edition.year == 2021)))
    if files.locations:
      commit(os.path.join(output_dir, files.locations),
             lambda path: _write_locations_json(path, split, species, places))
    if files.boxes:
      commit(os.path.join(output_dir, files.boxes),
             lambda path: _write_boxes_json(path, edition, split, species, seed))
    if is_test:  # Kaggle's solution file: the hidden labels, for inat-score
      commit(labels_file(output_dir, edition_name), lambda path: _write_split_json(
          path, edition, split, species, seed, places))
  return {"species": len(species), **{name: len(splits[name]) for name in editions.SPLITS},
          "files": written}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output_dir", required=True)
  parser.add_argument("--edition", default="2021", choices=EDITIONS)
  parser.add_argument("--scale", type=float, default=0.05)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  try:
    summary = make_download(args.output_dir, args.edition, args.scale, args.seed)
  except ValueError as e:
    sys.exit(f"full_count_download: {e}")
  print(f"iNat{args.edition} x{args.scale}: {summary['species']:,} species, "
        f"{summary['train']:,} train / {summary['val']:,} val / {summary['test']:,} test images "
        f"in {args.output_dir}")


if __name__ == "__main__":
  main()
