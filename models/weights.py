"""keras.applications backbones with their weights: none, Keras's ImageNet weights, or a file.

Weights go into keras.applications' own, unmodified backbone graph (include_top=False) with Keras's
own loader, *before* `builder.py` inserts SE blocks and heads, so the added layers can never shift
or block the load: Keras 3 matches weights by topology, not by layer name (`.weights.h5` files are
keyed by layer class and position, legacy `.h5` files load in topological order).
"""

import os
import warnings

# Keras 3 weights files: `save_weights` output, and the legacy HDF5 files keras.applications
# downloads (e.g. inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5).
WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5")


def expected_file(spec):
  """How to describe a valid weights file for `spec`, for error messages."""
  return (f"a Keras weights file of keras.applications.{spec.backbone_name}(include_top=False): "
          f"written by its save_weights('*.weights.h5'), or Keras's published *_notop.h5")


def check_weights(weights, spec):
  """A problem description for an invalid `weights` argument, or None if it is valid."""
  if weights is None or weights == "imagenet":
    return None
  if not isinstance(weights, (str, os.PathLike)):
    return (f"weights={weights!r}: expected None (random initialisation), 'imagenet' or the path "
            f"of {expected_file(spec)}")
  path = os.fspath(weights)
  if not os.path.isfile(path):
    return (f"weights file {path!r} does not exist: expected None, 'imagenet' or the path of "
            f"{expected_file(spec)}; check the path")
  if not path.endswith(WEIGHTS_SUFFIXES):
    return (f"weights file {path!r} is not a Keras weights file (expected a name ending in "
            f"{' or '.join(WEIGHTS_SUFFIXES)}): pass {expected_file(spec)}")
  return None


def backbone(spec, image, weights):
  """keras.applications' backbone of `spec` (include_top=False) on input `image`, weights loaded.

  weights="imagenet" is handed to keras.applications itself, which downloads Keras's published
  file into ~/.keras/models (or $KERAS_HOME/models), checks its hash and loads it; a path is
  loaded with the same `Model.load_weights` call keras.applications makes. Raises ValueError
  naming the file if it does not fit the backbone.
  """
  # input_shape too, though input_tensor decides: keras.applications checks sizes against it.
  shapes = dict(input_tensor=image, input_shape=tuple(image.shape[1:]))
  if weights == "imagenet":
    try:
      return spec.backbone(include_top=False, weights="imagenet", **shapes)
    except Exception as error:  # get_file raises a bare Exception when the download fails
      raise RuntimeError(
          f"Could not get the ImageNet weights of keras.applications.{spec.backbone_name} for "
          f"{spec.name}: {error}. Keras downloads them from storage.googleapis.com, which needs "
          f"internet access; offline, copy the file into ~/.keras/models (or $KERAS_HOME/models) "
          f"or pass the path of a local copy as weights (inat-train: --weights PATH).") from error
  model = spec.backbone(include_top=False, weights=None, **shapes)
  if weights is not None:
    _load_file(model, os.fspath(weights), spec)
  return model


def _load_file(model, path, spec):
  """model.load_weights(path), as keras.applications does, with a clear error naming the file."""
  # Keras warns once per unmatched container before it raises; on failure the error says it all.
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
      model.load_weights(path)
      failure = None
    except Exception as error:  # Keras: ValueError; h5py: OSError, KeyError. All mean "no fit".
      failure = error
  if failure is None:
    for warning in caught:
      warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return
  first_line = (str(failure).strip() or repr(failure)).splitlines()[0]
  raise ValueError(
      f"Weights file {path!r} does not fit {spec.name}'s backbone "
      f"(keras.applications.{spec.backbone_name}, include_top=False): {first_line}. Expected "
      f"{expected_file(spec)}; a file of another network or of a model with other layers cannot "
      f"be used.") from failure
