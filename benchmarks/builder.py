"""inat-build against TensorFlow Datasets' own `i_naturalist2017` builder, on the same files.

  python benchmarks/builder.py --work_dir /tmp/inat-bench            # ~6,000 and ~12,000 images
  python benchmarks/builder.py --num_species 30 --scales 1 --contenders floor-isal,inat,inat-baseline \
      --baseline /tmp/main-checkout                                  # this builder against another

Generates a download with TFDS's own species names (its label feature accepts only the 5,089 real
names) at 800 px, then, each in a fresh process so that peak memory is its own:
  floor-*        reading and inflating the archives alone (zlib, ISA-L, rapidgzip)
  reader-*       our archive reader (tfrecord_builder.sources.iter_archive: md5, trailer checks)
                 with ISA-L or rapidgzip forced, members read and dropped
  import-tf      a bare `import tensorflow`: the memory every TensorFlow program starts with
  inat           our builder (tfrecord_builder.build), one worker process per core
  inat-1w        our builder with one worker process
  *-nocheck      the same without the strict 1/8-scale decode check (header checks only): what
                 the check costs
  *-isal, *-rapidgzip  the same with that gzip reader forced (plain `inat` chooses by itself)
  tfds           TFDS's INaturalist2017 builder, its split generators pointed at the local files
Repeats with a download twice the size, to show whether peak memory stays flat as input grows.
Prints wall time (the build call, imports excluded), images/s, peak RSS (the largest process:
forked workers share the parent's pages, so they do not add to it) and the ratios; for our
builder also the start-up (imports; reading the JSONs and planning).

The iNat2021 layout with tiny images (issue 26: per-image overhead and memory at the real counts):

  python benchmarks/builder.py --layout 2021 --images 50000,100000,200000 --repeats 2

generates downloads with benchmarks/generate_2021.py (10,000 species, 16 x 12 px distinct JPEGs,
train : val : test = 27 : 1 : 5 as published) and runs `inat` and `tfds` (TFDS's own
i_naturalist2021 builder) interleaved, `--repeats` times each, in fresh processes. Besides the
build process's own peak RSS it samples the whole process tree (psutil, every 0.1 s: the sum of
RSS, which counts pages the forked workers share with the parent once per process, and every
0.5 s the sum of USS, each process's own pages) and prints the growth per image between counts.

TFDS 4.9.10's i_naturalist2021 builder cannot run from its wheel: its ClassLabel reads
image_classification/i_naturalist2021/i_naturalist2021_labels_ordered_by_json_id.txt, which the
wheel does not ship (only the supercategories file is there). The file holds the species names in
the order of the JSON's category ids, lower case, spaces as underscores (the builder's own
`_format`); the benchmark writes it from train.json and points the builder's `tfds_path` at it,
the builder itself unchanged.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import time

from inat_tf import editions  # plain data: no TensorFlow import in the measured children

EDITION = editions.INAT2017  # the files TFDS's i_naturalist2017 builder reads
ARCHIVES = EDITION.archives()


def make_sample(raw_dir, num_species, max_side):
  """The sample download, by its own command (`inat-make-sample`), unless already complete."""
  if os.path.exists(os.path.join(raw_dir, EDITION.splits["test"].annotations)):
    return
  script = os.path.join(os.path.dirname(sys.executable), "inat-make-sample")
  subprocess.run([script, f"--output_dir={raw_dir}", f"--num_species={num_species}",
                  f"--max_side={max_side}", "--species_names=tfds"], check=True,
                 stdout=subprocess.DEVNULL)


def _floor(raw_dir, backend):
  """Reads every member's bytes out of both archives, nothing else."""
  if backend == "zlib":
    import gzip
    opener = lambda path: gzip.open(path, "rb")
  elif backend == "isal":
    from isal import igzip_threaded
    opener = lambda path: igzip_threaded.open(path, "rb", threads=1)
  else:
    import rapidgzip
    opener = lambda path: rapidgzip.open(path, parallelization=os.cpu_count())
  count = 0
  for name in ARCHIVES:
    with opener(os.path.join(raw_dir, name)) as f, tarfile.open(fileobj=f, mode="r|") as tar:
      for member in tar:
        if member.isfile():
          tar.extractfile(member).read()
          count += 1
  return count


def _reader(raw_dir, reader):
  """Every member out of both archives through our own reader, with `reader` forced."""
  from tfrecord_builder import sources
  sources.READER = reader
  count = 0
  for name in ARCHIVES:
    path = os.path.join(raw_dir, name)
    stats = sources.ArchiveStats(path, os.path.getsize(path))
    count += sum(1 for _ in sources.iter_archive(path, stats, lambda *args: None))
    assert stats.md5, path
  return count


def _inat(raw_dir, out_dir, variant=""):
  """variant: '' | '-1w' | '-nocheck' | '-1w-nocheck', then '-isal' | '-rapidgzip' or nothing."""
  from inat_tf import records
  from tfrecord_builder import build
  from tfrecord_builder import image_check
  from tfrecord_builder import sources
  for reader in ("isal", "rapidgzip"):
    if variant.endswith(f"-{reader}"):
      sources.READER = reader
  if "nocheck" in variant:  # header checks only; the workers fork after this, so they see it
    image_check._strict_decode_problem = lambda data, facts: ""  # pylint: disable=protected-access
  config = build.BuildConfig(raw_dir=raw_dir, data_dir=out_dir,
                             num_workers=1 if "1w" in variant else 0)
  log = []
  status, summary = build.build(config, log=log.append)
  if status:
    raise RuntimeError(summary)
  manifest = records.read_manifest(out_dir)
  planned = [float(m) for line in log for m in re.findall(r"planned in ([0-9.]+) s", line)]
  return sum(split["examples"] for split in manifest["splits"].values()), planned[0]


def _tfds(raw_dir, out_dir):
  import tensorflow_datasets as tfds
  from tensorflow_datasets.image_classification import inaturalist

  class LocalINaturalist2017(inaturalist.INaturalist2017, skip_registration=True):
    """TFDS's builder, unchanged but for where its split generators find the files."""

    def _split_generators(self, dl_manager):
      archive = os.path.join(raw_dir, EDITION.splits["train"].archive)
      generator = lambda split, images, annotations: tfds.core.SplitGenerator(
          name=split, gen_kwargs={"images_archive": dl_manager.iter_archive(images),
                                  "annon_file": annotations})
      return [
          generator(tfds.Split.TRAIN, archive,
                    os.path.join(raw_dir, EDITION.splits["train"].annotations)),
          generator(tfds.Split.VALIDATION, archive,
                    os.path.join(raw_dir, EDITION.splits["val"].annotations)),
          generator(tfds.Split.TEST, os.path.join(raw_dir, EDITION.splits["test"].archive), None),
      ]

  builder = LocalINaturalist2017(data_dir=out_dir)
  builder.download_and_prepare(download_dir=os.path.join(out_dir, "downloads"))
  return sum(split.num_examples for split in builder.info.splits.values())


def _tfds_2021(raw_dir, out_dir):
  """TFDS's INaturalist2021 builder on local files, with the label-names file it lacks."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.image_classification.i_naturalist2021 import i_naturalist2021 as module

  labels = os.path.join(out_dir, "i_naturalist2021_labels_ordered_by_json_id.txt")
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(raw_dir, "train.json"), encoding="utf-8") as f:
    categories = sorted(json.load(f)["categories"], key=lambda c: c["id"])
  with open(labels, "w", encoding="utf-8") as f:
    f.write("\n".join(c["name"].lower().replace(" ", "_") for c in categories) + "\n")
  original = module.tfds.core.tfds_path

  def tfds_path(*parts):
    if parts and str(parts[-1]).endswith("_labels_ordered_by_json_id.txt"):
      return module.epath.Path(labels)
    return original(*parts)

  class LocalINaturalist2021(module.INaturalist2021, skip_registration=True):
    """TFDS's builder, unchanged but for where its split generators find the files."""

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(
          images_archive=dl_manager.iter_archive(os.path.join(raw_dir, f"{stem}.tar.gz")),
          json_file=os.path.join(raw_dir, f"{stem}.json"))
              for split, stem in (("train", "train"), ("val", "val"), ("test", "public_test"))}

  module.tfds.core.tfds_path = tfds_path
  try:
    builder = LocalINaturalist2021(data_dir=out_dir)
  finally:
    module.tfds.core.tfds_path = original
  builder.download_and_prepare(download_dir=os.path.join(out_dir, "downloads"))
  return sum(split.num_examples for split in builder.info.splits.values())


def child(contender, raw_dir, out_dir):
  """Runs one contender in this process; prints {"images", "seconds"} as JSON."""
  start = time.perf_counter()
  extra = {}
  if contender.startswith("floor-"):
    run = lambda: _floor(raw_dir, contender[len("floor-"):])
  elif contender.startswith("reader-"):
    run = lambda: _reader(raw_dir, contender[len("reader-"):])
    from tfrecord_builder import sources  # pylint: disable=unused-import
  elif contender == "import-tf":
    import tensorflow  # pylint: disable=unused-import,redefined-outer-name
    run = lambda: 0
  else:
    if contender.startswith("inat"):
      run = lambda: _inat(raw_dir, out_dir, contender[len("inat"):])
    elif os.path.exists(os.path.join(raw_dir, "train.json")):  # the iNat2021 layout
      run = lambda: _tfds_2021(raw_dir, out_dir)
    else:
      run = lambda: _tfds(raw_dir, out_dir)
    # Imports outside the timed region, for both builders alike.
    import tensorflow  # pylint: disable=unused-import
    import tensorflow_datasets  # pylint: disable=unused-import
    from tfrecord_builder import build  # pylint: disable=unused-import
  extra["import_seconds"] = time.perf_counter() - start
  start = time.perf_counter()
  before = resource.getrusage(resource.RUSAGE_SELF)
  images = run()
  if isinstance(images, tuple):
    images, extra["plan_seconds"] = images
  after, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
      resource.RUSAGE_CHILDREN)
  # The build's own process (for inat: the parent that walks the tar) and its workers, apart.
  extra["main_cpu_seconds"] = (after.ru_utime + after.ru_stime - before.ru_utime
                               - before.ru_stime)
  extra["worker_cpu_seconds"] = workers.ru_utime + workers.ru_stime
  print(json.dumps({"images": images, "seconds": time.perf_counter() - start, **extra}))


def measure(contender, raw_dir, out_dir, baseline=""):
  """contender 'inat-baseline' is our builder imported from another checkout (`baseline`)."""
  shutil.rmtree(out_dir, ignore_errors=True)
  env = dict(os.environ)
  if contender == "inat-baseline":
    contender, env["PYTHONPATH"] = "inat-1w", baseline
  process = subprocess.Popen([sys.executable, __file__, "--child", contender, "--raw_dir",
                              raw_dir, "--out_dir", out_dir], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=env)
  tree = _TreeSampler(process.pid)
  output = process.stdout.read()
  _, status, usage = os.wait4(process.pid, 0)
  tree.stop()
  if status != 0:
    raise RuntimeError(f"{contender} failed (status {status}); rerun it alone to see why")
  result = json.loads(output.strip().splitlines()[-1])
  result["peak_rss_mb"] = usage.ru_maxrss / 1024
  # CPU of the whole tree: Linux adds waited-for descendants (the workers) to the child's usage.
  result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
  result["tree_rss_mb"], result["tree_uss_mb"] = tree.peak_rss / 2**20, tree.peak_uss / 2**20
  shutil.rmtree(out_dir, ignore_errors=True)
  return result


class _TreeSampler:
  """Peak memory of a process and its descendants (the build's forked workers), sampled."""

  def __init__(self, pid):
    import threading
    import psutil
    self._root, self._psutil = psutil.Process(pid), psutil
    self.peak_rss = self.peak_uss = 0
    self._done = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()

  def _run(self):
    tick = 0
    while not self._done.wait(0.1):
      try:
        processes = [self._root] + self._root.children(recursive=True)
        self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in processes))
        if tick % 5 == 0:
          self.peak_uss = max(self.peak_uss, sum(p.memory_full_info().uss for p in processes))
      except (self._psutil.NoSuchProcess, self._psutil.AccessDenied, FileNotFoundError):
        pass
      tick += 1

  def stop(self):
    self._done.set()
    self._thread.join()


def main_2021(args):
  """--layout 2021: tiny images at increasing counts, inat and tfds interleaved."""
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import generate_2021  # pylint: disable=import-outside-toplevel
  counts = [int(x) for x in args.images.split(",")]
  chosen = args.contenders.split(",") if args.contenders else ["import-tf", "inat", "tfds"]
  rows = []
  for total in counts:
    raw_dir = os.path.join(args.work_dir, f"inat2021-{total}")
    train, val = total * 27 // 33, total // 33
    generate_2021.generate(raw_dir, train, val, total - train - val)
    for repeat in range(args.repeats):
      for contender in chosen:
        if contender == "import-tf" and repeat:
          continue
        load = os.getloadavg()[0]
        result = measure(contender, raw_dir, os.path.join(args.work_dir, "out"))
        rows.append({"images": total, "contender": contender, "load": load, **result})
        print(f"{total:>9,} {contender:10s} {result['seconds']:7.1f} s "
              f"(CPU: build {result.get('main_cpu_seconds', 0):5.1f} s main process + "
              f"{result.get('worker_cpu_seconds', 0):5.1f} s workers) "
              f"{result['images'] / max(result['seconds'], 1e-9):7.0f} images/s  peak RSS: "
              f"build process {result['peak_rss_mb']:6.0f} MB, tree (sum of RSS) "
              f"{result['tree_rss_mb']:6.0f} MB, tree (sum of USS) {result['tree_uss_mb']:6.0f} MB"
              f"  (load average before: {load:.1f})", flush=True)
  print("\nSummary (best of the repeats for time; largest peak; fresh process each):")
  base = next((r["peak_rss_mb"] for r in rows if r["contender"] == "import-tf"), 0.0)
  previous = {}
  for total in counts:
    for contender in [c for c in chosen if c != "import-tf"]:
      runs = [r for r in rows if r["images"] == total and r["contender"] == contender]
      best = min(runs, key=lambda r: r["seconds"])
      peak = max(r["peak_rss_mb"] for r in runs)
      tree = max(r["tree_uss_mb"] for r in runs)
      growth = ""
      if contender in previous:
        count, earlier = previous[contender]
        growth = f", growth {(peak - earlier) * 2**20 / (total - count):,.0f} bytes/image"
      previous[contender] = (total, peak)
      over = f" ({peak - base:+,.0f} MB over a bare import tensorflow)" if base else ""
      print(f"  {total:>9,} {contender:6s} {best['seconds']:6.1f} s "
            f"({total / best['seconds']:,.0f} images/s), build process peak {peak:,.0f} MB"
            f"{over}, tree USS {tree:,.0f} MB{growth}")
    by = {c: min(r["seconds"] for r in rows if r["images"] == total and r["contender"] == c)
          for c in chosen if c in ("inat", "tfds")}
    if len(by) == 2:
      print(f"  {total:>9,} inat-build = {by['tfds'] / by['inat']:.2f}x TFDS's speed")
  print(f"  (this machine: {os.cpu_count()} cores, load average now "
        f"{os.getloadavg()[0]:.1f}; other jobs share it)")


def contenders():
  return ["floor-zlib", "floor-isal", "floor-rapidgzip", "reader-isal", "reader-rapidgzip",
          "import-tf", "inat", "inat-isal", "inat-rapidgzip", "inat-1w", "inat-nocheck",
          "inat-1w-nocheck", "tfds"]


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--work_dir", default="/tmp/inat-builder-bench")
  parser.add_argument("--num_species", type=int, default=100,
                      help="~61 images per species; 100 gives ~6,150 images")
  parser.add_argument("--max_side", type=int, default=800)
  parser.add_argument("--contenders", default="",
                      help="comma-separated subset, e.g. floor-isal,inat (default: all)")
  parser.add_argument("--scales", default="1,2", help="download sizes to run, in multiples")
  parser.add_argument("--baseline", default="",
                      help="another checkout (e.g. `git archive main` extracted): adds the "
                           "contender inat-baseline, its builder on the same files")
  parser.add_argument("--layout", default="2017", choices=("2017", "2021"),
                      help="2021: tiny images in the iNat2021 layout at --images counts")
  parser.add_argument("--images", default="20000,40000",
                      help="--layout 2021: total images of each generated download")
  parser.add_argument("--repeats", type=int, default=1, help="--layout 2021: runs of each")
  parser.add_argument("--child", help=argparse.SUPPRESS)
  parser.add_argument("--raw_dir", help=argparse.SUPPRESS)
  parser.add_argument("--out_dir", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    child(args.child, args.raw_dir, args.out_dir)
    return
  if args.layout == "2021":
    main_2021(args)
    return

  rows = []
  scales = [int(x) for x in args.scales.split(",")]
  chosen = [c for c in contenders() + (["inat-baseline"] if args.baseline else [])
            if not args.contenders or c in args.contenders.split(",")]
  for scale in scales:
    raw_dir = os.path.join(args.work_dir, f"download-x{scale}")
    make_sample(raw_dir, args.num_species * scale, args.max_side)
    size_mb = sum(os.path.getsize(os.path.join(raw_dir, a)) for a in ARCHIVES) / 1e6
    for contender in chosen:
      result = measure(contender, raw_dir, os.path.join(args.work_dir, "out"), args.baseline)
      rows.append({"scale": scale, "contender": contender, "archives_mb": size_mb, **result})
      startup = (f" (start-up: imports {result['import_seconds']:.1f} s, JSONs + plan "
                 f"{result['plan_seconds']:.2f} s)" if "plan_seconds" in result else "")
      print(f"x{scale} {contender:16s} {result['images']:6d} images {result['seconds']:7.1f} s "
            f"{result['images'] / max(result['seconds'], 1e-9):7.0f} images/s "
            f"peak RSS {result['peak_rss_mb']:6.0f} MB{startup}", flush=True)

  print("\nSummary (wall time of the build call; fresh process each):")
  for scale in scales:
    by = {r["contender"]: r for r in rows if r["scale"] == scale}
    tf_rss = by.pop("import-tf", {}).get("peak_rss_mb")
    rate = lambda name: by[name]["images"] / by[name]["seconds"]
    parts = [f"{name} {rate(name):.0f} images/s" for name in by]
    if "inat" in by:
      parts += [f"inat-build = {rate('inat') / rate(name):.2f}x {name}" for name in by
                if name != "inat"]
    parts += [f"{kind} rapidgzip = {rate(f'{kind}-isal') / rate(f'{kind}-rapidgzip'):.2f}x "
              f"the time of ISA-L" for kind in ("reader", "inat")
              if f"{kind}-isal" in by and f"{kind}-rapidgzip" in by]
    if tf_rss:
      parts += [f"{name} peak RSS - bare import tensorflow = "
                f"{by[name]['peak_rss_mb'] - tf_rss:.0f} MB" for name in by
                if name.startswith("inat")]
    print(f"  x{scale} ({next(iter(by.values()))['images']} images, "
          f"{next(iter(by.values()))['archives_mb']:.0f} MB of archives): " + "; ".join(parts))
  for name in ("inat", "inat-1w", "tfds"):
    runs = [next((r for r in rows if r["scale"] == s and r["contender"] == name), None)
            for s in scales]
    if len(runs) == 2 and all(runs):
      small, large = runs
      print(f"  peak RSS {name}: {small['peak_rss_mb']:.0f} MB -> {large['peak_rss_mb']:.0f} MB "
            f"when the input doubles ({large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x)")
  print(f"  (this machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
  main()
