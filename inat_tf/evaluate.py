"""`inat-eval`: a trained model's scores on a split, in the paper's terms, and a report to look at.

  inat-eval --data_dir D --model_dir M --split val --output_dir R [--flip] [--multi_crop]

Writes to R (default M/eval-SPLIT): report.html (one self-contained page: the headline and the
settings that produced it, every table, the paper's Fig. 5, a reliability diagram, the most-confused
species pairs and the most confident mistakes with their photos, a sortable per-species table),
report.json (all the numbers), report.md (the tables), per_class.csv, accuracy_vs_train_images.csv
and .png (Fig. 5) and predictions.csv (image id, label, top-5 category ids of the answers). Prints
the tables as plain text, ending with the page's path. Top-5 error is the competition's metric.
Next to overall top-1 / top-5: the many / medium / few-shot species' (long_tail.py). A long-tail
adjustment stored by inat-adjust is applied (trained_model.load); if it was tuned on half of this
split, only the other half is scored, and the report says so. With --geo_dir the answers (and so
the headline and every table) are those with the location prior, the image-only ones beside them.

The metrics are plain data (inat_tf/report/accuracy.py, calibration.py, errors.py,
inat_tf/geo/report.py); inat_tf/report/ renders them, for the terminal, report.md and report.html.
"""

import csv
import dataclasses
import datetime
import io
import os

import tensorflow as tf

from inat_tf import flag_config
from inat_tf import long_tail
from inat_tf import label_map as label_map_lib
from inat_tf import records
from inat_tf import trained_model
from inat_tf.geo import prior as geo_prior_lib
from inat_tf.geo import report as geo_report
from inat_tf.report import accuracy
from inat_tf.report import calibration
from inat_tf.report import errors
from inat_tf.report import page
from inat_tf.report import plots
from inat_tf.report import record_photos
from inat_tf.report import render
from inat_tf.report import sections as sections_lib

TOP_K = trained_model.TOP_K
TRAIN_COUNT_BINS = accuracy.TRAIN_COUNT_BINS


def summarize(predictions, label_map):
  """The accuracy report of Predictions' top_indices (inat_tf.report.accuracy.summarize)."""
  return accuracy.summarize(predictions.labels, predictions.top_indices, label_map)


def answers(predictions):
  """(top_indices [N, K], top_scores [N, K]) of the answers the settings give: with the location
  prior where the predictions have one, else the image's."""
  if predictions.geo_top_indices is not None:
    return predictions.geo_top_indices, predictions.geo_top_scores
  return predictions.top_indices, predictions.top_scores


def error_analysis(predictions, label_map):
  """The report's calibration, errors and (with a prior) prior-change entries, as plain data."""
  top, scores = answers(predictions)
  labels = predictions.labels
  labelled = labels >= 0
  result = {
      "calibration": calibration.reliability(scores[labelled, 0], top[labelled, 0] ==
                                             labels[labelled]),
      "errors": {**errors.summary(labels, top[:, 0], label_map),
                 "confused_pairs": errors.confused_pairs(labels, top[:, 0], scores[:, 0],
                                                         predictions.image_ids, label_map),
                 "confident_mistakes": errors.confident_mistakes(
                     labels, top[:, 0], scores[:, 0], predictions.image_ids, label_map)}}
  if predictions.geo_top_indices is not None:
    result["prior_changes"] = errors.prior_changes(
        labels, (predictions.top_indices[:, 0], predictions.top_scores[:, 0]),
        (predictions.geo_top_indices[:, 0], predictions.geo_top_scores[:, 0]),
        predictions.image_ids, label_map)
  return result


def photos_wanted(report):
  """(image ids of the evaluated split, class indices wanting a train photo) the page shows."""
  found = report.get("errors", {})
  image_ids = {p["image_id"] for p in found.get("confused_pairs", [])}
  image_ids |= {m["image_id"] for m in found.get("confident_mistakes", [])}
  species = {p["predicted"] for p in found.get("confused_pairs", [])}
  species |= {m["predicted"] for m in found.get("confident_mistakes", [])}
  changes = report.get("location_prior", {}).get("changes", {})
  for examples in changes.get("examples", {}).values():
    image_ids |= {e["image_id"] for e in examples}
  return image_ids, species


def _views(trained, flip, multi_crop):
  crop = f"central {100 * trained.eval_crop_fraction:g}% crop"
  more = ["4 corner crops"] * multi_crop + ["mirror images"] * flip
  return crop + (f", averaged with {' and '.join(more)}" if more else "")


def settings(trained, flip, multi_crop, geo_dir):
  """What produced the answers, in words (the page's and report.json's "settings")."""
  return {"crop": _views(trained, flip, multi_crop),
          "long_tail_adjustment": trained.adjustment.describe() if trained.adjustment else "none",
          "location_prior": f"{geo_dir} (Mac Aodha et al. 2019)" if geo_dir else "none",
          "restriction": f"none (all {trained.label_map.num_classes:,} species)",
          "roll_up": "none (species answers)"}


def _csv_text(rows, fields):
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows)
  return buffer.getvalue()


def _predictions_csv(predictions, label_map):
  ids = label_map.category_ids
  top, _ = answers(predictions)
  with_prior = predictions.geo_top_indices is not None
  rows = []
  for n, (image_id, label) in enumerate(zip(predictions.image_ids, predictions.labels)):
    row = {"id": int(image_id), "label_category_id": ids[label] if label >= 0 else "",
           "top5_category_ids": " ".join(str(ids[t]) for t in top[n])}
    if with_prior:
      row["image_only_top5_category_ids"] = " ".join(str(ids[t])
                                                     for t in predictions.top_indices[n])
    rows.append(row)
  return _csv_text(rows, ["id", "label_category_id", "top5_category_ids"] +
                   ["image_only_top5_category_ids"] * with_prior)


def write_report(output_dir, report, predictions, label_map, *, photos=None):
  """All report files into output_dir (any gfile path); returns {name: path}.

  photos: the thumbnails (record_photos.collect), or None (the page then says so in their place).
  Each file is written under a temporary name and renamed; report.json last, so its presence
  means the rest is there.
  """
  tf.io.gfile.makedirs(output_dir)
  sections = sections_lib.eval_sections(report, photos)
  pngs = plots.render_all(sections)
  files = {
      "report.md": render.markdown(sections),
      "report.html": page.html_page(sections, photos.images if photos else None, pngs),
      "per_class.csv": _csv_text(report["classes"], [
          "index", "category_id", "name", "common_name", "genus", "supercategory",
          "train_images", "eval_images", "top1", "top5", "confused_with", "confused_count"]),
      "accuracy_vs_train_images.csv": _csv_text(report["train_count_bins"], [
          "train_images", "species", "mean_train_images", "top1_mean", "top1_median"]),
      "predictions.csv": _predictions_csv(predictions, label_map),
  }
  files.update({p.file_name: pngs[id(p)] for p in plots.every_plot(sections) if p.file_name})
  files["report.json"] = render.json_text(report)
  paths = {}
  for name, content in files.items():
    paths[name] = os.path.join(output_dir, name)
    with tf.io.gfile.GFile(paths[name] + ".tmp", "wb" if isinstance(content, bytes) else "w") as f:
      f.write(content)
    tf.io.gfile.rename(paths[name] + ".tmp", paths[name], overwrite=True)
  return paths


def evaluate(data_dir, model_dir, split="val", *, output_dir="", which="best", flip=False,
             multi_crop=False, batch_size=64, geo_dir=""):
  """Scores a trained model on a split; writes the report if output_dir; returns the report.

  geo_dir: a location prior (inat-train-geo); the answers (top1, top5 and every table) are then
  those with the prior; the report gains "image_only" (top1, top5 without it) and
  "location_prior", the scores with and without it side by side (inat_tf.geo.report) and the
  answers it turned right or wrong.
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
  label_map = trained.label_map
  report = accuracy.summarize(predictions.labels, answers(predictions)[0], label_map)
  report.update(
      model=trained.model_name, model_dir=model_dir, which=which, data_dir=data_dir, split=split,
      edition=label_map.edition,
      date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      settings=settings(trained, flip, multi_crop, geo_dir), flip=flip, multi_crop=multi_crop,
      long_tail_adjustment=dataclasses.asdict(trained.adjustment) if trained.adjustment else None,
      scored_part="report half (the adjustment was tuned on the other)"
      if keep is not None else "all")
  analysis = error_analysis(predictions, label_map)
  report.update(calibration=analysis["calibration"], errors=analysis["errors"])
  if prior is not None:
    image_only = accuracy.summarize(predictions.labels, predictions.top_indices, label_map)
    report["image_only"] = {"top1": image_only["top1"], "top5": image_only["top5"]}
    report["location_prior"] = dict(geo_report.compare(predictions), geo_dir=geo_dir,
                                    changes=analysis["prior_changes"])
  if output_dir:
    image_ids, species = photos_wanted(report)
    photos = record_photos.collect(data_dir, split, image_ids=image_ids, species=species)
    report["photos"] = photos.describe()
    write_report(output_dir, report, predictions, label_map, photos=photos)
  return report


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """inat-eval's flags."""
  data_dir: str = flag_config.field(help="Data dir written by inat-build.")
  model_dir: str = flag_config.field(help="Model dir written by inat-train.")
  split: str = flag_config.field("val", "Split to score (needs labels).",
                                 choices=records.READABLE_SPLITS)
  output_dir: str = flag_config.field(
      "", "Where to write the report (default: MODEL_DIR/eval-SPLIT).")
  which: str = trained_model.which_field()
  flip: bool = flag_config.field(False, "Average with the mirrored view.")
  multi_crop: bool = flag_config.field(False, "Average the central and the four corner crops.")
  batch_size: int = flag_config.field(64, "Images per batch.")
  geo_dir: str = flag_config.field("", "A location prior (inat-train-geo): report the scores "
                                   "with and without it, side by side.")


def run(argv=None):
  """Console entry point `inat-eval`."""

  def main(c, _):
    output_dir = c.output_dir or trained_model.eval_dir(c.model_dir, c.split)
    report = evaluate(c.data_dir, c.model_dir, c.split, output_dir=output_dir, which=c.which,
                      flip=c.flip, multi_crop=c.multi_crop, batch_size=c.batch_size,
                      geo_dir=c.geo_dir)
    print(render.text(sections_lib.eval_sections(report)), end="")
    print(f"\nReport: {os.path.join(output_dir, 'report.html')} (tables also in report.md, "
          f"numbers in report.json)")

  flag_config.run_command("inat-eval", EvalConfig, main, argv=argv,
                          errors=(ValueError, FileNotFoundError, geo_prior_lib.GeoError))


if __name__ == "__main__":
  run()
