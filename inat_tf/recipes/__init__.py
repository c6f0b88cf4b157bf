"""Training recipes by name, shipped with the package: `inat-train --recipe table3/inception_v3`.

A recipe is an absl flagfile, package data under this directory, one per network and purpose:

  table3/<network>   the paper's Table 3 rows: ImageNet initialisation, RMSProp, 299 px (exact).
  scratch/<network>  from random weights, any network: AdamW, cosine decay with a warm-up
                     (RMSProp at a high rate diverges for some networks from scratch: BUILD_NOTES).
  modern/<network>   the modern backbones (EfficientNetV2, ConvNeXt) from ImageNet weights: AdamW,
                     cosine with warm-up, label smoothing, RandAugment, MixUp / CutMix.

A recipe only sets defaults: every flag given on the command line or in a --flagfile wins, before or
after --recipe. A scratch recipe's regularisation (crops, label smoothing, weight decay, eval crop)
is set for its own length and scaled down for a shorter run (inat_tf/recipes/budget.py): the
resolved values are what train.flags records, and a rerun into the same model dir keeps them.
Recipes resolve through importlib.resources, so they work from any directory and after a
non-editable `pip install`.

Reproducing a run: inat-train writes MODEL_DIR/train.flags (`flagfile_text`): the recipe name, then
every flag's resolved value, so `inat-train --flagfile=MODEL_DIR/train.flags` trains the same
configuration even if the recipe file changes in a later version.
"""

import copy
import difflib
import importlib.metadata
import importlib.resources
import json
import os

from absl import flags

from inat_tf.recipes import budget

SUFFIX = ".flags"
FLAG = "recipe"
# Recipe groups whose regularisation follows the run's budget (budget.py). The modern recipes
# fine-tune from ImageNet weights and were not measured under this rule, so they keep theirs.
BUDGET_SCALED_GROUPS = ("scratch",)


class RecipeError(ValueError):
  """An unknown recipe name, or --recipe used wrongly; the message says what to do."""


def _root():
  return importlib.resources.files(__name__)


def available():
  """Every recipe name, sorted: "modern/convnext_tiny", "scratch/...", "table3/...", ..."""
  names = []
  for group in _root().iterdir():
    if group.is_dir():
      names += [f"{group.name}/{f.name[:-len(SUFFIX)]}" for f in group.iterdir()
                if f.name.endswith(SUFFIX)]
  return sorted(names)


def path(name):
  """The file of recipe `name` (e.g. "scratch/resnet50") as a path string; RecipeError if none.

  The package is installed as files (setup.py package_data), so the resource is a real file that
  absl's --flagfile can open.
  """
  parts = str(name).split("/")
  resource = _root().joinpath(*parts[:-1], parts[-1] + SUFFIX) if len(parts) == 2 else None
  if resource is None or not resource.is_file():
    names = available()
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise RecipeError(f"Unknown recipe {name!r}: expected one of {', '.join(names)}.{hint}")
  return str(resource)


def expand(argv, flag_values):
  """argv with flagfiles read and the --recipe's flags inserted first, so every given flag wins.

  Args:
    argv: the command line, program name first (sys.argv).
    flag_values: the absl FlagValues the command's flags are defined on (tells `--x y` apart).

  Returns:
    [argv[0], <recipe flags>, <argv[1:] with --flagfile contents expanded in place>]; the
    `--recipe=NAME` argument stays where it was, so the name is recorded as the flag's value.
    For a scratch recipe, its budget-scaled flags (budget.SCALED) are replaced by their values
    at this run's epochs (budget.scaled_values); a flag given explicitly still wins.

  Raises:
    RecipeError: unknown name, --recipe without a value, or two different recipes.
  """
  args = flag_values.read_flags_from_files(list(argv[1:]), force_gnu=True)
  names, out, i = [], [], 0
  while i < len(args):
    arg = args[i]
    if arg == "--":
      out += args[i:]
      break
    if arg in (f"--{FLAG}", f"-{FLAG}"):
      if i + 1 >= len(args):
        raise RecipeError("--recipe needs a name, e.g. --recipe=scratch/resnet50; see "
                          "--helpfull or inat_tf.recipes.available()")
      arg, i = f"--{FLAG}={args[i + 1]}", i + 1
    if arg.startswith((f"--{FLAG}=", f"-{FLAG}=")):
      names.append(arg.split("=", 1)[1])
    out.append(arg)
    i += 1
  if len(set(names)) > 1:
    raise RecipeError(f"Two recipes given ({', '.join(names)}): expected one --recipe; override "
                      f"single flags after it instead")
  recipe_flags = []
  if names and names[-1]:  # --recipe= (empty) means none
    recipe_flags = flag_values.read_flags_from_files([f"--flagfile={path(names[-1])}"])
    if names[-1].split("/")[0] in BUDGET_SCALED_GROUPS:
      recipe_flags = _scale_to_budget(argv[0], recipe_flags, out, flag_values)
  return [argv[0]] + recipe_flags + out


def _parsed(flag_values, argv):
  """A parsed copy of flag_values (the caller's stays unparsed), or None where argv does not
  parse: the caller's own parse then reports the mistake as usual. A validator's complaint
  (e.g. a required flag the recipe alone lacks) comes after every value is set: that copy is
  parsed, and returned."""
  values = copy.deepcopy(flag_values)
  try:
    values(argv)
  except flags.Error:
    if not values.is_parsed():
      return None
  return values


def _scale_to_budget(program, recipe_flags, given, flag_values):
  """recipe_flags with the budget-scaled ones at this run's strength (budget.py).

  The run's epochs come from the whole command line (the recipe's, then the given flags); with
  --train_steps they are counted from the data dir's train images, as the trainer counts them.
  Where that cannot be read, the recipe's values stay: the trainer then refuses the data dir.
  A rerun into a model dir that holds a run of this recipe (without --overwrite) keeps that
  run's values: raising --epochs then trains the same run longer (the trainer refuses a resume
  whose settings differ), instead of asking for another.
  """
  recipe = _parsed(flag_values, [program] + recipe_flags)
  run = _parsed(flag_values, [program] + recipe_flags + given)
  if recipe is None or run is None:
    return recipe_flags
  values = _recorded_values(run)
  if values is None:
    def steps_per_epoch():
      from inat_tf import records  # pylint: disable=g-import-not-at-top  (imports TensorFlow)
      return records.steps_per_epoch(run.data_dir, "train", run.batch_size)

    try:
      epochs = budget.run_epochs(run.epochs, run.train_steps, steps_per_epoch)
    except (OSError, KeyError, ValueError, TypeError):
      return recipe_flags
    values = budget.scaled_values({item.flag: recipe[item.flag].value for item in budget.SCALED},
                                  epochs, recipe.epochs)
  kept = [f for f in recipe_flags if f.lstrip("-").split("=")[0] not in values]
  return kept + [_flag(name, value) for name, value in values.items()]


def _recorded_values(run):
  """The budget-scaled values the run in --model_dir was trained with, when it is a run of the
  same recipe and --overwrite is not given; else None."""
  if not run.model_dir or run.overwrite:
    return None
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (gs:// model dirs)
  from inat_tf import trained_model  # pylint: disable=g-import-not-at-top
  path = os.path.join(run.model_dir, trained_model.TRAIN_CONFIG)
  try:
    with tf.io.gfile.GFile(path) as f:
      recorded = json.load(f)
  except (tf.errors.OpError, OSError, ValueError):
    return None
  if recorded.get(FLAG) != run[FLAG].value:
    return None
  values = {item.flag: recorded[item.flag] for item in budget.SCALED if item.flag in recorded}
  return values if len(values) == len(budget.SCALED) else None


def package_version():
  """The installed inat-tf version, or "unknown" when run from a tree that was not installed."""
  try:
    return importlib.metadata.version("inat-tf")
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


def _flag(name, value):
  if isinstance(value, bool):
    return f"--{name}" if value else f"--no{name}"
  if isinstance(value, float):
    return f"--{name}={value!r}"  # repr round-trips exactly
  return f"--{name}={value}"


def flagfile_text(values, header=()):
  """A flagfile setting every flag in `values` ({flag name: value}) explicitly; `header` lines
  become comments on top. The recipe flag, if any, comes first (it is applied first anyway)."""
  lines = [f"# {line}" for line in header]
  ordered = sorted(values, key=lambda name: name != FLAG)
  lines += [_flag(name, values[name]) for name in ordered
            if not (name == FLAG and not values[name])]
  return "\n".join(lines) + "\n"
