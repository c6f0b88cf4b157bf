"""`inat-make-sample`: a small download in exactly the published on-disk format of an edition.

Every later stage runs on it as it would on the real download. `--edition 2017` (the default):

  train_val_images.tar.gz   train_val_images/<Supercategory>/<Species name>/<32 hex>.jpg
  test2017.tar.gz           test2017/<32 hex>.jpg
  train2017.json  val2017.json  test2017.json            (COCO-style, test without annotations)
  train_2017_bboxes.json  val_2017_bboxes.json           (9 animal super-categories only)
  train2017_locations.json  val2017_locations.json       (lat, lon, date, date_c, user_id)

`--edition 2018|2019|2021|2021_mini` writes that year's files instead (inat_tf.editions: JSON
and archive names, folder layout, category fields with the full taxonomy, 2018/2019's obfuscated
split JSONs plus categories.json, 2021's inline locations); only 2017 has boxes and locations
files.

Usage:
  inat-make-sample --output_dir sample_download                     # default: ~2,400 images, seconds
  inat-make-sample --output_dir sample2021 --edition 2021
  inat-make-sample --output_dir big --num_species 200 --max_side 800

From Python: `make_sample(output_dir, SampleConfig(num_species=20))`.

By default the JSON is valid but unfriendly, as COCO files in the wild are: category ids have gaps
and are listed out of order, and `annotations` is not aligned with `images`, so any code that joins
by list position instead of by id breaks visibly. `species_names="tfds"` instead takes the names and
layout TensorFlow Datasets' own `i_naturalist2017` builder requires (ids 0..N-1 equal to the line of
`inaturalist_labels.txt`, aligned lists), for benchmarking against it.
"""

import dataclasses
import datetime
import gzip
import io
import json
import math
import multiprocessing
import os
import tarfile
import time

import numpy as np
from PIL import Image

from inat_tf import cli
from inat_tf import editions
from inat_tf import progress
from inat_tf import sample_editions
from inat_tf import sample_images
from inat_tf.commands.make_sample import SampleConfig  # pylint: disable=unused-import

# The default sample is an iNat2017 download: its file names, super-categories (with the real
# species counts, to share out the sample's species in the same proportions) and boxed
# super-categories. --edition writes another edition's layout (sample_editions).
EDITION = editions.INAT2017
SUPERCATEGORY_SPECIES_COUNTS = EDITION.supercategory_species
BOXED_SUPERCATEGORIES = EDITION.boxed_supercategories
TRAIN_VAL_ARCHIVE = EDITION.splits["train"].archive
TEST_ARCHIVE = EDITION.splits["test"].archive
TRAIN_VAL_DIR = EDITION.splits["train"].image_root
TEST_DIR = EDITION.splits["test"].image_root

LICENSES = [
    {"id": 1, "name": "Attribution-NonCommercial-ShareAlike License",
     "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/"},
    {"id": 2, "name": "Attribution-NonCommercial License",
     "url": "http://creativecommons.org/licenses/by-nc/2.0/"},
    {"id": 3, "name": "Attribution-NonCommercial-NoDerivs License",
     "url": "http://creativecommons.org/licenses/by-nc-nd/2.0/"},
    {"id": 4, "name": "Attribution License", "url": "http://creativecommons.org/licenses/by/2.0/"},
    {"id": 5, "name": "Attribution-ShareAlike License",
     "url": "http://creativecommons.org/licenses/by-sa/2.0/"},
    {"id": 6, "name": "No known copyright restrictions", "url": "http://flickr.com/commons/usage/"},
]

# Chiral species (SampleConfig.chiral): "dextro-" head on the right, "laevo-" on the left.
_HANDED_PREFIX = {0: "", 1: "dextro", -1: "laevo"}
SIDE_NAMES = {0: "", 1: "right-headed ", -1: "left-headed "}
SPOT_EPITHETS = ("unipunctata", "bipunctata", "tripunctata", "quadripunctata", "quinquepunctata",
                 "sexpunctata", "septempunctata")
_GENUS_SYLLABLES = ("cor", "ma", "phi", "lu", "tra", "sel", "no", "dra", "ven", "qui", "ba", "ster",
                    "ri", "gal", "to", "mel", "an", "cy", "pho", "le", "zo", "ur", "cal", "hy")
_GENUS_ENDINGS = ("us", "a", "ella", "is", "ops", "ia", "ax", "ium", "odes", "ura")

# Images in the published download that break naive decoders; convertible, so a good builder repairs
# them. Named by what they are, stored under a .jpg name like everything else.
QUIRKS = ("grayscale_jpeg", "cmyk_jpeg", "png_named_jpg", "progressive_jpeg")

@dataclasses.dataclass
class _Species:
  category_id: int
  name: str
  supercategory: str
  look: sample_images.SpeciesLook
  counts: dict  # split -> number of images
  home: tuple   # (lat, lon) centre of its range
  peak_day: int  # day of year it is most often photographed
  genus: int = 0  # species of one genus are look-alike siblings with overlapping ranges
  record: dict = None  # its category record with every field the edition publishes


@dataclasses.dataclass
class _Photo:
  index: int         # position in generation order; seeds the photo's randomness
  species: _Species
  split: str
  file_name: str
  width: int
  height: int
  num_instances: int
  quirk: str = ""
  twin_of: int = -1  # near duplicate: drawn with this photo's randomness (its scene), own look
  image_id: int = -1
  boxes: list = dataclasses.field(default_factory=list)  # set when drawn


def _apportion(total, weights):
  """At least one per entry, the rest in proportion to weights (largest remainder)."""
  extra = total - len(weights)
  shares = [extra * w / sum(weights) for w in weights]
  counts = [1 + int(s) for s in shares]
  by_remainder = sorted(range(len(weights)), key=lambda i: int(shares[i]) - shares[i])
  for i in by_remainder[:total - sum(counts)]:
    counts[i] += 1
  return counts


def _long_tail_train_counts(config, rng):
  """Geometric decay from max to min over the species, in shuffled order (paper Fig. 2)."""
  n = config.num_species
  ratio = config.min_train_per_species / config.max_train_per_species
  counts = [round(config.max_train_per_species * ratio ** (r / max(1, n - 1))) for r in range(n)]
  rng.shuffle(counts)
  return counts


def _genus_names(count, rng):
  names = set()
  while len(names) < count:
    syllables = rng.choice(_GENUS_SYLLABLES, size=int(rng.integers(2, 4)))
    names.add(("".join(syllables) + str(rng.choice(_GENUS_ENDINGS))).capitalize())
  return sorted(names)


def _tfds_names(count):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (heavy; only this mode)
  path = tfds.core.tfds_path(os.path.join("image_classification", "inaturalist_labels.txt"))
  names = path.read_text().splitlines()
  if count > len(names):
    raise ValueError(f"num_species={count} but TFDS knows only {len(names)} iNat2017 names")
  return names[:count]


def make_species(config, rng):
  """The sample's species (names, taxonomy, category records, look, range and season), per
  config (num_species, edition, species_names, train counts); counts[split] images each."""
  table = sample_editions.SUPERCATEGORIES[config.edition]
  published = [n for _, n in table]
  # At the published species count, the published split (the shares below are off by a few).
  per_supercategory = (published if config.num_species == sum(published)
                       else _apportion(config.num_species, published))
  train_counts = _long_tail_train_counts(config, rng)
  outlines = list(sample_images.OUTLINES)
  generated = []  # (supercategory, genus index, look)
  num_genera = 0
  for sc_index, ((supercategory, _), n) in enumerate(zip(table, per_supercategory)):
    genus_sizes = []
    while sum(genus_sizes) < n:
      genus_sizes.append(min(int(rng.integers(config.min_species_per_genus,
                                              config.max_species_per_genus + 1)),
                             n - sum(genus_sizes)))
    hue_offset = rng.uniform()
    for g, size in enumerate(genus_sizes):
      hue = hue_offset + g / len(genus_sizes)
      dark_spots = bool(rng.uniform() < 0.5)
      spot_counts = sorted(rng.choice(np.arange(1, 8), size=size, replace=False))
      for k, spots in enumerate(spot_counts):
        handedness = 0
        if config.chiral:  # mirror-image pairs: species 2j and 2j + 1 share their spots
          spots, handedness = spot_counts[k // 2], 1 if k % 2 == 0 else -1
        look = sample_images.SpeciesLook(
            outline=outlines[sc_index % len(outlines)], body_hue=float(hue % 1.0),
            dark_spots=dark_spots, spot_count=int(spots), habitat_hue=sc_index / len(table),
            handedness=handedness)
        generated.append((supercategory, num_genera + g, look))
    num_genera += len(genus_sizes)

  genera = []
  if config.species_names == "tfds":
    names = _tfds_names(config.num_species)
    category_ids = list(range(config.num_species))
  else:
    genera = _genus_names(num_genera, rng)
    names = [f"{genera[g]} {_HANDED_PREFIX[look.handedness]}{SPOT_EPITHETS[look.spot_count - 1]}"
             for _, g, look in generated]
    # Gaps and no order: the builder must map ids, never positions.
    category_ids = sorted(rng.choice(5 * config.num_species, size=config.num_species,
                                     replace=False).tolist())
    if config.edition != "2017":
      category_ids = list(range(config.num_species))  # 2018 on: ids 0..N-1, as published
  supercategory_of_genus = {}
  for supercategory, genus, _ in generated:
    supercategory_of_genus.setdefault(genus, supercategory)
  genus_taxa = sample_editions.taxonomy(
      [supercategory_of_genus[g] for g in range(num_genera)], config.seed)
  species = []
  for (supercategory, genus, look), name, category_id, n_train in zip(
      generated, names, category_ids, train_counts):
    # Validation takes observers until it has >30 photos or 33% of train+val (paper Sec. 3.2).
    n_val = int(min(30, max(4, round(n_train / 2))))
    if config.val_per_species:  # balanced held-out images, as long-tail benchmarks test on
      n_val = config.val_per_species
    species.append(_Species(
        category_id=int(category_id), name=name, supercategory=supercategory, look=look,
        counts={"train": n_train, "val": n_val, "test": n_val},
        home=(float(rng.uniform(-45, 60)), float(rng.uniform(-170, 170))),
        peak_day=int(rng.integers(0, 365)), genus=genus,
        record=_category_record(config.edition, category_id, name, supercategory,
                                {**genus_taxa[genus], "genus": genera[genus]} if genera else {},
                                look)))
  _share_ranges_within_genera(species)
  return species


# Photos scatter around their species' range centre and seasonal peak with these standard
# deviations, and siblings' centres and peaks sit SIBLING_OFFSET apart (under one deviation), so
# siblings' ranges and seasons overlap: where and when a photo was taken helps tell them apart
# (which their images do only by spot count) but does not decide. Unrelated genera live anywhere.
RANGE_SCATTER = (12.0, 20.0, 45.0)  # degrees latitude, degrees longitude, days
SIBLING_OFFSET = (6.0, 10.0, 30)   # degrees latitude, degrees longitude, days


def _share_ranges_within_genera(species):
  """Moves each genus's species around the first one's home and season (no random draws, so
  the rest of the sample is unchanged)."""
  by_genus = {}
  for sp in species:
    by_genus.setdefault(sp.genus, []).append(sp)
  for members in by_genus.values():
    (lat, lon), day = members[0].home, members[0].peak_day
    for k, sp in enumerate(members):
      shift = k - (len(members) - 1) / 2
      sp.home = (float(np.clip(lat + shift * SIBLING_OFFSET[0], -60, 75)),
                 float((lon + shift * SIBLING_OFFSET[1] + 180) % 360 - 180))
      sp.peak_day = int(round(day + shift * SIBLING_OFFSET[2])) % 365


def _category_record(edition_name, category_id, name, supercategory, taxa, look):
  """Every field the edition's category records publish (README "category" format)."""
  edition = editions.get(edition_name)
  epithet = name.split(" ", 1)[-1]
  full = {"id": int(category_id), "name": name, "supercategory": supercategory, **taxa,
          "specific_epithet": epithet,
          "common_name": f"{look.spot_count}-spotted {SIDE_NAMES[look.handedness]}"
                         f"{taxa.get('genus', name)}"}
  if "image_dir_name" in edition.category_fields:
    full["image_dir_name"] = sample_editions.image_dir_name(int(category_id), taxa, epithet)
  return {field: full[field] for field in edition.category_fields}


def _photo_size(max_side, rng):
  long_side = max_side if rng.uniform() < 0.8 else int(rng.uniform(0.5, 1.0) * max_side)
  short_side = max(24, int(long_side * rng.uniform(0.5, 1.0)))
  return (long_side, short_side) if rng.uniform() < 0.6 else (short_side, long_side)


def _num_instances(rng):
  """12% of images show more than one animal, 1.3% more than five (paper Sec. 3.3)."""
  u = rng.uniform()
  if u < 0.88:
    return 1
  if u < 0.987:
    return int(rng.integers(2, 6))
  return int(rng.integers(6, 11))


def _plan_photos(species, config, rng):
  photos = []
  edition = editions.get(config.edition)
  for sp in species:
    for split in editions.SPLITS:
      for _ in range(sp.counts[split]):
        width, height = _photo_size(config.max_side, rng)
        digest = "".join(rng.choice(list("0123456789abcdef"), size=32))
        if edition.year == 2021:  # 2021 names its images by UUID (TFDS dummy_data)
          digest = "-".join((digest[:8], digest[8:12], digest[12:16], digest[16:20], digest[20:]))
        folder = sample_editions.species_folder(edition, split, sp)
        photos.append(_Photo(index=len(photos), species=sp, split=split,
                             file_name=f"{folder}/{digest}.jpg", width=width, height=height,
                             num_instances=_num_instances(rng)))
  if config.quirky_images:
    train = [p for p in photos if p.split == "train"]
    for i, quirk in zip(rng.choice(len(train), size=len(QUIRKS), replace=False), QUIRKS):
      train[i].quirk = quirk
  if config.near_duplicates > 0:
    _pair_near_duplicates(photos, config)
  return photos


def _pair_near_duplicates(photos, config):
  """Makes config.near_duplicates of each split's photos twins of a sibling species' photo.

  A twin takes its partner's size and instance count and is drawn with the partner's random
  stream (_render), so scene, pose and light are the same and only the species' own marks
  differ. Partners are never twins themselves. Own random stream: the rest of the sample is
  the same as without twins.
  """
  rng = np.random.default_rng([config.seed, 31])
  for split in editions.SPLITS:
    members = [p for p in photos if p.split == split]
    wanted = int(round(config.near_duplicates * len(members)))
    partners = set()
    for i in rng.permutation(len(members)):
      if wanted == 0:
        break
      photo = members[i]
      if photo.index in partners or photo.quirk:
        continue
      siblings = [p for p in members if p.species.genus == photo.species.genus and
                  p.species is not photo.species and p.twin_of < 0 and not p.quirk]
      if not siblings:
        continue
      partner = siblings[int(rng.integers(len(siblings)))]
      photo.twin_of = partner.index
      photo.width, photo.height, photo.num_instances = (partner.width, partner.height,
                                                        partner.num_instances)
      partners.add(partner.index)
      wanted -= 1


def _encode(image, quirk):
  out = io.BytesIO()
  if quirk == "grayscale_jpeg":
    image.convert("L").save(out, "JPEG", quality=90)
  elif quirk == "cmyk_jpeg":
    image.convert("CMYK").save(out, "JPEG", quality=90)
  elif quirk == "png_named_jpg":
    image.save(out, "PNG")
  elif quirk == "progressive_jpeg":
    image.save(out, "JPEG", quality=90, progressive=True)
  else:
    image.save(out, "JPEG", quality=90)
  return out.getvalue()


def _render(task):
  """Draws one photo; runs in a worker process. Seeded by (seed, index): order-independent."""
  seed, index, look, width, height, num_instances, quirk, subject_scale = task
  rng = np.random.default_rng([seed, index])
  image, boxes = sample_images.draw_photo(look, width, height, num_instances, rng,
                                          subject_scale=subject_scale)
  return index, _encode(image, quirk), boxes


def _rendered(photos, config):
  """Yields (photo, bytes) in the given order, drawing on all cores; sets each photo's boxes.

  Streams, so memory holds a few chunks of images, not the download.
  """
  # A near duplicate is drawn with its partner's random stream: same scene, its own species.
  tasks = [(config.seed, p.index if p.twin_of < 0 else p.twin_of, p.species.look, p.width,
            p.height, p.num_instances, p.quirk, config.subject_scale) for p in photos]
  workers = config.num_workers or os.cpu_count() or 1
  if workers == 1 or len(tasks) < 200:
    results = map(_render, tasks)
    pool = None
  else:
    # fork is fine: this module never imports TensorFlow, and is much faster to start than spawn.
    # Workers leave a Ctrl-C to this process and end with it (cli.worker_started).
    pool = multiprocessing.get_context("fork").Pool(
        workers, initializer=cli.worker_started, initargs=(os.getpid(),))
    results = pool.imap(_render, tasks, chunksize=16)
  try:
    for photo, (_, data, boxes) in zip(photos, results):
      photo.boxes = boxes
      yield photo, data
  finally:
    if pool is not None:
      pool.terminate()


def _assign_ids(photos, config, rng):
  """Image ids: train, then val, then test ranges, in an order unrelated to the JSON lists."""
  next_id = 0
  for split in editions.SPLITS:
    members = [p for p in photos if p.split == split]
    ids = np.arange(next_id, next_id + len(members))
    if config.species_names != "tfds":
      rng.shuffle(ids)
    for photo, image_id in zip(members, ids):
      photo.image_id = int(image_id)
    next_id += len(members)


def info_record(split, edition="2017"):
  """The JSON's `info` object (README "Annotation Format")."""
  year = editions.get(edition).year
  return {"year": year, "version": "1.0",
          "description": f"iNat-tf synthetic sample in the iNaturalist {edition} format ({split})",
          "contributor": "inat-tf sample generator (synthetic images)",
          "url": editions.get(edition).readme,
          "date_created": f"{year}-03-01 00:00:00"}


def _image_record(photo):
  return {"id": photo.image_id, "width": photo.width, "height": photo.height,
          "file_name": photo.file_name, "license": photo.index % len(LICENSES) + 1,
          "rights_holder": f"observer_{_user_id(photo)}"}


def _user_id(photo):
  # Observers are disjoint between splits of a taxon (paper Sec. 3.2): a few per species and split.
  split_offset = {"train": 0, "val": 1, "test": 2}[photo.split]
  return photo.species.category_id * 100 + split_offset * 10 + photo.index % 7


def _category_records(species, config, rng, only=None):
  chosen = [sp for sp in species if only is None or sp.supercategory in only]
  if config.species_names != "tfds":
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
  edition = editions.get(config.edition)
  if edition.categories_file:  # 2018, 2019: the split JSONs hide the names
    return [sample_editions.obfuscated(sp.record, edition) for sp in chosen]
  return [dict(sp.record) for sp in chosen]


def _annotations_json(photos, split, species, config, rng):
  members = [p for p in photos if p.split == split]
  images_order = list(rng.permutation(len(members))) if config.species_names != "tfds" else list(
      range(len(members)))
  images = [_image_record(members[i]) for i in images_order]
  if editions.get(config.edition).year == 2021:  # locations inline, null when unknown
    located = {r["id"]: r for r in _locations_json(members, split, rng)}
    for image in images:
      r = located[image["id"]]
      image.update(date=r["date"], latitude=r["lat"], longitude=r["lon"],
                   location_uncertainty=(int(rng.integers(3, 5000)) if r["lat"] is not None
                                         else None))
  document = {"info": info_record(split, config.edition), "images": images,
              "categories": _category_records(species, config, rng), "licenses": LICENSES}
  if split == "test" and editions.get(config.edition).year == 2021:
    del document["categories"]  # public_test.json lists images only (TFDS dummy_data)
  if split != "test":
    annotation_order = (list(rng.permutation(len(members))) if config.species_names != "tfds"
                        else images_order)
    document["annotations"] = [
        {"id": n, "image_id": members[i].image_id, "category_id": members[i].species.category_id}
        for n, i in enumerate(annotation_order)]
  return document


def _boxes_json(photos, split, species, config, rng):
  """COCO boxes for the 9 animal super-categories; val keeps single-instance images only."""
  images, annotations = [], []
  for photo in photos:
    if photo.split != split or photo.species.supercategory not in BOXED_SUPERCATEGORIES:
      continue
    if split == "val" and len(photo.boxes) != 1:
      continue
    images.append(_image_record(photo))
    for x, y, w, h in photo.boxes:
      annotations.append({"id": len(annotations), "image_id": photo.image_id,
                          "category_id": photo.species.category_id, "bbox": [x, y, w, h],
                          "area": round(w * h / 2.0, 2), "iscrowd": 0})
  return {"info": info_record(split), "images": images,
          "categories": _category_records(species, config, rng, only=BOXED_SUPERCATEGORIES),
          "annotations": annotations, "licenses": LICENSES}


def _locations_json(photos, split, rng):
  """One record per image: lat, lon, date, date_c (fraction of the year), user_id; some null."""
  epoch = datetime.datetime(2008, 1, 1, tzinfo=datetime.timezone.utc)
  records = []
  for photo in (p for p in photos if p.split == split):
    sp = photo.species
    record = {"id": photo.image_id, "lat": None, "lon": None, "date": None, "date_c": None,
              "user_id": _user_id(photo)}
    if rng.uniform() > 0.08:
      record["lat"] = round(float(np.clip(sp.home[0] + rng.normal(0, RANGE_SCATTER[0]), -89.9,
                                          89.9)), 5)
      record["lon"] = round(float((sp.home[1] + rng.normal(0, RANGE_SCATTER[1]) + 180) % 360
                                  - 180), 5)
    if rng.uniform() > 0.04:
      day = int(sp.peak_day + rng.normal(0, RANGE_SCATTER[2])) % 365
      year = int(rng.integers(0, 9))
      seconds = int(rng.integers(6 * 3600, 20 * 3600))
      when = epoch + datetime.timedelta(days=365 * year + day, seconds=seconds)
      record["date"] = when.strftime("%Y-%m-%d %H:%M:%S+00:00")
      record["date_c"] = round(when.timetuple().tm_yday / 366.0, 5)
    records.append(record)
  return records


def deterministic_gzip_tar(path):
  """A .tar.gz whose bytes depend only on what is added (gzip mtime 0, fixed member metadata).

  Level 1: JPEGs do not compress, and level 6 made gzip the slowest part of the generator.
  """
  raw = open(path, "wb")
  gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1)
  return raw, gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT)


def tar_entry(name, size=0, is_dir=False):
  """A tar member header with fixed metadata (mode, mtime), for deterministic archives."""
  info = tarfile.TarInfo(name)
  info.mtime = 1491350400  # 2017-04-05, the release date
  info.mode = 0o755 if is_dir else 0o644
  info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
  info.size = size
  return info


def _write_archive(path, photos, config, rng):
  """Folders in arbitrary order, as `tar` of a real file system would list them."""
  by_folder = {}
  for photo in photos:
    by_folder.setdefault(os.path.dirname(photo.file_name), []).append(photo)
  folders = sorted(by_folder)
  folders = [folders[i] for i in rng.permutation(len(folders))]
  ordered = []
  for folder in folders:
    members = by_folder[folder]
    ordered.extend(members[i] for i in rng.permutation(len(members)))
  raw, gz, tar = deterministic_gzip_tar(path)
  with raw, gz, tar:
    added_dirs = set()
    for photo, data in _rendered(ordered, config):
      parts = os.path.dirname(photo.file_name).split("/")
      for depth in range(1, len(parts) + 1):
        directory = "/".join(parts[:depth])
        if directory not in added_dirs:
          tar.addfile(tar_entry(directory + "/", is_dir=True))
          added_dirs.add(directory)
      tar.addfile(tar_entry(photo.file_name, size=len(data)), io.BytesIO(data))


def write_json(path, document):
  """Compact UTF-8 JSON, as the published files are."""
  with open(path, "w", encoding="utf-8") as f:
    json.dump(document, f, ensure_ascii=False, separators=(",", ":"))


def make_sample(output_dir, config=SampleConfig()):
  """Writes the download into `output_dir`; returns a summary dict (counts and file paths).

  Each file is written under a `.partial` name and renamed when complete, so an interrupted run
  never leaves a file that looks finished.
  """
  config.validate()
  rng = np.random.default_rng(config.seed)
  species = make_species(config, rng)
  photos = _plan_photos(species, config, rng)
  _assign_ids(photos, config, rng)

  os.makedirs(output_dir, exist_ok=True)
  written = {}

  def commit(name, write):
    final = os.path.join(output_dir, name)
    partial = final + ".partial"
    write(partial)
    os.replace(partial, final)
    written[name] = final

  edition = editions.get(config.edition)
  by_archive = {}  # train and val share one archive up to 2019
  for split in ("train", "val", "test"):
    by_archive.setdefault(edition.splits[split].archive, []).append(split)
  for archive, splits in by_archive.items():
    commit(archive, lambda path, splits=splits: _write_archive(
        path, [p for p in photos if p.split in splits], config, rng))
  for split in ("train", "val", "test"):
    document = _annotations_json(photos, split, species, config, rng)
    commit(edition.splits[split].annotations, lambda path, d=document: write_json(path, d))
  if edition.categories_file:  # the un-obfuscated categories, published separately
    records = [sp.record for sp in sorted(species, key=lambda sp: sp.category_id)]
    commit(edition.categories_file, lambda path: write_json(path, records))
  for split in ("train", "val"):
    files = edition.splits[split]
    if files.boxes:
      boxes = _boxes_json(photos, split, species, config, rng)
      commit(files.boxes, lambda path, d=boxes: write_json(path, d))
    if files.locations:
      locations = _locations_json(photos, split, rng)
      commit(files.locations, lambda path, d=locations: write_json(path, d))

  counts = {split: sum(p.split == split for p in photos) for split in editions.SPLITS}
  return {"output_dir": output_dir, "num_species": len(species), "images": counts,
          "edition": edition.name,
          "boxes": {split: sum(len(p.boxes) for p in photos if p.split == split and
                               p.species.supercategory in BOXED_SUPERCATEGORIES and
                               (split == "train" or len(p.boxes) == 1))
                    if edition.splits[split].boxes else 0 for split in ("train", "val")},
          "quirky_images": {p.quirk: p.file_name for p in photos if p.quirk},
          "files": written}


def main(config, flag_values):
  """inat-make-sample's work once its flags are parsed (inat_tf/commands/make_sample.py)."""
  start = time.monotonic()
  cli.say(f"a sample iNat{config.edition} download into {flag_values.output_dir}: "
          f"{config.num_species} species, {config.min_train_per_species} to "
          f"{config.max_train_per_species} train images each, at most {config.max_side} px, "
          f"seed {config.seed}")
  summary = make_sample(flag_values.output_dir, config)
  images = summary["images"]
  print(f"Wrote a sample iNat{summary['edition']} download to {summary['output_dir']}: "
        f"{summary['num_species']} species, {images['train']} train / {images['val']} val / "
        f"{images['test']} test images, {summary['boxes']['train']} train / "
        f"{summary['boxes']['val']} val boxes.")
  for name in sorted(summary["files"]):
    print(f"  {name}", flush=True)
  cli.say(f"done in {progress.duration(time.monotonic() - start)}: "
          f"{sum(images.values()):,} images, {len(summary['files'])} files in "
          f"{summary['output_dir']}")

