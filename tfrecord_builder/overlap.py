"""`inat-overlap`: how many images two data dirs share, by the content hash of each stored image.

  inat-overlap --data_dir builds/inat2021 --other builds/inat2017

The editions overlap ("there is certainly overlap between the species and images included in the
various datasets", inat_comp 2021/README.md), and a model must not be validated on images it was
trained on. inat-build stores, per image, the sha256 of the image bytes it wrote
(image_sha256.npz beside manifest.json); this compares two data dirs' hashes, per pair of splits.
Only byte-identical images are found: a copy that was resized or re-encoded (iNat2021's images are at most 500 px, 2017's 800 px)
has other bytes and is not counted.
"""

import json
import os

import numpy as np
import tensorflow as tf

from inat_tf.commands.overlap import OverlapConfig  # pylint: disable=unused-import

HASH_DIGITS = 32  # 128 bits: no chance collisions among millions of images


def _hashes(data_dir):
  from tfrecord_builder import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  path = os.path.join(data_dir, "manifest.json")
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path} not found: give a data dir written by inat-build (the "
                            f"manifest is written when every shard exists)")
  with tf.io.gfile.GFile(path) as f:
    edition = json.load(f).get("edition", "")
  return edition, manifest_lib.read_image_hashes(data_dir)


def compare(data_dir, other_dir):
  """{"pairs": [{split, other_split, shared}], "shared_images": n, ...}: distinct image contents
  found in both data dirs, in total and per pair of splits (sorted 16-byte digests, numpy)."""
  edition, ours = _hashes(data_dir)
  other_edition, theirs = _hashes(other_dir)
  pairs = []
  for split, (_, digests) in sorted(ours.items()):
    for other_split, (_, other_digests) in sorted(theirs.items()):
      pairs.append({"split": split, "other_split": other_split,
                    "shared": int(len(np.intersect1d(digests, other_digests)))})
  every = lambda hashes: np.unique(np.concatenate([d for _, d in hashes.values()])
                                   if hashes else np.zeros(0, "S16"))
  return {"data_dir": data_dir, "edition": edition, "other_dir": other_dir,
          "other_edition": other_edition, "pairs": pairs,
          "shared_images": int(len(np.intersect1d(every(ours), every(theirs))))}


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

