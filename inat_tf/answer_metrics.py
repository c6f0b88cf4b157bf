"""How good the answers are, as plain data (dicts of numbers and lists; a report renders them).

For a roll-up rule's answers (taxon node per image, -1 = no answer) against true species:
  precision           among answered images, the share whose answered taxon contains the true
                      species ("precision at the returned rank"); also per rank.
  species_coverage    the share of ALL images answered at species rank (right or wrong).
  mistake_severity    mean height of the lowest common ancestor of a wrong answer and the truth
                      (Bertinetto et al., CVPR 2020, "Making Better Mistakes", Sec. 3: "mistake
                      severity", leaves at height 0); None when there is no mistake.
  severity_per_image  the LCA height of each wrong answer summed over ALL images, divided by
                      their number (a right answer at any rank, and no answer, add 0): for species
                      answers this is Bertinetto et al.'s "hierarchical distance@1"; it falls when
                      a rule makes fewer mistakes or milder ones.
Open set (images of species the model never saw, against images of species it did):
  auroc               area under the ROC curve of an "unknown" score, unseen as positives (the
                      Mann-Whitney U statistic, ties counted half).
  unseen_placement    the share of unseen-species images answered at a taxon that contains them
                      at genus or family rank (their correct genus or family), and at each rank.
"""

import numpy as np


def answer_metrics(nodes, labels, taxonomy):
  """The metrics above for answers `nodes` ([N] int taxon nodes, -1 none) of images of true
  classes `labels` ([N] int). Returns a dict of floats, ints and a per-rank list."""
  nodes, labels = np.asarray(nodes), np.asarray(labels)
  count = len(labels)
  if not count:
    raise ValueError("answer_metrics: no images")
  answered = nodes >= 0
  right = taxonomy.contains(nodes, labels)
  heights = taxonomy.lca_height(nodes, labels)
  ranks = np.where(answered, taxonomy.node_ranks[np.maximum(nodes, 0)], taxonomy.num_ranks)
  wrong = answered & ~right
  per_rank = []
  for r, name in enumerate(taxonomy.ranks):
    at = ranks == r
    per_rank.append({"rank": name, "images": int(at.sum()), "share": float(at.mean()),
                     "precision": float(right[at].mean()) if at.any() else None})
  return {
      "images": count,
      "answered": float(answered.mean()),
      "precision": float(right[answered].mean()) if answered.any() else None,
      "species_coverage": float(np.mean(ranks == 0)),
      "species_precision": per_rank[0]["precision"],
      "correct_species": float(np.mean((ranks == 0) & right)),
      "mistakes": int(wrong.sum()),
      "mistake_severity": float(heights[wrong].mean()) if wrong.any() else None,
      "severity_per_image": float(np.sum(heights[wrong]) / count),
      "per_rank": per_rank,
  }


def curve_point(knob, metrics):
  """One point of a precision-coverage curve: the knob and the numbers a plot needs."""
  return {"knob": knob, "precision": metrics["precision"], "answered": metrics["answered"],
          "species_coverage": metrics["species_coverage"],
          "species_precision": metrics["species_precision"],
          "severity_per_image": metrics["severity_per_image"]}


def auroc(known_scores, unknown_scores):
  """P(score of an unknown image > score of a known one) + 0.5 P(equal): the area under the ROC
  curve with unknown as the positive class. Scores must grow with "unknown" (pass -MSP, or
  energy). Raises ValueError when either set is empty."""
  known, unknown = np.asarray(known_scores, np.float64), np.asarray(unknown_scores, np.float64)
  if not len(known) or not len(unknown):
    raise ValueError("auroc needs images of both seen and unseen species")
  scores = np.concatenate([known, unknown])
  # Mid-ranks (1-based, ties share their mean rank): U = sum of positive ranks - n(n+1)/2.
  order = np.argsort(scores, kind="stable")
  sorted_scores = scores[order]
  ranks = np.empty(len(scores))
  starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
  ends = np.r_[starts[1:], len(scores)]
  for start, end in zip(starts, ends):
    ranks[order[start:end]] = (start + end + 1) / 2.0
  u = ranks[len(known):].sum() - len(unknown) * (len(unknown) + 1) / 2.0
  return float(u / (len(known) * len(unknown)))


def unseen_placement(nodes, true_nodes, taxonomy, placed_ranks=("genus", "family")):
  """Where the answers `nodes` ([N]) put images of unseen species.

  true_nodes: [N, num_ranks] int, the unseen species' own taxon at each rank in this taxonomy
  (-1 where its taxon is not in it, always at species). Returns {"images", "placed" (share
  answered at a `placed_ranks` rank with its own taxon there), "per_rank": {rank: {"answered",
  "right"}}, "no_answer"}.
  """
  nodes, true_nodes = np.asarray(nodes), np.asarray(true_nodes)
  ranks = np.where(nodes >= 0, taxonomy.node_ranks[np.maximum(nodes, 0)], taxonomy.num_ranks)
  own = np.take_along_axis(true_nodes, np.minimum(ranks, taxonomy.num_ranks - 1)[:, None],
                           axis=1)[:, 0]
  right = (nodes >= 0) & (nodes == own)
  placed_rank_ids = [taxonomy.ranks.index(r) for r in placed_ranks if r in taxonomy.ranks]
  per_rank = {name: {"answered": float(np.mean(ranks == r)),
                     "right": float(np.mean((ranks == r) & right))}
              for r, name in enumerate(taxonomy.ranks)}
  return {"images": int(len(nodes)),
          "placed": float(np.mean(right & np.isin(ranks, placed_rank_ids))) if len(nodes) else None,
          "per_rank": per_rank, "no_answer": float(np.mean(nodes < 0)) if len(nodes) else None}
