"""Time, size and peak memory of what inat-build writes besides the shards, at iNat2021's counts.

  python benchmarks/build_outputs.py --images 3286843 --species 10000 --out /tmp/outputs

Writes, with the builder's own functions, for 10,000 species with the full taxonomy and
2,686,843 + 100,000 + 500,000 image ids (issue 26, item 4): label_map.json (LabelMap.to_json),
image_ids.json (manifest.update_image_ids), image_sha256.npz with its duplicate search
(manifest.write_image_hashes, manifest.same_pixels) and one shard record per 1,024 images as
finalize() reads them back; then reads each file as its readers do (LabelMap.load,
records.image_ids, manifest.read_image_hashes). Prints seconds, MB on disk and the process's peak
RSS growth.
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _peak_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--images", type=int, default=2_686_843 + 100_000 + 500_000)
  parser.add_argument("--species", type=int, default=10_000)
  parser.add_argument("--out", default="/tmp/inat-build-outputs")
  args = parser.parse_args()
  import tensorflow  # pylint: disable=unused-import,import-outside-toplevel
  import generate_2021  # pylint: disable=import-outside-toplevel
  from inat_tf import label_map as label_map_lib  # pylint: disable=import-outside-toplevel
  from inat_tf import records  # pylint: disable=import-outside-toplevel
  from tfrecord_builder import manifest  # pylint: disable=import-outside-toplevel
  os.makedirs(args.out, exist_ok=True)
  base = _peak_mb()
  rows = []

  def step(what, run, path):
    start = time.perf_counter()
    run()
    size = os.path.getsize(path) / 1e6 if path and os.path.exists(path) else 0.0
    rows.append((what, time.perf_counter() - start, size, _peak_mb() - base))
    print(f"  {what:44s} {rows[-1][1]:6.2f} s {size:8.1f} MB  peak RSS +{rows[-1][3]:6.0f} MB",
          flush=True)

  categories = generate_2021.categories(args.species)
  counts = {c["id"]: 270 for c in categories}
  label_map = label_map_lib.LabelMap.from_categories(categories, counts,
                                                     ranks=("kingdom", "phylum", "class", "order",
                                                            "family", "genus"), edition="2021")
  label_path = os.path.join(args.out, records.LABEL_MAP)
  step(f"label_map.json, {args.species:,} species", lambda: manifest.write_json(
      label_path, label_map.to_json()), label_path)
  step("  read back (LabelMap.load)", lambda: label_map_lib.LabelMap.load(args.out), None)
  train, val = args.images * 2_686_843 // 3_286_843, args.images * 100_000 // 3_286_843
  ids = {"train": np.arange(train, dtype=np.int64),
         "val": np.arange(train, train + val, dtype=np.int64),
         "test": np.arange(train + val, args.images, dtype=np.int64)}
  ids_path = os.path.join(args.out, records.IMAGE_IDS)
  step(f"image_ids.json, {args.images:,} ids", lambda: manifest.update_image_ids(args.out, ids),
       ids_path)
  step("  read back (records.image_ids)", lambda: records.image_ids(args.out), None)
  rng = np.random.default_rng(0)
  hashes = {split: (split_ids, rng.integers(0, 256, (len(split_ids), 16), dtype=np.uint8)
                    .view("S16").ravel()) for split, split_ids in ids.items()}
  hashes["val"][1][:10] = hashes["train"][1][:10]  # ten leaked images, to be found
  sha_path = os.path.join(args.out, manifest.IMAGE_SHA256)
  step("image_sha256.npz", lambda: manifest.write_image_hashes(args.out, hashes), sha_path)
  found = {}
  step("  same_pixels (the duplicate search)", lambda: found.update(manifest.same_pixels(
      hashes, {})), None)
  assert found["across_splits"] == 10, found["across_splits"]
  step("  read back (manifest.read_image_hashes)", lambda: manifest.read_image_hashes(args.out),
       None)
  shard_dir = os.path.join(args.out, "shards")
  os.makedirs(shard_dir, exist_ok=True)
  train_ids, train_hashes = hashes["train"]

  def write_records():
    for n, start in enumerate(range(0, len(train_ids), 1024)):
      manifest.write_json(os.path.join(shard_dir, f"{n:05d}.json"), {
          "image_ids": train_ids[start:start + 1024].tolist(),
          "image_sha256": [h.hex() for h in np.frombuffer(
              train_hashes[start:start + 1024].tobytes(), "V16").tolist()]},
          compact=True)

  def read_records():  # as manifest.finalize: each record's lists become arrays at once
    ids, digests = [], []
    for name in sorted(os.listdir(shard_dir)):
      with open(os.path.join(shard_dir, name), encoding="utf-8") as f:
        record = json.load(f)
      ids.append(np.array(record["image_ids"], np.int64))
      digests.append(np.frombuffer(bytes.fromhex("".join(record["image_sha256"])), "S16"))
    np.concatenate(ids), np.concatenate(digests)

  step("train shard records (1,024 ids + hashes each)", write_records, None)
  step("  read back as finalize() does", read_records, None)
  print(f"  (records in {shard_dir}: "
        f"{sum(os.path.getsize(os.path.join(shard_dir, n)) for n in os.listdir(shard_dir)) / 1e6:,.0f}"
        f" MB; peak RSS of a bare import tensorflow here: {base:,.0f} MB)")


if __name__ == "__main__":
  main()
