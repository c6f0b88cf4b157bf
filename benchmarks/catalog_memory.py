"""Peak memory and time of inat-build's start (reading the JSONs into the catalog, planning the
shards, indexing the file names) at increasing image counts: the part of the build that grows
with the number of images (issue 26). Each count in a fresh process; JSONs from
benchmarks/generate_2021.py --json_only (the iNat2021 layout, 10,000 species).

  python benchmarks/catalog_memory.py --counts 330000,1000000 --work_dir /tmp/catalog-memory
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _peak_mb():
  """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that across execve, so a
  child exec'd by a large parent reports the parent's peak (seen here at 1 M images)."""
  with open("/proc/self/status", encoding="ascii") as f:
    return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def child(raw_dir):
  import tensorflow  # pylint: disable=unused-import,import-outside-toplevel
  from tfrecord_builder import annotations, columns, layout, plan  # pylint: disable=import-outside-toplevel
  base = _peak_mb()
  start, cpu = time.perf_counter(), time.process_time()
  edition = layout.detect_layout(raw_dir)
  inputs = {split: inputs for split, inputs in layout.find_inputs(raw_dir).items()}
  catalog = annotations.load_catalog(inputs, inputs["train"].annotations, edition)
  plans = {s: plan.plan_split(s, t.ids, 1024, 0) for s, t in catalog.tables.items()}
  index = columns.NameIndex(catalog.tables)
  images = sum(len(t) for t in catalog.tables.values())
  held = (sum(t.nbytes for t in catalog.tables.values()) + index.nbytes
          + sum(p.shard_of_row.nbytes for p in plans.values()))
  print(json.dumps({"images": images, "seconds": time.perf_counter() - start,
                    "cpu": time.process_time() - cpu, "import_tf_mb": base,
                    "peak_mb": _peak_mb(),
                    "held_bytes_per_image": held / images}))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--counts", default="330000,1000000")
  parser.add_argument("--work_dir", default="/tmp/inat-catalog-memory")
  parser.add_argument("--child", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    child(args.child)
    return
  import generate_2021  # pylint: disable=import-outside-toplevel
  previous = None
  for total in (int(c) for c in args.counts.split(",")):
    raw_dir = os.path.join(args.work_dir, f"json-{total}")
    train, val = total * 2_686_843 // 3_286_843, total * 100_000 // 3_286_843
    generate_2021.generate(raw_dir, train, val, total - train - val, archives=False)
    for name in ("train", "val", "public_test"):  # layout detection wants the archives' names
      open(os.path.join(raw_dir, f"{name}.tar.gz"), "ab").close()
    out = subprocess.run([sys.executable, __file__, "--child", raw_dir], capture_output=True,
                         text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    over = r["peak_mb"] - r["import_tf_mb"]
    growth = (f", {(over - previous[1]) * 2**20 / (r['images'] - previous[0]):,.0f} bytes per "
              f"image more" if previous else "")
    previous = (r["images"], over)
    print(f"{r['images']:>10,} images: JSONs read, planned and indexed in {r['seconds']:.1f} s "
          f"({r['cpu']:.1f} CPU-s); peak RSS {r['peak_mb']:,.0f} MB = bare import tensorflow "
          f"{r['import_tf_mb']:,.0f} MB + {over:,.0f} MB{growth}; columns held "
          f"{r['held_bytes_per_image']:.0f} bytes per image", flush=True)
  print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; other jobs share "
        f"them)")


if __name__ == "__main__":
  main()
