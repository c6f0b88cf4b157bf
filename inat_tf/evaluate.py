"""`inat-eval`: a trained model's scores on a split, in the paper's terms.

  inat-eval --data_dir D --model_dir M --split val --output_dir R [--flip] [--multi_crop]

Writes to R: report.json (everything), report.md (tables a person reads), per_class.csv (accuracy
and training images per species), accuracy_vs_train_images.csv and .png (the paper's Fig. 5: a box
plot of per-species top-1 accuracy, species binned by their number of training images) and
predictions.csv (image id, label, top-5 category ids). Top-5 error is the competition's metric.
Next to overall top-1 / top-5: the many / medium / few-shot species' (long_tail.py). A long-tail
adjustment stored by inat-adjust is applied (trained_model.load); if it was tuned on half of this
split, only the other half is scored, and the report says so.
"""

import collections
import csv
import dataclasses
import io
import json
import os
import time

import numpy as np
import tensorflow as tf

from inat_tf import cli
from inat_tf import long_tail
from inat_tf import label_map as label_map_lib
from inat_tf import progress
from inat_tf import rank_metrics
from inat_tf import records
from inat_tf import run_common
from inat_tf import trained_model
from inat_tf.geo import prior as geo_prior_lib
from inat_tf.geo import report as geo_report
from inat_tf.commands.eval import EvalConfig  # pylint: disable=unused-import

TOP_K = trained_model.TOP_K
# Bins of training images per species for Fig. 5 (lower edges; the last is open-ended).
TRAIN_COUNT_BINS = (0, 10, 20, 50, 100, 200, 500, 1000)


def per_class_scores(predictions, num_classes):
  """{class index: (examples, top-1 hits, top-5 hits)} for labelled images."""
  hits = collections.defaultdict(lambda: np.zeros(3, np.int64))
  for label, top in zip(predictions.labels, predictions.top_indices):
    if label >= 0:
      hits[int(label)] += (1, top[0] == label, label in top)
  return {c: tuple(int(v) for v in hits[c]) for c in range(num_classes) if c in hits}


def summarize(predictions, label_map):
  """The report: overall, per super-category (Table 4) and per training-count bin (Fig. 5)."""
  labelled = predictions.labels >= 0
  if not labelled.any():
    raise ValueError("This split has no labels (the test split?): nothing to score. Use "
                     "inat-predict to write a submission instead.")
  top1 = float(np.mean(predictions.top_indices[labelled, 0] == predictions.labels[labelled]))
  top5 = float(np.mean([label in top for label, top in zip(
      predictions.labels[labelled], predictions.top_indices[labelled])]))
  per_class = per_class_scores(predictions, label_map.num_classes)
  classes = []
  for index, (n, hit1, hit5) in sorted(per_class.items()):
    classes.append({
        "index": index, "category_id": label_map.category_ids[index],
        "name": label_map.names[index],
        "supercategory": label_map.supercategory_names[label_map.supercategories[index]],
        "train_images": label_map.train_counts[index], "eval_images": n,
        "top1": hit1 / n, "top5": hit5 / n})
  by_supercategory = collections.defaultdict(list)
  for c in classes:
    by_supercategory[c["supercategory"]].append(c)
  supercategories = [{
      "supercategory": name, "species": len(members),
      "avg_train_images": float(np.mean([c["train_images"] for c in members])),
      # The paper averages over the species of a super-class, not over images.
      "top1": float(np.mean([c["top1"] for c in members])),
      "top5": float(np.mean([c["top5"] for c in members]))}
      for name, members in sorted(by_supercategory.items())]
  bins = []
  edges = list(TRAIN_COUNT_BINS) + [float("inf")]
  for low, high in zip(edges[:-1], edges[1:]):
    members = [c for c in classes if low <= c["train_images"] < high]
    if members:
      accuracies = [c["top1"] for c in members]
      bins.append({"train_images": f"{low}-{high - 1}" if high != float("inf") else f"{low}+",
                   "low": low, "species": len(members), "top1_mean": float(np.mean(accuracies)),
                   "top1_median": float(np.median(accuracies)), "top1": accuracies})
  examples, hits1, hits5 = (np.array([per_class.get(c, (0, 0, 0))[k]
                                       for c in range(label_map.num_classes)]) for k in range(3))
  return {"images": int(labelled.sum()), "top1": top1, "top5": top5, "top5_error": 1 - top5,
          "shots": long_tail.shot_scores(examples, hits1, hits5, label_map.train_counts),
          "chance_top1": 1 / label_map.num_classes,
          "chance_top5": min(1.0, TOP_K / label_map.num_classes),
          "num_classes": label_map.num_classes, "supercategories": supercategories,
          "ranks": rank_metrics.rank_accuracy(predictions.labels, predictions.top_indices,
                                              label_map),
          "train_count_bins": bins, "classes": classes}


def markdown(report, title):
  lines = [f"# {title}", "",
           f"{report['images']:,} images, {report['num_classes']:,} classes. "
           f"Top-1 **{100 * report['top1']:.2f}%**, top-5 **{100 * report['top5']:.2f}%**, "
           f"top-5 error **{100 * report['top5_error']:.2f}%** (chance: top-1 "
           f"{100 * report['chance_top1']:.2f}%, top-5 {100 * report['chance_top5']:.2f}%).", "",
           "## Many / medium / few-shot species (> 100, 20-100, < 20 training images; mean over "
           "species)", "", "| Shots | Species | Images | Top-1 | Top-5 |",
           "|---|---:|---:|---:|---:|"]
  for bucket, row in report["shots"].items():
    lines.append(f"| {bucket} | {row['classes']} | {row['images']} | " + " | ".join(
        "-" if row[k] is None else f"{100 * row[k]:.2f}%" for k in ("top1", "top5")) + " |")
  lines += ["",
           "## Per super-category (the paper's Table 4: mean over species)", "",
           "| Super-category | Species | Avg train images | Top-1 | Top-5 |",
           "|---|---:|---:|---:|---:|"]
  for row in report["supercategories"]:
    lines.append(f"| {row['supercategory']} | {row['species']} | "
                 f"{row['avg_train_images']:.1f} | {100 * row['top1']:.2f}% | "
                 f"{100 * row['top5']:.2f}% |")
  lines += ["", "## At every taxonomic rank (a hit when the predicted taxon at that rank is the "
            "true one)", ""] + rank_metrics.markdown_rows(report.get("ranks", []))
  lines += ["", "## Top-1 by training images per species (the paper's Fig. 5)", "",
            "| Training images | Species | Mean top-1 | Median top-1 |", "|---|---:|---:|---:|"]
  for row in report["train_count_bins"]:
    lines.append(f"| {row['train_images']} | {row['species']} | {100 * row['top1_mean']:.2f}% | "
                 f"{100 * row['top1_median']:.2f}% |")
  if "location_prior" in report:
    lines += ["", geo_report.markdown(report["location_prior"])]
  return "\n".join(lines) + "\n"


def _box_plot_png(bins):
  import matplotlib  # pylint: disable=g-import-not-at-top  (only needed for the figure)
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, axes = pyplot.subplots(figsize=(8, 4.5))
  axes.boxplot([b["top1"] for b in bins], tick_labels=[b["train_images"] for b in bins])
  for position, b in enumerate(bins, start=1):
    axes.text(position, 1.04, str(b["species"]), ha="center", fontsize=8)
  axes.set_ylim(-0.02, 1.1)
  axes.set_xlabel("Training images per species (binned)")
  axes.set_ylabel("Top-1 accuracy per species")
  axes.set_title("Accuracy against training-set size (species per bin on top)")
  buffer = io.BytesIO()
  figure.tight_layout()
  figure.savefig(buffer, format="png", dpi=100)
  pyplot.close(figure)
  return buffer.getvalue()


def _csv_text(rows, fields):
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows)
  return buffer.getvalue()


def write_report(output_dir, report, predictions, label_map, title):
  """All report files into output_dir (any gfile path); returns their paths."""
  tf.io.gfile.makedirs(output_dir)
  files = {
      "report.json": json.dumps(report, indent=1),
      "report.md": markdown(report, title),
      "per_class.csv": _csv_text(report["classes"], ["index", "category_id", "name",
                                                     "supercategory", "train_images",
                                                     "eval_images", "top1", "top5"]),
      "accuracy_vs_train_images.csv": _csv_text(report["train_count_bins"], [
          "train_images", "species", "top1_mean", "top1_median"]),
      "predictions.csv": _csv_text([
          {"id": int(i), "label_category_id": label_map.category_ids[l] if l >= 0 else "",
           "top5_category_ids": " ".join(str(label_map.category_ids[t]) for t in top)}
          for i, l, top in zip(predictions.image_ids, predictions.labels,
                               predictions.top_indices)],
          ["id", "label_category_id", "top5_category_ids"]),
      "accuracy_vs_train_images.png": _box_plot_png(report["train_count_bins"]),
  }
  paths = {}
  for name, content in files.items():
    paths[name] = os.path.join(output_dir, name)
    run_common.write_bytes(paths[name], content if isinstance(content, bytes) else
                           content.encode("utf-8"))
  return paths


def evaluate(data_dir, model_dir, split="val", *, output_dir="", which="best", flip=False,
             multi_crop=False, batch_size=64, geo_dir=""):
  """Scores a trained model on a split; writes the report if output_dir; returns the report.

  geo_dir: a location prior (inat-train-geo); the report then gains "location_prior", the scores
  with and without it side by side (inat_tf.geo.report).
  """
  trained = trained_model.load(model_dir, which)
  label_map_lib.check_same(data_dir, model_dir)
  prior = geo_prior_lib.load(geo_dir) if geo_dir else None
  if prior is not None:
    prior.check_matches(trained.label_map, model_dir)
  predictions = trained_model.predict(trained, data_dir, split, batch_size=batch_size, flip=flip,
                                      multi_crop=multi_crop, geo_prior=prior)
  keep = long_tail.reported_mask(predictions.labels, predictions.image_ids, trained.adjustment,
                                 split)
  if keep is not None:  # the adjustment was tuned on the other half of this split
    predictions = trained_model.Predictions(*(
        None if getattr(predictions, f.name) is None else getattr(predictions, f.name)[keep]
        for f in dataclasses.fields(trained_model.Predictions)))
  report = summarize(predictions, trained.label_map)
  report.update(split=split, model_dir=model_dir, which=which, flip=flip, multi_crop=multi_crop,
                long_tail_adjustment=dataclasses.asdict(trained.adjustment)
                if trained.adjustment else None,
                scored_part="report half (the adjustment was tuned on the other)"
                if keep is not None else "all")
  if prior is not None:
    report["location_prior"] = dict(geo_report.compare(predictions), geo_dir=geo_dir)
  if output_dir:
    views = " + ".join(["central crop"] + ["4 corner crops"] * multi_crop + ["flips"] * flip)
    adjusted = f", {trained.adjustment.describe()}" if trained.adjustment else ""
    part = "the report half of " if keep is not None else ""
    write_report(output_dir, report, predictions, trained.label_map,
                 f"{trained.model_name} on {part}{split} ({views}{adjusted})")
  return report


def main(c, _):
  """inat-eval's work once its flags are parsed (inat_tf/commands/eval.py)."""
  start = time.monotonic()
  output_dir = c.output_dir or trained_model.eval_dir(c.model_dir, c.split)
  views = " + ".join(["central crop"] + ["4 corner crops"] * c.multi_crop + ["flips"] * c.flip)
  cli.say(f"scoring {os.path.join(c.model_dir, trained_model.model_file(c.which))} on the "
          f"{c.split} split of {c.data_dir} ({records.split_examples(c.data_dir, c.split):,} "
          f"images, {views}{', with the location prior ' + c.geo_dir if c.geo_dir else ''}); "
          f"report to {output_dir}")
  report = evaluate(c.data_dir, c.model_dir, c.split, output_dir=output_dir, which=c.which,
                    flip=c.flip, multi_crop=c.multi_crop, batch_size=c.batch_size,
                    geo_dir=c.geo_dir)
  print(markdown(report, f"{c.split}: {report['images']:,} images"), flush=True)
  cli.say(f"done: {report['images']:,} images in {progress.duration(time.monotonic() - start)}: "
          f"top-1 {100 * report['top1']:.1f}%, top-5 {100 * report['top5']:.1f}%; report in "
          f"{output_dir}")

