"""inat-make-sample's flags (SampleConfig, plus --output_dir) and entry point; the work is
inat_tf/sample_download.py."""

import dataclasses
import sys

from inat_tf import editions
from inat_tf import flag_config
from inat_tf import output_paths

_flag = flag_config.field  # a config field that is also a command-line flag


@dataclasses.dataclass(frozen=True)
class SampleConfig:
  """Size and shape of the generated download; one field per inat-make-sample flag."""
  num_species: int = _flag(40, "Number of species (>= 13).")
  min_train_per_species: int = _flag(
      8, "Train images of the rarest species (the paper's minimum is 8).")
  max_train_per_species: int = _flag(
      80, "Train images of the commonest species (long tail in between).")
  max_side: int = _flag(128, "Longest image side in pixels (the real download uses 800).")
  val_per_species: int = _flag(
      0, "Val and test images per species; 0 = the paper's rule (half the train count, 4 to 30). "
      "A fixed count makes a balanced held-out set for long-tail benchmarks (e.g. with "
      "--min_train_per_species 1 --max_train_per_species 200).")
  seed: int = _flag(0, "Random seed; equal seeds give equal files.")
  species_names: str = _flag(
      "generated", "'tfds': use TFDS's iNat2017 names and the id layout its builder needs.",
      choices=("generated", "tfds"))
  quirky_images: bool = _flag(
      True, "Include grayscale, CMYK, PNG-named-.jpg and progressive images, as the real "
      "download's converters must cope with.")
  num_workers: int = _flag(0, "Processes drawing images; 0 means one per CPU core.")
  edition: str = _flag("2017", "Which competition edition's published layout, file names and "
                       "fields to write.", choices=editions.NAMES)
  min_species_per_genus: int = _flag(
      2, "Fewest species in a genus. Species of a genus are look-alikes (they differ only by "
      "their spot count); genera of a family differ more (neighbouring body hues), orders more "
      "still, super-categories by outline.")
  max_species_per_genus: int = _flag(3, "Most species in a genus (at most 7, one per spot count).")
  # Departures from the default look (issue 31), so that a benchmark can try data unlike it:
  subject_scale: float = _flag(
      1.0, "Size of the animals relative to the default (frame-filling: 30-75 % of the short "
      "side); below 1 (e.g. 0.4) small animals among more twigs and spotless look-alike objects.")
  chiral: bool = _flag(
      False, "Species that are not mirror-symmetric: each has its head on one side and is never "
      "photographed mirrored, and sibling species come in mirror-image pairs (same spots, head "
      "on the other side, as left- and right-eyed flatfish), so a left-right flip turns one "
      "species into another.")
  near_duplicates: float = _flag(
      0.0, "Fraction of each split's images that are a near copy of a sibling species' image in "
      "the same split: the same scene, pose, light and size; only the spots (or the head's "
      "side) differ, as two look-alikes photographed on one spot.")

  def validate(self):
    from inat_tf import sample_editions  # pylint: disable=g-import-not-at-top  (NumPy)
    problems = []
    if self.edition not in editions.NAMES:
      raise ValueError(f"Invalid sample settings: edition={self.edition!r}: expected one of "
                       f"{', '.join(editions.NAMES)}")
    minimum = len(sample_editions.SUPERCATEGORIES[self.edition])
    if self.num_species < minimum:
      problems.append(f"num_species={self.num_species}: need at least {minimum} for iNat"
                      f"{self.edition}, one per super-category")
    if self.species_names == "tfds" and self.edition != "2017":
      problems.append("species_names='tfds' exists for the 2017 edition only")
    if self.min_train_per_species < 1:
      problems.append(f"min_train_per_species={self.min_train_per_species}: must be >= 1")
    if self.max_train_per_species < self.min_train_per_species:
      problems.append(f"max_train_per_species={self.max_train_per_species} is below "
                      f"min_train_per_species={self.min_train_per_species}")
    if self.val_per_species < 0:
      problems.append(f"val_per_species={self.val_per_species}: must be >= 0 (0: the paper's rule)")
    from inat_tf.sample_download import SPOT_EPITHETS  # pylint: disable=g-import-not-at-top
    if not 1 <= self.min_species_per_genus <= self.max_species_per_genus <= len(SPOT_EPITHETS):
      problems.append(f"species per genus {self.min_species_per_genus} to "
                      f"{self.max_species_per_genus}: expected 1 <= min <= max <= "
                      f"{len(SPOT_EPITHETS)} (one spot count per species of a genus)")
    if self.max_side < 32:
      problems.append(f"max_side={self.max_side}: must be >= 32 pixels")
    if not 0 < self.subject_scale <= 1:
      problems.append(f"subject_scale={self.subject_scale}: must be in (0, 1]")
    if not 0 <= self.near_duplicates <= 1:
      problems.append(f"near_duplicates={self.near_duplicates}: must be in [0, 1]")
    if self.chiral and self.species_names == "tfds":
      problems.append("chiral needs species_names='generated' (its names say the head's side)")
    if self.species_names not in ("generated", "tfds"):
      problems.append(f"species_names={self.species_names!r}: expected 'generated' or 'tfds'")
    if problems:
      raise ValueError("Invalid sample settings: " + "; ".join(problems))


def run(argv=None):
  """Console entry point `inat-make-sample`: --output_dir and SampleConfig's flags."""
  def output_dir_flag(flags):
    flags.DEFINE_string("output_dir", None, "Directory to write the download into.",
                        required=True, module_name=sys.argv[0])

  def check(config, flag_values):
    config.validate()
    output_paths.folder(flag_values.output_dir, "output_dir")

  flag_config.run_command("inat-make-sample", SampleConfig, "inat_tf.sample_download:main",
                          errors=(ValueError,), extra_flags=output_dir_flag, argv=argv,
                          check=check)


if __name__ == "__main__":
  run()
