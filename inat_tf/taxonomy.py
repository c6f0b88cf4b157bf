"""Each class's lineage, and the tree as static integer tables that can become graph constants.

Ranks per edition (lowest first, the species being the class itself):
  2018, 2019, 2021  species, genus, family, order, class, phylum, kingdom: the published fields of
                    each category record (inat_tf.editions.TAXONOMY_RANKS).
  2017              species, genus, supercategory: the published super-category, and the genus read
                    from the binomial name (`genus_from_name`). The nomenclature codes make the
                    genus the first word of a species name (ICZN Art. 5.1, ICN Art. 23.1), so this
                    is exact for binomials, trinomials ("Larus argentatus smithsonianus"),
                    infraspecific names ("Quercus robur var. fastigiata"), subgenera in brackets
                    ("Bombus (Pyrobombus) impatiens"), interspecific hybrids ("Mentha × piperita")
                    and "Genus sp.". It is not exact for: intergeneric hybrids ("× Chitalpa
                    tashkentensis" is its own nothogenus ×Chitalpa, under neither parent genus: we
                    keep it as that nothogenus; a formula "Genus1 a × Genus2 b" is filed under
                    Genus1 only); names that are not scientific (a lower-case first word: the
                    class becomes its own genus, so a roll-up never merges it wrongly); and genus
                    homonyms inside one super-category (2017's "Animalia" holds many phyla; two
                    homonymous genera there would be merged). The super-category is not one rank
                    (Plantae is a kingdom, Aves a class, Animalia the remaining animals), so
                    iNat2017's tree has three levels and its LCA heights are not comparable with
                    the later editions'.

A taxon is identified by its lineage (the names from the top rank down to it), as
LabelMap.taxon_indices does: a genus name used in two families is two genera.

Tables (numpy int32, the same in a SavedModel or a TFLite model as graph constants):
  nodes 0 .. C-1 are the species, node c = class index c; then the genera, families, ... in
  lineage order. node_ancestors[v, r] is node v's taxon at ranks[r] for r >= node_ranks[v], and -1
  below; ancestors = node_ancestors[:C] ([num_classes, num_ranks], column 0 = the class).
  LCA height (Bertinetto et al., CVPR 2020, "Making Better Mistakes", Sec. 3: the height of the
  lowest common ancestor in the tree, leaves at 0): between two classes, the number of ranks at
  which their taxa differ (all leaves are at the same depth); num_ranks when they share only the
  root ("life").
"""

import dataclasses
import difflib
import re

import numpy as np

SPECIES = "species"
SUPERCATEGORY = "supercategory"
RANKS_2017 = (SPECIES, "genus", SUPERCATEGORY)
HYBRID_SIGN = "\u00d7"  # ×
# iNaturalist's rank_level of each rank (inaturalist/inatVisionAPI reads it from the taxonomy file:
# species 10, genus 20, family 30, superfamily 33, order 40, class 50, phylum 60, kingdom 70). The
# 2017 super-category is no single rank, so it has none.
RANK_LEVELS = {SPECIES: 10, "genus": 20, "family": 30, "order": 40, "class": 50, "phylum": 60,
               "kingdom": 70}


class TaxonomyError(ValueError):
  """A label map's taxonomy cannot be built or a taxon is not in it; the message says why."""


def genus_from_name(name):
  """(genus, how) of a species name: how is "binomial", "nothogenus" or "not scientific".

  The first word, for a capitalised scientific name; "×Name" for an intergeneric hybrid written
  "× Name ..." or "×Name ..." (also "x Name" with a Latin x); the whole name (the class is its own
  genus) when the first word is not a capitalised Latin word.
  """
  words = name.split()
  if not words:
    raise TaxonomyError(f"species name {name!r} is empty: cannot read a genus from it")
  first = words[0]
  if first in (HYBRID_SIGN, "x", "X") and len(words) > 1:
    return HYBRID_SIGN + words[1], "nothogenus"
  if first.startswith(HYBRID_SIGN) and len(first) > 1:
    return HYBRID_SIGN + first[1:], "nothogenus"
  if re.fullmatch(r"[A-Z][a-z\-]+", first):
    return first, "binomial"
  return name, "not scientific"


@dataclasses.dataclass(frozen=True, eq=False)
class Taxonomy:
  """The tree over a label map's classes; see the module docstring for the tables."""
  ranks: tuple              # rank names, lowest first: ("species", "genus", ...)
  node_names: tuple         # [num_nodes] taxon name (the species name for nodes < num_classes)
  node_ranks: np.ndarray    # int32 [num_nodes]: index into ranks
  node_ancestors: np.ndarray  # int32 [num_nodes, num_ranks]: taxon at each rank >= own, else -1
  edition: str = ""
  genus_notes: tuple = ()   # 2017: (class index, "nothogenus" | "not scientific") where not binomial

  @property
  def num_classes(self):
    return int(np.sum(self.node_ranks == 0))

  @property
  def num_nodes(self):
    return len(self.node_names)

  @property
  def num_ranks(self):
    return len(self.ranks)

  @property
  def ancestors(self):
    """int32 [num_classes, num_ranks]: each class's taxon (node index) at each rank."""
    return self.node_ancestors[:self.num_classes]

  def rank_of(self, node):
    return self.ranks[int(self.node_ranks[node])]

  def lineage(self, node):
    """[(rank, name)] from the top rank down to `node`."""
    rank = int(self.node_ranks[node])
    return [(self.ranks[r], self.node_names[self.node_ancestors[node, r]])
            for r in range(self.num_ranks - 1, rank - 1, -1)]

  def describe(self, node):
    """'genus Corvus' (node -1: 'no answer')."""
    if node < 0:
      return "no answer"
    return f"{self.rank_of(node)} {self.node_names[node]}"

  def contains(self, nodes, classes):
    """bool array: whether taxon nodes[i] contains class classes[i] (broadcasting)."""
    nodes, classes = np.asarray(nodes), np.asarray(classes)
    safe = np.maximum(nodes, 0)
    return (nodes >= 0) & (self.ancestors[classes, self.node_ranks[safe]] == safe)

  def lca_height(self, nodes, classes):
    """int array: height of the lowest common ancestor of taxon nodes[i] and class classes[i].

    0 for the right species; a right answer at rank r has height r (the answer itself); a wrong
    one the height where its lineage meets the truth's; num_ranks (the root) for node -1 (no
    answer). Between two classes, the number of ranks at which they differ.
    """
    nodes, classes = np.broadcast_arrays(np.asarray(nodes), np.asarray(classes))
    safe = np.maximum(nodes, 0)
    own = self.node_ranks[safe]
    truth = self.ancestors[classes]                       # [..., R]
    answer = self.node_ancestors[safe]                    # [..., R], -1 below its rank
    above = np.arange(self.num_ranks) >= own[..., None]
    differ = np.sum(above & (truth != answer), axis=-1)
    return np.where(nodes >= 0, own + differ, self.num_ranks).astype(np.int64)

  def members(self, node):
    """bool [num_classes]: the classes under taxon `node`."""
    return self.ancestors[:, self.node_ranks[node]] == node

  def find(self, name):
    """The node index of the taxon called `name`, at any rank.

    name: "Aves", "genus:Corvus" (a rank first), or a lineage "Aves > Morus" (names from the top
    down, the last one the taxon; any may be skipped). Case-insensitive. Raises TaxonomyError (one
    line) when no taxon or several match, naming the closest names or the lineages to choose from.
    """
    rank, _, path = name.rpartition(":")
    rank = rank.strip().lower()
    wanted = [part.strip().lower() for part in path.split(">") if part.strip()]
    if rank and rank not in self.ranks:
      raise TaxonomyError(f"taxon {name!r}: rank {rank!r} is not one of this label map's ranks "
                          f"({', '.join(self.ranks)})")
    if not wanted:
      raise TaxonomyError(f"taxon {name!r}: expected a taxon name such as Aves or genus:Corvus")
    lowered = [n.lower() for n in self.node_names]
    matches = [v for v, n in enumerate(lowered)
               if n == wanted[-1] and (not rank or self.rank_of(v) == rank)
               and _in_order(wanted[:-1], [t.lower() for _, t in self.lineage(v)][:-1])]
    if len(matches) == 1:
      return matches[0]
    if not matches:
      # The name is there but not as asked: say which part does not hold.
      *above, leaf = (part.strip() for part in path.split(">"))
      named = [v for v, n in enumerate(lowered) if n == wanted[-1]]
      if named and rank and not any(self.rank_of(v) == rank for v in named):
        found = ", ".join(f"{self.rank_of(v)}:{self.node_names[v]}" for v in named[:4])
        raise TaxonomyError(f"taxon {name!r}: {leaf} is not a {rank} here but {found}: drop the "
                            f"rank or use that one")
      if named:
        lineages = "; ".join(" > ".join(n for _, n in self.lineage(v)) for v in named[:4])
        raise TaxonomyError(f"taxon {name!r}: {leaf} is not under {' > '.join(above)} here "
                            f"({'lineages' if len(named) > 1 else 'lineage'}: {lineages})")
      close = difflib.get_close_matches(leaf, sorted(set(self.node_names)), n=3)
      hint = f"; closest: {', '.join(close)}" if close else ""
      raise TaxonomyError(f"taxon {name!r} is not in the label map's taxonomy ({self.num_nodes} "
                          f"taxa at ranks {', '.join(self.ranks)}){hint}")
    choices = "; ".join(" > ".join(n for _, n in self.lineage(v)) for v in matches[:4])
    raise TaxonomyError(f"taxon {name!r} names {len(matches)} taxa ({choices}): add a higher "
                        f"taxon from its lineage, e.g. {self._hint(matches[0])!r}")

  def _hint(self, node):
    """The shortest "parent > name" that picks `node` out (for error messages)."""
    names = [n for _, n in self.lineage(node)]
    return " > ".join(names[-2:]) if len(names) > 1 else names[0]

  def rank_levels(self):
    """int32 [num_ranks]: iNaturalist's rank_level per rank (RANK_LEVELS), 0 where it has none."""
    return np.array([RANK_LEVELS.get(r, 0) for r in self.ranks], np.int32)

  def to_json(self):
    """The tables as a JSON-ready dict (for a phone bundle or a report)."""
    return {"edition": self.edition, "ranks": list(self.ranks),
            "node_names": list(self.node_names), "node_ranks": self.node_ranks.tolist(),
            "node_ancestors": self.node_ancestors.tolist(),
            "genus_notes": [list(note) for note in self.genus_notes]}

  @classmethod
  def from_json(cls, document):
    return cls(ranks=tuple(document["ranks"]), node_names=tuple(document["node_names"]),
               node_ranks=np.asarray(document["node_ranks"], np.int32),
               node_ancestors=np.asarray(document["node_ancestors"], np.int32).reshape(
                   len(document["node_names"]), len(document["ranks"])),
               edition=document.get("edition", ""),
               genus_notes=tuple(tuple(n) for n in document.get("genus_notes", ())))


def _in_order(wanted, names):
  """Whether the names `wanted` occur in `names` in that order (not necessarily adjacent)."""
  position = 0
  for name in wanted:
    try:
      position = names.index(name, position) + 1
    except ValueError:
      return False
  return True


def ranks_of(label_map):
  """The taxonomy's ranks for a LabelMap, lowest first."""
  return (SPECIES,) + tuple(reversed(label_map.ranks)) if label_map.ranks else RANKS_2017


def class_lineage(label_map, index):
  """(names lowest first, one per ranks_of(label_map), how the genus was read or "").

  Raises TaxonomyError naming the class when a published taxon is empty.
  """
  if label_map.ranks:
    taxa = tuple(reversed(label_map.taxa[index]))
    for rank, taxon in zip(ranks_of(label_map)[1:], taxa):
      if not str(taxon).strip():
        raise TaxonomyError(f"class {index} ({label_map.names[index]}, category "
                            f"{label_map.category_ids[index]}) has an empty {rank!r} in the label "
                            f"map; rebuild from the published categories")
    return (label_map.names[index],) + taxa, ""
  genus, how = genus_from_name(label_map.names[index])
  return (label_map.names[index], genus, label_map.taxon(index, SUPERCATEGORY)), how


def from_label_map(label_map):
  """The Taxonomy of a LabelMap (any edition); see the module docstring for 2017's ranks."""
  ranks = ranks_of(label_map)
  names, notes = [], []
  for i in range(label_map.num_classes):
    lineage, how = class_lineage(label_map, i)
    names.append(lineage)
    if how not in ("", "binomial"):
      notes.append((i, how))
  num_classes, num_ranks = len(names), len(ranks)
  node_names = list(label_map.names)
  node_ranks = [0] * num_classes
  # A taxon above species is its lineage from the top: names[c][r:] read top-down.
  keys = {}
  for r in range(1, num_ranks):
    for key in sorted({tuple(reversed(n[r:])) for n in names}):
      keys[key] = len(node_names)
      node_names.append(key[-1])
      node_ranks.append(r)
  node_ancestors = np.full([len(node_names), num_ranks], -1, np.int32)
  for c, n in enumerate(names):
    node_ancestors[c, 0] = c
    for r in range(1, num_ranks):
      node_ancestors[c, r] = keys[tuple(reversed(n[r:]))]
  for key, node in keys.items():
    r = node_ranks[node]
    node_ancestors[node, r] = node
    for above in range(r + 1, num_ranks):
      node_ancestors[node, above] = keys[key[:num_ranks - above]]
  return Taxonomy(ranks=ranks, node_names=tuple(node_names),
                  node_ranks=np.asarray(node_ranks, np.int32), node_ancestors=node_ancestors,
                  edition=label_map.edition, genus_notes=tuple(notes))
