"""`ModelSpec`: what `models.build` needs to know about one named network.

Each family module (`inception.py`, `resnet.py`, `mobilenet.py`) declares its names as specs; the
builder (`builder.py`) turns a spec into a Keras model.
"""

import dataclasses
from typing import Callable, Optional


def keras_application(name, **kwargs):
  """The constructor keras.applications.<name>, with kwargs bound, looked up when it is called:
  the specs (names, sizes) load without importing Keras, so that a command's --help lists the
  networks in a fraction of a second."""
  def construct(*args, **more):
    import keras  # pylint: disable=g-import-not-at-top
    return getattr(keras.applications, name)(*args, **kwargs, **more)
  construct.__name__ = name
  return construct


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """One network of the paper, described in terms of its keras.applications backbone."""
  name: str
  # The keras.applications constructor; called with include_top=False, so it builds (and, for
  # weights="imagenet", fetches and loads) exactly the published backbone.
  backbone: Callable
  backbone_name: str               # e.g. "InceptionV3", for messages
  min_image_size: int              # keras.applications' own minimum
  default_image_size: int          # the size its ImageNet weights were trained at
  # "inception" ([-1, 1]), "caffe" (BGR, ImageNet mean removed), "torch" (ImageNet mean / std)
  # or "rescale_128" (x / 128 - 1): see preprocessing.py
  preprocessing: str
  # Layer name -> SE block name, for the layers whose output gets a Squeeze-and-Excitation block;
  # None for networks without SE.
  se_block_name: Optional[Callable[[str], Optional[str]]] = None
  aux_tap: Optional[str] = None    # layer whose output feeds the auxiliary head (Inceptions)
  default_dropout_rate: Optional[float] = None
