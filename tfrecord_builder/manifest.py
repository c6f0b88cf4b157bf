"""What a data dir holds besides its shards, all written through tf.io.gfile:

  label_map.json          contiguous index ↔ category_id ↔ name ↔ super-category, train counts
  image_ids.json          per split, every image id its JSON lists (a submission needs them all,
                          even an image the builder had to reject)
  manifest.json           per split and shard: examples, bytes, sha256; input md5s; flags; every
                          rejected or repaired image with its reason (written when all shards exist)
  dataset_info.json, features.json, ...   TFDS metadata: tfds.builder_from_directory(DATA_DIR)
  _build/state.json       the inputs and flags the shards were planned from (resume guard)
  _build/shards/*.json    one record per finished shard (counts, sha256, repairs, problems),
                          written before the shard is renamed into place
  _build/task-*.json      per job-array task: archives read, archive-level problems, timings
"""

import errno
import os
import tempfile

import tensorflow as tf

from inat_tf import records
from inat_tf import run_common
from inat_tf import schema

# Atomic JSON (temporary name, then rename): the one copy, shared with the trainers.
read_json = run_common.read_json


class StateMismatch(Exception):
  """DATA_DIR was planned from other inputs or flags; resuming would mix two datasets."""


def write_json(path, document):
  """run_common.write_json (atomic); a full disk raises OSError(ENOSPC) naming `path`."""
  try:
    run_common.write_json(path, document)
  except tf.errors.OpError as e:
    if "No space left" in e.message:
      raise OSError(errno.ENOSPC, "No space left on device", path) from None
    raise


def shard_record_path(data_dir, shard_file):
  return os.path.join(data_dir, records.BUILD_DIR, "shards", shard_file + ".json")


def check_and_update_state(data_dir, state, overwrite):
  """Refuses to resume on a data dir planned from different inputs or flags.

  state: {"seed", "examples_per_shard", "inputs": {JSON name: md5}, "archives": {name: size},
  "num_shards": {split: n}}. Builds of different splits into one data dir are compatible; their
  states are merged. Image archives are not compared: a replaced archive (a damaged download
  fixed) is what a rerun is for, and the build redoes the shards it changes.
  """
  path = os.path.join(data_dir, records.BUILD_DIR, "state.json")
  if tf.io.gfile.exists(path) and not overwrite:
    previous = read_json(path)
    differences = [f"{key}: {previous[key]} then, {state.get(key)} now"
                   for key in ("seed", "examples_per_shard", "edition", "minival")
                   if key in previous and key in state and previous[key] != state[key]]
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
  """Adds this build's splits to image_ids.json (builds of other splits may have written it)."""
  path = os.path.join(data_dir, records.IMAGE_IDS)
  known = read_json(path) if tf.io.gfile.exists(path) else {}
  write_json(path, {**known, **listed_ids})


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
        records.MANIFEST, records.IMAGE_IDS, records.LABEL_MAP) + records.TFDS_METADATA):
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


def finalize(data_dir, label_map, state, annotation_problems, log):
  """Writes manifest.json and the TFDS metadata once every planned shard exists; else no-op.

  Any job-array task may call it; the last one to finish completes it (idempotent, atomic).
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
      # Per split, image id -> sha256 (first 32 hex digits) of the stored image bytes: what
      # inat-overlap compares between two data dirs.
      "image_sha256": {split: {str(k): v for r in shard_records
                               for k, v in r.get("image_sha256", {}).items()}
                       for split, shard_records in splits.items()},
      "rejected": problems,
      "repaired": repairs,
  }
  write_json(os.path.join(data_dir, records.MANIFEST), manifest)
  write_tfds_metadata(data_dir, label_map, {
      split: ([r["examples"] for r in records], sum(r["bytes"] for r in records))
      for split, records in splits.items()})
  log(f"inat-build: all shards present; wrote {records.MANIFEST} and TFDS metadata to {data_dir}")
  return manifest
