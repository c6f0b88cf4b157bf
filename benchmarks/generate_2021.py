"""A generated download in the iNat2021 layout at any number of images, with tiny distinct JPEGs.

  python benchmarks/generate_2021.py --out /tmp/inat2021-x --train 100000 --val 5000 --test 10000
  python benchmarks/generate_2021.py --out /tmp/inat2021-json --train 2686843 --val 100000 \
      --test 500000 --json_only          # the JSONs at the published counts, for catalog memory

Small on purpose (the scale helper's benchmarks/full_count.py generates the published counts with
the full taxonomy; the lead unifies the two): what inat-build and TFDS's i_naturalist2021 builder
read, per image, with every per-image cost paid and almost no bytes:

  train.tar.gz, val.tar.gz, public_test.tar.gz   <split>/<image_dir_name>/<uuid>.jpg (test flat)
  train.json, val.json, public_test.json          COCO as the 2021 README gives it: images with
      date, latitude, longitude, location_uncertainty (NaN for 1 in 17, as the README allows);
      categories with the taxonomy fields and image_dir_name; annotations aligned with images
      and categories listed by id = position (what TFDS's builder assumes)

Each JPEG is one of 64 tiny (16 x 12 px) encoded images with its index written into a JPEG
comment (COM) segment: distinct bytes, valid for every decoder, ~700 bytes each.
"""

import argparse
import io
import json
import os
import tarfile
import time
import uuid

import numpy as np
from PIL import Image

SUPERCATEGORIES = ("Plants", "Insects", "Birds", "Fungi", "Reptiles", "Mammals",
                   "Ray-finned Fishes", "Amphibians", "Mollusks", "Arachnids", "Animalia")


def _bases(count=64, seed=0):
  rng = np.random.default_rng(seed)
  bases = []
  for _ in range(count):
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(out, "JPEG",
                                                                              quality=90)
    bases.append(out.getvalue())
  return bases


def _distinct(base, index):
  """The JPEG with a comment segment naming `index` right after SOI: distinct bytes."""
  text = f"inat-bench {index}".encode()
  return base[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + base[2:]


def categories(num_species):
  records = []
  for i in range(num_species):
    supercategory = SUPERCATEGORIES[i % len(SUPERCATEGORIES)]
    genus, epithet = f"Genus{i // 4:05d}", f"species{i:05d}"
    taxa = {"kingdom": "Animalia", "phylum": f"Phylum{i % 7}", "class": f"Class{i % 31}",
            "order": f"Order{i % 151}", "family": f"Family{i % 997}", "genus": genus}
    records.append({"id": i, "name": f"{genus} {epithet}", "common_name": f"Common {i}",
                    "supercategory": supercategory, **taxa, "specific_epithet": epithet,
                    "image_dir_name": f"{i:05d}_{'_'.join(taxa.values())}_{epithet}"})
  return records


def write_split(out, split, root, count, cats, start_id, bases, rng, archives=True):
  """Writes <root>.tar.gz (unless not `archives`) and its JSON; returns the next free image id."""
  images, annotations = [], []
  tar_path = os.path.join(out, f"{root}.tar.gz") if archives else os.devnull
  with open(tar_path, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=1) as tar:
    for n in range(count):
      image_id = start_id + n
      category = cats[n % len(cats)]
      folder = f"{root}/{category['image_dir_name']}" if split != "test" else root
      name = f"{folder}/{uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | image_id)}.jpg"
      data = _distinct(bases[image_id % len(bases)], image_id)
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
      missing = image_id % 17 == 0
      images.append({"id": image_id, "width": 16, "height": 12, "file_name": name, "license": 1,
                     "rights_holder": "inat-bench", "date": "2019-06-05 12:34:56+00:00",
                     "latitude": float("nan") if missing else float(rng.uniform(-60, 70)),
                     "longitude": float("nan") if missing else float(rng.uniform(-180, 180)),
                     "location_uncertainty": float("nan") if missing else 20})
      if split != "test":
        annotations.append({"id": image_id, "image_id": image_id, "category_id": category["id"]})
  document = {"info": {"year": 2021, "version": "bench"}, "images": images,
              "licenses": [{"id": 1, "name": "bench", "url": ""}]}
  if split != "test":
    document.update(categories=cats, annotations=annotations)
  with open(os.path.join(out, f"{root}.json"), "w", encoding="utf-8") as f:
    json.dump(document, f)  # NaN as Python writes it, as the 2021 README allows
  return start_id + count


def generate(out, train, val, test, num_species=10_000, seed=0, archives=True):
  """The download in `out` (kept if complete). archives=False: the JSONs only (for measuring
  what reading them costs; tar.gz writing is most of the time)."""
  if os.path.exists(os.path.join(out, "public_test.json")):
    return
  os.makedirs(out, exist_ok=True)
  rng = np.random.default_rng(seed)
  cats, bases = categories(num_species), _bases()
  next_id = write_split(out, "train", "train", train, cats, 0, bases, rng, archives)
  next_id = write_split(out, "val", "val", val, cats, next_id, bases, rng, archives)
  write_split(out, "test", "public_test", test, cats, next_id, bases, rng, archives)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True)
  parser.add_argument("--train", type=int, default=100_000)
  parser.add_argument("--val", type=int, default=5_000)
  parser.add_argument("--test", type=int, default=10_000)
  parser.add_argument("--num_species", type=int, default=10_000)
  parser.add_argument("--json_only", action="store_true", help="no archives (catalog memory)")
  args = parser.parse_args()
  start = time.perf_counter()
  generate(args.out, args.train, args.val, args.test, args.num_species,
           archives=not args.json_only)
  print(f"{args.out}: {args.train + args.val + args.test:,} images in "
        f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
  main()
