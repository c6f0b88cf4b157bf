"""Taxonomy, roll-up rules, restriction, location floor and the answer pipeline, each on a
hand-made table: a 3-rank tree (species, genus, family) of six species, probabilities written by
hand and the expected answers worked out by hand in the comments. Then the same pipeline in a
SavedModel and as a TFLite model with builtins only."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from inat_tf import answer_metrics
from inat_tf import answers
from inat_tf import restriction
from inat_tf import rollup
from inat_tf import taxonomy as taxonomy_lib
from inat_tf.geo import prior as prior_lib
from inat_tf.label_map import LabelMap

# Six species in genera A (3), B (1) of family F and C (2) of family G.
_SPECIES = [("A1", "A", "F"), ("A2", "A", "F"), ("A3", "A", "F"), ("B1", "B", "F"),
            ("C1", "C", "G"), ("C2", "C", "G")]
# Nodes: species 0-5, genera A=6, B=7, C=8, families F=9, G=10.
A, B, C, F, G = 6, 7, 8, 9, 10

_PROBABILITIES = np.array([
    [0.90, 0.04, 0.02, 0.02, 0.01, 0.01],  # sure of A1
    [0.40, 0.35, 0.15, 0.05, 0.03, 0.02],  # A1 or A2: genus A holds 0.90
    [0.30, 0.10, 0.05, 0.35, 0.10, 0.10],  # A 0.45, B 0.35: family F holds 0.80
    [0.20, 0.10, 0.10, 0.10, 0.25, 0.25],  # F 0.50, G 0.50: nothing sure
], np.float32)


def _label_map():
  categories = [{"id": 100 + i, "name": name, "supercategory": "S", "family": family,
                 "genus": genus} for i, (name, genus, family) in enumerate(_SPECIES)]
  return LabelMap.from_categories(categories, {}, ranks=("family", "genus"), edition="test")


@pytest.fixture(scope="module")
def tree():
  return taxonomy_lib.from_label_map(_label_map())


# -- taxonomy ------------------------------------------------------------------------------------


def test_the_tables_of_the_hand_made_tree(tree):
  assert tree.ranks == ("species", "genus", "family")
  assert tree.node_names == ("A1", "A2", "A3", "B1", "C1", "C2", "A", "B", "C", "F", "G")
  np.testing.assert_array_equal(tree.ancestors, [[0, A, F], [1, A, F], [2, A, F], [3, B, F],
                                                 [4, C, G], [5, C, G]])
  np.testing.assert_array_equal(tree.node_ancestors[A:], [[-1, A, F], [-1, B, F], [-1, C, G],
                                                          [-1, -1, F], [-1, -1, G]])
  # LCA heights between species: 0 itself, 1 siblings, 2 same family, 3 only the root.
  heights = tree.lca_height(np.arange(6)[:, None], np.arange(6)[None, :])
  assert heights[0].tolist() == [0, 1, 1, 2, 3, 3]
  assert heights[3].tolist() == [2, 2, 2, 0, 3, 3]
  # A taxon against a species: right (its own height) or where the lineages meet.
  assert tree.lca_height([A, A, B, G, -1], [1, 4, 0, 3, 0]).tolist() == [1, 3, 2, 3, 3]
  assert tree.contains([A, A, F, -1, 2], [1, 4, 3, 0, 2]).tolist() == [True, False, True, False,
                                                                         True]
  assert taxonomy_lib.Taxonomy.from_json(tree.to_json()).node_ancestors.tolist() == \
      tree.node_ancestors.tolist()


def test_a_genus_name_in_two_families_is_two_genera_and_find_asks_which():
  categories = [{"id": 1, "name": "Morus bassanus", "supercategory": "Aves", "family": "Sulidae",
                 "genus": "Morus"},
                {"id": 2, "name": "Morus alba", "supercategory": "Plantae", "family": "Moraceae",
                 "genus": "Morus"}]
  tree = taxonomy_lib.from_label_map(LabelMap.from_categories(categories, {},
                                                              ranks=("family", "genus")))
  genera = [v for v in range(tree.num_nodes) if tree.node_names[v] == "Morus"]
  assert len(genera) == 2 and tree.lca_height(0, 1) == 3
  with pytest.raises(taxonomy_lib.TaxonomyError, match=r"names 2 taxa .*Moraceae > Morus"):
    tree.find("Morus")
  assert tree.members(tree.find("Sulidae > Morus")).tolist() == [True, False]
  assert tree.members(tree.find("family:moraceae")).tolist() == [False, True]
  with pytest.raises(taxonomy_lib.TaxonomyError, match="not in the label map's taxonomy.*"
                     "closest: Moraceae"):
    tree.find("Moracea")
  with pytest.raises(taxonomy_lib.TaxonomyError, match="rank 'tribe' is not one"):
    tree.find("tribe:Morus")
  # A name that is there, but at another rank or under another taxon, is said to be (it read
  # "not in the label map's taxonomy").
  with pytest.raises(taxonomy_lib.TaxonomyError, match="Sulidae is not a genus here but "
                     "family:Sulidae: drop the rank"):
    tree.find("genus:Sulidae")
  with pytest.raises(taxonomy_lib.TaxonomyError, match=r"Morus is not under Aves > Moraceae here "
                     r"\(lineages: Moraceae > Morus; Sulidae > Morus\)"):
    tree.find("Aves > Moraceae > Morus")


@pytest.mark.parametrize("name, genus, how", [
    ("Corvus corax", "Corvus", "binomial"),
    ("Larus argentatus smithsonianus", "Larus", "binomial"),     # subspecies: trinomial
    ("Quercus robur var. fastigiata", "Quercus", "binomial"),     # infraspecific rank
    ("Bombus (Pyrobombus) impatiens", "Bombus", "binomial"),      # subgenus in brackets
    ("Mentha × piperita", "Mentha", "binomial"),                  # interspecific hybrid
    ("Populus x canadensis", "Populus", "binomial"),              # the same with a Latin x
    ("Agaricus sp.", "Agaricus", "binomial"),                     # "sp." names
    ("Ficus", "Ficus", "binomial"),                               # a genus-rank class
    ("× Chitalpa tashkentensis", "×Chitalpa", "nothogenus"),      # intergeneric hybrid
    ("×Cupressocyparis leylandii", "×Cupressocyparis", "nothogenus"),
    ("x Chitalpa tashkentensis", "×Chitalpa", "nothogenus"),
    ("unknown fungus", "unknown fungus", "not scientific"),       # its own genus
])
def test_the_2017_genus_is_read_from_the_binomial(name, genus, how):
  assert taxonomy_lib.genus_from_name(name) == (genus, how)


def test_an_inat2017_label_map_gets_super_category_and_genus():
  categories = [{"id": 5, "name": "Mentha × piperita", "supercategory": "Plantae"},
                {"id": 6, "name": "Mentha spicata", "supercategory": "Plantae"},
                {"id": 7, "name": "× Chitalpa tashkentensis", "supercategory": "Plantae"},
                {"id": 8, "name": "Morus bassanus", "supercategory": "Aves"},
                {"id": 9, "name": "Morus alba", "supercategory": "Plantae"}]
  label_map = LabelMap.from_categories(categories, {})
  tree = taxonomy_lib.from_label_map(label_map)
  assert tree.ranks == ("species", "genus", "supercategory")
  assert label_map.lineage(0) == [("supercategory", "Plantae"), ("genus", "Mentha"),
                                  ("species", "Mentha × piperita")]
  # The hybrid and its parent species share genus Mentha; the nothogenus stands alone; the two
  # Morus are different genera (one per super-category).
  assert tree.lca_height(0, 1) == 1 and tree.lca_height(0, 2) == 2
  assert tree.lca_height(3, 4) == 3
  assert tree.genus_notes == ((2, "nothogenus"),)


def test_an_empty_published_taxon_is_refused_by_class():
  categories = [{"id": 3, "name": "X y", "supercategory": "S", "family": "", "genus": "X"}]
  label_map = LabelMap.from_categories(categories, {}, ranks=("family", "genus"))
  with pytest.raises(taxonomy_lib.TaxonomyError, match=r"class 0 \(X y, category 3\) has an "
                     r"empty 'family'"):
    taxonomy_lib.from_label_map(label_map)


# -- roll-up rules -------------------------------------------------------------------------------


def _answers(tree, rule, probabilities=_PROBABILITIES):
  result = rollup.roll_up(probabilities, tree, rule)
  return {key: value.numpy().tolist() for key, value in result.items()}


def test_argmax_answers_the_top_species(tree):
  got = _answers(tree, rollup.ArgmaxRule())
  assert got["node"] == [0, 0, 3, 4]  # row 3: C1 and C2 tie at 0.25, the first wins
  assert got["rank"] == [0, 0, 0, 0]
  np.testing.assert_allclose(got["score"], [0.90, 0.40, 0.35, 0.25], rtol=1e-6)


def test_inats_rule_on_the_hand_made_table(tree):
  # Window 15 > 6 species and every score is above 0.01 x the top: shares are the probabilities.
  # Row 0: A1 0.90 > 0.78. Row 1: A1 0.40 no; genus A 0.90 yes. Row 2: genus A 0.45 no; family F
  # 0.80 yes (family is rank_level 30, inside [20, 33]). Row 3: no share above 0.78.
  got = _answers(tree, rollup.InatRule())
  assert got["node"] == [0, A, F, -1]
  assert got["rank"] == [0, 1, 2, 3]
  np.testing.assert_allclose(got["score"], [0.90, 0.90, 0.80, 0.0], rtol=1e-6)


def test_inats_window_and_cutoff(tree):
  # Window 2, row 2: B1 0.35 and A1 0.30 are kept; shares 0.538 / 0.462: no species, no genus,
  # family F 1.0. Row 1: A1, A2 kept: genus A 1.0. Row 3: C1, C2 kept: genus C 1.0.
  assert _answers(tree, rollup.InatRule(window=2))["node"] == [0, A, F, C]
  # The cutoff drops species at or below 0.01 x the top score. Row: A1 0.5, C1 0.496, C2 0.004.
  # Cutoff 0.005 drops C2: shares A1 0.5 / 0.996 = 0.502, C1 0.498. Cutoff 0.001 keeps it: A1
  # 0.500, genus C 0.500. So at threshold 0.501 the first answers A1 and the second nothing.
  row = np.array([[0.5, 0.0, 0.0, 0.0, 0.496, 0.004]], np.float32)
  assert _answers(tree, rollup.InatRule(), row)["node"] == [-1]
  assert _answers(tree, rollup.InatRule(threshold=0.501), row)["node"] == [0]
  assert _answers(tree, rollup.InatRule(threshold=0.501, cutoff_ratio=0.001), row)["node"] == [-1]


def test_per_rank_thresholds_on_the_hand_made_table(tree):
  # Thresholds species 0.8, genus 0.85, family 0.75: row 0 A1 0.90; row 1 genus A 0.90; row 2
  # family F 0.80 (genus A 0.45 < 0.85); row 3: family 0.50 < 0.75, no answer.
  got = _answers(tree, rollup.ThresholdRule((0.8, 0.85, 0.75)))
  assert got["node"] == [0, A, F, -1]
  assert got["rank"] == [0, 1, 2, 3]
  with pytest.raises(ValueError, match="2 thresholds but the taxonomy has 3 ranks"):
    rollup.roll_up(_PROBABILITIES, tree, rollup.ThresholdRule((0.8, 0.8)))


def test_risk_minimisation_on_the_hand_made_table(tree):
  # lambda = 0.5, R(v) = 0.5 h P(v) + h (1 - P(v)) + sum_{k >= h} (1 - P_k(v)); root 1.5.
  # Row 0: A1 0.10 + 0.04 + 0.02 = 0.16 (genus A 0.58, family F 1.04): A1.
  # Row 1: A1 0.60 + 0.10 + 0.05 = 0.75; genus A 0.45 + 0.10 + 0.15 = 0.70; F 1.10: genus A.
  # Row 2: A1 1.45, B1 1.50, genus A 1.525, family F 0.80 + 0.40 + 0.20 = 1.40, root 1.5: F.
  # Row 3: C1 1.75, genus C 1.75, F = G = 2.0, root 1.5: no answer.
  got = _answers(tree, rollup.RiskRule(0.5))
  assert got["node"] == [0, A, F, -1]
  risks, taxa = rollup.taxon_risks(_PROBABILITIES[2:3], tree, 0.5)
  by_taxon = dict(zip(taxa.numpy().tolist(), risks.numpy()[0].tolist()))
  np.testing.assert_allclose([by_taxon[n] for n in (0, 3, A, B, F)],
                             [1.45, 1.50, 1.525, 1.675, 1.40], rtol=1e-5)


def test_risk_at_lambda_one_is_karthiks_crm_on_species(tree):
  # Karthik et al.: argmin_j sum_i p_i LCA(i, j). Row 2: A1 0.70 + 0.55 + 0.20 = 1.45 beats the
  # argmax B1 (0.65 + 0.65 + 0.20 = 1.50): a better mistake when the truth is in genus A.
  cost = tree.lca_height(np.arange(6)[:, None], np.arange(6)[None, :])
  karthik = np.argmin(_PROBABILITIES @ cost, axis=1)
  got = _answers(tree, rollup.RiskRule(1.0))
  assert got["node"] == karthik.tolist() == [0, 0, 0, 4]
  assert got["rank"] == [0, 0, 0, 0]


def test_rules_rolled_up_together_answer_as_each_alone(tree):
  """roll_up_numpy_each shares the masses, the best taxon per rank and iNat's window between
  rules (inat-eval's curves, the calibration grids): each rule's answers must be those it gives
  alone, also for rules that must not share (two iNat windows, two lambdas, two threshold sets),
  across batches, and for no images at all."""
  rng = np.random.default_rng(3)
  probabilities = rng.dirichlet(np.full(6, 0.3), size=37).astype(np.float32)
  probabilities[5] = 0  # a row of zeros gets no answer
  rules = [rollup.InatRule(threshold=0.5), rollup.InatRule(threshold=0.5, window=2),
           rollup.InatRule(threshold=0.7, cutoff_ratio=0.5), rollup.RiskRule(0.2),
           rollup.RiskRule(0.9), rollup.ThresholdRule((0.9, 0.6, 0.5)),
           rollup.ThresholdRule((0.5, 2.0, 0.2)), rollup.ArgmaxRule()]
  together = rollup.roll_up_numpy_each(probabilities, tree, rules, batch_size=16)
  for rule, answer in zip(rules, together):
    alone = {k: v.numpy() for k, v in rollup.roll_up(probabilities, tree, rule).items()}
    for key in ("node", "rank", "score"):
      np.testing.assert_array_equal(answer[key], alone[key], err_msg=f"{rule} {key}")
  assert len({tuple(a["node"]) for a in together}) >= 5  # the rules do answer differently
  assert together[0]["node"][5] == -1
  empty = rollup.roll_up_numpy_each(probabilities[:0], tree, rules)
  assert [len(a["node"]) for a in empty] == [0] * len(rules)


def test_the_rule_survives_a_json_round_trip():
  for rule in (rollup.ArgmaxRule(), rollup.InatRule(), rollup.ThresholdRule((0.5, 2.0, 0.7)),
               rollup.RiskRule(0.3)):
    assert rollup.rule_from_json(rollup.rule_to_json(rule)) == rule
  with pytest.raises(ValueError, match="roll-up rule 'best'"):
    rollup.rule_from_json({"name": "best"})


def test_thresholds_calibrated_by_hand(tree):
  labels = np.array([0, 1, 3, 4])
  # Species: best masses 0.90 (A1, right), 0.40 (A1, wrong), 0.35 (B1, wrong), 0.25 (C1, right):
  # precision from the top 1, 0.5, ...: only the first run meets 0.95, threshold 0.90.
  # Genus, rows 1-3: 0.90 (A, right), 0.50 (C, right), 0.45 (A, wrong: B1 is true): 0.50.
  # Family, row 2: F 0.80, right: 0.80.
  rule, report = rollup.calibrate_thresholds(_PROBABILITIES, labels, tree, 0.95)
  np.testing.assert_allclose(rule.thresholds, (0.90, 0.50, 0.80), rtol=1e-6)
  assert [r["answered"] for r in report] == [1, 2, 1]
  # The calibrated rule answers those images at those ranks, all right.
  got = _answers(tree, rule)
  assert got["node"] == [0, A, F, C]
  assert tree.contains(got["node"], labels).all()
  # A rank no run qualifies at is never answered.
  rule, report = rollup.calibrate_thresholds(_PROBABILITIES, np.array([5, 5, 5, 5]), tree, 0.95)
  assert rule.thresholds[0] == rollup.NEVER and report[0]["threshold"] is None


def test_risk_and_inat_calibration_reach_the_target(tree):
  labels = np.array([0, 1, 3, 4])
  rule = rollup.calibrate_risk(_PROBABILITIES, labels, tree, target_precision=0.95)
  nodes = _answers(tree, rule)["node"]
  answered = np.array(nodes) >= 0
  assert tree.contains(np.array(nodes)[answered], labels[answered]).all()
  # The next lambda on the grid (more specific) misses the target: the calibration took the
  # most specific one that reaches it.
  more = _answers(tree, rollup.RiskRule(round(rule.specificity_cost + 0.01, 2)))["node"]
  more = np.array(more)
  assert not tree.contains(more[more >= 0], labels[more >= 0]).all()
  inat = rollup.calibrate_inat(_PROBABILITIES, labels, tree, target_precision=0.95)
  assert inat.threshold == 0.5  # 0.5 already gives A1, A, F and no answer: all right
  # Overall against per rank. Truth A2 in rows 0 and 1: at 0.5, row 0's A1 is wrong but genus A
  # (row 1) and family F (row 2) are right: 2/3 overall meets 0.6, the species rank (0/1) does
  # not. Per rank needs A1's 0.90 to fail: 0.91 on the grid (0.90 does not: the float32 share
  # is a hair above 0.9); row 0 then answers genus A (0.96), row 1 family F (0.95).
  labels = np.array([1, 1, 3, 4])
  overall = rollup.calibrate_inat(_PROBABILITIES, labels, tree, target_precision=0.6)
  per_rank = rollup.calibrate_inat(_PROBABILITIES, labels, tree, target_precision=0.6,
                                   per_rank=True)
  assert (overall.threshold, per_rank.threshold) == (0.5, 0.91)
  assert _answers(tree, per_rank)["node"] == [A, F, -1, -1]


# -- metrics -------------------------------------------------------------------------------------


def test_metrics_on_hand_made_answers(tree):
  labels = [0, 1, 3, 4]
  good = answer_metrics.answer_metrics([0, A, F, -1], labels, tree)
  assert good["answered"] == 0.75 and good["precision"] == 1.0
  assert good["species_coverage"] == 0.25 and good["mistakes"] == 0
  assert good["mistake_severity"] is None
  assert good["severity_per_image"] == 0.0  # right answers at any rank and no answer add 0
  bad = answer_metrics.answer_metrics([3, B, G, 4], labels, tree)
  # B1 for A1 meets at F (2); genus B for A2 at F (2); family G for B1 at the root (3).
  assert bad["precision"] == 0.25 and bad["mistakes"] == 3
  assert bad["mistake_severity"] == pytest.approx(7 / 3)
  assert bad["severity_per_image"] == pytest.approx(7 / 4)
  assert [r["precision"] for r in bad["per_rank"]] == [0.5, 0.0, 0.0]


def test_auroc_counts_pairs_and_half_ties():
  # Unknown 0.9 beats all 4 known; 0.35 beats 0.1 and ties 0.35 (1.5); 0.5 beats 3: 8.5 / 12.
  assert answer_metrics.auroc([0.1, 0.4, 0.35, 0.8], [0.9, 0.35, 0.5]) == pytest.approx(8.5 / 12)
  assert answer_metrics.auroc([0, 0], [1]) == 1.0
  with pytest.raises(ValueError, match="both seen and unseen"):
    answer_metrics.auroc([], [1.0])


def test_unseen_species_placement(tree):
  # An unseen species of genus A (family F): right at genus A or family F, wrong elsewhere.
  true_nodes = np.tile([[-1, A, F]], [5, 1])
  placed = answer_metrics.unseen_placement([A, F, 0, B, -1], true_nodes, tree)
  assert placed["placed"] == pytest.approx(2 / 5)
  assert placed["per_rank"]["genus"] == {"answered": 0.4, "right": 0.2}
  assert placed["per_rank"]["species"]["right"] == 0.0 and placed["no_answer"] == 0.2


# -- restriction ---------------------------------------------------------------------------------


def test_taxon_and_checklist_masks(tree, tmp_path):
  assert restriction.taxon_mask(tree, "A").tolist() == [True] * 3 + [False] * 3
  assert restriction.taxon_mask(tree, "G").tolist() == [False] * 4 + [True] * 2
  path = tmp_path / "checklist.txt"
  path.write_text("# my garden\n103\n\n 105  # C2\n")
  assert restriction.checklist_mask(str(path), _label_map()).tolist() == [
      False, False, False, True, False, True]
  path.write_text("103\nC2\n")
  with pytest.raises(restriction.RestrictionError, match=r"checklist .*, line 2: 'C2' is not a "
                     r"category id"):
    restriction.checklist_mask(str(path), _label_map())
  path.write_text("103\n999\n")
  with pytest.raises(restriction.RestrictionError, match=r"line 2: category id 999 is not in the "
                     r"model's label map \(6 categories\)"):
    restriction.checklist_mask(str(path), _label_map())
  path.write_text("# nothing\n")
  with pytest.raises(restriction.RestrictionError, match="lists no category ids"):
    restriction.checklist_mask(str(path), _label_map())


def test_request_masks_in_the_graph(tree):
  ids = tf.constant(_label_map().category_ids, tf.int64)
  assert restriction.mask_from_category_ids(ids, tf.constant([105, 100], tf.int64)).numpy(
      ).tolist() == [True, False, False, False, False, True]
  assert restriction.mask_from_category_ids(ids, tf.zeros([0], tf.int64)).numpy().all()
  with pytest.raises(tf.errors.InvalidArgumentError, match="not categories of this model"):
    restriction.mask_from_category_ids(ids, tf.constant([100, 7], tf.int64))
  assert restriction.mask_from_taxa(tree, tf.constant(["B", "G"])).numpy().tolist() == [
      False, False, False, True, True, True]
  assert restriction.mask_from_taxa(tree, tf.zeros([0], tf.string)).numpy().all()
  with pytest.raises(tf.errors.InvalidArgumentError, match="not exactly one taxon"):
    restriction.mask_from_taxa(tree, tf.constant(["Aves"]))


# -- location floor ------------------------------------------------------------------------------


def test_the_floor_bounds_the_demotion_and_opting_out_is_image_only():
  image = np.array([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]], np.float32)
  prior_logits = np.array([[-9.0, 2.0, 0.0], [-9.0, 2.0, 0.0], [1.0, 1.0, 1.0]], np.float32)
  sigma = 1 / (1 + np.exp(-prior_logits.astype(np.float64)))
  available = np.array([True, True, True])
  for floor in (0.0, prior_lib.INAT_FLOOR, 0.05):
    got = prior_lib.combine(image, prior_logits, available, floor=floor).numpy()
    product = image * np.maximum(sigma, floor)
    np.testing.assert_allclose(got, product / product.sum(1, keepdims=True), rtol=1e-5)
  # sigma(-9) = 1.2e-4: the plain product all but erases species 0; a floor of 0.05 keeps it
  # at 0.6 * 0.05 = 0.03 against 0.3 * 0.88 and 0.1 * 0.5: 0.087 after renormalising.
  assert prior_lib.combine(image, prior_logits, available, floor=0.0).numpy()[0, 0] < 1e-3
  assert prior_lib.combine(image, prior_logits, available, floor=0.05).numpy()[0, 0] > 0.08
  opt_out = np.array([False, True, False])
  got = prior_lib.combine(image, prior_logits, available, floor=0.0, opt_out=opt_out).numpy()
  assert got[1].tobytes() == image[1].tobytes()  # exactly the image-only answer
  with pytest.raises(ValueError, match="location floor 1.5"):
    prior_lib.combine(image, prior_logits, available, floor=1.5)


# -- the pipeline --------------------------------------------------------------------------------


def _logits():
  return np.log(_PROBABILITIES)  # softmax(log p) = p


def test_the_pipeline_without_place_or_restriction_is_the_rule_on_the_softmax(tree):
  out = answers.answer(answers.Inputs(logits=_logits()), tree,
                       answers.AnswerConfig(rule=rollup.RiskRule(0.5), top_k=2))
  np.testing.assert_allclose(out["probabilities"], _PROBABILITIES, rtol=1e-5)
  assert out["taxon"].numpy().tolist() == [0, A, F, -1]
  assert out["species"].numpy().tolist() == [0, 0, 3, 4]
  assert out["vision_rank"].numpy().tolist() == [1, 1, 1, 1]
  assert out["top_classes"].numpy().tolist() == [[0, 1], [0, 1], [3, 0], [4, 5]]
  assert not out["used_place"].numpy().any()
  np.testing.assert_allclose(out["msp"], [0.90, 0.40, 0.35, 0.25], rtol=1e-5)
  # Energy: -logsumexp(log p) = -log 1 = 0 for these logits; shifting them moves it.
  np.testing.assert_allclose(out["energy"], 0.0, atol=1e-5)
  shifted = answers.answer(answers.Inputs(logits=_logits() + 3.0), tree)
  np.testing.assert_allclose(shifted["energy"], -3.0, atol=1e-5)
  # Views: the probabilities are the mean of the views' softmax.
  views = np.stack([_logits(), _logits()[::-1]], axis=1)
  out = answers.answer(answers.Inputs(logits=views), tree)
  np.testing.assert_allclose(out["probabilities"], (_PROBABILITIES + _PROBABILITIES[::-1]) / 2,
                             rtol=1e-5)


def test_restriction_renormalises_exactly_and_rolls_up_within(tree):
  allowed = np.array([False, False, False, True, True, True])  # genus B and family G
  out = answers.answer(answers.Inputs(logits=_logits(), allowed=allowed), tree,
                       answers.AnswerConfig(rule=rollup.InatRule()))
  expected = _PROBABILITIES * allowed
  expected /= expected.sum(1, keepdims=True)
  np.testing.assert_allclose(out["probabilities"], expected, rtol=1e-5)
  np.testing.assert_allclose(out["allowed_mass"], _PROBABILITIES[:, 3:].sum(1), rtol=1e-5)
  # Row 0: B1 0.5, C1 0.25, C2 0.25: no share > 0.78 at species, genus or family -> none.
  # Row 2: B1 0.636, C1 = C2 0.18: family F 0.636, G 0.36: none. Row 3: B1 1/6, C 5/6: genus C.
  assert out["taxon"].numpy().tolist()[3] == C
  # The top-5 lists the 3 allowed species, then "no species" (-1, score 0): not outside species
  # at probability 0, which counted as top-5 hits (issue 27's restriction, a user's trial).
  top, scores = out["top_classes"].numpy(), out["top_scores"].numpy()
  assert (np.sort(top[:, :3], axis=1) == [3, 4, 5]).all() and (top[:, 3:] == -1).all()
  assert (scores[:, 3:] == 0).all() and (scores[:, :3] > 0).all()
  # A restriction to species the image gives probability 0 in float32 still ranks them by their
  # logits (the log-space renormalisation), rather than 0 / 0.
  logits = np.array([[0.0, -200.0, -300.0, -250.0, -260.0, -270.0]], np.float32)
  out = answers.answer(answers.Inputs(logits=logits, allowed=allowed), tree,
                       answers.AnswerConfig(rule=rollup.ArgmaxRule()))
  assert out["allowed_mass"].numpy()[0] == 0.0
  assert out["taxon"].numpy().tolist() == [3]
  np.testing.assert_allclose(out["probabilities"].numpy()[0, 3:],
                             tf.nn.softmax([-250.0, -260.0, -270.0]).numpy(), rtol=1e-5)
  # Nothing allowed: no answer, not a NaN.
  out = answers.answer(answers.Inputs(logits=_logits(), allowed=np.zeros([4, 6], bool)), tree)
  assert out["taxon"].numpy().tolist() == [-1, -1, -1, -1]
  assert not np.isnan(out["probabilities"].numpy()).any()


def test_location_boosts_with_a_floor_and_opt_out_is_image_only(tree):
  prior_logits = np.full([4, 6], 2.0, np.float32)
  prior_logits[:, 0] = -20.0  # A1 never seen here: sigma = 2e-9, floored to 0.05
  has_place = np.array([True, True, False, True])
  opt_out = np.array([False, False, False, True])
  config = answers.AnswerConfig(rule=rollup.ArgmaxRule(), floor=0.05)
  out = answers.answer(answers.Inputs(logits=_logits(), prior_logits=prior_logits,
                                      has_place=has_place, opt_out=opt_out), tree, config)
  image_only = answers.answer(answers.Inputs(logits=_logits()), tree, config)
  assert out["used_place"].numpy().tolist() == [True, True, False, False]
  # Row 0: A1 0.90 x 0.05 = 0.045 against A2 0.04 x 0.881 = 0.035: still A1, demoted not erased.
  assert out["species"].numpy()[0] == 0
  np.testing.assert_allclose(out["location_factor"].numpy()[0], 0.05, rtol=1e-5)
  # Row 1: A1 0.40 x 0.05 = 0.02 < A2 0.35 x 0.881: A2, which the image ranked second.
  assert out["species"].numpy()[1] == 1 and out["vision_rank"].numpy()[1] == 2
  for key in ("probabilities", "taxon", "species", "msp"):  # no place, or opted out: bit for bit
    assert out[key].numpy()[2:].tobytes() == image_only[key].numpy()[2:].tobytes()
  line = answers.explain(out, 1, tree, restriction="", config=config)
  assert line.startswith("species A2 ") and "image: rank 2, 0.35" in line
  assert "location x0.881 before renormalising" in line
  assert "location x0.05 (the floor: far from where the species is known)" in answers.explain(
      out, 0, tree, config=config)
  with pytest.raises(ValueError, match="has_place was given without prior_logits"):
    answers.answer(answers.Inputs(logits=_logits(), has_place=has_place), tree, config)


def test_the_explanation_says_each_step(tree):
  allowed = np.array([True, True, True, True, False, False])  # family F
  config = answers.AnswerConfig(rule=rollup.InatRule(), long_tail="logit_adjustment tau=1")
  out = answers.answer(answers.Inputs(logits=_logits(), allowed=allowed), tree, config)
  # Row 1 restricted to F: A1 0.421, A2 0.368, A3 0.158, B1 0.053: genus A 0.947.
  line = answers.explain(out, 1, tree, restriction="F", config=config)
  assert line.startswith("genus A 0.95 (rolled up from species A1 0.42 by rule inat; image: "
                         "rank 1, 0.40; long-tail: logit_adjustment tau=1; no location; "
                         "restricted to F, 95% of the probability; MSP 0.42, energy ")
  # Row 3 restricted to F: A1 0.4, A2 = A3 = B1 0.2: genus A 0.8. Unrestricted: no answer.
  assert answers.explain(out, 3, tree, config=config).startswith("genus A 0.80 (")
  out = answers.answer(answers.Inputs(logits=_logits()), tree, config)
  assert answers.explain(out, 3, tree, config=config).startswith(
      "no answer (no taxon sure enough by rule inat; most probable species C1 0.25; ")
  out = answers.answer(answers.Inputs(logits=_logits(), allowed=np.zeros(6, bool)), tree, config)
  assert answers.explain(out, 0, tree, config=config).startswith(
      "no answer (no allowed species has any probability; ")


# -- the same pipeline in a SavedModel and in TFLite ---------------------------------------------


_RULES = (rollup.InatRule(), rollup.ThresholdRule((0.8, 0.85, 0.75)), rollup.RiskRule(0.45),
          rollup.ArgmaxRule())


def _config(rule):
  return answers.AnswerConfig(rule=rule, floor=0.05, top_k=3)


def _module(tree):
  """serve (a SavedModel signature: logits and a request's allowed ids and taxa) and phone (for
  TFLite: one image with place, opt-out and a mask), each answering under every rule of _RULES."""
  category_ids = _label_map().category_ids
  module = tf.Module()

  @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="logits"),
                                tf.TensorSpec([None], tf.int64, name="allowed_category_ids"),
                                tf.TensorSpec([None], tf.string, name="allowed_taxa")])
  def serve(logits, allowed_category_ids, allowed_taxa):
    allowed = tf.logical_and(restriction.mask_from_category_ids(category_ids,
                                                                allowed_category_ids),
                             restriction.mask_from_taxa(tree, allowed_taxa))
    outputs = {}
    for rule in _RULES:
      out = answers.answer(answers.Inputs(logits=logits, allowed=allowed), tree, _config(rule))
      outputs.update({f"{rule.name}_{key}": out[key] for key in ("taxon", "rank", "score",
                                                                 "species")})
    return outputs

  @tf.function(input_signature=[tf.TensorSpec([1, 6], tf.float32), tf.TensorSpec([1, 6]),
                                tf.TensorSpec([1], tf.bool), tf.TensorSpec([1], tf.bool),
                                tf.TensorSpec([6], tf.bool)])
  def phone(logits, prior_logits, has_place, opt_out, allowed):
    inputs = answers.Inputs(logits=logits, prior_logits=prior_logits, has_place=has_place,
                            opt_out=opt_out, allowed=allowed)
    outputs = {}
    for rule in _RULES:
      out = answers.answer(inputs, tree, _config(rule))
      outputs.update({f"{rule.name}_{key}": out[key] for key in (
          "taxon", "rank", "score", "species", "vision_rank", "location_factor", "msp", "energy",
          "top_classes")})
    return outputs

  module.serve, module.phone = serve, phone
  return module


@pytest.mark.slow  # exports a SavedModel and converts to TFLite (~10 s)
def test_saved_model_and_tflite_answer_as_eager(tree, tmp_path):
  module = _module(tree)
  tf.saved_model.save(module, str(tmp_path / "saved"),
                      signatures={"serving_default": module.serve})
  served = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
  for ids, taxa in (([], []), ([103, 104, 105], []), ([], ["A"]), ([100, 103], ["F"])):
    allowed = np.logical_and(
        np.isin(_label_map().category_ids, ids) if ids else True,
        np.any([tree.members(tree.find(t)) for t in taxa], axis=0) if taxa else True)
    got = served(logits=tf.constant(_logits()), allowed_category_ids=tf.constant(ids, tf.int64),
                 allowed_taxa=tf.constant(taxa, tf.string))
    for rule in _RULES:
      eager = answers.answer(answers.Inputs(logits=_logits(),
                                            allowed=np.broadcast_to(allowed, [6])), tree,
                             _config(rule))
      for key in ("taxon", "rank", "species"):
        assert got[f"{rule.name}_{key}"].numpy().tolist() == eager[key].numpy().tolist(), (
            rule, key, ids, taxa)
      np.testing.assert_allclose(got[f"{rule.name}_score"], eager["score"], rtol=1e-6)

  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [module.phone.get_concrete_function()], module)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # builtins only
  interpreter = tf.lite.Interpreter(model_content=converter.convert())
  runner = interpreter.get_signature_runner()
  prior_logits = np.array([[-20.0, 2, 2, 2, 2, 2]], np.float32)
  for row in range(4):
    for has_place, opt_out, allowed in ((False, False, [True] * 6), (True, False, [True] * 6),
                                        (True, True, [True] * 6),
                                        (True, False, [False, True, True, True, True, True])):
      inputs = dict(logits=_logits()[row:row + 1], prior_logits=prior_logits,
                    has_place=np.array([has_place]), opt_out=np.array([opt_out]),
                    allowed=np.array(allowed))
      eager = module.phone(**inputs)
      got = runner(**inputs)
      for key, value in eager.items():
        if key.endswith(("taxon", "rank", "species", "vision_rank", "top_classes")):
          assert got[key].tolist() == value.numpy().tolist(), (key, row, has_place, allowed)
        else:
          np.testing.assert_allclose(got[key], value.numpy(), rtol=1e-5, atol=1e-6)


# -- the answer flags of the commands, and inat-build --holdout_species (no TensorFlow work) ----


def _answer_config(command, **overrides):
  import dataclasses as dc
  from inat_tf.commands import classify, eval as eval_command, predict as predict_command
  config_class = {"eval": eval_command.EvalConfig, "predict": predict_command.PredictConfig,
                  "classify": classify.ClassifyConfig}[command]
  required = {f.name: "/tmp/x" for f in dc.fields(config_class) if f.default is dc.MISSING}
  return config_class(**{**required, **overrides})


@pytest.mark.parametrize("command", ["eval", "predict", "classify"])
def test_answer_flags_are_refused_before_any_work(command, tmp_path):
  from inat_tf import commands
  from inat_tf.errors import UsageError
  from inat_tf.geo import prior as prior_lib
  assert commands.DEFAULT_LOCATION_FLOOR == prior_lib.DEFAULT_FLOOR
  commands.check_answer_flags(_answer_config(command))  # the defaults pass
  for overrides, message in (({"rollup_precision": 1.5}, "--rollup_precision=1.5"),
                             ({"rollup_precision": 0.0}, "--rollup_precision=0.0"),
                             ({"location_floor": -0.1}, "--location_floor=-0.1"),
                             ({"captive": True}, "give --geo_dir"),
                             ({"location_floor": 0.005}, "give --geo_dir"),
                             ({"checklist": str(tmp_path / "none.txt")}, "no such file")):
    with pytest.raises(UsageError, match=re.escape(message)):
      commands.check_answer_flags(_answer_config(command, **overrides))
  commands.check_answer_flags(_answer_config(command, captive=True, geo_dir="/g",
                                             location_floor=0.005))


def test_predict_refuses_answer_flags_with_a_saved_model():
  from inat_tf.commands import predict as predict_command
  from inat_tf.errors import UsageError
  config = _answer_config("predict", output="/tmp/out.csv", saved_model="/tmp/e", taxon="Aves")
  with pytest.raises(UsageError, match="serving_restricted"):
    predict_command.check(config, None)


def test_holdout_species_are_seeded_and_a_list_is_checked(tmp_path):
  from tfrecord_builder import holdout
  ids = [5, 3, 9, 1, 7, 11, 13, 2]
  first = holdout.chosen_species(ids, 0.25, seed=0)
  assert len(first) == 2 and set(first) <= set(ids)
  assert first.tolist() == holdout.chosen_species(list(reversed(ids)), 0.25, seed=0).tolist()
  assert len(holdout.chosen_species(ids, 0.01, seed=0)) == 1      # at least one
  assert len(holdout.chosen_species(ids, 0.99, seed=0)) == 7      # never all
  assert holdout.parse("0.2") == (0.2, None) and holdout.parse("ids.txt") == (None, "ids.txt")
  with pytest.raises(holdout.HoldoutError, match="in \\(0, 1\\)"):
    holdout.parse("1.5")
  listed = tmp_path / "held.txt"
  listed.write_text("3  # a comment\n\n9\n")
  assert holdout.read_ids(str(listed), set(ids)).tolist() == [3, 9]
  listed.write_text("3\n4\n")
  with pytest.raises(holdout.HoldoutError, match="line 2: category id 4 is not"):
    holdout.read_ids(str(listed), set(ids))
  listed.write_text("three\n")
  with pytest.raises(holdout.HoldoutError, match="line 1: 'three' is not a category id"):
    holdout.read_ids(str(listed), set(ids))


def test_calibrations_are_kept_per_rule_target_and_views(tree, tmp_path):
  from inat_tf import answer_options
  model_dir = str(tmp_path)
  (tmp_path / "best.keras").write_bytes(b"weights")
  rule = rollup.ThresholdRule((0.8, 0.5, 0.3)[:tree.num_ranks])
  answer_options.store_rule(model_dir, "best", "precision", 0.95, 1, rule, {"split": "val"})
  assert answer_options.load_rule(model_dir, "best", "precision", 0.95, 1) == rule
  assert answer_options.load_rule(model_dir, "best", "precision", 0.9, 1) is None
  assert answer_options.load_rule(model_dir, "best", "precision", 0.95, 2) is None
  # The hints are commands that run as printed: with the data dir the model was trained on.
  options = answer_options.Options(rule="precision", precision=0.9)
  with pytest.raises(answer_options.RollupError, match=(
      "run `inat-eval --data_dir DATA_DIR --model_dir .* --rollup_rule precision "
      "--rollup_precision 0.9` first")):
    answer_options.rule_for(options, tree, model_dir=model_dir)
  (tmp_path / "train_config.json").write_text(json.dumps({"data_dir": "/data/inat2021"}))
  (tmp_path / "best.keras").write_bytes(b"retrained")
  with pytest.raises(answer_options.RollupError, match=(
      "recalibrate with `inat-eval --data_dir /data/inat2021 --model_dir .* --rollup_rule "
      "precision --rollup_precision 0.95`")):
    answer_options.load_rule(model_dir, "best", "precision", 0.95, 1)
  # For final.keras it names --which final (else it would calibrate best.keras's rule).
  (tmp_path / "final.keras").write_bytes(b"weights")
  with pytest.raises(answer_options.RollupError, match=(
      "--model_dir .* --which final --rollup_rule precision --rollup_precision 0.9` first")):
    answer_options.rule_for(options, tree, model_dir=model_dir, which="final")
  assert answer_options.load_rule(model_dir, "best", "precision", 0.95, 1, stale_ok=True) is None


def test_a_calibration_made_on_other_held_out_images_is_not_reused_by_eval(tree, tmp_path):
  """inat-eval leaves its held-out images out of its scores; a rule calibrated on another data
  dir's (or on val's tune half before a minival existed) would be scored on its own calibration
  images: it is recalibrated (load_rule gives None), never reused. A damaged entry is one line."""
  from inat_tf import answer_options
  model_dir, data_a, data_b = str(tmp_path), str(tmp_path / "a"), str(tmp_path / "b")
  (tmp_path / "best.keras").write_bytes(b"weights")
  rule = rollup.ThresholdRule((0.8, 0.5, 0.3)[:tree.num_ranks])
  made_on = answer_options.held_out_description(data_a, ("val", "tune"))
  answer_options.store_rule(model_dir, "best", "risk", 0.95, 1, rule, {**made_on, "images": 9})
  assert made_on["data_dir"] == os.path.abspath(data_a)
  same = answer_options.held_out_description(data_a, ("val", "tune"))
  assert answer_options.load_rule(model_dir, "best", "risk", 0.95, 1, held_out_wanted=same) == rule
  for other in (answer_options.held_out_description(data_b, ("val", "tune")),
                answer_options.held_out_description(data_a, ("minival", "all"))):
    assert answer_options.load_rule(model_dir, "best", "risk", 0.95, 1,
                                    held_out_wanted=other) is None
  assert answer_options.load_rule(model_dir, "best", "risk", 0.95, 1) == rule  # predict, classify
  path = answer_options.calibration_path(model_dir, "best")
  document = json.loads(open(path).read())
  document["rules"][next(iter(document["rules"]))]["rule"] = {"name": "no such rule"}
  with open(path, "w") as f:
    json.dump(document, f)
  with pytest.raises(answer_options.RollupError, match="not a roll-up calibration"):
    answer_options.load_rule(model_dir, "best", "risk", 0.95, 1)
