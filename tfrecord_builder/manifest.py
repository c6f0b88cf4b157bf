"""What a data dir holds besides its shards, all written through tf.io.gfile:

  label_map.json          contiguous index ↔ category_id ↔ name ↔ super-category, train counts
  image_ids.json          per split, every image id its JSON lists (a submission needs them all,
                          even an image the builder had to reject)
  manifest.json           per split and shard: examples, bytes, sha256; input md5s; flags; every
                          rejected or repaired image with its reason; where the places came from;
                          file names listed more than once; same image bytes under several ids
                          (written when all shards exist). Nothing per image but those lists, so
                          it stays small at any count (~10 KB + ~150 bytes per listed problem).
  image_sha256.npz        per split, every stored image's id and sha256 (first 16 bytes): what
                          inat-overlap compares (numpy .npz: "<split>.ids" int64,
                          "<split>.sha256" 16-byte strings; 24 bytes per image)
  dataset_info.json, features.json, ...   TFDS metadata: tfds.builder_from_directory(DATA_DIR)
  _build/state.json       the inputs and flags the shards were planned from (resume guard)
  _build/shards/*.json    one record per finished shard (counts, sha256, repairs, problems),
                          written before the shard is renamed into place
  _build/task-*.json      per job-array task: archives read, archive-level problems, timings
"""

import errno
import io
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from inat_tf import records
from inat_tf import run_common
from inat_tf import schema

# Atomic JSON (temporary name, then rename): the one copy, shared with the trainers.
read_json = run_common.read_json


class StateMismatch(Exception):
  """DATA_DIR was planned from other inputs or flags; resuming would mix two datasets."""


def write_json(path, document, compact=False):
  """run_common.write_json (atomic); a full disk raises OSError(ENOSPC) naming `path`.

  compact: one line, no indent (json's C encoder; indent=1 falls back to its Python one, ~1 s
  per 10,000 listed values): for the per-shard records, which list every image's id and hash.
  """
  try:
    if compact:
      run_common.write_text(path, json.dumps(document, separators=(",", ":"), sort_keys=True))
    else:
      run_common.write_json(path, document)
  except tf.errors.OpError as e:
    if "No space left" in e.message:
      raise OSError(errno.ENOSPC, "No space left on device", path) from None
    raise


def shard_record_path(data_dir, shard_file):
  return os.path.join(data_dir, records.BUILD_DIR, "shards", shard_file + ".json")


def state_path(data_dir):
  return os.path.join(data_dir, records.BUILD_DIR, "state.json")


def previous_state(data_dir):
  """The merged state of the builds so far into data_dir ({} before the first)."""
  path = state_path(data_dir)
  return read_json(path) if tf.io.gfile.exists(path) else {}


def check_and_update_state(data_dir, state, overwrite):
  """Refuses to resume on a data dir planned from different inputs or flags.

  state: {"seed", "examples_per_shard", "inputs": {JSON name: md5}, "archives": {name: size},
  "num_shards": {split: n}}. Builds of different splits into one data dir are compatible; their
  states are merged. Image archives are not compared: a replaced archive (a damaged download
  fixed) is what a rerun is for, and the build redoes the shards it changes.
  """
  path = state_path(data_dir)
  if tf.io.gfile.exists(path) and not overwrite:
    previous = read_json(path)
    differences = [f"{key}: {previous[key]} then, {state.get(key)} now"
                   for key in ("seed", "examples_per_shard", "edition", "minival")
                   if key in previous and key in state and previous[key] != state[key]]
    # Held-out species decide which train images exist: a run that builds train must hold out
    # the same ones as the build it resumes (none included).
    if "train" in state.get("num_shards", {}) and (previous.get("holdout_species") !=
                                                   state.get("holdout_species")):
      differences.append(f"holdout_species: {previous.get('holdout_species')} then, "
                         f"{state.get('holdout_species')} now")
    for group in ("inputs", "num_shards"):
      for name in set(previous[group]) & set(state[group]):
        if previous[group][name] != state[group][name]:
          differences.append(f"{group} {name}: {previous[group][name]} then, "
                             f"{state[group][name]} now")
    if differences:
      raise StateMismatch(
          f"{data_dir} holds a build from other inputs or flags ({'; '.join(differences)}). "
          f"Rerun with --overwrite to rebuild it, or choose another --data_dir.")
    state = {**previous, **state, **{group: {**previous.get(group, {}), **state[group]}
                                     for group in ("inputs", "archives", "num_shards")}}
  tf.io.gfile.makedirs(os.path.dirname(path))
  write_json(path, state)
  return state


def update_image_ids(data_dir, listed_ids):
  """Adds this build's splits to image_ids.json (builds of other splits may have written it).

  listed_ids: {split: sorted ids (array or list)}. Written compactly, a chunk of ids at a time:
  at iNat2021's 3.3 M ids, ~25 MB in ~2 s, with no Python int kept per id.
  """
  path = os.path.join(data_dir, records.IMAGE_IDS)
  known = read_json(path) if tf.io.gfile.exists(path) else {}
  splits = {**known, **listed_ids}
  temporary = f"{path}.incomplete-{os.getpid()}"
  with tf.io.gfile.GFile(temporary, "w") as f:
    f.write("{")
    for n, (split, ids) in enumerate(sorted(splits.items())):
      ids = np.asarray(ids, np.int64)
      f.write(f'{", " if n else ""}"{split}": [')
      for start in range(0, len(ids), 1 << 16):
        f.write(("," if start else "") + ",".join(map(str, ids[start:start + (1 << 16)].tolist())))
      f.write("]")
    f.write("}\n")
  tf.io.gfile.rename(temporary, path, overwrite=True)


IMAGE_SHA256 = "image_sha256.npz"
SHA256_BYTES = 16  # overlap.HASH_DIGITS / 2


def write_image_hashes(data_dir, hashes):
  """image_sha256.npz from {split: (ids int64 [n], sha256 'S16' [n])}."""
  buffer = io.BytesIO()
  np.savez(buffer, **{f"{split}.{part}": array for split, (ids, digests) in hashes.items()
                      for part, array in (("ids", ids), ("sha256", digests))})
  temporary = os.path.join(data_dir, f"{IMAGE_SHA256}.incomplete-{os.getpid()}")
  with tf.io.gfile.GFile(temporary, "wb") as f:
    f.write(buffer.getvalue())
  tf.io.gfile.rename(temporary, os.path.join(data_dir, IMAGE_SHA256), overwrite=True)


def read_image_hashes(data_dir):
  """{split: (ids, sha256 'S16')} of a data dir; FileNotFoundError when it has none."""
  path = os.path.join(data_dir, IMAGE_SHA256)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path} not found: give a data dir written by inat-build (it is "
                            f"written with manifest.json, when every shard exists; a data dir "
                            f"built before it existed needs --overwrite)")
  with tf.io.gfile.GFile(path, "rb") as f:
    arrays = np.load(io.BytesIO(f.read()))
    splits = {name.rsplit(".", 1)[0] for name in arrays.files}
    return {split: (arrays[f"{split}.ids"], arrays[f"{split}.sha256"]) for split in splits}


def same_pixels(hashes, labels):
  """Groups of image ids whose stored bytes are identical, as facts for the manifest.

  hashes: {split: (ids, sha256)}; labels: {split: (ids, category ids)} from the catalog.
  Returns {"groups": [{"sha256", "images": {split: [ids]}, "categories": [...]}],
  "across_splits": n, "label_conflicts": n}. Sorted digests find them in O(n log n).
  """
  splits = sorted(hashes)
  if not splits:
    return {"groups": [], "across_splits": 0, "label_conflicts": 0}
  digests = np.concatenate([hashes[s][1] for s in splits])
  owner = np.concatenate([np.full(len(hashes[s][0]), i) for i, s in enumerate(splits)])
  ids = np.concatenate([hashes[s][0] for s in splits])
  order = np.argsort(digests, kind="stable")
  sorted_digests = digests[order]
  repeated = np.flatnonzero(sorted_digests[1:] == sorted_digests[:-1])
  members = {}
  for position in np.unique(np.concatenate([repeated, repeated + 1])).tolist():
    i = order[position]
    # tobytes: all 16 bytes (a numpy 'S16' item drops trailing NUL bytes when read alone).
    members.setdefault(digests[i:i + 1].tobytes(), []).append((splits[owner[i]], int(ids[i])))
  def label(split, image_id):  # a binary search, not a dict of every image
    if split not in labels:
      return -1
    label_ids, categories = (np.asarray(a) for a in labels[split])
    order = np.argsort(label_ids, kind="stable") if split not in sorters else sorters[split]
    sorters[split] = order
    i = np.searchsorted(label_ids, image_id, sorter=order)
    return int(categories[order[i]]) if i < len(order) and label_ids[order[i]] == image_id else -1

  sorters = {}
  groups, across, conflicts = [], 0, 0
  for digest, group in sorted(members.items()):
    images = {}
    for split, image_id in group:
      images.setdefault(split, []).append(image_id)
    categories = sorted({label(split, i) for split, i in group} - {-1})
    across += len(images) > 1
    conflicts += len(categories) > 1
    groups.append({"sha256": digest.hex(), "images": images, "categories": categories})
  return {"groups": groups, "across_splits": across, "label_conflicts": conflicts}


def remove_build(data_dir):
  """Deletes what an earlier build wrote (for --overwrite); leaves other files alone."""
  if not tf.io.gfile.isdir(data_dir):
    return
  for name in tf.io.gfile.listdir(data_dir):
    name = name.rstrip("/")
    path = os.path.join(data_dir, name)
    if name == records.BUILD_DIR:  # all but the lock files, one of which is this build's own
      for entry in tf.io.gfile.listdir(path):
        entry = entry.rstrip("/")
        if not entry.startswith(records.LOCK_PREFIX):
          target = os.path.join(path, entry)
          (tf.io.gfile.rmtree if tf.io.gfile.isdir(target) else tf.io.gfile.remove)(target)
    elif (records.SHARD_SUFFIX in name or name.endswith(".labels.txt") or name in (
        records.MANIFEST, records.IMAGE_IDS, records.LABEL_MAP, IMAGE_SHA256)
                                   + records.TFDS_METADATA):
      tf.io.gfile.remove(path)


TFDS_NAME, TFDS_VERSION = "inat_tf", "1.0.0"  # the records' format, not TFDS's own iNat builder


def write_tfds_metadata(data_dir, label_map, split_infos):
  """dataset_info.json and features.json so that tfds.builder_from_directory(data_dir) works.

  TFDS writes metadata through etils.epath, which knows local paths and gs:// but not every
  tf.io.gfile scheme; so it writes into a local temporary folder (beside empty stand-ins named like
  our shards, which is how it discovers splits) and the files are copied over with gfile.
  split_infos: {split: (shard lengths, total bytes)}.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)

  with tempfile.TemporaryDirectory() as local:
    infos = []
    for split, (shard_lengths, num_bytes) in sorted(split_infos.items()):
      for shard in range(len(shard_lengths)):
        open(os.path.join(local, records.shard_file(split, shard, len(shard_lengths))),
             "wb").close()
      template = tfds.core.ShardedFileTemplate(
          data_dir=local, template=records.FILENAME_TEMPLATE, split=split,
          filetype_suffix="tfrecord", dataset_name=TFDS_NAME)
      infos.append(tfds.core.SplitInfo(name=split, shard_lengths=list(shard_lengths),
                                       num_bytes=num_bytes, filename_template=template))
    tfds.folder_dataset.write_metadata(
        data_dir=local,
        features=schema.tfds_features(list(label_map.names),
                                      list(label_map.supercategory_names)),
        split_infos=infos, check_data=False, version=TFDS_VERSION,
        filename_template=tfds.core.ShardedFileTemplate(
            data_dir=local, template=records.FILENAME_TEMPLATE, dataset_name=TFDS_NAME),
        supervised_keys=(schema.ENCODED, schema.LABEL),  # as_supervised=True: (image, label)
        description=(f"iNaturalist {label_map.edition or '2017'} species images, written by "
                     f"inat-build (inat-tf)."),
        homepage=f"https://github.com/visipedia/inat_comp/tree/master/"
                 f"{(label_map.edition or '2017')[:4]}")
    for name in os.listdir(local):
      if records.SHARD_SUFFIX not in name:
        tf.io.gfile.copy(os.path.join(local, name), os.path.join(data_dir, name), overwrite=True)


def finalize(data_dir, label_map, state, annotation_problems, log, *, facts=None):
  """Writes manifest.json and the TFDS metadata once every planned shard exists; else no-op.

  Any job-array task may call it; the last one to finish completes it (idempotent, atomic).
  facts: {"locations", "shared_files", "labels": {split: (ids, category ids)}} from the catalog.
  Returns the manifest, or None while shards are still missing.
  """
  splits = {}
  for split, num_shards in sorted(state["num_shards"].items()):
    shard_records = []
    for shard in range(num_shards):
      shard_file = records.shard_file(split, shard, num_shards)
      path = os.path.join(data_dir, shard_file)
      if not tf.io.gfile.exists(path):
        return None
      record = read_json(shard_record_path(data_dir, shard_file))
      if tf.io.gfile.stat(path).length != record["bytes"]:
        return None  # never listed with bytes that are not its own; the owner's rerun redoes it
      # Per-image lists become arrays at once (24 bytes per image, not ~110 as Python objects).
      record["image_ids"] = np.array(record.get("image_ids", []), np.int64)
      record["image_sha256"] = np.frombuffer(bytes.fromhex("".join(record.get(
          "image_sha256", []))), f"S{SHA256_BYTES}")
      shard_records.append(record)
    splits[split] = shard_records
  build_dir = os.path.join(data_dir, records.BUILD_DIR)
  tasks = [read_json(os.path.join(build_dir, name)) for name in sorted(tf.io.gfile.listdir(
      build_dir)) if name.startswith("task-") and name.endswith(".json")]
  problems = [p.to_json() for p in annotation_problems]
  problems += [p for task in tasks for p in task["problems"]]
  repairs = []
  for shard_records in splits.values():
    for record in shard_records:
      problems += record["problems"]
      repairs += record["repairs"]
  manifest = {
      "splits": {split: {
          "examples": sum(r["examples"] for r in shard_records),
          "bytes": sum(r["bytes"] for r in shard_records),
          "num_shards": len(shard_records),
          "shards": [{key: r[key] for key in ("file", "examples", "bytes", "sha256")}
                     for r in shard_records]} for split, shard_records in splits.items()},
      "inputs": {**state["inputs"], **state.get("archives", {})},
      "flags": {key: state[key] for key in ("seed", "examples_per_shard")},
      "tasks": [{key: task[key] for key in ("task", "flags", "archives", "seconds",
                                            "unlisted_members")} for task in tasks],
      "num_classes": label_map.num_classes,
      "edition": state.get("edition", ""),
      "minival": state.get("minival"),
      "holdout_species": state.get("holdout_species"),
      "rejected": problems,
      "repaired": repairs,
  }
  facts = facts or {}
  hashes = {split: (np.concatenate([r["image_ids"] for r in shard_records]),
                    np.concatenate([r["image_sha256"] for r in shard_records]))
            for split, shard_records in splits.items()}
  manifest.update(locations=facts.get("locations", {}),
                  shared_files=facts.get("shared_files", []),
                  same_pixels=same_pixels(hashes, facts.get("labels", {})))
  write_image_hashes(data_dir, hashes)
  write_json(os.path.join(data_dir, records.MANIFEST), manifest)
  write_tfds_metadata(data_dir, label_map, {
      split: ([r["examples"] for r in records], sum(r["bytes"] for r in records))
      for split, records in splits.items()})
  log(f"inat-build: all shards present; wrote {records.MANIFEST} and TFDS metadata to {data_dir}")
  return manifest
