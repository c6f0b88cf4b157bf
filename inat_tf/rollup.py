"""Roll-up: per image, the taxon to answer (a species, or a genus, family, ... when the model is
unsure between species), its rank and its score, from species probabilities and the taxonomy.

Every rule is a pure function of a [N, C] probability tensor and the static tables of
inat_tf.taxonomy, written with TensorFlow ops that run eagerly, inside a SavedModel and in TFLite
builtins. A taxon's mass is the sum of its species' probabilities. Rules:

  ArgmaxRule     the most probable species, always (what a top-1 classifier answers).
  InatRule       iNaturalist's published rule (inaturalist/inatVisionAPI, lib/inat_inferrer.py:
                 `aggregate_results` and `common_ancestor_from_aggregated_scores`, with the class
                 constants COMMON_ANCESTOR_WINDOW = 15 and COMMON_ANCESTOR_CUTOFF_RATIO = 0.01):
                 keep the 15 most probable species whose score exceeds 0.01 x the top score, sum
                 their scores up the taxonomy, divide by the sum over the kept species, and answer
                 the lowest-ranked taxon whose share exceeds 0.78 among ranks with iNat's
                 rank_level in [20, 33] (genus .. superfamily). We have no superfamily (nor
                 subfamily, tribe): of our ranks, genus (20) and family (30) qualify. iNat returns
                 this "common ancestor" beside its species list; to make one answer of it we also
                 let the species itself qualify under the same 0.78 (its share of the window), so
                 the rule answers a species when it is that sure, else the common ancestor, else
                 nothing.
  ThresholdRule  ours: one threshold per rank, answer the lowest rank whose most probable taxon's
                 mass reaches its threshold. `calibrate_thresholds` picks them on held-out images
                 so that the answers at EACH rank meet a target precision (e.g. 0.95).
  RiskRule       conditional risk minimisation over the whole tree, extending Karthik et al.,
                 ICLR 2021 ("No Cost Likelihood Manipulation at Test Time for Making Better
                 Mistakes in Deep Networks", Sec. 3: pick the class minimising sum_i p_i C(i, j),
                 C the LCA height; their code: sgk98/CRM-Better-Mistakes, src/compute_results.py,
                 get_all_cost_sensitive) from species to every taxon v at rank h_v (and the root,
                 "no answer"): answering v costs lambda * h_v when v contains the truth, and the
                 LCA height of v and the truth otherwise. Its expected cost is
                   R(v) = lambda h_v P(v) + h_v (1 - P(v)) + sum_{k >= h_v} (1 - P_k(v)),
                 P_k(v) the mass of v's taxon at rank k; R(root) = lambda * num_ranks. lambda = 1
                 never rolls up and is exactly Karthik et al.'s CRM on species; lambda = 0 always
                 answers the root. Species j beats its genus g exactly when p_j > (1 - lambda) P(g):
                 a ratio test, so species spread over look-alike siblings roll up to their genus
                 whatever the absolute scores. `calibrate_risk` picks lambda on held-out images.

`roll_up` returns {"node": [N] int32 taxon node (-1: no answer), "rank": [N] int32 rank index
(num_ranks: no answer), "score": [N] float32 the answered taxon's mass (0: no answer)}.
"""

import dataclasses

import numpy as np
import tensorflow as tf

# inaturalist/inatVisionAPI lib/inat_inferrer.py: InatInferrer.COMMON_ANCESTOR_WINDOW,
# COMMON_ANCESTOR_CUTOFF_RATIO, and the 0.78 and rank_level bounds of its common-ancestor query.
INAT_WINDOW = 15
INAT_CUTOFF_RATIO = 0.01
INAT_THRESHOLD = 0.78
INAT_RANK_LEVELS = (20, 33)
NEVER = 2.0  # a threshold no mass reaches: the rank is never answered


@dataclasses.dataclass(frozen=True)
class ArgmaxRule:
  name = "argmax"


@dataclasses.dataclass(frozen=True)
class InatRule:
  threshold: float = INAT_THRESHOLD
  window: int = INAT_WINDOW
  cutoff_ratio: float = INAT_CUTOFF_RATIO
  name = "inat"


@dataclasses.dataclass(frozen=True)
class ThresholdRule:
  thresholds: tuple  # one per rank, lowest first; NEVER (2.0) = never answer at that rank
  name = "thresholds"


@dataclasses.dataclass(frozen=True)
class RiskRule:
  specificity_cost: float = 1.0  # lambda: the cost of each rank a right answer rises above species
  name = "risk"


RULES = {rule.name: rule for rule in (ArgmaxRule, InatRule, ThresholdRule, RiskRule)}


def rule_to_json(rule):
  return {"name": rule.name, **{k: list(v) if isinstance(v, tuple) else v
                                for k, v in dataclasses.asdict(rule).items()}}


def rule_from_json(document):
  """The rule a rule_to_json dict describes; ValueError names an unknown rule."""
  fields = dict(document)
  name = fields.pop("name", None)
  if name not in RULES:
    raise ValueError(f"roll-up rule {name!r}: expected one of {', '.join(RULES)}")
  if "thresholds" in fields:
    fields["thresholds"] = tuple(float(t) for t in fields["thresholds"])
  return RULES[name](**fields)


def check_rule(rule, taxonomy):
  """ValueError (one line) unless `rule` can run on `taxonomy`."""
  if isinstance(rule, ThresholdRule) and len(rule.thresholds) != taxonomy.num_ranks:
    raise ValueError(f"ThresholdRule has {len(rule.thresholds)} thresholds but the taxonomy has "
                     f"{taxonomy.num_ranks} ranks ({', '.join(taxonomy.ranks)}); calibrate it on "
                     f"this label map")
  if isinstance(rule, RiskRule) and not 0 <= rule.specificity_cost:
    raise ValueError(f"RiskRule specificity_cost={rule.specificity_cost}: must be >= 0")
  if isinstance(rule, InatRule) and not (0 < rule.threshold < 1 and rule.window >= 1):
    raise ValueError(f"InatRule threshold={rule.threshold}, window={rule.window}: expected a "
                     f"threshold in (0, 1) and a window >= 1")
  if not isinstance(rule, tuple(RULES.values())):
    raise ValueError(f"roll-up rule {rule!r}: expected one of {', '.join(RULES)}")


# -- graph ops ---------------------------------------------------------------------------------


def node_masses(probabilities, taxonomy):
  """[N, num_nodes] float32: each taxon's mass, the sum of its species' probabilities.

  One unsorted segment sum over the [num_ranks * C] (class, rank) pairs (TFLite builtin
  UNSORTED_SEGMENT_SUM); species nodes get their own probability.
  """
  probabilities = tf.convert_to_tensor(probabilities, tf.float32)
  segments = tf.constant(taxonomy.ancestors.T.reshape(-1), tf.int32)  # rank-major
  columns = tf.tile(tf.transpose(probabilities), [taxonomy.num_ranks, 1])  # [R * C, N]
  return tf.transpose(tf.math.unsorted_segment_sum(columns, segments, taxonomy.num_nodes))


def ancestor_masses(probabilities, taxonomy):
  """[N, C, num_ranks] float32: the mass of class c's taxon at each rank."""
  return _per_class_and_rank(node_masses(probabilities, taxonomy), taxonomy)


def _per_class_and_rank(masses, taxonomy):
  """[N, num_nodes] node masses -> [N, C, num_ranks]: those of each class's taxa."""
  return tf.gather(masses, tf.constant(taxonomy.ancestors, tf.int32), axis=1)


def best_per_rank(masses, taxonomy):
  """(mass [N, R], node [N, R] int32): the most massive taxon at each rank (the lowest class
  index on ties). masses: ancestor_masses."""
  best_class = tf.argmax(masses, axis=1, output_type=tf.int32)  # [N, R]
  flat = tf.constant(taxonomy.ancestors.reshape(-1), tf.int32)
  best_node = tf.gather(flat, best_class * taxonomy.num_ranks + tf.range(taxonomy.num_ranks))
  return tf.reduce_max(masses, axis=1), best_node


def _pick(values, index, depth):
  """values[n, index[n]] for [N, depth] values (zero where index is out of range), written as a
  one-hot product so that TFLite needs no batched gather."""
  return tf.reduce_sum(values * tf.one_hot(index, depth, dtype=values.dtype), axis=1)


def _lowest_passing(passing, best_node, num_ranks):
  """(node, rank) of the lowest rank whose flag is set; (-1, num_ranks) where none is."""
  any_passing = tf.reduce_any(passing, axis=1)
  rank = tf.argmax(tf.cast(passing, tf.int32), axis=1, output_type=tf.int32)
  node = _pick(best_node, rank, num_ranks)
  return (tf.where(any_passing, node, -1),
          tf.where(any_passing, rank, tf.constant(num_ranks, tf.int32)))


def _inat_shares(probabilities, rule, num_classes):
  """The top-`window` species above cutoff_ratio x the top score, others 0, divided by their sum."""
  k = min(rule.window, num_classes)
  top = tf.math.top_k(probabilities, k)
  kept = tf.where(top.values > rule.cutoff_ratio * top.values[:, :1], top.values, 0.0)
  window = tf.reduce_sum(tf.one_hot(top.indices, num_classes) * kept[..., tf.newaxis], axis=1)
  return window / tf.reduce_sum(window, axis=1, keepdims=True)


def roll_up(probabilities, taxonomy, rule):
  """The answer per image under `rule`; see the module docstring for the rules and outputs.

  probabilities: [N, C] float32, rows summing to 1 (a row of zeros gets no answer).
  """
  return roll_up_each(probabilities, taxonomy, [rule])[0]


def roll_up_each(probabilities, taxonomy, rules):
  """[roll_up(probabilities, taxonomy, rule) for rule in rules], computing what the rules share
  once: the taxa's masses, their [N, C, R] gather, the best taxon per rank (all threshold rules)
  and iNat's window (per window and cutoff). inat-eval's precision-coverage curves and the
  calibrations' grids roll the same images up under 12-101 rules; at 10,000 species the masses
  were most of each roll-up's cost."""
  for rule in rules:
    check_rule(rule, taxonomy)
  probabilities = tf.convert_to_tensor(probabilities, tf.float32)
  num_ranks, num_classes = taxonomy.num_ranks, taxonomy.num_classes
  masses = node_masses(probabilities, taxonomy)
  has_mass = tf.reduce_sum(probabilities, axis=1) > 0
  shared = {}

  def once(key, make):
    if key not in shared:
      shared[key] = make()
    return shared[key]

  def per_class():  # [N, C, R]: the masses of each class's taxa
    return once("ancestors", lambda: _per_class_and_rank(masses, taxonomy))

  answers = []
  for rule in rules:
    if isinstance(rule, ArgmaxRule):
      node = tf.argmax(probabilities, axis=1, output_type=tf.int32)
      rank = tf.zeros_like(node)
    elif isinstance(rule, InatRule):
      best_mass, best_node = once(("inat", rule.window, rule.cutoff_ratio), lambda: best_per_rank(
          ancestor_masses(_inat_shares(probabilities, rule, num_classes), taxonomy), taxonomy))
      levels = taxonomy.rank_levels()
      allowed = (levels == 10) | ((levels >= INAT_RANK_LEVELS[0]) &
                                  (levels <= INAT_RANK_LEVELS[1]))
      passing = (best_mass > rule.threshold) & tf.constant(allowed)
      node, rank = _lowest_passing(passing, best_node, num_ranks)
    elif isinstance(rule, ThresholdRule):
      best_mass, best_node = once("best", lambda: best_per_rank(per_class(), taxonomy))
      passing = best_mass >= tf.constant(rule.thresholds, tf.float32)
      node, rank = _lowest_passing(passing, best_node, num_ranks)
    else:
      tables = once("risk tables", lambda: _risk_tables(taxonomy))
      parts = once("risk", lambda: _risk_parts(masses, tables))
      node, rank = _minimum_risk(_risks(parts, tables, rule.specificity_cost), tables,
                                 rule.specificity_cost, num_ranks)
    node = tf.where(has_mass, node, -1)
    rank = tf.where(has_mass, rank, tf.constant(num_ranks, tf.int32))
    answers.append({"node": node, "rank": rank, "score": _pick(masses, node, taxonomy.num_nodes)})
  return answers


def taxon_risks(probabilities, taxonomy, specificity_cost):
  """(risks [N, T] float32, taxa [T] int32): the expected cost R(v) of answering each taxon v
  that holds a species (module docstring), and their node ids; probabilities [N, C]."""
  tables = _risk_tables(taxonomy)
  parts = _risk_parts(node_masses(probabilities, taxonomy), tables)
  return _risks(parts, tables, specificity_cost), tf.constant(tables[0])


def _risk_tables(taxonomy):
  """The risk rule's constants (numpy): (taxa [T] int32, chain [T, R] int32, rank [T] int32).

  R(v) depends on the taxon v alone, so the rule minimises over the T taxa (17,057 in the
  generated iNat2021 x0.05 download: 10,000 species, 7 ranks), not over every class's taxon at
  every rank ([C, R], 70,000, each taxon repeated once per species below it). taxa: the nodes
  that hold a species, in the order of their first (class, rank) pair c * R + r, so that argmin's
  first-minimum tie-break is the one a minimum over [C, R] makes (up to float rounding where risks
  tie exactly: the old matmul and this sum may round such a tie apart). chain: each taxon's own
  and higher ancestors (node_ancestors), with num_nodes below its rank: the index of a padding
  mass of 1, whose 1 - P adds nothing.
  """
  pairs = taxonomy.ancestors.reshape(-1)  # node of pair c * R + r
  first = np.full(taxonomy.num_nodes, pairs.size, np.int64)
  np.minimum.at(first, pairs, np.arange(pairs.size))
  taxa = np.argsort(first, kind="stable")[:int(np.sum(first < pairs.size))]
  chain = taxonomy.node_ancestors[taxa]
  chain = np.where(chain < 0, taxonomy.num_nodes, chain)
  return (taxa.astype(np.int32), chain.astype(np.int32),
          taxonomy.node_ranks[taxa].astype(np.int32))


def _risk_parts(masses, tables):
  """What every specificity cost shares, each [N, T]: (P(v), h_v (1 - P(v)) + sum_{k >= h_v}
  (1 - P_k(v))). masses: node_masses [N, num_nodes]. inat-eval's curve rolls up under a dozen
  costs."""
  taxa, chain, rank = tables
  own = tf.gather(masses, taxa, axis=1)
  padded = tf.concat([masses, tf.ones_like(masses[:, :1])], axis=1)
  tail = tf.reduce_sum(1.0 - tf.gather(padded, chain, axis=1), axis=2)
  return own, tf.cast(rank, tf.float32) * (1.0 - own) + tail


def _risks(parts, tables, specificity_cost):
  """[N, T] R(v) = lambda h_v P(v) + the shared part."""
  own, shared = parts
  return specificity_cost * tf.cast(tables[2], tf.float32) * own + shared


def _minimum_risk(risk, tables, specificity_cost, num_ranks):
  """(node, rank) [N] int32 of the least risky taxon; (-1, num_ranks) where none is below the
  root's cost, lambda * num_ranks."""
  taxa, _, rank = tables
  best = tf.argmin(risk, axis=1, output_type=tf.int32)
  answered = tf.reduce_min(risk, axis=1) < specificity_cost * num_ranks
  return (tf.where(answered, tf.gather(tf.constant(taxa), best), -1),
          tf.where(answered, tf.gather(tf.constant(rank), best), tf.constant(num_ranks, tf.int32)))


# -- calibration on held-out images (numpy in, numpy out) --------------------------------------


def _batches(probabilities, batch_size=256):
  probabilities = np.asarray(probabilities, np.float32)
  for start in range(0, len(probabilities), batch_size):
    yield probabilities[start:start + batch_size]


def roll_up_numpy(probabilities, taxonomy, rule, batch_size=256):
  """roll_up over a [N, C] numpy array in batches: {"node", "rank", "score"} numpy arrays."""
  return roll_up_numpy_each(probabilities, taxonomy, [rule], batch_size)[0]


def roll_up_numpy_each(probabilities, taxonomy, rules, batch_size=256):
  """roll_up_each over a [N, C] numpy array in batches: per rule, {"node", "rank", "score"}."""
  batches = list(_batches(probabilities, batch_size)) or [  # no images: empty answers
      np.zeros([0, taxonomy.num_classes], np.float32)]
  parts = [[{k: v.numpy() for k, v in answer.items()}
            for answer in roll_up_each(batch, taxonomy, rules)] for batch in batches]
  return [{key: np.concatenate([batch[i][key] for batch in parts])
           for key in ("node", "rank", "score")} for i in range(len(rules))]


def _meets(taxonomy, nodes, labels, target_precision, per_rank):
  """Whether the answers reach the target precision: overall (among answered images), or at
  every rank that has answers (per_rank)."""
  answered = nodes >= 0
  right = taxonomy.contains(nodes, labels)
  if not per_rank:
    return not answered.any() or right[answered].mean() >= target_precision
  ranks = taxonomy.node_ranks[np.maximum(nodes, 0)]
  return all(right[answered & (ranks == r)].mean() >= target_precision
             for r in np.unique(ranks[answered]))


def calibrate_thresholds(probabilities, labels, taxonomy, target_precision=0.95):
  """(ThresholdRule, per-rank report) meeting `target_precision` at each rank on these images.

  Rank by rank from species up, among the images not answered at a lower rank: sort by the
  mass of their most massive taxon at this rank, take the longest run from the top whose
  precision (answered taxon contains the true species) is >= target_precision, and set the
  threshold to the mass of its last image; NEVER when no run qualifies. So each rank's answers on
  these images meet the target, and a lower threshold would break it.

  probabilities: [N, C] held-out probabilities (as the pipeline's roll-up sees them); labels: [N]
  class indices. Raises ValueError on an empty set or a target outside (0, 1].
  """
  labels = np.asarray(labels)
  if not len(labels):
    raise ValueError("calibrate_thresholds: no held-out images")
  if not 0 < target_precision <= 1:
    raise ValueError(f"target precision {target_precision}: must be in (0, 1]")
  best_mass, best_node = [], []
  for batch in _batches(probabilities):
    mass, node = best_per_rank(ancestor_masses(batch, taxonomy), taxonomy)
    best_mass.append(mass.numpy())
    best_node.append(node.numpy())
  best_mass, best_node = np.concatenate(best_mass), np.concatenate(best_node)
  pending = np.ones(len(labels), bool)
  thresholds, report = [], []
  for r in range(taxonomy.num_ranks):
    members = np.flatnonzero(pending)
    mass = best_mass[members, r]
    right = taxonomy.contains(best_node[members, r], labels[members])
    order = np.argsort(-mass, kind="stable")
    mass, right = mass[order], right[order]
    precision = np.cumsum(right) / np.arange(1, len(right) + 1)
    # A run may only end where the mass changes: "mass >= t" takes all images at the boundary.
    ends = np.flatnonzero((precision >= target_precision) &
                          np.append(mass[1:] < mass[:-1], True)) if len(mass) else []
    if len(ends):
      end = ends[-1]
      thresholds.append(float(mass[end]))
      pending[members[order[:end + 1]]] = False
      report.append({"rank": taxonomy.ranks[r], "threshold": float(mass[end]),
                     "answered": int(end + 1), "precision": float(precision[end])})
    else:
      thresholds.append(NEVER)
      report.append({"rank": taxonomy.ranks[r], "threshold": None, "answered": 0,
                     "precision": None})
  return ThresholdRule(tuple(thresholds)), report


def calibrate_knob(probabilities, labels, taxonomy, make_rule, knobs, *, target_precision=0.95,
                   per_rank=False):
  """(rule, knob) for the first knob (in the order given) whose answers on these images reach
  `target_precision` (overall, or at every answered rank with per_rank), or (None, None).
  make_rule(knob) -> rule; put the most specific knob first (RiskRule: lambda from 1 down;
  InatRule: threshold from low to high)."""
  labels = np.asarray(labels)
  knobs = list(knobs)
  for start in range(0, len(knobs), KNOBS_AT_ONCE):  # most calibrations stop early
    chunk = knobs[start:start + KNOBS_AT_ONCE]
    rules = [make_rule(knob) for knob in chunk]
    for knob, rule, answer in zip(chunk, rules,
                                  roll_up_numpy_each(probabilities, taxonomy, rules)):
      if _meets(taxonomy, answer["node"], labels, target_precision, per_rank):
        return rule, knob
  return None, None


KNOBS_AT_ONCE = 10  # rules rolled up together by calibrate_knob (roll_up_each shares their work)


RISK_GRID = tuple(np.round(np.linspace(1.0, 0.0, 101), 2))
INAT_GRID = tuple(np.round(np.linspace(0.5, 0.99, 50), 2))


def calibrate_risk(probabilities, labels, taxonomy, *, target_precision=0.95, per_rank=False,
                   grid=RISK_GRID):
  """The most specific RiskRule (largest lambda on `grid`) whose answers on these held-out images
  reach `target_precision` (overall, or at every rank with per_rank); RiskRule(0.0) (always the
  root) when none does."""
  rule, _ = calibrate_knob(probabilities, labels, taxonomy, RiskRule, grid,
                           target_precision=target_precision, per_rank=per_rank)
  return rule or RiskRule(0.0)


def calibrate_inat(probabilities, labels, taxonomy, *, target_precision=0.95, per_rank=False,
                   grid=INAT_GRID):
  """iNat's rule with the lowest share threshold on `grid` that reaches `target_precision`
  (overall, or at every rank with per_rank) on these held-out images, for comparisons at equal
  precision; None when no threshold on the grid does."""
  rule, _ = calibrate_knob(probabilities, labels, taxonomy, lambda t: InatRule(threshold=t),
                           grid, target_precision=target_precision, per_rank=per_rank)
  return rule
