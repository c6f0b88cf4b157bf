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

The answer flags (inat_tf/answer_options.py): --taxon / --checklist restrict every answer;
--rollup_rule picks the rule whose taxon predictions.csv lists (argmax by default: the headline
stays top-1 species). Whatever the flag, the section "Answers beyond the species" compares four
rules (argmax, iNat's, ours at --rollup_precision, conditional risk) on the images of seen
species: precision at the returned rank, species coverage, mistake severity and the
precision-coverage curve (inat_tf/answer_report.py). The calibrated rules are chosen on minival,
or on the tune half of val (then only the report half scores them), and stored in
MODEL_DIR/rollup-<which>.json for inat-predict, inat-classify and inat-export. On a data dir
built with --holdout_species, or with a model trained on one (train_count 0 in its label map),
the headline scores the seen species and the section adds the open-set AUROC (MSP, energy) and
where each rule places the unseen species' images.

The metrics are plain data (inat_tf/report/accuracy.py, calibration.py, errors.py,
inat_tf/geo/report.py); inat_tf/report/ renders them, for the terminal, report.md and report.html.
"""

import csv
import dataclasses
import datetime
import io
import os
import time

import numpy as np
import tensorflow as tf

from inat_tf import answer_options
from inat_tf import answer_report
from inat_tf import answers as answers_lib
from inat_tf import cli
from inat_tf import long_tail
from inat_tf import label_map as label_map_lib
from inat_tf import progress
from inat_tf import records
from inat_tf import rollup
from inat_tf import run_common
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
from inat_tf.commands.eval import EvalConfig  # pylint: disable=unused-import

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


def settings(trained, flip, multi_crop, geo_dir, *, options=None, restriction_words="",
             answers_data=None):
  """What produced the answers, in words (the page's and report.json's "settings")."""
  options = options or answer_options.Options(rule="argmax")
  chosen = next((r for r in (answers_data or {}).get("rules", [])
                 if r["rule"] == options.rule), None)
  floor = (f", floor {options.floor:g}" + (", captive: not used" if options.captive else "")
           if geo_dir else "")
  return {"crop": _views(trained, flip, multi_crop),
          "long_tail_adjustment": trained.adjustment.describe() if trained.adjustment else "none",
          "location_prior": f"{geo_dir} (Mac Aodha et al. 2019){floor}" if geo_dir else "none",
          "restriction": restriction_words or f"none (all {trained.label_map.num_classes:,} "
                                              f"species)",
          "roll_up": ("none (species answers; the rules compared under Answers beyond the "
                      "species)" if options.rule == "argmax" else
                      f"{options.rule}: {chosen['setting'] if chosen else options.rule} "
                      f"(predictions.csv's taxon column)")}


def _csv_text(rows, fields):
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows)
  return buffer.getvalue()


def _predictions_csv(predictions, label_map, taxonomy=None):
  ids = label_map.category_ids
  chosen = (predictions.answers or {}).get("chosen_taxon")
  top, _ = answers(predictions)
  with_prior = predictions.geo_top_indices is not None
  rows = []
  for n, (image_id, label) in enumerate(zip(predictions.image_ids, predictions.labels)):
    row = {"id": int(image_id), "label_category_id": ids[label] if label >= 0 else "",
           "top5_category_ids": " ".join(str(ids[t]) for t in top[n] if t >= 0)}
    if with_prior:
      row["image_only_top5_category_ids"] = " ".join(
          str(ids[t]) for t in predictions.top_indices[n] if t >= 0)
    if chosen is not None and taxonomy is not None:
      node = int(chosen[n])
      row.update(taxon=taxonomy.node_names[node] if node >= 0 else "",
                 taxon_rank=taxonomy.rank_of(node) if node >= 0 else "",
                 msp=f"{predictions.answers['msp'][n]:.6g}",
                 energy=f"{predictions.answers['energy'][n]:.6g}")
    rows.append(row)
  return _csv_text(rows, ["id", "label_category_id", "top5_category_ids"] +
                   ["image_only_top5_category_ids"] * with_prior +
                   ["taxon", "taxon_rank", "msp", "energy"] * (chosen is not None and
                                                               taxonomy is not None))


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
      "predictions.csv": _predictions_csv(predictions, label_map,
                                          answer_options.taxonomy_of_label_map(label_map)),
  }
  files.update({p.file_name: pngs[id(p)] for p in plots.every_plot(sections) if p.file_name})
  files["report.json"] = render.json_text(report)
  paths = {}
  for name, content in files.items():
    paths[name] = os.path.join(output_dir, name)
    run_common.write_bytes(paths[name], content if isinstance(content, bytes) else
                           content.encode("utf-8"))
  return paths


def _of_unseen_species(unseen_species, labels):
  """[N] bool: the images whose label is one of `unseen_species` ([C] bool); unlabelled: False."""
  return unseen_species[np.maximum(labels, 0)] & (labels >= 0)


def _answers_section(trained, predictions, options, *, data_dir, split, model_dir, which, flip,
                     multi_crop, restricted_or_located, unseen_species, reported=None):
  """(report["answers"], the chosen rule's taxon per image) for the split's predictions (with
  probabilities); see inat_tf.answer_report. unseen_species: [C] bool
  (answer_options.unseen_classes); reported: [N] bool, the images a long-tail adjustment leaves
  to report (None: all)."""
  tree = answer_options.taxonomy_of(trained)
  source = answer_options.held_out_source(data_dir)
  if source == ("val", "tune") and split == "val" and not restricted_or_located:
    held_out = answer_options.from_predictions(  # the same images, read once
        source, predictions, unseen_species, data_dir=data_dir)
  else:
    held_out = answer_options.held_out_predictions(trained, data_dir, flip=flip,
                                                   multi_crop=multi_crop)
  rules, not_calibrated = {}, []
  for name in answer_report.RULE_ORDER:
    if name != options.rule and name in answer_report.CALIBRATED and not len(held_out[1]):
      # compared only where it can be chosen; asked for, refused
      not_calibrated.append(answer_report.RULE_TITLES[name])
      continue
    rules[name] = answer_options.rule_for(
        dataclasses.replace(options, rule=name), tree, model_dir=model_dir, which=which,
        views=answer_options.views_of(flip, multi_crop), held_out=lambda: held_out,
        recalibrate_stale=True,
        held_out_wanted=answer_options.held_out_description(data_dir, source))
  chosen = rules[options.rule]
  unseen = _of_unseen_species(unseen_species, predictions.labels)
  scored, scored_words = answer_report.scored_mask(source, split, predictions.labels,
                                                   predictions.image_ids)
  scored |= unseen  # unseen species' images never calibrate: all of them are scored
  if reported is not None:  # a long-tail adjustment was tuned on the rest of this split
    scored &= reported
  section = answer_report.beyond_species(
      predictions.probabilities[scored], predictions.labels[scored], tree, rules,
      unseen=unseen[scored],
      open_scores={k: predictions.answers[k][scored] for k in ("msp", "energy")},
      held_out=held_out[:2], target=options.precision)
  section.update(scored=scored_words, held_out=held_out[2], chosen_rule=options.rule,
                 holdout_species=int(unseen_species.sum()), not_calibrated=not_calibrated)
  nodes = rollup.roll_up_numpy(predictions.probabilities, tree, chosen)["node"]
  return section, nodes


def evaluate(data_dir, model_dir, split="val", *, output_dir="", which="best", flip=False,
             multi_crop=False, batch_size=64, geo_dir="", options=None):
  """Scores a trained model on a split; writes the report if output_dir; returns the report.

  geo_dir: a location prior (inat-train-geo); the answers (top1, top5 and every table) are then
  those with the prior; the report gains "image_only" (top1, top5 without it) and
  "location_prior", the scores with and without it side by side (inat_tf.geo.report) and the
  answers it turned right or wrong.
  options: the answer flags (answer_options.Options; default argmax, no restriction): a
  restriction changes every answer; the report's "answers" compares the four roll-up rules
  (inat_tf.answer_report). With species the model was not trained on (inat-build
  --holdout_species here or in the model's build; answer_options.unseen_classes) the headline and
  every species table score the seen species' images; "answers" adds the open-set AUROC and
  where the unseen species' images are placed.
  """
  options = options or answer_options.Options(rule="argmax")
  trained = trained_model.load(model_dir, which)
  label_map_lib.check_same(data_dir, model_dir)
  prior = geo_prior_lib.load(geo_dir) if geo_dir else None
  if prior is not None:
    prior.check_matches(trained.label_map, model_dir)
  tree = answer_options.taxonomy_of(trained)
  allowed, restriction_words = answer_options.restriction(options, tree, trained.label_map)
  too_large = answer_options.too_many_probabilities(records.split_examples(data_dir, split),
                                                    trained.label_map.num_classes)
  unseen_species = answer_options.unseen_classes(data_dir, trained.label_map)
  rule = rollup.ArgmaxRule() if not too_large else answer_options.rule_for_model(
      options, trained, model_dir, which, data_dir=data_dir, flip=flip)
  predictions = trained_model.predict(
      trained, data_dir, split, batch_size=batch_size, flip=flip, multi_crop=multi_crop,
      geo_prior=prior, allowed=allowed, captive=options.captive,
      keep_probabilities=not too_large,
      answer_config=answers_lib.AnswerConfig(rule=rule, floor=options.floor))
  keep = long_tail.reported_mask(predictions.labels, predictions.image_ids, trained.adjustment,
                                 split)
  if too_large:  # the chosen rule's answers came out of the pipeline; no comparison
    answers_data = {"not_computed": (
        f"comparing the roll-up rules holds every image's probabilities: {too_large}; evaluate "
        f"a smaller split (a minival: inat-build --minival_fraction) to compare them"),
        "chosen_rule": options.rule}
    predictions.answers["chosen_taxon"] = predictions.answers["taxon"]
  else:
    # On the whole split: its halves are those of the stored adjustment (the same seed), so the
    # roll-up is calibrated on the adjustment's tune half and scored on its report half.
    answers_data, chosen_nodes = _answers_section(
        trained, predictions, options, data_dir=data_dir, split=split, model_dir=model_dir,
        which=which, flip=flip, multi_crop=multi_crop, reported=keep,
        restricted_or_located=allowed is not None or prior is not None,
        unseen_species=unseen_species)
    predictions.answers["chosen_taxon"] = chosen_nodes
  if keep is not None:  # the adjustment was tuned on the other half of this split
    predictions = predictions.subset(keep)
  predictions.probabilities = None  # [N, C]: not needed any more
  if unseen_species.any():  # the species tables score what the model was trained on
    predictions = predictions.subset(~_of_unseen_species(unseen_species, predictions.labels))
  label_map = trained.label_map
  if allowed is not None:  # the scores count images no restricted answer can get right
    outside = int(np.sum(~np.asarray(allowed)[predictions.labels[predictions.labels >= 0]]))
    restriction_words += (f" ({int(np.sum(allowed)):,} of {label_map.num_classes:,} species; "
                          f"{outside:,} of the {len(predictions.labels):,} scored images are of "
                          f"species outside it, wrong by construction)")
  report = accuracy.summarize(predictions.labels, answers(predictions)[0], label_map)
  report.update(
      model=trained.model_name, model_dir=model_dir, which=which, data_dir=data_dir, split=split,
      edition=label_map.edition,
      date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      settings=settings(trained, flip, multi_crop, geo_dir, options=options,
                        restriction_words=restriction_words, answers_data=answers_data),
      flip=flip, multi_crop=multi_crop,
      long_tail_adjustment=dataclasses.asdict(trained.adjustment) if trained.adjustment else None,
      scored_part=("report half (the adjustment was tuned on the other)"
                   if keep is not None else "all")
      + (f", seen species only ({int(unseen_species.sum())} the model was not trained on)"
         if unseen_species.any() else ""),
      answers=answers_data)
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
                    geo_dir=c.geo_dir, options=answer_options.Options.from_config(c))
  print(render.text(sections_lib.eval_sections(report)), end="")
  print(f"\nReport: {os.path.join(output_dir, 'report.html')} (tables also in report.md, "
        f"numbers in report.json)", flush=True)
  cli.say(f"done: {report['images']:,} images in {progress.duration(time.monotonic() - start)}: "
          f"top-1 {100 * report['top1']:.1f}%, top-5 {100 * report['top5']:.1f}%; report in "
          f"{output_dir}")

