"""Every stage at an edition's published counts × scale: wall time, peak memory, growth.

  python benchmarks/full_count.py --scale 0.05                      # iNat2021, 164 k images
  python benchmarks/full_count.py --scale 0.01,0.05 --edition 2021  # growth between two sizes
  python benchmarks/full_count.py --scale 0.1 --edition 2017 --stages build,tfds,train-geo

Generates a download in the edition's published layout (benchmarks/full_count_download.py: every
species, scale × the published images, tiny distinct JPEGs), then runs each stage as the command
a user runs, in a fresh process, one after another:

  import-tf   `python -c "import tensorflow"`: the memory every TensorFlow program starts with
  build       inat-build (all splits)
  tfds        TensorFlow Datasets' own builder of the edition (i_naturalist2017 / 2021) on the
              same files (benchmarks/builder.py's harness for 2017; see tfds_2021 for 2021)
  train       inat-train, MobileNet V1 at 32 px, 5 steps, then its val pass over the whole split
  eval        inat-eval on val (report.json/.md, per-class CSVs, predictions, the plot)
  predict     inat-predict on test: the Kaggle CSV
  score       inat-score of that CSV against the test split's hidden labels (Kaggle's solution)
  train-geo   inat-train-geo, one epoch over the train places
  export      inat-export (SavedModel, TFLite float and int8)
  overlap     inat-overlap of the data dir with itself (every image's hash, both manifests)

For each: wall time and CPU time (user + system, the command and its waited-for children: less
sensitive to other load than wall time), peak memory as the larger of the process tree's resident
memory (sampled every 0.1 s from /proc: every process's private pages plus the shared ones once,
so forked workers do not count the parent's pages again; the ~10 MB launcher that measures the
next figure is in the tree) and the command's own peak RSS (the kernel's high-water mark, exact;
a sample can miss a short peak), that peak above a bare `import tensorflow` measured the same way
in the same run, and with several scales the growth from the previous scale (MB, and bytes per
item the stage handles) and a linear projection to scale 1.0. Linux only (/proc). Stage logs go to
WORK_DIR/<edition>-x<scale>/logs/. A download already complete is reused; every stage reruns.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

# Run as a script from anywhere: the repository root, so that benchmarks.* imports.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import full_count_download  # pylint: disable=wrong-import-position
from inat_tf import editions  # pylint: disable=wrong-import-position

STAGES = ("import-tf", "build", "tfds", "train", "eval", "predict", "score", "train-geo",
          "export", "overlap")
SAMPLE_SECONDS = 0.1
TRAIN_STEPS = 5
IMAGE_SIZE = 32


def _script(name):
  path = os.path.join(os.path.dirname(sys.executable), name)
  return path if os.path.exists(path) else name


def _tree(root):
  """Pids of root and all its descendants, from /proc/<pid>/stat (parent pid, field 4)."""
  parents = {}
  for entry in os.listdir("/proc"):
    if entry.isdigit():
      try:
        with open(f"/proc/{entry}/stat", "rb") as f:
          stat = f.read()
      except OSError:
        continue
      parents.setdefault(int(stat[stat.rindex(b")") + 2:].split()[1]), []).append(int(entry))
  pids, frontier = [root], [root]
  while frontier:
    frontier = [child for pid in frontier for child in parents.get(pid, [])]
    pids += frontier
  return pids


def _private_and_shared_kb(pid):
  """(private, shared) resident kB of a process, from /proc/<pid>/smaps_rollup."""
  fields = {}
  try:
    with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
      for line in f:
        name, _, rest = line.partition(b":")
        if name in (b"Rss", b"Private_Clean", b"Private_Dirty"):
          fields[name] = int(rest.split()[0])
  except (OSError, ValueError, IndexError):
    return 0, 0
  private = fields.get(b"Private_Clean", 0) + fields.get(b"Private_Dirty", 0)
  return private, fields.get(b"Rss", 0) - private


def tree_kb(pids):
  """Resident memory of a process tree: every process's private pages, and the shared ones once
  (the largest process's: forked workers share the parent's pages, and the libraries). For one
  process it is its RSS; unlike PSS it does not depend on what else on the machine maps the same
  libraries."""
  sizes = [_private_and_shared_kb(pid) for pid in pids]
  return sum(p for p, _ in sizes) + max((s for _, s in sizes), default=0)


class TreeMemory:
  """Samples a process tree's resident memory (tree_kb) in a thread; .stop() returns the peak MB."""

  def __init__(self, pid):
    self.pid, self.peak_kb, self.processes = pid, 0, 1
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()

  def _run(self):
    while not self._stop.is_set():
      pids = _tree(self.pid)
      self.processes = max(self.processes, len(pids))
      self.peak_kb = max(self.peak_kb, tree_kb(pids))
      self._stop.wait(SAMPLE_SECONDS)

  def stop(self):
    self._stop.set()
    self._thread.join()
    return self.peak_kb / 1024


# Runs the command as its child and writes that child's exact peak RSS and CPU time. A child of
# this benchmark would not do: Linux keeps the parent's memory high-water mark across fork and
# exec (ru_maxrss), so a small command would report this process's size; the launcher is a fresh
# interpreter of ~10 MB.
_LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
  os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
  json.dump({"rss_kb": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}, f)
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


def run_stage(name, command, log_path):
  """Runs one command; {"seconds", "cpu_seconds", "tree_mb", "rss_mb", "peak_mb", "processes"};
  exits on failure. peak_mb: the larger of the sampled tree and the exact own peak (a sample can
  miss a short peak)."""
  measured = log_path + ".rusage.json"
  start = time.perf_counter()
  with open(log_path, "w") as log:
    process = subprocess.Popen([sys.executable, "-c", _LAUNCHER, measured, *command], stdout=log,
                               stderr=subprocess.STDOUT,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    sampler = TreeMemory(process.pid)
    status = process.wait()
    seconds = time.perf_counter() - start
    tree_mb = sampler.stop()
  if status != 0:
    with open(log_path) as log:
      tail = log.read()[-3000:]
    sys.exit(f"full_count: stage {name} failed (status {status}): {' '.join(command)}\n"
             f"{tail}\n(whole log: {log_path})")
  with open(measured) as f:
    usage = json.load(f)
  rss_mb = usage["rss_kb"] / 1024
  return {"seconds": seconds, "cpu_seconds": usage["cpu"], "tree_mb": tree_mb, "rss_mb": rss_mb,
          "peak_mb": max(tree_mb, rss_mb), "processes": max(1, sampler.processes - 1)}


def _paths(work_dir, edition, scale):
  root = os.path.join(work_dir, f"{edition}-x{scale:g}")
  paths = {name: os.path.join(root, name) for name in (
      "download", "data", "model", "eval", "geo", "export", "tfds", "logs")}
  paths["submission"] = os.path.join(root, "submission.csv")
  paths["labels"] = full_count_download.labels_file(paths["download"], edition)
  paths["root"] = root
  return paths


def commands(paths, edition):
  """{stage: argv}: each stage as the command a user runs."""
  data, model = paths["data"], paths["model"]
  return {
      "import-tf": [sys.executable, "-c", "import tensorflow"],
      "build": [_script("inat-build"), f"--raw_dir={paths['download']}", f"--data_dir={data}"],
      "tfds": [sys.executable, os.path.abspath(__file__), "--child=tfds", f"--edition={edition}",
               f"--raw_dir={paths['download']}", f"--out_dir={paths['tfds']}"],
      "train": [_script("inat-train"), f"--data_dir={data}", f"--model_dir={model}",
                "--model=mobilenet_v1", f"--image_size={IMAGE_SIZE}", "--batch_size=32",
                f"--train_steps={TRAIN_STEPS}", "--weights=none", "--log_steps=1"],
      "eval": [_script("inat-eval"), f"--data_dir={data}", f"--model_dir={model}",
               "--split=val", f"--output_dir={paths['eval']}", "--batch_size=256"],
      "predict": [_script("inat-predict"), f"--data_dir={data}", f"--model_dir={model}",
                  "--split=test", f"--output={paths['submission']}", "--batch_size=256"],
      "score": [_script("inat-score"), f"--predictions={paths['submission']}",
                f"--annotations={paths['labels']}", f"--edition={edition}"],
      "train-geo": [_script("inat-train-geo"), f"--data_dir={data}", f"--geo_dir={paths['geo']}",
                    "--epochs=1", "--log_steps=100"],
      "export": [_script("inat-export"), f"--model_dir={model}", f"--export_dir={paths['export']}",
                 f"--data_dir={data}"],
      "overlap": [_script("inat-overlap"), f"--data_dir={data}", f"--other={data}"],
  }


def stage_items(stage, counts):
  """What a stage's cost grows with: (count, unit)."""
  total = counts["train"] + counts["val"] + counts["test"]
  return {"build": (total, "image"), "tfds": (total, "image"), "train": (counts["val"], "val image"),
          "eval": (counts["val"], "val image"), "predict": (counts["test"], "test image"),
          "score": (counts["test"], "row"), "train-geo": (counts["train"], "train place"),
          "overlap": (2 * total, "hash")}.get(stage, (total, "image"))


def _download(paths, edition, scale, seed):
  """The generated download (reused when complete); its counts."""
  done = os.path.join(paths["root"], "download.json")
  if os.path.exists(done):
    with open(done) as f:
      return json.load(f), 0.0
  shutil.rmtree(paths["download"], ignore_errors=True)
  start = time.perf_counter()
  summary = full_count_download.make_download(paths["download"], edition, scale, seed)
  seconds = time.perf_counter() - start
  summary["archives_mb"] = sum(os.path.getsize(os.path.join(paths["download"], a))
                               for a in editions.get(edition).archives()) / 1e6
  with open(done, "w") as f:
    json.dump(summary, f, indent=1)
  return summary, seconds


def measure_scale(args, edition, scale, stages):
  paths = _paths(args.work_dir, edition, scale)
  os.makedirs(paths["root"], exist_ok=True)
  counts, generate_seconds = _download(paths, edition, scale, args.seed)
  print(f"\niNat{edition} x{scale:g}: {counts['species']:,} species, {counts['train']:,} train / "
        f"{counts['val']:,} val / {counts['test']:,} test images, "
        f"{counts['archives_mb']:.0f} MB of archives"
        + (f" (generated in {generate_seconds:.0f} s)" if generate_seconds else " (reused)"),
        flush=True)
  for name in ("data", "model", "eval", "geo", "export", "tfds", "logs"):
    shutil.rmtree(paths[name], ignore_errors=True)
  os.makedirs(paths["logs"])
  argv = commands(paths, edition)
  rows = {}
  for stage in stages:
    result = run_stage(stage, argv[stage], os.path.join(paths["logs"], f"{stage}.log"))
    if stage == "tfds":
      shutil.rmtree(paths["tfds"], ignore_errors=True)  # as large as ours: disk, not memory
    result["items"], result["unit"] = stage_items(stage, counts)
    rows[stage] = result
    print(f"  {stage:10s} {result['seconds']:7.1f} s (CPU {result['cpu_seconds']:7.1f} s)  "
          f"tree peak {result['tree_mb']:6.0f} MB ({result['processes']} "
          f"process{'es' if result['processes'] > 1 else ''})  own peak RSS "
          f"{result['rss_mb']:6.0f} MB", flush=True)
  if not args.keep:
    for name in ("data", "model", "eval", "geo", "export"):
      shutil.rmtree(paths[name], ignore_errors=True)
  return {"edition": edition, "scale": scale, "counts": counts, "stages": rows,
          "generate_seconds": generate_seconds}


def table(runs):
  """The markdown table of all runs: one row per stage and scale, growth from the previous.

  peak: the larger of the tree's sampled resident memory and the command's own exact peak RSS;
  above
  import-tf: that less the bare `import tensorflow`'s, measured the same way in the same run.
  """
  lines = ["| stage | scale | images | wall s | CPU s | peak MB | tree MB | own RSS MB | "
           "above import-tf MB | growth from previous scale |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
  stages = [s for s in STAGES if any(s in run["stages"] for run in runs)]
  for stage in stages:
    previous = None
    for run in runs:
      row = run["stages"].get(stage)
      if row is None:
        continue
      base = run["stages"].get("import-tf", {}).get("peak_mb")
      above = f"{row['peak_mb'] - base:+.0f}" if base and stage != "import-tf" else ""
      growth = ""
      if previous is not None and row["items"] > previous["items"]:
        delta = row["peak_mb"] - previous["peak_mb"]
        per_item = delta * 1e6 / (row["items"] - previous["items"])
        growth = f"{delta:+.0f} MB, {per_item:+,.0f} B per {row['unit']}"
      total = sum(run["counts"][s] for s in ("train", "val", "test"))
      lines.append(f"| {stage} | {run['scale']:g} | {total:,} | {row['seconds']:.1f} | "
                   f"{row['cpu_seconds']:.1f} | {row['peak_mb']:.0f} | {row['tree_mb']:.0f} | "
                   f"{row['rss_mb']:.0f} | {above} | {growth} |")
      previous = row
  return "\n".join(lines)


def projection(runs, edition):
  """Each stage's tree peak at scale 1.0 from the last two scales' growth (linear)."""
  if len(runs) < 2:
    return ""
  small, large = runs[-2], runs[-1]
  full = full_count_download.published_counts(edition)
  lines = [f"Projected to scale 1.0 (iNat{edition}'s published counts), linear in the stage's "
           f"items from x{small['scale']:g} to x{large['scale']:g}:"]
  base = large["stages"].get("import-tf", {}).get("peak_mb")
  for stage, row in large["stages"].items():
    before = small["stages"].get(stage)
    if before is None or stage == "import-tf" or row["items"] == before["items"]:
      continue
    slope = (row["peak_mb"] - before["peak_mb"]) / (row["items"] - before["items"])
    items_full, _ = stage_items(stage, full)
    projected = row["peak_mb"] + slope * (items_full - row["items"])
    lines.append(f"  {stage:10s} {projected:7.0f} MB" + (f" ({projected - base:+.0f} MB above "
                                                          f"import-tf)" if base else ""))
  return "\n".join(lines)


def tfds_2021(raw_dir, out_dir):
  """TFDS's INaturalist2021 builder, its split generators pointed at the local files.

  TFDS 4.9.10's wheel lacks the label names file its `label` feature reads
  (i_naturalist2021/i_naturalist2021_labels_ordered_by_json_id.txt), so the builder cannot run
  as installed; the file is what its name says: the categories of train.json in id order, named
  as _generate_examples formats them (lower case, spaces to underscores). Those names are read
  from the train JSON here and given to the feature (its _info restated with them); the
  features, the example generator and the writer are TFDS's own. No train_mini split.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.image_classification.i_naturalist2021 import i_naturalist2021 as inat21  # pylint: disable=g-import-not-at-top
  edition = editions.get("2021")
  with open(os.path.join(raw_dir, edition.splits["train"].annotations)) as f:
    categories = sorted(json.load(f)["categories"], key=lambda c: c["id"])
  names = [c["name"].lower().replace(" ", "_") for c in categories]

  class LocalINaturalist2021(inat21.INaturalist2021, skip_registration=True):
    """TFDS's builder, unchanged but for the label names and where it finds the files."""

    def _info(self):
      supercategories = tfds.core.tfds_path(os.path.join(
          "image_classification", "i_naturalist2021", "i_naturalist2021_supercategories.txt"))
      return tfds.core.DatasetInfo(
          builder=self, description=inat21._DESCRIPTION,  # pylint: disable=protected-access
          features=tfds.features.FeaturesDict({
              "id": tfds.features.Scalar(dtype=np.int64), "file_id": tfds.features.Text(),
              "image": tfds.features.Image(shape=(None, None, 3)),
              "label": tfds.features.ClassLabel(names=names),
              "supercategory": tfds.features.ClassLabel(names_file=supercategories)}),
          supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(
          images_archive=dl_manager.iter_archive(os.path.join(raw_dir, files.archive)),
          json_file=os.path.join(raw_dir, files.annotations))
              for split, files in (("train", edition.splits["train"]),
                                   ("val", edition.splits["val"]),
                                   ("test", edition.splits["test"]))}

  builder = LocalINaturalist2021(data_dir=out_dir)
  builder.download_and_prepare(download_dir=os.path.join(out_dir, "downloads"))
  return sum(split.num_examples for split in builder.info.splits.values())


def child(args):
  """The tfds stage, in its own process."""
  # benchmarks/builder.py's TFDS harness, imported as a top-level module: TFDS looks for a
  # dataset class's package resources when its module is dotted (benchmarks.builder), and that
  # needs importlib_resources, which TFDS does not install.
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import builder  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  if args.edition == "2017":
    images = builder._tfds(args.raw_dir, args.out_dir)  # pylint: disable=protected-access
  else:  # builder.py's own 2021 harness once it has one (the builder helper's branch)
    images = getattr(builder, "_tfds_2021", tfds_2021)(args.raw_dir, args.out_dir)
  print(json.dumps({"images": images}))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--edition", default="2021", choices=full_count_download.EDITIONS)
  parser.add_argument("--scale", default="0.05",
                      help="comma-separated fractions of the published counts, e.g. 0.01,0.05")
  parser.add_argument("--work_dir", default="/tmp/inat-full-count")
  parser.add_argument("--stages", default=",".join(STAGES),
                      help=f"comma-separated subset of {','.join(STAGES)} (train comes before "
                           f"eval, predict and export, predict before score)")
  parser.add_argument("--keep", action="store_true", help="keep data dir, model and outputs")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--child", help=argparse.SUPPRESS)
  parser.add_argument("--raw_dir", help=argparse.SUPPRESS)
  parser.add_argument("--out_dir", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    child(args)
    return
  stages = [s for s in args.stages.split(",") if s]
  unknown = sorted(set(stages) - set(STAGES))
  if unknown:
    sys.exit(f"full_count: unknown stage(s) {', '.join(unknown)}: expected {','.join(STAGES)}")
  stages = [s for s in STAGES if s in stages]
  scales = sorted(float(s) for s in args.scale.split(","))
  start, load_at_start = time.perf_counter(), os.getloadavg()[0]
  runs = [measure_scale(args, args.edition, scale, stages) for scale in scales]
  print("\n" + table(runs))
  text = projection(runs, args.edition)
  if text:
    print("\n" + text)
  print(f"\n(this machine: {os.cpu_count()} cores, load average {load_at_start:.1f} at the start "
        f"and {os.getloadavg()[0]:.1f} at the end; {time.perf_counter() - start:.0f} s in all)")
  with open(os.path.join(args.work_dir, f"results-{args.edition}.json"), "w") as f:
    json.dump(runs, f, indent=1)


if __name__ == "__main__":
  main()
