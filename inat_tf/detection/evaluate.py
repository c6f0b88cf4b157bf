"""`inat-detect-eval`: COCO metrics of a detector (pycocotools), per super-category (Table 5) and,
for a species or superclass detector, at the coarser granularities too (Table 6).

  inat-detect-eval --data_dir D --model_dir M [--split val] [--output_dir M/eval-val]

Scores the val images with exactly one box (the paper's protocol; the published val boxes cover
only those), or every boxed image of --split train. OUTPUT_DIR (tf.io.gfile):
  detections_<granularity>.json    the detections in COCO results format (original pixels)
  ground_truth_<granularity>.json  the ground truth they were scored against (COCO format)
  detection_metrics.json           every table below, as numbers
  detection_report.md              the tables in the paper's layout
"""

import json
import os
import time

import tensorflow as tf

from inat_tf import label_map as label_map_lib
from inat_tf import trained_model
from inat_tf import progress
from inat_tf import records
from inat_tf.detection import classes as classes_lib
from inat_tf.detection import coco
from inat_tf.detection import data
from inat_tf.detection import model as model_lib
from inat_tf.commands.detect_eval import DetectEvalConfig  # pylint: disable=unused-import

TITLES = {"species": "species", "superclass": "super-class", "agnostic": "class-agnostic"}


def predict(detector, config, classes, data_dir, split, *, batch_size=8, single_instance=None,
            total=None):
  """[{image_id, boxes [n, 4] yxyx in original pixels, scores [n], classes [n]}] per image.

  total: the boxed images expected, for the progress line (default: the split's examples).
  """
  dataset = data.eval_dataset(data_dir, split, classes.species_to_class, config.image_size,
                              batch_size, max_boxes=1, single_instance=single_instance)
  detect = tf.function(lambda images: model_lib.detect(detector, images))
  detections = []
  bar = progress.Progress("inat-detect-eval", total or records.split_examples(data_dir, split))
  with records.read_guard(data_dir, [split]), bar:
    for images, _, meta in dataset:
      _detect_batch(detect, images, meta, detections)
      bar.images += len(meta["image_id"])
  return detections


def _detect_batch(detect, images, meta, detections):
  """Appends one batch's detections, boxes in original pixels."""
  out = detect(images)
  all_boxes = data.boxes_to_original(out["boxes"], meta["original_size"],
                                     meta["content_size"]).numpy()
  out = {k: v.numpy() for k, v in out.items()}
  for i, image_id in enumerate(meta["image_id"].numpy()):
    n = int(out["num_detections"][i])
    detections.append({"image_id": int(image_id), "boxes": all_boxes[i, :n],
                       "scores": out["confidence"][i, :n], "classes": out["labels"][i, :n]})


def _format(value):
  return "–" if value is None else f"{100 * value:.1f}"


def markdown(report):
  """The report's tables: Table 5 layout (per super-category), then Table 6 (granularities)."""
  lines = [f"# Detection: {report['model_dir']} on {report['split']} "
           f"({report['images']} images)", ""]
  header = "| super-category | images | " + " | ".join(coco.METRICS) + " |"
  rule = "|---|---:|" + "---:|" * len(coco.METRICS)
  for granularity, rows in report["tables"].items():
    trained = report["granularity"]
    title = (f"{TITLES[granularity]} detector" if granularity == trained else
             f"{TITLES[trained]} detector scored at {TITLES[granularity]} level")
    lines += [f"## {title} (Table 5 layout; %)", "", header, rule]
    for name, row in sorted(rows.items(), key=lambda item: item[0] == "Overall"):
      lines.append(f"| {name} | {row['images']} | "
                   + " | ".join(_format(row[m]) for m in coco.METRICS) + " |")
    lines.append("")
  if len(report["tables"]) > 1:
    lines += ["## Across granularities (Table 6 layout; overall, %)", "",
              "| scored as | " + " | ".join(coco.METRICS) + " |",
              "|---|" + "---:|" * len(coco.METRICS)]
    for granularity, rows in report["tables"].items():
      lines.append(f"| {TITLES[granularity]} | "
                   + " | ".join(_format(rows["Overall"][m]) for m in coco.METRICS) + " |")
    lines.append("")
  return "\n".join(lines)


def _write(path, text):
  with tf.io.gfile.GFile(path + ".tmp", "w") as f:
    f.write(text)
  tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def evaluate(data_dir, model_dir, split="val", *, output_dir=None, batch_size=8, log=print):
  """Scores the detector of model_dir on data_dir's `split`; writes and returns the report."""
  start = time.monotonic()
  detector, config, classes = model_lib.load(model_dir)
  label_map_lib.check_same(data_dir, model_dir)  # the check inat-eval and inat-predict make
  label_map = label_map_lib.LabelMap.load(data_dir)
  data.check_has_boxes(data_dir, split)
  images = coco.read_ground_truth(data_dir, split)
  detections = predict(detector, config, classes, data_dir, split, batch_size=batch_size,
                       total=len(images))
  if [d["image_id"] for d in detections] != [i["image_id"] for i in images]:
    raise RuntimeError("detections and ground truth disagree on the images (records changed?)")
  seconds_predict = time.monotonic() - start
  results = coco.results_json(detections, classes)
  species_supercategory = [label_map.supercategory_names[s] for s in label_map.supercategories]

  output_dir = output_dir or trained_model.eval_dir(model_dir, split)
  tf.io.gfile.makedirs(output_dir)
  tables = {}
  order = classes_lib.GRANULARITIES
  for granularity in order[order.index(classes.granularity):]:
    target = classes_lib.detection_classes(label_map, granularity)
    scored = results if granularity == classes.granularity else coco.convert_results(
        results, classes, target, iou_threshold=config.iou_threshold)
    ground_truth = coco.ground_truth_json(images, target)
    tables[granularity] = coco.table(ground_truth, scored, target, images, species_supercategory)
    if granularity == classes.granularity:
      _write(os.path.join(output_dir, f"detections_{granularity}.json"), json.dumps(scored))
      _write(os.path.join(output_dir, f"ground_truth_{granularity}.json"),
             json.dumps(ground_truth))
  report = {"model_dir": model_dir, "data_dir": data_dir, "split": split,
            "granularity": classes.granularity, "backbone": config.backbone,
            "image_size": config.image_size, "images": len(images),
            "detections": len(results), "seconds": round(time.monotonic() - start, 1),
            "seconds_predict": round(seconds_predict, 1), "tables": tables}
  _write(os.path.join(output_dir, "detection_metrics.json"), json.dumps(report, indent=1))
  _write(os.path.join(output_dir, "detection_report.md"), markdown(report))
  log(markdown(report))
  log(f"inat-detect-eval: done: {len(images)} images in {report['seconds']}s; "
      f"report in {output_dir}")
  return report


def main(c, _):
  """inat-detect-eval's work once its flags are parsed (inat_tf/commands/detect_eval.py)."""
  print(f"inat-detect-eval: scoring the detector of {c.model_dir} on the "
        f"{'single-box images of the ' if c.split == 'val' else 'boxed images of the '}"
        f"{c.split} split of {c.data_dir} (COCO metrics); report to "
        f"{c.output_dir or trained_model.eval_dir(c.model_dir, c.split)}", flush=True)
  evaluate(c.data_dir, c.model_dir, c.split, output_dir=c.output_dir, batch_size=c.batch_size,
           log=lambda message: print(message, flush=True))

