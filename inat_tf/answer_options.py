"""From a command's answer flags to the answer pipeline's inputs: the roll-up rule (calibrated
ones stored beside the model), the restriction mask, the location floor and opt-out.

The flags (inat_tf/commands/__init__.py, the same in inat-eval, inat-predict, inat-classify and
inat-export): --rollup_rule {argmax, inat, precision, risk}, --rollup_precision P, --taxon NAME,
--checklist FILE, --location_floor F, --captive; inat-export has no --taxon, --checklist or
--captive (an exported model takes them per request).

Calibrated rules ("precision": rollup.calibrate_thresholds, per-rank thresholds each meeting P;
"risk": rollup.calibrate_risk, the most specific lambda whose answers meet P at every rank) are
chosen on held-out images, never on those they are then scored on:
  - the data dir's minival split when it has one (inat-build --minival_fraction / --minival_ids:
    images held out of train), used whole;
  - else the *tune* half of val (long_tail.stratified_halves, seed 0: the same halves inat-adjust
    uses), and inat-eval on val then scores the roll-up on the report half.
The rule is stored in MODEL_DIR/rollup-<which>.json keyed by rule, target and views, with the
sha256 of the model file and of any stored long-tail adjustment (they change the
probabilities): inat-predict, inat-classify and inat-export reuse it, and a calibration made for
other weights is refused with a one-line message (a stale one is never applied silently).
"""

import dataclasses
import hashlib
import json
import os
import shlex

import numpy as np
import tensorflow as tf

from inat_tf import choices
from inat_tf import label_map as label_map_lib
from inat_tf import long_tail
from inat_tf import records
from inat_tf import restriction as restriction_lib
from inat_tf import rollup
from inat_tf import run_common
from inat_tf import taxonomy as taxonomy_lib
from inat_tf.geo import prior as prior_lib

TUNE_SEED = 0  # long_tail.stratified_halves' seed for the val tune half (inat-adjust's default)


class RollupError(ValueError):
  """A calibrated roll-up rule cannot be used: missing, stale, or no held-out images."""


@dataclasses.dataclass(frozen=True)
class Options:
  """The answer flags of a command (see the module docstring)."""
  rule: str = "inat"
  precision: float = 0.95
  taxon: str = ""
  checklist: str = ""
  floor: float = prior_lib.DEFAULT_FLOOR
  captive: bool = False

  @classmethod
  def from_config(cls, c):
    """From a command config carrying some of the flags (absent ones keep their defaults)."""
    names = {"rule": "rollup_rule", "precision": "rollup_precision", "taxon": "taxon",
             "checklist": "checklist", "floor": "location_floor", "captive": "captive"}
    return cls(**{field: getattr(c, flag) for field, flag in names.items() if hasattr(c, flag)})


def restriction(options, taxonomy, label_map):
  """(bool [C] mask or None, words for the explanation and report) of --taxon / --checklist.
  Raises TaxonomyError or RestrictionError (ValueErrors, one line) naming an unknown name or id."""
  masks, words = [], []
  if options.taxon:
    masks.append(restriction_lib.taxon_mask(taxonomy, options.taxon))
    words.append(options.taxon)
  if options.checklist:
    masks.append(restriction_lib.checklist_mask(options.checklist, label_map))
    words.append(f"checklist {options.checklist}")
  mask = restriction_lib.combine_masks(*masks)
  if mask is not None and not mask.any():
    raise restriction_lib.RestrictionError(
        f"--taxon {options.taxon} and --checklist {options.checklist} have no species in common")
  return mask, " and ".join(words)


# -- calibrated rules, stored beside the model ---------------------------------------------------


def calibration_path(model_dir, which):
  return os.path.join(model_dir, f"rollup-{which}.json")


def model_digest(model_dir, which):
  """sha256 over the model file and the stored long-tail adjustment files (what the held-out
  probabilities depended on)."""
  from inat_tf import trained_model  # pylint: disable=g-import-not-at-top  (Keras)
  digest = hashlib.sha256()
  for path in (os.path.join(model_dir, trained_model.model_file(which)),
               long_tail.adjustment_path(model_dir, which), long_tail.crt_path(model_dir, which)):
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path, "rb") as f:
        digest.update(f.read())
  return digest.hexdigest()


def _key(rule_name, target, views):
  return f"{rule_name}@{target:g}/views={views}"


# Calibrating a rule, and inat-eval's comparison of the rules, hold a split's [N, C] float32
# probabilities (issue 26: every stage within 1.5 GB above TensorFlow at iNat2021's counts):
# above this neither is done, and the command says why.
COMPARISON_BYTES = 200_000_000  # 5,000 images x 10,000 species: eval peaked at +1,323 MB there


def too_many_probabilities(images, classes):
  """"" when [images, classes] float32 probabilities fit COMPARISON_BYTES, else how much they
  would take, in words ("100,000 images x 10,000 species would take 4.0 GB (limit 0.2 GB)")."""
  needed = 4 * images * classes
  if needed <= COMPARISON_BYTES:
    return ""
  return (f"{images:,} images x {classes:,} species would take {needed / 1e9:.1f} GB (limit "
          f"{COMPARISON_BYTES / 1e9:g} GB)")


def held_out_source(data_dir):
  """("minival", "all") when the data dir has a minival split, else ("val", "tune")."""
  if records.has_shards(data_dir, "minival"):
    return "minival", "all"
  return "val", "tune"


def calibrate(rule_name, target, probabilities, labels, taxonomy):
  """The calibrated rule (ThresholdRule or RiskRule) for `rule_name` on held-out probabilities
  [N, C] and labels [N]; the per-rank report for thresholds."""
  if rule_name == "precision":
    rule, report = rollup.calibrate_thresholds(probabilities, labels, taxonomy, target)
    return rule, report
  if rule_name == "risk":
    return rollup.calibrate_risk(probabilities, labels, taxonomy, target_precision=target,
                                 per_rank=True), None
  raise ValueError(f"roll-up rule {rule_name!r} is not calibrated")


def _calibrating_command(model_dir, which, rule_name, target):
  """The inat-eval command that (re)calibrates a rule, runnable as printed: the data dir is the
  one the model was trained on (its train_config.json), else DATA_DIR."""
  try:
    trained_on = run_common.read_json(os.path.join(model_dir, "train_config.json"))["data_dir"]
  except (tf.errors.OpError, ValueError, KeyError, TypeError):
    trained_on = ""
  data_dir = shlex.quote(trained_on) if trained_on else "DATA_DIR"
  return (f"`inat-eval --data_dir {data_dir} --model_dir {shlex.quote(model_dir)}"
          f"{'' if which == 'best' else ' --which ' + which} --rollup_rule {rule_name} "
          f"--rollup_precision {target:g}`")


def load_rule(model_dir, which, rule_name, target, views, *, stale_ok=False,
              held_out_wanted=None):
  """The stored calibrated rule, or None when none is stored for (rule, target, views) (or, with
  stale_ok, when the stored one is stale; or, with held_out_wanted, a {key: value} subset of
  from_predictions' description, when it was calibrated on other held-out images). Raises
  RollupError when the file was made for other weights (stale) or is unreadable."""
  path = calibration_path(model_dir, which)
  if not tf.io.gfile.exists(path):
    return None
  try:
    document = run_common.read_json(path)
    entry = document.get("rules", {}).get(_key(rule_name, target, views))
    if entry is None:
      return None
    rule, held_out = rollup.rule_from_json(entry["rule"]), entry.get("held_out") or {}
  except (ValueError, AttributeError, KeyError, TypeError) as e:
    raise RollupError(f"{path}: not a roll-up calibration written by inat-eval ({e!r}); delete "
                      f"it") from None
  if document.get("model_sha256") != model_digest(model_dir, which):
    if stale_ok:
      return None
    raise RollupError(
        f"{path} was calibrated for other {which}.keras weights or another long-tail adjustment "
        f"(the model changed since): recalibrate with "
        f"{_calibrating_command(model_dir, which, rule_name, target)}")
  if held_out_wanted and any(held_out.get(k) != v for k, v in held_out_wanted.items()):
    return None  # calibrated on other images than those inat-eval now keeps out of its scores
  return rule


def store_rule(model_dir, which, rule_name, target, views, rule, held_out):
  """Adds the rule to MODEL_DIR/rollup-<which>.json (replacing the file if it was stale)."""
  path = calibration_path(model_dir, which)
  digest = model_digest(model_dir, which)
  document = run_common.read_json(path) if tf.io.gfile.exists(path) else {}
  if document.get("model_sha256") != digest:
    document = {}
  document["model_sha256"] = digest
  document.setdefault("rules", {})[_key(rule_name, target, views)] = {
      "rule": rollup.rule_to_json(rule), "target_precision": target, "views": views,
      "held_out": held_out}
  run_common.write_text(path, json.dumps(document, indent=1, sort_keys=True))


def held_out_mask(source, labels, image_ids):
  """Which images of the held-out split calibrate: all of minival, the tune half of val."""
  split, part = source
  if part == "all":
    return np.ones(len(labels), bool)
  return long_tail.stratified_halves(labels, image_ids, TUNE_SEED)


def rule_for(options, taxonomy, *, model_dir="", which="best", views=1, held_out=None,
             recalibrate_stale=False, held_out_wanted=None):
  """The rollup rule object for options.rule. Calibrated rules: the stored one, else one
  calibrated now from held_out (a function () -> (probabilities, labels, held-out description),
  or None: then RollupError says how to calibrate), then stored. A stale stored one raises
  RollupError, unless recalibrate_stale (inat-eval, the command that calibrates: it replaces
  the file). held_out_wanted: the held-out images a stored rule must have been calibrated on
  (inat-eval: its data dir's, which it leaves out of its scores), else it is recalibrated."""
  if options.rule == "argmax":
    return rollup.ArgmaxRule()
  if options.rule == "inat":
    return rollup.InatRule()
  if options.rule not in choices.CALIBRATED_ROLLUP_RULES:
    raise ValueError(f"--rollup_rule {options.rule}: expected one of "
                     f"{', '.join(choices.ROLLUP_RULES)}")
  rule = load_rule(model_dir, which, options.rule, options.precision, views,
                   stale_ok=recalibrate_stale and held_out is not None,
                   held_out_wanted=held_out_wanted if held_out is not None else None)
  if rule is not None:
    return rule
  if held_out is None:
    raise RollupError(
        f"--rollup_rule {options.rule} --rollup_precision {options.precision:g}: no calibration "
        f"in {calibration_path(model_dir, which)} for {views} view(s); run "
        f"{_calibrating_command(model_dir, which, options.rule, options.precision)} first (it "
        f"calibrates on minival or the tune half of val and stores it)")
  probabilities, labels, description = held_out()
  if not len(labels):
    raise RollupError(f"no held-out images to calibrate --rollup_rule {options.rule} on "
                      f"({description['split']})")
  rule, _ = calibrate(options.rule, options.precision, probabilities, labels, taxonomy)
  store_rule(model_dir, which, options.rule, options.precision, views, rule, description)
  return rule


def taxonomy_of(trained):
  return taxonomy_lib.from_label_map(trained.label_map)


def taxonomy_of_label_map(label_map):
  return taxonomy_lib.from_label_map(label_map)


def unseen_classes(data_dir, label_map):
  """[C] bool: the species the model was not trained on, which the open-set test scores apart.

  label_map: the model dir's (trained_model.Trained.label_map). Unseen are the species
  inat-build --holdout_species left out of data_dir's train (manifest.json) and those with
  train_count 0 in the model's own label map: a model trained on a held-out build and evaluated on
  a full build of the same download would otherwise count its never-seen species as seen.
  """
  held = records.read_manifest(data_dir).get("holdout_species") or {}
  return np.isin(np.asarray(label_map.category_ids), list(held.get("category_ids", []))) | (
      np.asarray(label_map.train_counts) == 0)


def views_of(flip=False, multi_crop=False):
  """How many views preprocessing.eval_views averages (a calibration is kept per view count)."""
  return (5 if multi_crop else 1) * (2 if flip else 1)


def held_out_predictions(trained, data_dir, *, flip=False, multi_crop=False,
                         command="inat-eval"):
  """(probabilities [n, C], labels [n], description) of the held-out images the calibrated rules
  are chosen on (held_out_source): the model's image-only probabilities, unrestricted."""
  from inat_tf import trained_model  # pylint: disable=g-import-not-at-top
  source = held_out_source(data_dir)
  too_large = too_many_probabilities(records.split_examples(data_dir, source[0]),
                                     trained.label_map.num_classes)
  if too_large:  # calibrating holds them too
    raise RollupError(f"cannot calibrate on the {source[0]} split of {data_dir}: {too_large}; "
                      f"build a minival with inat-build --minival_fraction (a few images per "
                      f"species) to calibrate on")
  predictions = trained_model.predict(trained, data_dir, source[0], flip=flip,
                                      multi_crop=multi_crop,
                                      command=f"{command} (roll-up calibration on {source[0]})",
                                      keep_probabilities=True)
  return from_predictions(source, predictions, unseen_classes(data_dir, trained.label_map),
                          data_dir=data_dir)


def held_out_description(data_dir, source=None):
  """What identifies the held-out images of a data dir (stored with each calibrated rule)."""
  split, part = source or held_out_source(data_dir)
  return {"split": split, "part": part, "seed": TUNE_SEED,
          "data_dir": os.path.abspath(data_dir) if "://" not in data_dir else data_dir}


def from_predictions(source, predictions, unseen_classes=None, *, data_dir=""):
  """held_out_predictions' triple from Predictions of the held-out split (with probabilities).
  unseen_classes: [C] bool, species held out of training (inat-build --holdout_species): their
  images never calibrate (they are the open-set test)."""
  keep = held_out_mask(source, predictions.labels, predictions.image_ids) & (
      predictions.labels >= 0)
  if unseen_classes is not None:
    keep &= ~np.asarray(unseen_classes)[np.maximum(predictions.labels, 0)]
  description = {**held_out_description(data_dir, source), "images": int(keep.sum())}
  return predictions.probabilities[keep], predictions.labels[keep], description


def rule_for_model(options, trained, model_dir, which, *, data_dir="", flip=False,
                   command="inat-eval"):
  """rule_for with the held-out images read from data_dir (when given) if no calibration is
  stored."""
  views = views_of(flip)

  def held_out():
    label_map_lib.check_same(data_dir, model_dir)  # its labels calibrate: they must be the model's
    return held_out_predictions(trained, data_dir, flip=flip, command=command)
  return rule_for(options, taxonomy_of(trained), model_dir=model_dir, which=which, views=views,
                  held_out=held_out if data_dir else None)
