"""inat-train's flags (TrainConfig) and entry point; the work is inat_tf/train.py."""

import dataclasses
import os
import sys

import models
from inat_tf import choices
from inat_tf import cli
from inat_tf import errors
from inat_tf import flag_config
from inat_tf import recipes
from inat_tf import commands
from inat_tf import output_paths

_flag = flag_config.field  # a config field that is also a command-line flag


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One field per inat-train flag: its default and help text (flag_config)."""
  data_dir: str = _flag(help="Data dir written by inat-build.")
  model_dir: str = _flag(help="Where checkpoints, logs and models go (gs:// works).")
  model: str = _flag("inception_v3", "Network (models.MODEL_NAMES).", choices=models.MODEL_NAMES)
  image_size: int = _flag(299, "Input size in pixels (the paper: 299).")
  batch_size: int = _flag(32, "Global batch size, over all replicas.")
  epochs: float = _flag(0.0, "Epochs to train (or --train_steps).")
  train_steps: int = _flag(0, "Steps to train; overrides --epochs.")
  learning_rate: float = _flag(
      0.0045, "Learning rate for a global batch of 32; scaled linearly with --batch_size.")
  optimizer: str = _flag("rmsprop", "Optimizer.", choices=("rmsprop", "sgd", "adamw"))
  momentum: float = _flag(0.9, "Momentum (RMSProp and SGD).")
  rmsprop_decay: float = _flag(0.9, "RMSProp decay (rho).")
  rmsprop_epsilon: float = _flag(1.0, "RMSProp epsilon.")
  lr_schedule: str = _flag(
      "exponential", "exponential: x lr_decay_rate every lr_decay_epochs (staircase); cosine.",
      choices=("exponential", "cosine"))
  lr_decay_rate: float = _flag(0.94, "Exponential decay factor.")
  lr_decay_epochs: float = _flag(4.0, "Epochs between decays.")
  warmup_epochs: float = _flag(0.0, "Linear learning-rate warm-up.")
  weight_decay: float = _flag(4e-5, "Weight decay on kernels: TF-slim's L2 loss term with "
                              "rmsprop / sgd, decoupled (AdamW's) with adamw.")
  label_smoothing: float = _flag(0.0, "Label smoothing.")
  aux_logits: bool = _flag(False, "Inception auxiliary head (loss weight below).")
  aux_loss_weight: float = _flag(0.4, "Weight of the auxiliary loss.")
  dropout_rate: float = _flag(-1.0, "Dropout before the classifier; negative = the network's "
                              "default.")
  bn_momentum: float = _flag(
      -1.0, "Batch-norm moving-average momentum; lower it (e.g. 0.9) for runs of a few hundred "
      "steps, whose statistics would otherwise not settle. Negative = the network's default "
      "(0.99).")
  ema_decay: float = _flag(
      0.0, "Keep an exponential moving average of the weights (e.g. 0.9999) and use it for "
      "evaluation and the saved models; 0 = off.")
  weights: str = _flag("imagenet",
                   "Initialisation: imagenet (downloads Keras's weights), none, or a file.")
  train_head_epochs: float = _flag(
      0.0, "Train only the new layers (classifier, SE blocks) for this many epochs.")
  sampling: str = _flag("uniform", "Class sampling: uniform over images (the paper), balanced, or "
                    "sqrt.", choices=choices.SAMPLINGS)
  loss: str = _flag(
      "cross_entropy", "Long-tail loss (inat_tf/long_tail.py): cross_entropy; class_balanced "
      "(Cui et al. 2019, effective number); logit_adjusted (Menon et al. 2021); balanced_softmax "
      "(Ren et al. 2020).", choices=choices.LOSSES)
  class_balanced_beta: float = _flag(
      0.9999, "beta of the effective number (1 - beta^n) / (1 - beta), --loss class_balanced.")
  logit_adjustment_tau: float = _flag(
      1.0, "tau of --loss logit_adjusted: logits + tau * log(prior) in the loss.")
  deferred_start_epoch: float = _flag(
      0.0, "Apply --loss and --sampling only from this epoch, plain cross-entropy over uniformly "
      "drawn images before (deferred re-weighting / re-sampling, Cao et al. 2019: e.g. 60 of 90 "
      "epochs); 0 = from the start.")
  color_distortion: bool = _flag(False, "Inception colour distortion.")
  crop_with_boxes: bool = _flag(False, "Use boxes as crop hints.")
  distribution: str = _flag("auto", "tf.distribute strategy (see inat_tf/distribution.py).",
                        choices=choices.STRATEGIES)
  tpu: str = _flag("", "TPU name or address; implies --distribution=tpu.")
  num_cpu_devices: int = _flag(0, "Split the CPU into this many devices (to try mirrored "
                               "training).")
  mixed_precision: bool = _flag(False, "bfloat16 on TPU/CPU, float16 with loss scaling on GPU.")
  checkpoint_steps: int = _flag(1000, "Checkpoint every N steps (and after each val run).")
  keep_checkpoints: int = _flag(3, "Checkpoints kept.")
  eval_every_epochs: float = _flag(1.0, "Validate every N epochs.")
  log_steps: int = _flag(100, "Progress line and TensorBoard every N steps.")
  steps_per_loop: int = _flag(1, "Steps per tf.function call (raise on TPUs, e.g. 100).")
  seed: int = _flag(0, "Random seed (initialisation and input order).")
  data_service: str = _flag("", "tf.data service dispatcher host:port (see inat-data-service).")
  deterministic: bool = _flag(False, "Reproducible input order (slower).")
  synthetic: bool = _flag(False, "Random input: time the model alone.")
  cache: bool = _flag(False, "Cache the encoded training set in memory (small sets).")
  recipe: str = _flag("", "A recipe by name, shipped with the package; it sets defaults, every "
                      "other flag given wins: " + ", ".join(recipes.available()) + ".")
  # Augmentation (inat_tf/augment.py) and the evaluation crop (also used by eval/predict/export).
  crop_min_area: float = _flag(
      0.08, "Random crop: smallest fraction of the image area (Inception: 0.08).")
  crop_max_area: float = _flag(1.0, "Random crop: largest area fraction.")
  crop_min_aspect_ratio: float = _flag(0.75, "Random crop: smallest width / height.")
  crop_max_aspect_ratio: float = _flag(4 / 3, "Random crop: largest width / height.")
  horizontal_flip: bool = _flag(True, "Random left-right flips.")
  randaugment_ops: int = _flag(
      0, "RandAugment (keras.layers.RandAugment): ops per image; 0 = off.")
  randaugment_magnitude: float = _flag(0.5, "RandAugment strength in [0, 1] (Keras's factor).")
  mixup_alpha: float = _flag(
      0.0, "MixUp (keras.layers.MixUp) Beta(alpha, alpha); 0 = off. With CutMix too, each batch "
      "uses one of the two.")
  cutmix_factor: float = _flag(
      0.0, "CutMix (keras.layers.CutMix) factor in [0, 1]: Beta(a, a), a drawn from [0, factor]; "
      "0 = off.")
  eval_crop_fraction: float = _flag(
      0.875, "Central crop (fraction of the short side) for validation; recorded, and used by "
      "inat-eval, inat-predict and inat-export.")
  overwrite: bool = _flag(False, "Delete --model_dir first: start over where another run was (a "
                          "rerun into a dir of another run is refused otherwise).")
  head_rank: int = _flag(
      0, "Factorised classifier: a linear rank-R bottleneck before the C-way layer (iNaturalist's "
      "phone models use 256); R (d + C + 1) + C head weights instead of (d + 1) C. 0 = full.")


def run(argv=None):
  """Console entry point `inat-train`; --recipe is expanded first (recipes.expand)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  argv = sys.argv if argv is None else argv
  flag_values = flags.FlagValues()  # only tells `--flag value` apart for the expansion
  flag_config.define_flags(TrainConfig, flag_values)
  try:
    argv = recipes.expand(argv, flag_values)
  except recipes.RecipeError as e:
    sys.exit(f"inat-train: {e}")
  except flags.Error as e:  # a --flagfile that cannot be read
    sys.exit(cli.flag_error("inat-train", e, flag_values))
  flag_config.run_command("inat-train", TrainConfig, "inat_tf.train:main",
                          errors=(errors.TrainError, FileNotFoundError), argv=argv, check=check,
                          resume=lambda c: commands.checkpoint_advice(
                              os.path.join(c.model_dir, "checkpoints")))


def image_size_problem(c):
  """The one-line refusal of an --image_size below the network's minimum, or None (TensorFlow-
  free: models.min_image_size reads the registry)."""
  minimum = models.min_image_size(c.model)
  if c.image_size >= minimum:
    return None
  which = (f"{c.model} (the default --model)" if c.model == TrainConfig.model
           else f"--model={c.model}")
  return (f"--image_size={c.image_size} is below the minimum of {which}, {minimum} pixels: use "
          f"--image_size {minimum} or more")


def check(c, _):
  """What inat-train refuses before any work (and before it makes the model dir)."""
  commands.at_least_one(c.batch_size, "batch_size")
  problem = image_size_problem(c)
  if problem:
    raise errors.UsageError(problem)
  output_paths.folder(c.model_dir, "model_dir")


if __name__ == "__main__":
  run()
