"""`inat-overlap`: how many images two data dirs share, by the content hash of each stored image.

  inat-overlap --data_dir builds/inat2021 --other builds/inat2017

The editions overlap ("there is certainly overlap between the species and images included in the
various datasets", inat_comp 2021/README.md), and a model must not be validated on images it was
trained on. inat-build stores, per image, the sha256 of the image bytes it wrote (manifest.json
"image_sha256"); this compares two manifests, per pair of splits. Only byte-identical images are
found: a copy that was resized or re-encoded (iNat2021's images are at most 500 px, 2017's 800 px)
has other bytes and is not counted.
"""

import hashlib
import json
import os
import struct

import tensorflow as tf

from inat_tf.commands.overlap import OverlapConfig  # pylint: disable=unused-import

HASH_DIGITS = 32  # 128 bits: no chance collisions among millions of images


def image_hashes(records_path):
  """{image id: first 32 hex digits of sha256(image/encoded)} of a TFRecord file (any gfile path).

  Reads the TFRecord framing directly (uint64 length, uint32 CRC, data, uint32 CRC) and parses
  each Example with protobuf; the file is the builder's own, just written, so CRCs are not
  re-checked. Cost: ~0.1 ms per 800-px image, about 5 % of a build of the generated 800-px sample
  (799 images, 91 MB, two shared cores; noisy).
  """
  hashes = {}
  with tf.io.gfile.GFile(records_path, "rb") as f:
    while True:
      header = f.read(12)
      if len(header) < 12:
        break
      (length,) = struct.unpack("<Q", header[:8])
      example = tf.train.Example.FromString(f.read(length))
      f.read(4)
      features = example.features.feature
      image_id = features["image/id"].int64_list.value[0]
      data = features["image/encoded"].bytes_list.value[0]
      hashes[int(image_id)] = hashlib.sha256(data).hexdigest()[:HASH_DIGITS]
  return hashes


def _manifest_hashes(data_dir):
  path = os.path.join(data_dir, "manifest.json")
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path} not found: give a data dir written by inat-build (the "
                            f"manifest is written when every shard exists)")
  with tf.io.gfile.GFile(path) as f:
    manifest = json.load(f)
  if "image_sha256" not in manifest:
    raise FileNotFoundError(f"{path} has no per-image hashes (built by an older inat-build); "
                            f"rebuild it with --overwrite")
  return manifest.get("edition", ""), manifest["image_sha256"]


def compare(data_dir, other_dir):
  """{"pairs": [{split, other_split, shared}], "shared_images": n, ...}: distinct image contents
  found in both data dirs, in total and per pair of splits."""
  edition, ours = _manifest_hashes(data_dir)
  other_edition, theirs = _manifest_hashes(other_dir)
  pairs = []
  for split, hashes in sorted(ours.items()):
    mine = set(hashes.values())
    for other_split, other_hashes in sorted(theirs.items()):
      pairs.append({"split": split, "other_split": other_split,
                    "shared": len(mine & set(other_hashes.values()))})
  all_ours = {h for hashes in ours.values() for h in hashes.values()}
  all_theirs = {h for hashes in theirs.values() for h in hashes.values()}
  return {"data_dir": data_dir, "edition": edition, "other_dir": other_dir,
          "other_edition": other_edition, "pairs": pairs,
          "shared_images": len(all_ours & all_theirs)}


def main(c, _):
  """inat-overlap's work once its flags are parsed (inat_tf/commands/overlap.py)."""
  result = compare(c.data_dir, c.other)
  if c.json:
    print(json.dumps(result, indent=1))
    return
  print(f"{result['shared_images']:,} image(s) of {c.data_dir} are also in {c.other} "
        f"(same bytes):")
  for pair in result["pairs"]:
    print(f"  {pair['split']:>8} / {pair['other_split']:<8} {pair['shared']:,}")

