"""From the report's plain data (report.json's dict) to Sections of blocks: the one place that
decides what each metric looks like, for every rendering at once.

Each function here takes the report dict (and the photo store, for galleries) and returns a
Section, or None when its data is absent. EVAL_SECTIONS lists them; a new metric is one more
function and one more line there (see inat_tf/report/__init__.py).
"""

from inat_tf.report import blocks
from inat_tf.report import photos as photos_lib
from inat_tf.report.blocks import (  # pylint: disable=g-importing-member  (the block vocabulary)
    Column, Facts, Figure, Gallery, Headline, Plot, ReferenceLine, Section, Series, Table,
    Text)

PERCENT_AXIS = (-2, 102)


def species_name(row, prefix):
  """'Abies concolor (white fir)' from a row's {prefix}_name and {prefix}_common_name."""
  common = row.get(f"{prefix}_common_name") or ""
  return row[f"{prefix}_name"] + (f" ({common})" if common else "")


def photo_caption(row, prefix, detail):
  """A photo's caption: the scientific name on the first line (the page sets it in italics), then
  the common name, if any, and `detail`."""
  common = row.get(f"{prefix}_common_name") or ""
  return f"{row[f'{prefix}_name']}\n" + (f"{common}; " if common else "") + detail


def _percent(value):
  return blocks.format_value(value, "percent")


def _title_subject(report):
  """'mobilenet_v1 on val' (the model and the split every title names)."""
  return f"{report.get('model', 'the model')} on {report.get('split', 'the split')}"


# -- summary -----------------------------------------------------------------------------------


def overview(report, photos=None):
  """Model, data, split, edition, date, the settings that produced the answers, the headline."""
  del photos
  settings = report.get("settings", {})
  part = report.get("scored_part", "all")
  facts = Facts((
      ("Model", f"{report.get('model', '?')} ({report.get('which', 'best')}.keras in "
                f"{report.get('model_dir', '?')})"),
      ("Data", report.get("data_dir", "?")),
      ("Split", report.get("split", "?") + ("" if part == "all" else f", {part}")),
      ("Edition", report.get("edition") or "not recorded"),
      ("Images", f"{report['images']:,} labelled, {report['num_classes']:,} species"),
      ("Date", report.get("date", "?")),
  ), title="Run")
  used = Facts(tuple((label, settings.get(key, "none")) for key, label in SETTINGS),
               title="Settings that produced the answers")
  image_only = report.get("image_only")
  baseline = "image only" if image_only else ""
  headline = Headline((
      Figure("top1", "Top-1", report["top1"], image_only and image_only["top1"], baseline,
             report["chance_top1"]),
      Figure("top5", "Top-5", report["top5"], image_only and image_only["top5"], baseline,
             report["chance_top5"]),
      Figure("top5_error", "Top-5 error", report["top5_error"],
             image_only and 1 - image_only["top5"], baseline),
  ), note=("With the settings below" + (", beside the image-only figures" if image_only else "")
           + "; chance is one species in " + f"{report['num_classes']:,}."))
  return Section("overview", "summary", f"{_title_subject(report)}: evaluation report",
                 (headline, facts, used))


SETTINGS = (("crop", "Crop"), ("long_tail_adjustment", "Long-tail adjustment"),
            ("location_prior", "Location prior"), ("restriction", "Restriction"),
            ("roll_up", "Roll-up rule"))


# -- accuracy ----------------------------------------------------------------------------------


def shots(report, photos=None):
  del photos
  rows = tuple({"shots": bucket, **row} for bucket, row in report["shots"].items())
  return Section("shots", "accuracy",
                 "Many / medium / few-shot species (> 100, 20-100, < 20 training images; mean "
                 "over species)",
                 (Table((Column("shots", "Shots"), Column("classes", "Species", "int"),
                         Column("images", "Images", "int"), Column("top1", "Top-1", "percent"),
                         Column("top5", "Top-5", "percent")), rows),),
                 note="Liu et al. 2019's buckets (inat_tf/long_tail.py).")


def supercategories(report, photos=None):
  del photos
  return Section("supercategories", "accuracy",
                 "Per super-category (the paper's Table 4: mean over species)",
                 (Table((Column("supercategory", "Super-category"),
                         Column("species", "Species", "int"),
                         Column("avg_train_images", "Avg train images", "float1"),
                         Column("top1", "Top-1", "percent"), Column("top5", "Top-5", "percent")),
                        tuple(report["supercategories"])),))


def ranks(report, photos=None):
  del photos
  if not report.get("ranks"):
    return None
  return Section("ranks", "accuracy",
                 "At every taxonomic rank (a hit when the predicted taxon at that rank is the "
                 "true one)",
                 (Table((Column("rank", "Rank"), Column("taxa", "Taxa", "int"),
                         Column("top1", "Top-1", "percent"), Column("top5", "Top-5", "percent")),
                        tuple(report["ranks"])),))


def accuracy_vs_train_images(report, photos=None):
  """The paper's Fig. 5: top-1 per species against its training images (log scale), the binned
  mean, the overall top-1 and chance; every number from report["classes"] and
  report["train_count_bins"]."""
  del photos
  classes, bins = report["classes"], report["train_count_bins"]
  table = Table((Column("train_images", "Training images"), Column("species", "Species", "int"),
                 Column("top1_mean", "Mean top-1", "percent"),
                 Column("top1_median", "Median top-1", "percent")), tuple(bins))
  plot = Plot(
      title=f"{_title_subject(report)}: top-1 per species against its training images",
      x_label="Training images of the species (log scale)", y_label="Top-1 of the species (%)",
      series=(Series("one species", tuple(c["train_images"] for c in classes),
                     tuple(100 * c["top1"] for c in classes), style="points"),
              Series("mean over the species of a bin (how many species above)",
                     tuple(b["mean_train_images"] for b in bins),
                     tuple(100 * b["top1_mean"] for b in bins), style="line",
                     labels=tuple(f"{b['species']:,}" for b in bins))),
      reference_lines=(ReferenceLine(f"overall top-1 (over images) {_percent(report['top1'])}",
                                     100 * report["top1"]),
                       ReferenceLine(f"chance {_percent(report['chance_top1'])}",
                                     100 * report["chance_top1"])),
      table=table, x_log=True, y_range=PERCENT_AXIS, file_name="accuracy_vs_train_images.png")
  return Section("fig5", "accuracy",
                 "Top-1 by training images per species (the paper's Fig. 5)", (plot,),
                 note="Each point is a species (its top-1 over its own images); the line is the "
                      "mean over the species of each bin of the table.")


# -- calibration -------------------------------------------------------------------------------


def calibration(report, photos=None):
  del photos
  data = report.get("calibration")
  if not data:
    return None
  filled = [b for b in data["bins"] if b["images"]]
  table = Table((Column("range", "Confidence"), Column("images", "Images", "int"),
                 Column("confidence", "Mean confidence", "percent"),
                 Column("accuracy", "Top-1", "percent")),
                tuple({"range": f"{100 * b['low']:.1f}-{100 * b['high']:.1f}%", **b}
                      for b in data["bins"]), shown_in=blocks.FILES)
  plot = Plot(
      title=f"{_title_subject(report)}: reliability diagram, ECE {_percent(data['ece'])}",
      x_label="Top-1 confidence (%)", y_label="Top-1 accuracy (%)",
      series=(Series("top-1 accuracy of the bin (its images above)", tuple(100 * (b["low"] + b["high"]) / 2
                                                        for b in filled),
                     tuple(100 * b["accuracy"] for b in filled), style="bars",
                     width=100 / data["num_bins"],
                     labels=tuple(f"{b['images']:,}" for b in filled)),
              # Where a calibrated bin's bar would end: its mean confidence, over its centre.
              Series("mean confidence of the bin", tuple(100 * (b["low"] + b["high"]) / 2
                                                         for b in filled),
                     tuple(100 * b["confidence"] for b in filled), style="points")),
      table=table, x_range=(0, 100), y_range=(0, 100), diagonal=True, shown_in=blocks.FILES)
  return Section("calibration", "calibration", "Reliability of the top-1 confidence", (
      Text(f"Expected calibration error (ECE) {_percent(data['ece'])} over {data['images']:,} "
           f"images ({data['method']})."),
      plot), note="Guo et al. 2017, \"On Calibration of Modern Neural Networks\", Sec. 2. A "
                  "perfectly calibrated model's bars reach the diagonal.")


# -- errors ------------------------------------------------------------------------------------


def confusions(report, photos=None):
  errors = report.get("errors")
  if not errors:
    return None
  n = errors["top1_errors"]
  share = lambda k: f"{errors[k]:,} ({100 * errors[k] / n:.1f}%)" if n else "0"
  summary = Text(f"{n:,} top-1 errors; the true and the predicted species share a genus in "
                 f"{share('same_genus')}, a super-category in {share('same_supercategory')}."
                 + ("" if report.get("edition", "2017") not in ("2017", "") else
                    " (2017 publishes no taxonomy: genus is the binomial's first word.)"))
  pairs = errors["confused_pairs"]
  rows = tuple({"count": p["count"], "reverse_count": p["reverse_count"],
                "true": species_name(p, "true"), "true_genus": p["true_genus"],
                "predicted": species_name(p, "predicted"),
                "predicted_genus": p["predicted_genus"],
                "genera": (f"both {p['true_genus']}" if p["same_genus"] else
                           f"{p['true_genus']} / {p['predicted_genus']}")} for p in pairs)
  table = Table((Column("count", "Errors", "int"), Column("true", "True species"),
                 Column("true_genus", "Its genus"), Column("predicted", "Taken for"),
                 Column("predicted_genus", "Its genus"),
                 Column("reverse_count", "The other way", "int")), rows, text_rows=5)
  split = report.get("split", "val")
  cards = tuple((photos_lib.split_photo(photos, split, p["image_id"]).with_caption(
                     photo_caption(p, "true", f"{split} image {p['image_id']}, answer "
                                              f"{_percent(p['confidence'])} sure")),
                 photos_lib.train_photo(photos, p["predicted"]).with_caption(
                     photo_caption(p, "predicted", "taken for it (a train photo)")))
                for p in pairs)
  card_columns = (Column("count", "Errors", "int"), Column("reverse_count", "The other way", "int"),
                  Column("genera", "Genus"))
  return Section("confusions", "errors", "Most-confused species pairs",
                 (summary, Gallery(table, cards, card_columns)) if pairs else (summary,),
                 note="Pairs (true species, species taken for) with the most top-1 errors; left, "
                      "the pair's most confident error; right, a train photo of the species it "
                      "was taken for.")


def mistakes(report, photos=None):
  errors = report.get("errors")
  if not errors or not errors["confident_mistakes"]:
    return None
  rows = tuple({"image_id": m["image_id"], "confidence": m["confidence"],
                "true": species_name(m, "true"), "predicted": species_name(m, "predicted")}
               for m in errors["confident_mistakes"])
  table = Table((Column("image_id", "Image"), Column("true", "True species"),
                 Column("predicted", "Answer"), Column("confidence", "Confidence", "percent")),
                rows)
  split = report.get("split", "val")
  cards = tuple((photos_lib.split_photo(photos, split, m["image_id"]).with_caption(
                     photo_caption(m, "true", f"{split} image {m['image_id']}")),
                 photos_lib.train_photo(photos, m["predicted"]).with_caption(
                     photo_caption(m, "predicted", "the answer (a train photo)")))
                for m in errors["confident_mistakes"])
  return Section("mistakes", "errors", "The most confident mistakes",
                 (Gallery(table, cards, (Column("confidence", "Confidence", "percent"),),
                          shown_in=blocks.FILES),),
                 note="Top-1 errors with the highest top-1 confidence, one per pair of species: "
                      "label noise, look-alikes, or photos of something else.")


# -- location prior ----------------------------------------------------------------------------


def location_prior(report, photos=None):
  """The scores with and without the prior, and how many answers it turned right or wrong."""
  comparison = report.get("location_prior")
  if not comparison:
    return None
  rows = tuple({"name": row["name"], "images": row["images"],
                "top1_image_only": row["image_only"]["top1"],
                "top1_with_prior": row["with_prior"]["top1"],
                "top5_image_only": row["image_only"]["top5"],
                "top5_with_prior": row["with_prior"]["top5"]} for row in comparison["subsets"])
  table = Table((Column("name", "Images"), Column("images", "Count", "int"),
                 Column("top1_image_only", "Top-1 image only", "percent"),
                 Column("top1_with_prior", "Top-1 with prior", "percent"),
                 Column("top5_image_only", "Top-5 image only", "percent"),
                 Column("top5_with_prior", "Top-5 with prior", "percent")), rows)
  content = [Text(f"{comparison['images_with_place']:,} of {comparison['images']:,} images have "
                  f"a place; the prior changed the top-1 of {comparison['top1_changed']:,}."),
             table]
  changes = comparison.get("changes")
  if changes:
    content.append(Table((Column("way", "Top-1 answer"), Column("images", "Images", "int")), (
        {"way": "right → wrong", "images": changes["right_to_wrong"]},
        {"way": "wrong → right", "images": changes["wrong_to_right"]},
        {"way": "wrong → another wrong", "images": changes["wrong_to_wrong"]})))
    split = report.get("split", "val")
    for way, title in (("wrong_to_right", "Turned right by the prior"),
                       ("right_to_wrong", "Turned wrong by the prior")):
      examples = changes["examples"][way]
      if not examples:
        continue
      rows = tuple({"image_id": e["image_id"], "true": species_name(e, "true"),
                    "image_only": species_name(e, "image_only"),
                    "with_prior": species_name(e, "with_prior"),
                    "with_prior_confidence": e["with_prior_confidence"]} for e in examples)
      content.append(Gallery(
          Table((Column("image_id", "Image"), Column("true", "True species"),
                 Column("image_only", "Image only"), Column("with_prior", "With the prior"),
                 Column("with_prior_confidence", "Confidence with prior", "percent")), rows,
                caption=title),
          tuple((photos_lib.split_photo(photos, split, e["image_id"]).with_caption(
              photo_caption(e, "true", f"{split} image {e['image_id']}")),) for e in examples),
          (Column("image_only", "Image only"), Column("with_prior", "With the prior"),
           Column("with_prior_confidence", "Confidence", "percent")), shown_in=blocks.FILES))
  return Section("location-prior", "location",
                 "With and without the location prior (Mac Aodha et al. 2019)", tuple(content),
                 note=f"Prior: {comparison.get('geo_dir', '?')}. On images without a place the "
                      "two columns are equal by construction.")


# -- answers beyond the species ------------------------------------------------------------------


def answers_beyond_species(report, photos=None):
  """Each roll-up rule's answers: precision at the returned rank, species coverage, mistake
  severity; the precision-coverage curves; open-set AUROC and unseen species' placement
  (report["answers"], inat_tf.answer_report)."""
  del photos
  found = report.get("answers")
  if found and found.get("not_computed"):
    return Section("answers", "roll-up", "Answers beyond the species", (Text(
        f"The roll-up rules are not compared here: {found['not_computed']}. predictions.csv's "
        f"taxon column holds the {found['chosen_rule']} rule's answers."),))
  if not found or not found.get("rules"):
    return None
  unseen = found.get("unseen_images", 0) > 0
  rows = []
  for rule in found["rules"]:
    row = {"rule": rule["title"], "setting": rule["setting"], "precision": rule["precision"],
           "answered": rule["answered"], "species_coverage": rule["species_coverage"],
           "species_precision": rule["species_precision"], "mistakes": rule["mistakes"],
           "mistake_severity": rule["mistake_severity"],
           "severity_per_image": rule["severity_per_image"]}
    if unseen:
      row["unseen_placed"] = rule["unseen"]["placed"]
    rows.append(row)
  columns = (Column("rule", "Rule"), Column("setting", "Setting"),
             Column("precision", "Precision at the returned rank", "percent"),
             Column("answered", "Answered", "percent"),
             Column("species_coverage", "Species coverage", "percent"),
             Column("species_precision", "Precision of species answers", "percent"),
             Column("mistakes", "Mistakes", "int"),
             Column("mistake_severity", "Mistake severity (mean LCA height)", "float2"),
             Column("severity_per_image", "LCA height per image", "float3"))
  if unseen:
    columns += (Column("unseen_placed", "Unseen species placed at genus/family", "percent"),)
  skipped = found.get("not_calibrated") or []
  target, tuned = found["target_precision"], found["held_out"]
  scored = [r for r in found["rules"] if r["rule"] in ("precision", "risk")
            and r["precision"] is not None]
  short = [r for r in scored if r["precision"] < target - 0.05]
  calibrated = (f"Calibrated rules were chosen to reach {_percent(target)} at each rank on "
                f"{tuned['images']:,} held-out images ({tuned['split']}, {tuned['part']}); on "
                f"the images scored here they reach "
                + ", ".join(f"{_percent(r['precision'])} ({r['title']})" for r in scored) + "."
                + (f" Below the target: {tuned['images']:,} held-out images are too few to "
                   f"choose thresholds for {_percent(target)} reliably; hold out more "
                   f"(inat-build --minival_fraction)." if short else "")
                if not skipped else
                f"Not compared: {' and '.join(skipped)}, "
                f"which are calibrated on held-out images, and this data dir has none "
                f"({found['held_out']['split']}, {found['held_out']['part']}: 0 images, as no "
                f"species has two); rebuild it with --minival_fraction to compare them.")
  content = [Text(f"Scored on {found['images']:,} images of species the model was trained on: "
                  f"{found['scored']}. Precision: the answered taxon contains the true "
                  f"species. {calibrated}"),
             Table(columns, tuple(rows))]
  curves = found.get("curves", [])
  series = []
  for name in ("inat", "risk", "precision"):
    points = [c for c in curves if c["rule"] == name and c["precision"] is not None]
    if points:
      title = next((r["title"] for r in found["rules"] if r["rule"] == name), name)
      series.append(Series(title, tuple(100 * c["species_coverage"] for c in points),
                           tuple(100 * c["precision"] for c in points), style="line"))
  used = [r for r in found["rules"] if r["precision"] is not None]
  series.append(Series("each rule as used (the table above)",
                       tuple(100 * r["species_coverage"] for r in used),
                       tuple(100 * r["precision"] for r in used), style="points",
                       # the titles' first word: "ours", not the --rollup_rule "precision"
                       labels=tuple(r["title"].split(" (")[0] for r in used)))
  curve_table = Table((Column("rule", "Rule"), Column("knob", "Knob", "float3"),
                       Column("precision", "Precision", "percent"),
                       Column("species_coverage", "Species coverage", "percent"),
                       Column("answered", "Answered", "percent")), tuple(curves), text_rows=0)
  content.append(Plot(
      title=f"{_title_subject(report)}: precision at the returned rank against species coverage",
      x_label="Species coverage: images answered at species rank (%)",
      y_label="Precision at the returned rank (%)", series=tuple(series),
      reference_lines=(ReferenceLine(f"target {_percent(found['target_precision'])}",
                                     100 * found["target_precision"]),),
      table=curve_table, x_range=PERCENT_AXIS, file_name="answers_precision_coverage.png"))
  open_set = found.get("open_set")
  if open_set:
    content.append(Text(
        f"Open set: {found['unseen_images']:,} images of {found['holdout_species']} species "
        f"the model was not trained on (inat-build --holdout_species, or train_count 0 in the "
        f"model's label map). AUROC of seen against unseen: "
        f"MSP {open_set['msp']:.3f}, energy {open_set['energy']:.3f} (0.5 = chance)."))
  return Section("answers", "roll-up", "Answers beyond the species", tuple(content),
                 note="Rules: argmax, iNaturalist's published roll-up (inatVisionAPI "
                      "lib/inat_inferrer.py), ours (per-rank thresholds), conditional risk over "
                      "the tree (Karthik et al. 2021); severity as Bertinetto et al. 2020.")


# -- per species -------------------------------------------------------------------------------


def species_table(report, photos=None):
  del photos
  has_common = any(c.get("common_name") for c in report["classes"])
  columns = (Column("name", "Species"),) + (
      (Column("common_name", "Common name"),) if has_common else ()) + (
      Column("supercategory", "Super-category"),
      Column("train_images", "Train images", "int"),
      Column("eval_images", f"{report.get('split', 'Eval').capitalize()} images", "int"),
      Column("top1", "Top-1", "percent"), Column("top5", "Top-5", "percent"),
      Column("confused_with", "Most often taken for"),
      Column("confused_count", "Times", "int"))
  return Section("species", "species", "Every species",
                 (Table(columns, tuple(report["classes"]), sortable=True,
                        shown_in=blocks.PAGE_ONLY),),
                 note="Click a header to sort, type to filter. Also in per_class.csv (with the "
                      "genus).")


# The evaluation report, in page order inside each group (blocks.GROUPS orders the groups).
EVAL_SECTIONS = (overview, location_prior, shots, supercategories, ranks,
                 accuracy_vs_train_images, answers_beyond_species, calibration, confusions,
                 mistakes, species_table)


def eval_sections(report, photos=None, extra=()):
  """The Sections of an inat-eval report, in page order. extra: more section functions (a
  metric not yet in EVAL_SECTIONS), each f(report, photos) -> Section or None."""
  built = [make(report, photos) for make in tuple(EVAL_SECTIONS) + tuple(extra)]
  return blocks.in_page_order([s for s in built if s is not None])
