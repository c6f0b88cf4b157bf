"""The evaluation report at the published scale, and the thumbnail pass, each beside an alternative.

  python benchmarks/report_page.py [--num_classes 10000 --num_images 100000] [--data_dir D]

1. A report from synthetic arrays (inat_tf/report/synthetic.py: 10,000 species, 100,000 images,
   every gallery photo present as a noise JPEG, the worst case for size): time to compute the
   metrics, draw the plots and write the page; the page's size; the time headless Chromium takes to
   open it (navigation to the load event) and to sort the per-species table. Alternative: the
   same page with the per-species table written as 10,000 static HTML rows instead of compact JSON
   drawn 100 rows at a time.
2. With --data_dir (a data dir written by inat-build): the thumbnail pass (record_photos.collect:
   image/id parsed per record, only the wanted records decoded) for 48 val images, against
   decoding every val record (what a pass without the id filter would cost).

Prints times, sizes, ratios and peak RSS; asserts nothing.
"""

import argparse
import dataclasses
import json
import os
import resource
import tempfile
import time


def _page_with_static_table(built, photos, pngs):
  """The alternative page: the per-species table as plain HTML rows (no JSON, no script). The
  plots are the same objects, so their PNGs are reused."""
  from inat_tf.report import blocks  # pylint: disable=g-import-not-at-top
  from inat_tf.report import page  # pylint: disable=g-import-not-at-top
  static = [dataclasses.replace(section, blocks=tuple(
      dataclasses.replace(b, sortable=False) if isinstance(b, blocks.Table) else b
      for b in section.blocks)) for section in built]
  return page.html_page(static, photos.images, pngs)


_SORT = """(() => {
  const box = document.querySelector('#species div.sortable');
  const header = [...box.querySelectorAll('th')].find(h => h.textContent === 'Top-1');
  const start = performance.now(); header.click(); header.click();
  return (performance.now() - start) / 2;
})()"""


def page_at_scale(num_classes, num_images, out_dir):
  from inat_tf.report import browser  # pylint: disable=g-import-not-at-top
  from inat_tf.report import page  # pylint: disable=g-import-not-at-top
  from inat_tf.report import plots  # pylint: disable=g-import-not-at-top
  from inat_tf.report import render  # pylint: disable=g-import-not-at-top
  from inat_tf.report import sections  # pylint: disable=g-import-not-at-top
  from inat_tf.report import synthetic  # pylint: disable=g-import-not-at-top
  times = {}
  start = time.perf_counter()
  report, photos = synthetic.report(num_classes, num_images)
  times["metrics"] = time.perf_counter() - start
  start = time.perf_counter()
  built = sections.eval_sections(report, photos)
  pngs = plots.render_all(built)
  times["plots"] = time.perf_counter() - start
  start = time.perf_counter()
  ours = page.html_page(built, photos.images, pngs)
  times["page"] = time.perf_counter() - start
  start = time.perf_counter()
  files = {"report.json": render.json_text(report), "report.md": render.markdown(built)}
  times["json+markdown"] = time.perf_counter() - start
  static = _page_with_static_table(built, photos, pngs)
  paths = {}
  for name, text in (("ours.html", ours), ("static_rows.html", static)):
    paths[name] = os.path.join(out_dir, name)
    with open(paths[name], "w", encoding="utf-8") as f:
      f.write(text)
  print(f"\n{num_classes:,} species, {num_images:,} images (synthetic; noise thumbnails):")
  print("  made in " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
  print(f"  report.json {len(files['report.json']) / 1e6:.2f} MB, report.md "
        f"{len(files['report.md']) / 1e3:.0f} kB, {len(photos.images)} thumbnails "
        f"{sum(map(len, photos.images.values())) / 1e6:.2f} MB raw")
  if browser.find_chromium() is None:
    print("  (no Chromium: open times not measured)")
  results = {}
  for name, path in paths.items():
    opens = []
    for _ in range(3):
      result = browser.open_page(path, evaluate=_SORT if name == "ours.html" else "")
      opens.append(result.load_seconds)
      if result.errors:
        print(f"  {name}: console errors {result.errors}")
    results[name] = (os.path.getsize(path), min(opens), result.script)
  size, load, sort = results["ours.html"]
  static_size, static_load, _ = results["static_rows.html"]
  print(f"  {'page':34s} {'size':>9s} {'open (best of 3)':>17s}")
  print(f"  {'ours: species as JSON, 100 rows':34s} {size / 1e6:7.2f} MB {load:15.2f} s"
        f"   (sort 10,000 rows: {sort:.0f} ms)")
  print(f"  {'alternative: 10,000 static rows':34s} {static_size / 1e6:7.2f} MB "
        f"{static_load:15.2f} s")
  print(f"  ratio alternative / ours: size {static_size / size:.2f}x, open "
        f"{static_load / load:.2f}x")


def thumbnail_pass(data_dir):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from inat_tf import records  # pylint: disable=g-import-not-at-top
  from inat_tf import schema  # pylint: disable=g-import-not-at-top
  from inat_tf.report import record_photos  # pylint: disable=g-import-not-at-top
  ids = records.image_ids(data_dir)["val"]
  wanted = [ids[i] for i in np.linspace(0, len(ids) - 1, 48).astype(int)]
  start = time.perf_counter()
  photos = record_photos.collect(data_dir, "val", image_ids=wanted)
  ours = time.perf_counter() - start
  start = time.perf_counter()
  decoded = 0
  for example in records.examples(data_dir, "val", [schema.ENCODED]).map(
      lambda e: tf.shape(tf.io.decode_jpeg(e[schema.ENCODED], channels=3))):
    decoded += 1
  every = time.perf_counter() - start
  print(f"\nthumbnail pass over {data_dir} val ({len(ids):,} records), 48 wanted:")
  print(f"  ours (id filter, decode 48):   {ours:6.2f} s, {len(photos.images)} thumbnails")
  print(f"  alternative (decode all {decoded:,}): {every:6.2f} s")
  print(f"  ratio alternative / ours: {every / ours:.2f}x")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_classes", type=int, default=10_000)
  parser.add_argument("--num_images", type=int, default=100_000)
  parser.add_argument("--data_dir", default="", help="A built data dir: also time the "
                      "thumbnail pass.")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as out_dir:
    page_at_scale(args.num_classes, args.num_images, out_dir)
  if args.data_dir:
    thumbnail_pass(args.data_dir)
  print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
  print(json.dumps({"settings": vars(args)}))


if __name__ == "__main__":
  main()
