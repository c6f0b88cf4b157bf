"""inat-adjust's flags (AdjustConfig) and entry point; the work is inat_tf/adjust.py."""

import dataclasses

from inat_tf import choices
from inat_tf import errors
from inat_tf import flag_config
from inat_tf import commands
from inat_tf import output_paths

_flag = flag_config.field  # a config field that is also a command-line flag


@dataclasses.dataclass(frozen=True)
class AdjustConfig:
  """One field per inat-adjust flag: its default and help text (flag_config)."""
  data_dir: str = _flag(help="Data dir written by inat-build.")
  model_dir: str = _flag(help="Model dir written by inat-train.")
  method: str = _flag(help="logit_adjustment, tau_norm, crt, or none (remove the stored one).",
                      choices=choices.ADJUSTMENTS + ("none",))
  which: str = _flag("best", "Which saved model of --model_dir.",
                     choices=choices.SAVED_MODELS)
  tune_split: str = _flag(
      "val", "Labelled split that chooses tau: val (its tune half; inat-eval then reports the "
      "other half) or a split held out of training (used whole).")
  seed: int = _flag(0, "Seed of the tune/report halves and of cRT.")
  batch_size: int = _flag(64, "Images per batch (features).")
  crt_epochs: float = _flag(10.0, "cRT: epochs of class-balanced batches (Kang et al.: 10 on "
                            "ImageNet-LT, 30 on iNaturalist 2018).")
  crt_batch_size: int = _flag(128, "cRT: batch size.")
  crt_learning_rate: float = _flag(
      0.2, "cRT: SGD learning rate per 512 images, scaled with --crt_batch_size (Kang et al.).")
  crt_weight_decay: float = _flag(1e-4, "cRT: L2 weight decay (Kang et al.'s iNaturalist config).")


def run(argv=None):
  """Console entry point `inat-adjust`."""
  flag_config.run_command("inat-adjust", AdjustConfig, "inat_tf.adjust:main",
                          errors=(errors.AdjustError, FileNotFoundError, ValueError), argv=argv,
                          check=check)


TRAIN_SPLIT_REFUSAL = ("--tune_split train: the network has fit those images, so they cannot "
                       "choose tau for held-out ones; use val (its tune half) or a minival held "
                       "out of training (inat-build --minival_fraction F)")


def check(c, _):
  """What inat-adjust refuses before any work (it writes beside the model)."""
  if c.method != "none":
    commands.labelled(c.tune_split, "tune_split", "choose tau on")
    if c.tune_split == "train":  # (adjust.py refuses it too, for calls from Python)
      raise errors.UsageError(TRAIN_SPLIT_REFUSAL)
  commands.at_least_one(c.batch_size, "batch_size")
  output_paths.folder(c.model_dir, "model_dir", create=False)
  commands.trained_model_dir(c.model_dir, c.which)


if __name__ == "__main__":
  run()
