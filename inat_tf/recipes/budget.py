"""Regularisation that follows the training budget: a scratch recipe's, for shorter runs.

A scratch recipe's crops, label smoothing, weight decay and evaluation crop are set for its own
length (its --epochs, 60): long enough that a network seeing each image 60 times would memorise
the train set without them. A run of fewer epochs sees each image fewer times, so it has less to
fear from memorising and more from not fitting at all (issue 31: a 30-epoch run on a few hundred
images ended at 57 % train top-1 and far below a plain script). The rule:

  strength = min(1, epochs of this run / the recipe's epochs)
  value    = off + strength * (recipe value - off)

for each setting below, "off" being no regularisation: whole-image crops at the image's own
aspect ratio, no label smoothing, no weight decay, and the whole image at evaluation (the view
training used when crops are off; at full strength the recipe's 0.875, the Inception convention).
Epochs of this run: --epochs, or --train_steps / steps per epoch (train images / --batch_size)
when steps are given. So a 15-epoch run gets a quarter of the recipe's regularisation, a 60-epoch or longer run
all of it, on any number of images: memorising is a matter of passes over each image, and
Steiner et al. 2021 ("How to train your ViT?", Fig. 3) found the same direction at scale (short
schedules want less augmentation and regularisation, long ones more). Linear in epochs because
it is the simplest function with the two fixed ends; it is not fitted to any benchmark.
"""

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Scaled:
  """One recipe setting the budget scales: its flag and its value with no regularisation."""
  flag: str
  off: float
  log_scale: bool = False  # an aspect ratio: scaled on a log axis, so 3/4 and 4/3 stay mirrored


SCALED = (
    Scaled("crop_min_area", 1.0),
    Scaled("crop_min_aspect_ratio", 1.0, log_scale=True),
    Scaled("crop_max_aspect_ratio", 1.0, log_scale=True),
    Scaled("label_smoothing", 0.0),
    Scaled("weight_decay", 0.0),
    Scaled("eval_crop_fraction", 1.0),
)


def strength(run_epochs, recipe_epochs):
  """min(1, run_epochs / recipe_epochs), in [0, 1]; ValueError for a recipe without a length."""
  if recipe_epochs <= 0:
    raise ValueError(f"a budget-scaled recipe needs its own --epochs > 0 (got {recipe_epochs})")
  return min(1.0, max(0.0, run_epochs / recipe_epochs))


def scaled_values(recipe_values, run_epochs, recipe_epochs):
  """{flag: value} for every SCALED flag in recipe_values, at this run's strength.

  Args:
    recipe_values: {flag name: the recipe's value} (only the SCALED ones are read).
    run_epochs: epochs this run trains (float, > 0).
    recipe_epochs: the recipe's own --epochs, where its values hold in full.

  Returns:
    {flag name: float}: the recipe's own values at full strength, else rounded to 4 significant
    digits so that train.flags stays readable.
  """
  s = strength(run_epochs, recipe_epochs)
  out = {}
  for item in SCALED:
    if item.flag not in recipe_values:
      continue
    full = float(recipe_values[item.flag])
    if s == 1:  # the recipe's own values, exactly
      out[item.flag] = full
      continue
    if item.log_scale:
      value = math.exp(math.log(item.off) + s * (math.log(full) - math.log(item.off)))
    else:
      value = item.off + s * (full - item.off)
    out[item.flag] = float(f"{value:.4g}")
  return out


def run_epochs(epochs, train_steps, steps_per_epoch):
  """Epochs a run trains, as the trainer counts them: train_steps / steps_per_epoch when steps
  are given (> 0), else epochs. steps_per_epoch (a callable, it reads the data dir) is only
  called in the first case."""
  if train_steps > 0:
    return train_steps / steps_per_epoch()
  return epochs
