"""All model names and their specs; `spec(name)` looks one up with a helpful error."""

import difflib

from models import inception
from models import mobilenet
from models import modern
from models import resnet

SPECS = {spec.name: spec for family in (inception, resnet, mobilenet, modern)
         for spec in family.SPECS}
MODEL_NAMES = tuple(SPECS)


def spec(name):
  """The ModelSpec of `name`; ValueError naming the valid names (and the closest) otherwise."""
  if isinstance(name, str) and name in SPECS:
    return SPECS[name]
  close = difflib.get_close_matches(str(name), MODEL_NAMES, n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  raise ValueError(f"Unknown model name {name!r}: expected one of {', '.join(MODEL_NAMES)}.{hint}")
