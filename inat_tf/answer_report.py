"""inat-eval's "Answers beyond the species": each roll-up rule's answers on the evaluated split,
as plain data for report.json and inat_tf/report/sections.py (answers_beyond_species).

For each rule (argmax, iNat's published rule, ours calibrated to --rollup_precision, the tree
risk rule calibrated the same way; inat_tf.rollup): inat_tf.answer_metrics.answer_metrics on the
images of seen species (precision at the returned rank, species coverage, mistake severity, ...),
and a precision-coverage curve (the rule's knob swept: iNat's share threshold, the risk's lambda,
our target precision). With held-out species (inat-build --holdout_species): the AUROC of MSP and
energy, seen against unseen, and where each rule places the unseen species' images.
"""

import numpy as np

from inat_tf import answer_metrics
from inat_tf import answer_options
from inat_tf import rollup

RULE_ORDER = ("argmax", "inat", "precision", "risk")
RULE_TITLES = {"argmax": "argmax (top species)", "inat": "iNat (share > 0.78)",
               "precision": "ours (per-rank thresholds)", "risk": "risk (over the tree)"}
CALIBRATED = ("precision", "risk")  # chosen on held-out images (inat_tf.answer_options)
INAT_CURVE = tuple(np.round(np.linspace(0.3, 0.98, 12), 2))
RISK_CURVE = tuple(np.round(np.linspace(1.0, 0.0, 12), 2))
OURS_CURVE = (0.6, 0.7, 0.8, 0.9, 0.95, 0.98)


def describe_rule(rule):
  if isinstance(rule, rollup.ThresholdRule):
    return "thresholds " + ", ".join("never" if t > 1 else f"{t:.3f}" for t in rule.thresholds)
  if isinstance(rule, rollup.RiskRule):
    return f"risk lambda {rule.specificity_cost:g}"
  if isinstance(rule, rollup.InatRule):
    return f"iNat share > {rule.threshold:g}"
  return "argmax"


def beyond_species(probabilities, labels, taxonomy, rules, *, unseen=None, open_scores=None,
                   held_out=None, target=0.95):
  """The section's data.

  probabilities: [N, C] the pipeline's final distribution of the scored images; labels [N];
  rules: {name: rule object} (RULE_ORDER names); unseen: [N] bool, images of held-out species
  (None: none held out); open_scores: {"msp": [N], "energy": [N]}; held_out: (probabilities,
  labels) the calibrated rules were chosen on, for our curve (None: no curve for ours);
  target: --rollup_precision.
  """
  labels = np.asarray(labels)
  unseen = np.zeros(len(labels), bool) if unseen is None else np.asarray(unseen, bool)
  seen = ~unseen
  result = {"images": int(seen.sum()), "unseen_images": int(unseen.sum()),
            "target_precision": target, "rules": [], "curves": []}
  names = [name for name in RULE_ORDER if name in rules]
  seen_l = labels[seen]
  curves = {"inat": [(t, rollup.InatRule(threshold=float(t))) for t in INAT_CURVE],
            "risk": [(l, rollup.RiskRule(float(l))) for l in RISK_CURVE]}
  if held_out is not None and len(held_out[1]):
    curves["precision"] = [(t, rollup.calibrate_thresholds(held_out[0], held_out[1], taxonomy,
                                                           t)[0]) for t in OURS_CURVE]
  points = [(name, knob, rule) for name, knobs in curves.items() for knob, rule in knobs]
  # One roll-up for the table's rules and the curve's points: they share the taxa's masses, the
  # costly part at 10,000 species. Each image's answer is its own, so the curve takes seen rows.
  answers = rollup.roll_up_numpy_each(probabilities, taxonomy,
                                      [rules[n] for n in names] + [rule for _, _, rule in points])
  answers, curve_answers = answers[:len(names)], answers[len(names):]
  for name, answer in zip(names, answers):
    nodes = answer["node"]
    row = {"rule": name, "title": RULE_TITLES[name], "setting": describe_rule(rules[name]),
           **answer_metrics.answer_metrics(nodes[seen], labels[seen], taxonomy)}
    if unseen.any():
      true_nodes = taxonomy.ancestors[labels[unseen]]
      row["unseen"] = answer_metrics.unseen_placement(nodes[unseen], true_nodes, taxonomy)
    result["rules"].append(row)
  for (name, knob, _), answer in zip(points, curve_answers):
    result["curves"].append({"rule": name, **answer_metrics.curve_point(
        float(knob), answer_metrics.answer_metrics(answer["node"][seen], seen_l, taxonomy))})
  if unseen.any() and seen.any() and open_scores is not None:
    msp, energy = (np.asarray(open_scores[k]) for k in ("msp", "energy"))
    result["open_set"] = {"msp": answer_metrics.auroc(-msp[seen], -msp[unseen]),
                          "energy": answer_metrics.auroc(energy[seen], energy[unseen])}
  return result


def scored_mask(source, split, labels, image_ids):
  """Which images of the evaluated split score the roll-up: all, or the report half of val when
  the calibrated rules were chosen on its tune half. (mask, words)."""
  if source == ("val", "tune") and split == "val":
    tune = answer_options.held_out_mask(source, labels, image_ids)
    return ~tune, "the report half of val (the calibrated rules were chosen on the tune half)"
  if source[0] == split:
    return np.ones(len(labels), bool), (f"all of {split}, which the calibrated rules were "
                                        f"chosen on: their figures are optimistic")
  return np.ones(len(labels), bool), f"all of {split} (rules calibrated on {source[0]})"
