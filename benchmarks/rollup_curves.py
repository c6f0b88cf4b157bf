"""inat-eval's roll-up comparison at many species: the rules rolled up together
(rollup.roll_up_numpy_each, the taxa's masses and the best taxon per rank computed once per batch)
side by side with one roll-up per rule (rollup.roll_up_numpy in a loop, as before), on the same
probabilities, in one run. The rules are those inat-eval's "Answers beyond the species" rolls up:
argmax, iNat's and the risk rule (ours needs held-out images), then the precision-coverage
curves (12 iNat thresholds, 12 risk lambdas).

  python benchmarks/rollup_curves.py [--species 10000] [--images 1000]

A generated label map with iNat2021's seven ranks (benchmarks/full_count_download's taxonomy),
random probabilities (softmax of N(0, 3) logits; the cost does not depend on the values). Prints
ms per image for each way, their ratio, peak RSS, and checks that both give the same answers.
"""

import argparse
import resource
import time

import numpy as np


def _label_map(species):
  """A label map of `species` classes with a 2021-like seven-rank lineage, no files written."""
  from inat_tf import label_map as label_map_lib
  rng = np.random.default_rng(0)
  ranks = ("kingdom", "phylum", "class", "order", "family", "genus")
  sizes = [3, 12, 50, 300, 1500, max(species // 3, 1)]  # taxa per rank, broad to narrow
  parents = [rng.integers(0, sizes[0], sizes[1])]
  for r in range(1, len(sizes) - 1):
    parents.append(rng.integers(0, sizes[r], sizes[r + 1]))
  genus = rng.integers(0, sizes[-1], species)
  categories = []
  for i in range(species):
    lineage, node = [genus[i]], genus[i]
    for r in range(len(sizes) - 2, -1, -1):
      node = parents[r][node]
      lineage.append(node)
    lineage = lineage[::-1]  # kingdom first
    categories.append({"id": i, "name": f"species {i}", "supercategory": "S",
                       **{rank: f"{rank} {'.'.join(map(str, lineage[:k + 1]))}"
                          for k, rank in enumerate(ranks)}})
  return label_map_lib.LabelMap.from_categories(categories, {}, ranks=ranks, edition="bench")


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--species", type=int, default=10000)
  parser.add_argument("--images", type=int, default=1000)
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from inat_tf import answer_report  # pylint: disable=g-import-not-at-top
  from inat_tf import rollup  # pylint: disable=g-import-not-at-top
  from inat_tf import taxonomy as taxonomy_lib  # pylint: disable=g-import-not-at-top
  tree = taxonomy_lib.from_label_map(_label_map(args.species))
  logits = np.random.default_rng(1).normal(size=(args.images, args.species)) * 3
  probabilities = tf.nn.softmax(logits.astype(np.float32)).numpy()
  rules = ([rollup.ArgmaxRule(), rollup.InatRule(), rollup.RiskRule(0.5)]
           + [rollup.InatRule(threshold=float(t)) for t in answer_report.INAT_CURVE]
           + [rollup.RiskRule(float(v)) for v in answer_report.RISK_CURVE])
  ways = {"one roll-up per rule": lambda: [rollup.roll_up_numpy(probabilities, tree, rule)
                                           for rule in rules],
          "rules together": lambda: rollup.roll_up_numpy_each(probabilities, tree, rules)}
  best, answers = {}, {}
  for _ in range(args.repeats):  # interleaved; the fastest of each
    for name, way in ways.items():
      start = time.perf_counter()
      answers[name] = way()
      best[name] = min(best.get(name, np.inf), time.perf_counter() - start)
  for a, b in zip(*answers.values()):
    for key in ("node", "rank", "score"):
      np.testing.assert_array_equal(a[key], b[key])
  print(f"{args.images:,} images x {args.species:,} species, {tree.num_ranks} ranks, "
        f"{tree.num_nodes:,} taxa; {len(rules)} rules (argmax, iNat, risk and inat-eval's curves); "
        f"same answers both ways\n")
  print("| way | ms per image | ratio to one per rule |")
  print("|---|---:|---:|")
  base = best["one roll-up per rule"]
  for name, seconds in best.items():
    print(f"| {name} | {1000 * seconds / args.images:.2f} | {base / seconds:.2f}x |")
  print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
  main()
