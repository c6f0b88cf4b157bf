"""`inat-build`: the iNat download → sharded TFRecords, streamed, parallel, resumable.

  inat-build --raw_dir RAW --data_dir OUT [--splits train,val,test] [--examples_per_shard 1024]
             [--task_index I --num_tasks N] [--max_rejects K] [--verify_decode] [--overwrite]
             [--max_image_pixels P]
             [--train_set train|train_mini] [--minival_fraction F | --minival_ids FILE]

RAW holds the download of one edition (iNat2017, 2018, 2019, 2021 or 2021_mini: inat_tf.editions)
under its published names (tarballs or folders extracted from them, and the JSONs); OUT (local,
gs://, any tf.io.gfile path) receives `train-00000-of-00566.tfrecord`, ...,
label_map.json, manifest.json and TFDS metadata. See BUILD_NOTES.md for the design.

How a build runs:
  1. Read the JSONs; plan every image's shard and position from --seed (plan.py).
  2. Stream each archive once (train and val share one); worker processes (one per core by
     default) check each listed image (image_check.py) and serialize its Example; results come
     back in submission order and are appended to their shards' local spill files (spill.py), so
     the bytes never depend on the number of workers.
  3. Write each shard from its spill file in planned order, under a temporary name, then rename.
  4. When every shard exists, write manifest.json and the TFDS metadata (manifest.py).
A rerun (after a crash, kill -9 included) keeps finished shards and spilled examples and does the
rest; the result is byte-identical to an uninterrupted run.
"""

import collections
import concurrent.futures
import concurrent.futures.process
import contextlib
import dataclasses
import errno
import gc
import hashlib
import multiprocessing
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from tfrecord_builder import annotations
from tfrecord_builder import columns
from tfrecord_builder import examples
from tfrecord_builder import image_check
from tfrecord_builder import layout
from tfrecord_builder import lock as lock_lib
from tfrecord_builder import manifest as manifest_lib
from tfrecord_builder import holdout as holdout_lib
from tfrecord_builder import minival as minival_lib
from tfrecord_builder import overlap as overlap_lib
from tfrecord_builder import plan as plan_lib
from tfrecord_builder import progress as progress_lib
from tfrecord_builder import sources
from tfrecord_builder import spill as spill_lib
from inat_tf import cli
from inat_tf import progress as inat_progress
from inat_tf import records
from inat_tf.commands.build import BuildConfig  # pylint: disable=unused-import
from inat_tf.errors import BuildError

Problem = annotations.Problem


def _verify_with_tensorflow(checked, original, expected_size, max_pixels):
  """--verify_decode: TensorFlow's own decoder must accept what we store; Pillow gets one try."""
  try:
    tf.io.decode_jpeg(checked.jpeg, channels=3)
    return checked
  except tf.errors.InvalidArgumentError as e:
    if checked.repair:
      raise image_check.ImageRejected(f"TensorFlow cannot decode it even re-encoded: {e.message}")
    repaired = image_check._reencode(original, "JPEG rejected by TensorFlow's decoder",  # pylint: disable=protected-access
                                     max_pixels)
    tf.io.decode_jpeg(repaired.jpeg, channels=3)
    return image_check.match_size(repaired, expected_size)


def _process(table, row, data, label_map, config):
  """Check (and maybe repair) one image and serialize its Example: (example, note, reason,
  sha256 of the stored image bytes, first 32 hex digits).

  Whatever goes wrong with one image (a missing file, any image library's exception) rejects that
  image with the reason (example b""); it never stops the build.
  """
  expected = (int(table.widths[row]), int(table.heights[row]))
  try:
    if isinstance(data, sources.FileRef):
      data = sources.read_file(data.raw_dir, data.file_name)
    checked = image_check.check_image(data, expected, config.max_image_pixels)
    if config.verify_decode:
      checked = _verify_with_tensorflow(checked, data, expected, config.max_image_pixels)
  except FileNotFoundError as e:
    return b"", "", f"missing file: {e}", ""
  except (sources.UnsafePath, image_check.ImageRejected) as e:
    return b"", "", str(e), ""
  except Exception as e:  # pylint: disable=broad-except  (one image never stops the build)
    return b"", "", f"cannot be read ({type(e).__name__}: {e})", ""
  # The content hash inat-overlap compares, taken here where the bytes are (not re-parsed later).
  digest = hashlib.sha256(checked.jpeg).hexdigest()[:overlap_lib.HASH_DIGITS]
  return examples.serialize(table, row, checked, label_map), checked.repair, "", digest


# What the worker processes need besides the member bytes: set before they fork, so they inherit
# it (the catalog's columns are never pickled and the JSON never parsed twice).
_SHARED = {}


def _process_batch(batch):
  """In a worker process: [(split, row, bytes or FileRef)] -> [(example, note, reason, sha)]."""
  tables, label_map, config = _SHARED["tables"], _SHARED["label_map"], _SHARED["config"]
  return [_process(tables[split], row, data, label_map, config) for split, row, data in batch]


def _die_with_parent(parent_pid):
  """Pool initializer: a worker ends when the build process dies (kill -9, the OOM killer, a
  Ctrl-C) and leaves a Ctrl-C to it (cli.worker_started).

  Otherwise it waits forever on the task queue (a sibling worker holds that pipe's write end, so
  it never sees end-of-file), keeping its memory: two ~270 MB orphans per killed build, measured.
  """
  cli.worker_started(parent_pid)


@contextlib.contextmanager
def _worker_pool(catalog, config):
  """A pool of `config.workers` processes forked now, before the build starts any thread.

  fork, not spawn or forkserver: those re-import the main module (the `inat-build` script, hence
  TensorFlow, ~2.5-5 s and ~570 MB per worker) and would need the catalog pickled to each; a
  forked worker shares the parent's pages (the catalog is numpy columns: reading them writes
  nothing, so they stay shared) and starts in milliseconds. Workers never call
  TensorFlow (except --verify_decode's decode_jpeg). gc.freeze() keeps the catalog's pages shared
  (the children's garbage collector then never writes to them); the parent unfreezes afterwards,
  so a long-lived caller (tests, notebooks) does not keep every build's objects forever. No
  gc.collect() first: garbage frozen with the rest is collected after the unfreeze, and a full
  collection in a long-lived caller's large heap cost ~1 s per build (32 CPU-s of the suite).
  """
  _SHARED.update(tables=catalog.tables, label_map=catalog.label_map, config=config)
  gc.freeze()
  try:
    with concurrent.futures.ProcessPoolExecutor(
        config.workers, mp_context=multiprocessing.get_context("fork"),
        initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
      pool.submit(int).result()  # with fork, the first submit starts every worker
      yield pool
  finally:
    gc.unfreeze()
    _SHARED.clear()


# Per task: amortizes the pickling and queue overhead (each submit wakes the executor's thread
# through a pipe: ~1,500 wakeups for 25,000 tiny images at 16 per batch cost the parent more than
# the images); the byte bound keeps big images' batches at 2 MB.
_BATCH_IMAGES, _BATCH_BYTES = 64, 2 << 20
_BATCHES_PER_WORKER = 3                    # in flight: bounded memory, yet no worker waits


def _default_spill_dir(config):
  if "://" not in config.data_dir:
    return os.path.join(config.data_dir, records.BUILD_DIR, "spill")
  digest = hashlib.md5(config.data_dir.encode()).hexdigest()[:12]
  return os.path.join(tempfile.gettempdir(), f"inat-build-spill-{digest}")


def _fingerprint(path):
  """'size:mtime_ns' of a file (any gfile path), or 'absent': how a rerun sees a replaced input.

  Local files through os.stat: gfile's local mtime has whole-second resolution, too coarse for a
  file replaced within the second it was first read.
  """
  try:
    if "://" not in path:
      stat = os.stat(path)
      return f"{stat.st_size}:{stat.st_mtime_ns}"
    stat = tf.io.gfile.stat(path)
  except (FileNotFoundError, tf.errors.NotFoundError):
    return "absent"
  return f"{stat.length}:{stat.mtime_nsec}"


_IMAGE_PROBLEMS = ("rejected image", "missing image")


class _Build:
  """One task's run; see the module docstring for the steps."""

  def __init__(self, config, log):
    self.config, self.log = config, log
    start = time.monotonic()
    self.edition = layout.detect_layout(config.raw_dir, config.train_set)
    self.inputs = layout.find_inputs(config.raw_dir, config.splits, config.train_set)
    train_json = layout.find_inputs(config.raw_dir, ("train",), config.train_set)[
        "train"].annotations if "train" not in self.inputs else self.inputs["train"].annotations
    self.catalog = annotations.load_catalog(
        self.inputs, train_json, self.edition,
        layout.categories_file(config.raw_dir, self.edition))
    # Held-out species first: their train images must not end up in a minival either.
    self.holdout = (holdout_lib.apply(self.catalog, config)
                    or holdout_lib.from_earlier_build(self.catalog, config.data_dir))
    self.label_map = self.catalog.label_map
    self.minival = minival_lib.apply(self.catalog, self.inputs, config)
    if (config.minival_fraction or config.minival_ids) and not self.minival:
      log("inat-build: the minival split is carved out of train, which this run does not build; "
          "--minival_fraction / --minival_ids have no effect here")
    self.tables = self.catalog.tables
    self.plans = {split: plan_lib.plan_split(split, table.ids, config.examples_per_shard,
                                             config.seed)
                  for split, table in self.tables.items()}
    self.shard_names = {split: [plan.shard_name(i) for i in range(plan.num_shards)]
                        for split, plan in self.plans.items()}
    self.index = columns.NameIndex(self.tables)  # archive member name -> (split, row)
    self.startup_seconds = time.monotonic() - start  # reading the JSONs and planning, once
    self.shard_problems = collections.defaultdict(list)  # shard file -> [Problem]
    self.shard_inputs = collections.defaultdict(dict)    # shard file -> {path: fingerprint}
    self.archives = {}                                   # path -> ArchiveStats
    self.report_path = os.path.join(config.data_dir, records.BUILD_DIR,
                                    config.task_name + ".json")
    self.report = {"task": config.task_name, "sources": {}}

  # -- planning and resume --------------------------------------------------------------------

  def _state(self):
    archives = {}
    for split_inputs in self.inputs.values():
      if split_inputs.archive:
        size = tf.io.gfile.stat(split_inputs.archive).length
        archives[os.path.basename(split_inputs.archive)] = f"{size} bytes"
    state = {"seed": self.config.seed, "examples_per_shard": self.config.examples_per_shard,
             "inputs": {os.path.basename(path): md5 for path, md5 in self.catalog.md5.items()},
             "archives": archives, "edition": self.edition.name,
             "num_shards": {split: plan.num_shards for split, plan in self.plans.items()}}
    if self.minival:  # absent when this run builds no train split: the earlier one's stays
      state["minival"] = self.minival
    if self.holdout:
      state["holdout_species"] = self.holdout
    return state

  def _owned(self):
    for split, plan in self.plans.items():
      for shard in plan.owned_shards(self.config.task_index, self.config.num_tasks):
        yield plan.shard_name(shard), split, shard

  def _pending_shards(self):
    """{shard file: (split, shard)} this task owns that must be (re)written.

    A shard is redone when it is missing, when its bytes disagree with its record (never listed
    in the manifest so), or when an input it was built from changed since (the user replaced a
    damaged archive or fixed a file) and the change can matter: the shard had missing or
    rejected images, or the archive was damaged in a way that no member can be trusted.
    """
    damaged = {path for path, source in self.report["sources"].items() if source.get("damaged")}
    pending, redo = {}, collections.Counter()
    for name, split, shard in self._owned():
      path = os.path.join(self.config.data_dir, name)
      record_path = manifest_lib.shard_record_path(self.config.data_dir, name)
      if not tf.io.gfile.exists(path):
        pending[name] = (split, shard)
        continue
      why = ""
      if not tf.io.gfile.exists(record_path):
        why = "no record"
      else:
        record = manifest_lib.read_json(record_path)
        if tf.io.gfile.stat(path).length != record["bytes"]:
          why = "bytes differ from its record"
        elif not isinstance(record.get("image_sha256"), list):
          why = "its record lists no image hashes (an older inat-build wrote it)"
        changed = [p for p, fp in record.get("inputs", {}).items() if _fingerprint(p) != fp]
        if changed and (any(p["kind"] in _IMAGE_PROBLEMS for p in record["problems"])
                        or damaged & set(changed)):
          why = why or f"{', '.join(sorted(changed))} changed"
      if why:
        redo[why] += 1
        tf.io.gfile.remove(path)
        if tf.io.gfile.exists(record_path):
          tf.io.gfile.remove(record_path)
        pending[name] = (split, shard)
    for why, count in sorted(redo.items()):
      self.log(f"inat-build: rebuilding {count} finished shard(s): {why} since they were built")
    if redo and tf.io.gfile.exists(os.path.join(self.config.data_dir, records.MANIFEST)):
      tf.io.gfile.remove(os.path.join(self.config.data_dir, records.MANIFEST))
    return pending

  # -- streaming ------------------------------------------------------------------------------

  def _sources(self):
    """[(source, splits, iterator of (file_name, bytes or FileRef), problems)], one per archive
    or folder."""
    by_source = collections.defaultdict(list)
    for split, split_inputs in self.inputs.items():
      by_source[split_inputs.archive or ("folder", split_inputs.folder)].append(split)
    result = []
    for source, splits in by_source.items():
      if isinstance(source, str):
        stats = sources.ArchiveStats(source, tf.io.gfile.stat(source).length)
        self.archives[source] = stats
        problems = []
        members = sources.iter_archive(
            source, stats, lambda name, reason, problems=problems: problems.append(
                Problem("unsafe archive member", name, f"{reason}; not read")))
        result.append((source, splits, members, problems))
      else:
        raw_dir = source[1]
        result.append((raw_dir, splits, self._folder_members(raw_dir, splits), []))
    return result

  def _folder_members(self, raw_dir, splits):
    """(file_name, FileRef) of every listed file, each once, folder by folder (sorted), in JSON
    order within a folder: deterministic, and near the order files lie on disk."""
    for split in splits:
      table = self.tables[split]
      folders = table.names.folders
      rank = np.argsort(np.argsort(np.array(folders, dtype=object))) if folders else np.zeros(0)
      order = np.lexsort((np.arange(len(table)), rank[table.names.folder_index]
                          if len(table) else np.zeros(0, np.int64)))
      for row in order.tolist():
        name = table.names[row]
        first = self.index.first_listing(name, splits)
        if first == (split, row):  # a name listed more than once is read once
          yield name, sources.FileRef(raw_dir, name)

  def _stream(self, pending, store, progress, pool):
    """Phase 1: every listed image of a pending shard → checked → appended to its spill file.

    The tar walk stays here; images go to the worker processes in batches, and their results are
    taken in submission order, so spill files fill in archive order whatever the worker count.
    Per image the parent holds only columns (no Python object per listed image): which rows are
    still wanted, a boolean per row.
    """
    done_ids = {key: {image_id for image_id, _, _ in store.entries(key)} for key in pending}
    wanted = {}  # split -> bool per row: its shard is pending and it is not in a spill file yet
    for split, table in self.tables.items():
      plan = self.plans[split]
      pending_shards = np.array([key in pending for key in self.shard_names[split]])
      rows = pending_shards[plan.shard_of_row] if len(table) else np.zeros(0, bool)
      spilled = set().union(*(done_ids[key] for key in self.shard_names[split] if key in pending))
      if spilled:
        rows &= ~np.isin(table.ids, np.fromiter(spilled, np.int64))
      wanted[split] = rows
    inflight = collections.deque()  # (future, [(split, row)], source), oldest first
    batch, batch_rows, batch_bytes = [], [], 0

    def finish(future, rows, source):
      outcomes = future.result()
      for (split, row), (example, note, reason, digest) in zip(rows, outcomes):
        key = self.shard_names[split][self.plans[split].shard_of_row[row]]
        if reason:
          name = self.tables[split].names[row]
          self.shard_problems[key].append(Problem("rejected image", name, reason))
          progress.rejects += 1
          if source not in self.archives:  # a folder: a fixed file is seen by its fingerprint
            path = os.path.join(source, name)
            self.shard_inputs[key][path] = _fingerprint(path)
        else:
          store.append(key, int(self.tables[split].ids[row]), note, digest, example)
          progress.images += 1
          progress.repairs += bool(note)

    def submit(source):
      nonlocal batch, batch_rows, batch_bytes
      if batch:
        inflight.append((pool.submit(_process_batch, batch), batch_rows, source))
        batch, batch_rows, batch_bytes = [], [], 0
      while len(inflight) > _BATCHES_PER_WORKER * self.config.workers:
        finish(*inflight.popleft())

    for source, splits, members, source_problems in self._sources():
      todo = {split: wanted[split].copy() for split in splits}
      if not any(rows.any() for rows in todo.values()):
        continue  # every image of this source is already in a shard or spill file
      if source in self.archives:
        for split in splits:
          for key in {self.shard_names[split][s] for s in np.unique(
              self.plans[split].shard_of_row[todo[split]]).tolist()}:
            self.shard_inputs[key][source] = _fingerprint(source)
      lookup = self.index.lookup
      unlisted, damaged = 0, False
      try:
        for name, data in members:
          listings = lookup(name, splits)
          unlisted += not listings
          for split, row in listings:
            rows = todo[split]
            if rows[row]:
              rows[row] = False
              batch.append((split, row, data))
              batch_rows.append((split, row))
              batch_bytes += len(data) if isinstance(data, bytes) else 0
          if len(batch) >= _BATCH_IMAGES or batch_bytes >= _BATCH_BYTES:
            submit(source)
          progress.bytes_read = sum(stats.bytes_read for stats in self.archives.values())
      except sources.ArchiveTruncated as e:
        damaged = "compressed data is damaged" in str(e)
        source_problems.append(Problem("damaged archive" if damaged else "truncated archive",
                                       source, str(e).removeprefix(f"{source}: ")))
      submit(source)
      while inflight:
        finish(*inflight.popleft())
      for split in splits:
        for row in np.flatnonzero(todo[split]).tolist():
          name = self.tables[split].names[row]
          key = self.shard_names[split][self.plans[split].shard_of_row[row]]
          self.shard_problems[key].append(Problem(
              "missing image", name, f"listed in the {split} JSON but not found in {source}"))
          if source not in self.archives:
            self.shard_inputs[key][os.path.join(source, name)] = _fingerprint(
                os.path.join(source, name))
          progress.rejects += 1
      stats = self.archives.get(source)
      self.report["sources"][source] = {
          "bytes": stats.size if stats else None, "md5": (stats.md5 or None) if stats else None,
          "damaged": damaged, "unlisted_members": unlisted,
          "problems": [p.to_json() for p in source_problems]}
      self._write_task_report()  # now, not at the end: a kill before the end keeps it

  # -- writing shards -------------------------------------------------------------------------

  def _finish_shard(self, key, split, shard, store):
    """Records a complete shard, then moves it from scratch to its final name."""
    table = self.tables[split]
    entries = store.entries(key)
    repairs = [{"file_name": table.names[table.row_of(image_id)], "image_id": image_id,
                "repair": note} for image_id, _, note in entries if note]

    def record_shard(count, size, sha256):
      # Written before the move: a shard under its final name always has its record.
      manifest_lib.write_json(manifest_lib.shard_record_path(self.config.data_dir, key), {
          "file": key, "split": split, "shard": shard, "examples": count, "bytes": size,
          "sha256": sha256, "repairs": repairs, "inputs": self.shard_inputs[key],
          "image_ids": [image_id for image_id, _, _ in entries],
          "image_sha256": [digest for _, digest, _ in entries],
          "problems": [p.to_json() for p in self.shard_problems[key]]}, compact=True)

    store.finish(key, os.path.join(self.config.data_dir, key), before_move=record_shard)

  # -- the run --------------------------------------------------------------------------------

  def run(self):
    config = self.config
    start = time.monotonic()
    if config.overwrite:
      manifest_lib.remove_build(config.data_dir)
    tf.io.gfile.makedirs(os.path.join(config.data_dir, records.BUILD_DIR, "shards"))
    state = manifest_lib.check_and_update_state(config.data_dir, self._state(), config.overwrite)
    manifest_lib.write_json(os.path.join(config.data_dir, records.LABEL_MAP),
                            self.label_map.to_json())
    manifest_lib.update_image_ids(config.data_dir, self.catalog.listed_ids)
    if tf.io.gfile.exists(self.report_path):
      previous = manifest_lib.read_json(self.report_path)
      self.report["sources"] = previous.get("sources", {})

    pending = self._pending_shards()
    store = spill_lib.SpillStore(os.path.join(config.spill_dir or _default_spill_dir(config),
                                              config.task_name))
    for key in store.recover():
      if config.overwrite or key not in pending:
        store.discard(key)  # from a build being redone, or a shard finished after all
    total = sum(len(table) for table in self.tables.values())
    self.log(f"inat-build: iNat{self.edition.name} download in {config.raw_dir} into "
             f"{config.data_dir}: {total:,} images listed in {', '.join(self.tables)}; "
             f"{len(pending)} shard(s) to write for {config.task_name} with {config.workers} "
             f"worker(s) (JSONs read and shards planned in {self.startup_seconds:.2f} s)")
    if pending:
      total_bytes = sum(tf.io.gfile.stat(i.archive).length for i in
                        {i.archive: i for i in self.inputs.values() if i.archive}.values())
      with _worker_pool(self.catalog, config) as workers, progress_lib.Progress(
          total, total_bytes) as progress:
        self._stream(pending, store, progress, workers)
        with concurrent.futures.ThreadPoolExecutor(config.workers) as pool:  # hash and copy
          for future in [pool.submit(self._finish_shard, key, split, shard, store)
                         for key, (split, shard) in sorted(pending.items())]:
            future.result()
        self.log(f"inat-build: {progress.line()}")
      self.report["seconds"] = round(time.monotonic() - start, 1)
      self._write_task_report()
    facts = {"locations": self.catalog.locations, "shared_files": self.catalog.shared_files,
             "labels": {split: (table.ids, table.category_ids)
                        for split, table in self.tables.items()}}
    result = manifest_lib.finalize(config.data_dir, self.label_map, state,
                                   self.catalog.problems, self.log, facts=facts)
    return self._summary(result)

  def _write_task_report(self):
    config = self.config
    report = self.report
    report["flags"] = dict(dataclasses.asdict(config))
    # The flat views finalize() and older readers use; one entry per source, merged over reruns.
    report["archives"] = {path: {"bytes": s["bytes"], "md5": s["md5"]}
                          for path, s in report["sources"].items() if s["bytes"] is not None}
    report["unlisted_members"] = {path: s["unlisted_members"]
                                  for path, s in report["sources"].items()
                                  if s["unlisted_members"]}
    report["problems"] = [p for s in report["sources"].values() for p in s["problems"]]
    report.setdefault("seconds", 0.0)
    manifest_lib.write_json(self.report_path, report)

  def _summary(self, manifest):
    """(exit status, text): non-zero when more problems than --max_rejects allows."""
    own_problems = list(self.catalog.problems) + [
        Problem(**p) for s in self.report["sources"].values() for p in s["problems"]]
    for key, _, _ in self._owned():
      record_path = manifest_lib.shard_record_path(self.config.data_dir, key)
      if tf.io.gfile.exists(record_path):
        own_problems += [Problem(**p) for p in manifest_lib.read_json(record_path)["problems"]]
    lines = []
    if manifest is not None:
      for split, info in manifest["splits"].items():
        lines.append(f"  {split}: {info['examples']:,} examples in {info['num_shards']} shard(s),"
                     f" {info['bytes'] / 1e6:,.1f} MB")
      lines.append(f"  repaired: {len(manifest['repaired'])}")
      lines += _fact_lines(manifest)
    else:
      lines += _fact_lines({"locations": self.catalog.locations,
                            "shared_files": self.catalog.shared_files})
    by_kind = collections.Counter(p.kind for p in own_problems)
    lines.append(f"  rejected: {len(own_problems)}" + (
        " (" + ", ".join(f"{n} {kind}" for kind, n in sorted(by_kind.items())) + ")"
        if own_problems else ""))
    for p in own_problems[:20]:
      lines.append(f"    {p.kind}: {p.where}: {p.message}")
    if len(own_problems) > 20:
      lines.append(f"    ... and {len(own_problems) - 20} more in {records.MANIFEST}")
    failed = len(own_problems) > self.config.max_rejects
    if failed:
      lines.append(f"inat-build: {len(own_problems)} problem(s) exceed --max_rejects="
                   f"{self.config.max_rejects}; every valid image was written. Fix the inputs "
                   f"and rerun the same command (it rebuilds only the shards the fix changes), "
                   f"or rerun with --max_rejects={len(own_problems)} to accept them.")
    elif manifest is None:
      lines.append(f"inat-build: {self.config.task_name} done; manifest.json is written when the "
                   f"other tasks' shards exist too.")
    return (1 if failed else 0), "\n".join(lines)


def _fact_lines(manifest):
  """The summary's lines on held-out species, places and images listed or stored more than
  once."""
  lines = []
  held = manifest.get("holdout_species")
  if held:  # else only manifest.json said why train has fewer examples than its JSON lists
    ids = held["category_ids"]
    lines.append(f"  held out of train (--holdout_species): {len(ids):,} species (category ids "
                 f"{', '.join(map(str, ids[:10]))}{', ...' if len(ids) > 10 else ''}), "
                 f"{held['train_images_left_out']:,} train images left out; their val and "
                 f"test images stay, for the open-set test")
  for split, info in manifest.get("locations", {}).items():
    source = info["source"]  # a file, or "none..." and why (annotations._location_source)
    where = source if source.startswith("none") else f"from {source}"
    lines.append(f"  places, {split}: {info['with_place']:,} of {info['images']:,} images "
                 f"({where})")
  shared = manifest.get("shared_files", [])
  if shared:
    lines.append(f"  file names listed more than once: {len(shared)}")
    for fact in shared[:10]:
      ids = "; ".join(f"{split} {ids}" for split, ids in sorted(fact["image_ids"].items()))
      lines.append(f"    {fact['file_name']}: image ids {ids}: {fact['action']}")
    if len(shared) > 10:
      lines.append(f"    ... and {len(shared) - 10} more in {records.MANIFEST} (shared_files)")
  same = manifest.get("same_pixels", {})
  if same.get("groups"):
    lines.append(f"  same image bytes under several image ids: {len(same['groups'])} group(s), "
                 f"{same['across_splits']} across splits, {same['label_conflicts']} with "
                 f"different labels (see {records.MANIFEST}, same_pixels)")
  return lines


def _mount_point(path):
  path = os.path.realpath(path)
  while not os.path.ismount(path):
    path = os.path.dirname(path)
  return path


def _no_space(path, config):
  path = path or config.data_dir
  device = config.data_dir
  if "://" not in path:
    mount = _mount_point(path)
    kinds = {}
    try:
      with open("/proc/mounts", encoding="utf-8") as f:
        kinds = {fields[1]: fields[0] for fields in (line.split() for line in f) if len(fields) > 1}
    except OSError:
      pass
    device = f"{mount} ({kinds[mount]})" if mount in kinds else mount
  return (f"no space left on {device} while writing {path}; free space and rerun the same "
          f"command (finished shards and scratch records are kept)")


def build(config, log=print):
  """Runs one build task; returns (exit status, summary text). Raises BuildError when it cannot
  start or continue (bad flags, missing or malformed inputs, a data dir from other inputs, another
  build of the same data dir running, a full disk)."""
  config.validate()
  try:
    job = _Build(config, log)
    with lock_lib.BuildLock(config.data_dir, config.task_name):
      return job.run()
  except (FileNotFoundError, annotations.AnnotationError, manifest_lib.StateMismatch,
          lock_lib.Locked, minival_lib.MinivalError, holdout_lib.HoldoutError) as e:
    raise BuildError(str(e)) from None
  except OSError as e:
    if e.errno == errno.ENOSPC:
      raise BuildError(_no_space(e.filename, config)) from None
    raise
  except concurrent.futures.process.BrokenProcessPool:
    raise BuildError("a worker process died (killed, or out of memory); rerun the same command: "
                     "it resumes where it stopped") from None
  except tf.errors.OpError as e:
    if "No space left" in e.message:
      raise BuildError(_no_space("", config)) from None
    raise


def main(config, _):
  """inat-build's work once its flags are parsed (inat_tf/commands/build.py)."""
  start = time.monotonic()
  status, summary = build(config, lambda message: print(message, file=sys.stderr, flush=True))
  print(summary, flush=True)
  done = f"inat-build: done in {inat_progress.duration(time.monotonic() - start)}"
  if tf.io.gfile.exists(os.path.join(config.data_dir, records.MANIFEST)):
    splits = records.read_manifest(config.data_dir)["splits"]
    done += ": " + ", ".join(f"{split} {info['examples']:,}" for split, info in splits.items())
    done += f" examples in {config.data_dir}"
  else:
    done += f": {config.task_name}'s shards in {config.data_dir}"
  print(done + ("" if status == 0 else " (with more problems than --max_rejects allows, above)"),
        file=sys.stderr)
  sys.exit(status)

