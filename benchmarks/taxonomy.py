"""Roll-up rules, restriction and the open set on a generated download, side by side.

  nice -n 10 python benchmarks/taxonomy.py --work_dir /tmp/inat-taxonomy-bench

A generated iNat2021-format download (inat-make-sample: a real seven-rank taxonomy; species of a
genus differ only by spot count, genera of a family by neighbouring hues, orders and classes
more) with 3-5 species per genus. Some species are held out as the open set: the benchmark writes
a second download whose JSONs lack them (their images stay in the archives, unlisted), builds
both, and trains MobileNet V1 from scratch on the seen species. Every answer comes from the one
pipeline (inat_tf.answers.answer). The seen species' val images are cut into tune and report
halves (long_tail.stratified_halves, as inat-adjust does): thresholds and lambda are chosen on the
tune half, every figure is on the report half, and the unseen species' val images are the open
set. Rules:

  argmax            the top species
  iNat 0.78         iNaturalist's published rule (inat_tf.rollup.InatRule)
  iNat @ target     the same with its share threshold raised until the tune half reaches
                    --target_precision (iNat's rule at equal precision)
  ours              per-rank thresholds meeting --target_precision at each rank on the tune half
  risk @ target     conditional risk over the tree, lambda chosen for --target_precision
  CRM (lambda 1)    Karthik et al.'s species-level CRM

Prints precision, species coverage, mistake severity, mean LCA height, unseen placement and the
open-set AUROC, then precision-coverage curves; writes everything to WORK_DIR/taxonomy.json.
Stages already finished in --work_dir (downloads, builds, model) are reused.
"""

import argparse
import json
import os
import resource
import time

import numpy as np


def _stage(name, done, run):
  start = time.perf_counter()
  if done():
    print(f"{name}: reused", flush=True)
    return
  run()
  print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)


def _genus_key(category, ranks):
  return tuple(category[rank] for rank in ranks)


def choose_holdout(download, edition, per_genus, min_genus_size, seed):
  """Category ids to hold out: `per_genus` species of each genus with >= min_genus_size species
  (so every unseen species has seen siblings), drawn with `seed`."""
  with open(os.path.join(download, edition.splits["train"].annotations)) as f:
    categories = json.load(f)["categories"]
  by_genus = {}
  for category in sorted(categories, key=lambda c: c["id"]):
    by_genus.setdefault(_genus_key(category, edition.ranks), []).append(category["id"])
  rng = np.random.default_rng([seed, 27])
  held = []
  for key in sorted(by_genus):
    ids = by_genus[key]
    if len(ids) >= min_genus_size:
      held.extend(int(i) for i in rng.choice(ids, size=per_genus, replace=False))
  return sorted(held)


def write_seen_download(download, seen, edition, held_ids):
  """A copy of `download` whose train and val JSONs lack the held-out species (images,
  annotations, categories); archives and the test JSON are symlinked unchanged."""
  os.makedirs(seen, exist_ok=True)
  held = set(held_ids)
  rewritten = {edition.splits[s].annotations for s in ("train", "val")}
  for name in os.listdir(download):
    if name in rewritten:
      with open(os.path.join(download, name)) as f:
        document = json.load(f)
      dropped = {a["image_id"] for a in document["annotations"] if a["category_id"] in held}
      document["images"] = [i for i in document["images"] if i["id"] not in dropped]
      document["annotations"] = [a for a in document["annotations"]
                                 if a["category_id"] not in held]
      document["categories"] = [c for c in document["categories"] if c["id"] not in held]
      with open(os.path.join(seen, name) + ".partial", "w") as f:
        json.dump(document, f)
      os.replace(os.path.join(seen, name) + ".partial", os.path.join(seen, name))
    elif not os.path.exists(os.path.join(seen, name)):
      os.symlink(os.path.abspath(os.path.join(download, name)), os.path.join(seen, name))


def split_logits(trained, data_dir, split, *, flip=False, batch_size=128):
  """(logits [N, V, C], labels [N], image ids [N]) of every example of a split: the central crop
  inat-eval uses, and its mirror image with flip (V = 2)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from inat_tf import preprocessing, records, schema  # pylint: disable=g-import-not-at-top

  def views(example):
    images = preprocessing.eval_views(example[schema.ENCODED], trained.image_size, flip=flip,
                                      crop_fraction=trained.eval_crop_fraction)
    return trained.normalize(images), example[schema.LABEL], example[schema.IMAGE_ID]

  dataset = (records.examples(data_dir, split, [schema.ENCODED, schema.LABEL, schema.IMAGE_ID])
             .map(views, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2))

  @tf.function
  def model(images):  # [batch, V, h, w, 3] -> [batch, V, C]
    shape = tf.shape(images)
    logits = trained.model(tf.reshape(images, tf.concat([[-1], shape[2:]], 0)), training=False)
    return tf.reshape(logits, [shape[0], shape[1], -1])

  parts = [(model(images).numpy(), labels.numpy(), ids.numpy())
           for images, labels, ids in dataset]
  return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def run_pipeline(logits, taxonomy, config, allowed=None, batch_size=256):
  """inat_tf.answers.answer over [N, (V,) C] logits in batches: a dict of numpy arrays."""
  from inat_tf import answers  # pylint: disable=g-import-not-at-top
  keys = ("probabilities", "taxon", "rank", "species", "msp", "energy")
  parts = []
  for start in range(0, len(logits), batch_size):
    rows = slice(start, start + batch_size)
    out = answers.answer(answers.Inputs(
        logits=logits[rows], allowed=None if allowed is None else allowed[rows]), taxonomy, config)
    parts.append({key: out[key].numpy() for key in keys})
  return {key: np.concatenate([p[key] for p in parts]) for key in keys}


def unseen_lineage_nodes(full_map, seen_taxonomy, classes):
  """[N, num_ranks] each unseen class's own taxon at each rank as a node of the seen taxonomy
  (-1 at species, and where the seen species have no such taxon)."""
  from inat_tf import taxonomy as taxonomy_lib  # pylint: disable=g-import-not-at-top
  by_lineage = {tuple(n for _, n in seen_taxonomy.lineage(v)): v
                for v in range(seen_taxonomy.num_classes, seen_taxonomy.num_nodes)}
  full_ranks = taxonomy_lib.ranks_of(full_map)
  assert full_ranks == seen_taxonomy.ranks
  rows = []
  for c in classes:
    names, _ = taxonomy_lib.class_lineage(full_map, int(c))
    top_down = list(reversed(names))  # top rank first, species last
    row = [-1]
    for r in range(1, len(full_ranks)):
      row.append(by_lineage.get(tuple(top_down[:len(full_ranks) - r]), -1))
    rows.append(row)
  return np.asarray(rows, np.int64)


def _pct(value):
  return "    -" if value is None else f"{100 * value:5.1f}"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--work_dir", required=True)
  parser.add_argument("--edition", default="2021")
  parser.add_argument("--num_species", type=int, default=96)
  parser.add_argument("--species_per_genus", type=int, nargs=2, default=(3, 5))
  parser.add_argument("--min_train", type=int, default=20)
  parser.add_argument("--max_train", type=int, default=80)
  parser.add_argument("--val_per_species", type=int, default=20)
  parser.add_argument("--holdout_per_genus", type=int, default=1)
  parser.add_argument("--max_side", type=int, default=64)
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--epochs", type=float, default=20)
  parser.add_argument("--target_precision", type=float, default=0.95)
  parser.add_argument("--flip", action="store_true",
                      help="Average each image's softmax with its mirror image's (inat-eval --flip).")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  from inat_tf import answer_metrics
  from inat_tf import answers
  from inat_tf import editions
  from inat_tf import long_tail
  from inat_tf import rollup
  from inat_tf import sample_download
  from inat_tf import taxonomy as taxonomy_lib
  from inat_tf import train
  from inat_tf import trained_model
  from inat_tf.label_map import LabelMap
  from tfrecord_builder import build

  edition = editions.get(args.edition)
  work = {name: os.path.join(args.work_dir, name) for name in (
      "download", "download_seen", "data_full", "data_seen", "model")}
  quiet = lambda message: None
  train_json = edition.splits["train"].annotations
  _stage("make-sample", lambda: os.path.exists(os.path.join(work["download"], train_json)),
         lambda: sample_download.make_sample(work["download"], sample_download.SampleConfig(
             num_species=args.num_species, min_train_per_species=args.min_train,
             max_train_per_species=args.max_train, val_per_species=args.val_per_species,
             max_side=args.max_side, seed=args.seed, edition=args.edition,
             min_species_per_genus=args.species_per_genus[0],
             max_species_per_genus=args.species_per_genus[1])))
  holdout_path = os.path.join(args.work_dir, "holdout.json")
  if not os.path.exists(holdout_path):
    held_ids = choose_holdout(work["download"], edition, args.holdout_per_genus,
                              args.species_per_genus[0], args.seed)
    with open(holdout_path, "w") as f:
      json.dump(held_ids, f)
  with open(holdout_path) as f:
    held_ids = json.load(f)
  _stage("seen download", lambda: os.path.exists(os.path.join(work["download_seen"], train_json)),
         lambda: write_seen_download(work["download"], work["download_seen"], edition, held_ids))
  for raw, data in (("download", "data_full"), ("download_seen", "data_seen")):
    _stage(f"build {data}", lambda data=data: os.path.exists(os.path.join(work[data],
                                                                          "label_map.json")),
           lambda raw=raw, data=data: build.build(build.BuildConfig(
               raw_dir=work[raw], data_dir=work[data], splits=("train", "val")), log=quiet))
  _stage("train", lambda: os.path.exists(os.path.join(work["model"], "final.keras")),
         lambda: train.train(train.TrainConfig(
             data_dir=work["data_seen"], model_dir=work["model"], model="mobilenet_v1",
             image_size=args.image_size, batch_size=32, epochs=args.epochs, weights="none",
             learning_rate=0.1, bn_momentum=0.9, lr_schedule="cosine", seed=args.seed,
             eval_every_epochs=5), log=quiet))

  start = time.perf_counter()
  trained = trained_model.load(work["model"], "final")
  seen_map, full_map = LabelMap.load(work["data_seen"]), LabelMap.load(work["data_full"])
  tree = taxonomy_lib.from_label_map(seen_map)
  logits, labels, image_ids = split_logits(trained, work["data_seen"], "val", flip=args.flip)
  full_logits, full_labels, _ = split_logits(trained, work["data_full"], "val", flip=args.flip)
  held = np.isin(np.asarray(full_map.category_ids)[full_labels], held_ids)
  unseen_logits, unseen_classes = full_logits[held], full_labels[held]
  unseen_nodes = unseen_lineage_nodes(full_map, tree, unseen_classes)
  tune = long_tail.stratified_halves(labels, image_ids, seed=args.seed)
  report = ~tune
  print(f"inference: {time.perf_counter() - start:.1f} s; {seen_map.num_classes} seen species "
        f"({len(held_ids)} held out), val: {tune.sum()} tune / {report.sum()} report images, "
        f"{len(unseen_classes)} images of unseen species", flush=True)

  def answer(rule, rows_logits):
    return run_pipeline(rows_logits, tree, answers.AnswerConfig(rule=rule))

  tune_probabilities = answer(rollup.ArgmaxRule(), logits[tune])["probabilities"]
  target = args.target_precision
  ours, ours_report = rollup.calibrate_thresholds(tune_probabilities, labels[tune], tree, target)
  calibrated = {}
  for per_rank in (False, True):
    for name, calibrate in (("iNat", rollup.calibrate_inat), ("risk", rollup.calibrate_risk)):
      calibrated[name, per_rank] = calibrate(tune_probabilities, labels[tune], tree,
                                             target_precision=target, per_rank=per_rank)
  rules = [("argmax", rollup.ArgmaxRule()), ("iNat 0.78", rollup.InatRule()),
           (f"iNat @{target:g} all", calibrated["iNat", False]),
           (f"iNat @{target:g} rank", calibrated["iNat", True]),
           (f"ours @{target:g} rank", ours),
           (f"risk @{target:g} all", calibrated["risk", False]),
           (f"risk @{target:g} rank", calibrated["risk", True]),
           ("CRM (lambda 1)", rollup.RiskRule(1.0))]
  rows = []
  for name, rule in rules:
    if rule is None:
      rows.append({"rule": name, "note": "no threshold on the grid reaches the target"})
      continue
    seen_out = answer(rule, logits[report])
    unseen_out = answer(rule, unseen_logits)
    metrics = answer_metrics.answer_metrics(seen_out["taxon"], labels[report], tree)
    placement = answer_metrics.unseen_placement(unseen_out["taxon"], unseen_nodes, tree)
    rows.append({"rule": name, "config": rollup.rule_to_json(rule), "seen": metrics,
                 "unseen": placement})

  argmax_seen = answer(rollup.ArgmaxRule(), logits[report])
  argmax_unseen = answer(rollup.ArgmaxRule(), unseen_logits)
  def within_genus(out):  # the top species' share of its genus: low when siblings compete
    masses = rollup.ancestor_masses(out["probabilities"], tree).numpy()
    rows = np.arange(len(out["species"]))
    return masses[rows, out["species"], 0] / masses[rows, out["species"], 1]
  max_logit = lambda values: values.max(-1).mean(-1) if values.ndim == 3 else values.max(-1)
  open_set = {"msp": answer_metrics.auroc(-argmax_seen["msp"], -argmax_unseen["msp"]),
              "energy": answer_metrics.auroc(argmax_seen["energy"], argmax_unseen["energy"]),
              "max_logit": answer_metrics.auroc(-max_logit(logits[report]),
                                                -max_logit(unseen_logits)),
              "within_genus": answer_metrics.auroc(-within_genus(argmax_seen),
                                                   -within_genus(argmax_unseen))}

  # Restriction: each report image restricted to its true class-rank taxon (a regional list
  # that holds it), against unrestricted; exactness is tested in tests/test_answers.py.
  class_rank = tree.ranks.index("class") if "class" in tree.ranks else tree.num_ranks - 1
  allowed = tree.ancestors[:, class_rank][None, :] == tree.ancestors[labels[report], class_rank][
      :, None]
  restricted = run_pipeline(logits[report], tree, answers.AnswerConfig(rule=rollup.ArgmaxRule()),
                            allowed=allowed)
  restriction_row = {"taxon_rank": tree.ranks[class_rank],
                     "top1_unrestricted": float(np.mean(argmax_seen["species"] == labels[report])),
                     "top1_restricted": float(np.mean(restricted["species"] == labels[report]))}

  curves = {"iNat": [], "ours": [], "risk": [], "argmax (MSP cut)": []}
  for threshold in np.round(np.arange(0.30, 1.0, 0.05), 2):
    out = answer(rollup.InatRule(threshold=float(threshold)), logits[report])
    curves["iNat"].append(answer_metrics.curve_point(
        float(threshold), answer_metrics.answer_metrics(out["taxon"], labels[report], tree)))
  for wanted in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99):
    rule, _ = rollup.calibrate_thresholds(tune_probabilities, labels[tune], tree, wanted)
    out = answer(rule, logits[report])
    curves["ours"].append(answer_metrics.curve_point(
        wanted, answer_metrics.answer_metrics(out["taxon"], labels[report], tree)))
  for lam in np.round(np.arange(0.0, 1.01, 0.1), 2):
    out = answer(rollup.RiskRule(float(lam)), logits[report])
    curves["risk"].append(answer_metrics.curve_point(
        float(lam), answer_metrics.answer_metrics(out["taxon"], labels[report], tree)))
  for cut in np.round(np.arange(0.0, 1.0, 0.1), 2):
    nodes = np.where(argmax_seen["msp"] >= cut, argmax_seen["species"], -1)
    curves["argmax (MSP cut)"].append(answer_metrics.curve_point(
        float(cut), answer_metrics.answer_metrics(nodes, labels[report], tree)))

  print(f"\n{args.edition} sample: {seen_map.num_classes} seen species, ranks "
        f"{', '.join(tree.ranks)}; {trained.model_name} at {trained.image_size} px"
        f"{', flip views' if args.flip else ''}; "
        f"report half {report.sum()} images, unseen {len(unseen_classes)} images.")
  print("Percentages of report-half images; severity: mean LCA height of the mistakes, and "
        "summed over all images; @0.95 all / rank: calibrated on the tune half to 0.95 "
        "precision overall / at every rank; unseen: images of held-out species.")
  header = (f"{'rule':18s} {'prec':>5s} {'answ':>5s} {'sp.cov':>6s} {'sp.prec':>7s} "
            f"{'mistakes':>8s} {'severity':>8s} {'sev/img':>7s} {'unseen placed':>13s} "
            f"{'unseen sp.':>10s}")
  print(header)
  for row in rows:
    if "note" in row:
      print(f"{row['rule']:18s} {row['note']}")
      continue
    seen, unseen = row["seen"], row["unseen"]
    severity = "-" if seen["mistake_severity"] is None else f"{seen['mistake_severity']:.2f}"
    print(f"{row['rule']:18s} {_pct(seen['precision'])} {_pct(seen['answered'])} "
          f"{_pct(seen['species_coverage']):>6s} {_pct(seen['species_precision']):>7s} "
          f"{seen['mistakes']:8d} {severity:>8s} {seen['severity_per_image']:7.3f} "
          f"{_pct(unseen['placed']):>13s} {_pct(unseen['per_rank']['species']['answered']):>10s}")
  chosen = [f"{r['rank']} " + ("never" if r["threshold"] is None else f"{r['threshold']:.3f}")
            for r in ours_report]
  print(f"per-rank thresholds chosen on the tune half: {', '.join(chosen)}")
  knobs = {name: rollup.rule_to_json(rule) for name, rule in rules if rule is not None}
  print("chosen on the tune half: " + "; ".join(
      f"{name}: {', '.join(f'{k} {v}' for k, v in knob.items() if k != 'name')}"
      for name, knob in knobs.items() if name.split(" @")[0] in ("iNat", "risk")))
  print(f"open set AUROC (seen report half vs unseen): MSP {open_set['msp']:.3f}, energy "
        f"{open_set['energy']:.3f} (the pipeline's two); max logit {open_set['max_logit']:.3f}, "
        f"top species' share of its genus {open_set['within_genus']:.3f}")
  print(f"restriction to the true {restriction_row['taxon_rank']}: top-1 "
        f"{100 * restriction_row['top1_unrestricted']:.1f}% -> "
        f"{100 * restriction_row['top1_restricted']:.1f}%")
  by_name = {row["rule"]: row for row in rows if "note" not in row}
  argmax_row = by_name["argmax"]
  for ours_name, other in ((f"ours @{target:g} rank", f"iNat @{target:g} rank"),
                           (f"risk @{target:g} all", f"iNat @{target:g} all")):
    if ours_name in by_name and other in by_name:
      gain = by_name[ours_name]["seen"]["species_coverage"] - by_name[other]["seen"][
          "species_coverage"]
      print(f"goal: species coverage {ours_name} - {other}: {100 * gain:+.1f} points "
            f"(goal >= +5)")
  for name, row in by_name.items():
    if name == "argmax" or row["seen"]["mistake_severity"] is None:
      continue
    seen = row["seen"]
    print(f"goal: {name}: mistake severity {seen['mistake_severity']:.2f} = "
          f"{seen['mistake_severity'] / argmax_row['seen']['mistake_severity']:.2f} x argmax; "
          f"per image {seen['severity_per_image']:.3f} = "
          f"{seen['severity_per_image'] / argmax_row['seen']['severity_per_image']:.2f} x argmax "
          f"(goal <= 0.8)")
  print("\nprecision-coverage curves (report half): knob: precision / answered / species coverage")
  for name, points in curves.items():
    print(f"  {name}: " + "; ".join(
        f"{p['knob']:g}: {_pct(p['precision']).strip()}/{_pct(p['answered']).strip()}/"
        f"{_pct(p['species_coverage']).strip()}" for p in points))
  print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
  with open(os.path.join(args.work_dir, "taxonomy.json"), "w") as f:
    json.dump({"args": vars(args), "held_out_category_ids": held_ids, "rules": rows,
               "thresholds": ours_report, "open_set_auroc": open_set,
               "restriction": restriction_row, "curves": curves}, f, indent=1)


if __name__ == "__main__":
  main()
