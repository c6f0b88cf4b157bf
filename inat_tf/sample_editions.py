"""What the sample generator writes differently per edition: super-categories, taxonomy, category
records and image folders, each as that edition publishes them (see inat_tf.editions).

The taxonomy is generated, with real structure: species share genera, genera share families,
families share orders, and each super-category sits under a real kingdom, phylum and class, so
accuracy at the genus or family rank differs from species accuracy, as on the real data.
"""

import hashlib
import itertools

import numpy as np

from inat_tf import editions

# Super-categories with their published species counts (inat_tf.editions); the sample shares its
# species out in the same proportions. 2019 publishes no counts: its six are weighted equally.
SUPERCATEGORIES = {name: tuple((sc, n or 1) for sc, n in edition.supercategory_species)
                   for name, edition in editions.EDITIONS.items()}

# Kingdom, phylum and class under each super-category (real taxa; the lower ranks are generated).
_HIGHER_TAXA = {
    "Plantae": ("Plantae", "Tracheophyta", "Magnoliopsida"),
    "Insecta": ("Animalia", "Arthropoda", "Insecta"),
    "Aves": ("Animalia", "Chordata", "Aves"),
    "Reptilia": ("Animalia", "Chordata", "Reptilia"),
    "Mammalia": ("Animalia", "Chordata", "Mammalia"),
    "Fungi": ("Fungi", "Basidiomycota", "Agaricomycetes"),
    "Amphibia": ("Animalia", "Chordata", "Amphibia"),
    "Mollusca": ("Animalia", "Mollusca", "Gastropoda"),
    "Animalia": ("Animalia", "Cnidaria", "Anthozoa"),
    "Arachnida": ("Animalia", "Arthropoda", "Arachnida"),
    "Actinopterygii": ("Animalia", "Chordata", "Actinopterygii"),
    "Chromista": ("Chromista", "Ochrophyta", "Phaeophyceae"),
    "Protozoa": ("Protozoa", "Mycetozoa", "Myxomycetes"),
    "Bacteria": ("Bacteria", "Cyanobacteria", "Cyanophyceae"),
}
for _new, _old in (("Plants", "Plantae"), ("Insects", "Insecta"), ("Birds", "Aves"),
                   ("Reptiles", "Reptilia"), ("Mammals", "Mammalia"),
                   ("Ray-finned Fishes", "Actinopterygii"), ("Amphibians", "Amphibia"),
                   ("Mollusks", "Mollusca"), ("Arachnids", "Arachnida")):
  _HIGHER_TAXA[_new] = _HIGHER_TAXA[_old]

_SYLLABLES = ("ar", "bel", "cor", "dan", "el", "fer", "gor", "hal", "ith", "lor", "mon", "ner",
              "or", "pal", "rho", "sar", "tel", "ul", "vor", "zan")


def _higher_name(rng, taken, ending):
  # Two syllables make only 400 names per ending, fewer than the families of iNat2021's 4,271
  # plants: past 200 names they take three (8,000 per ending), and a name that keeps colliding
  # grows another. Samples of up to ~300 species never get there, so their names are unchanged.
  for attempt in itertools.count():
    syllables = (2 if len(taken) < 200 else 3) + attempt // 50
    name = ("".join(rng.choice(_SYLLABLES, size=syllables)) + ending).capitalize()
    if name not in taken:
      taken.add(name)
      return name


def taxonomy(supercategory_of_genus, seed):
  """{genus index: {rank: name}} for kingdom..family; genus names are the caller's.

  supercategory_of_genus: [supercategory name] per genus index, genera of one super-category
  contiguous. Two genera per family and two families per order within a super-category, so the
  family and order ranks group several genera. Seeded separately from the rest of the sample.
  """
  rng = np.random.default_rng([seed, 14])
  taken, result = set(), {}
  position = {}
  for g, supercategory in enumerate(supercategory_of_genus):
    n = position.get(supercategory, 0)
    position[supercategory] = n + 1
    kingdom, phylum, class_ = _HIGHER_TAXA[supercategory]
    plant_like = kingdom in ("Plantae", "Fungi", "Chromista", "Bacteria")
    if n % 4 == 0:
      order = _higher_name(rng, taken, "ales" if plant_like else "iformes")
    if n % 2 == 0:
      family = _higher_name(rng, taken, "aceae" if plant_like else "idae")
    result[g] = {"kingdom": kingdom, "phylum": phylum, "class": class_, "order": order,
                 "family": family}
  return result


def image_dir_name(category_id, taxa, epithet):
  """iNat2021's per-species folder: `<id:05d>_<Kingdom>_..._<Genus>_<epithet>` (dummy_data)."""
  parts = [taxa[rank] for rank in editions.TAXONOMY_RANKS]
  return "_".join([f"{category_id:05d}"] + parts + [epithet])


def species_folder(edition, split, species):
  """The folder (relative to RAW_DIR) of one species' images of a split, as published."""
  root = edition.splits[split].image_root
  if split == "test":
    return root
  if edition.species_folder == "image_dir_name":
    return f"{root}/{species.record['image_dir_name']}"
  if edition.species_folder == "id":
    return f"{root}/{species.supercategory}/{species.category_id}"
  return f"{root}/{species.supercategory}/{species.name}"


def obfuscated(record, edition):
  """The category record as 2018/2019's split JSONs published it: taxon names replaced by codes
  (README: "we have obfuscated all taxonomic names (including the species name)"); the real
  ones are in categories.json."""
  code = lambda field: hashlib.md5(f"{field}:{record[field]}".encode()).hexdigest()[:8]
  hidden = {field: f"{field}_{code(field)}" for field in editions.TAXONOMY_RANKS}
  hidden["name"] = str(record["id"])
  return {field: hidden.get(field, record.get(field)) for field in edition.category_fields}
