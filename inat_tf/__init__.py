"""inat-tf: the iNaturalist 2017 dataset as TFRecords, Keras models, Kaggle CSVs and SavedModels."""

import os

# TensorFlow's x86 CPU kernels train 1.1-4.4x faster with oneDNN, which this TensorFlow build
# leaves off unless asked (BUILD_NOTES.md, Training; measured on 2 cores). Must be set
# before TensorFlow is imported; an explicit setting by the user wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from inat_tf import cli as _cli  # pylint: disable=g-import-not-at-top

if _cli.is_console_command():  # an inat-* command: quiet, and one line for a Ctrl-C (cli.py)
  _cli.quiet_tensorflow()
  _cli.on_interrupt()

# The Python entry points (inat_tf/api.py: read_split, load_model, load_prior, probabilities),
# imported on first use so that `import inat_tf`, and every command's --help, stays free of
# TensorFlow.
__all__ = ["read_split", "load_model", "load_prior", "probabilities"]


def quiet():
  """Hides TensorFlow's and absl's log lines (oneDNN and CUDA notices at start-up, "failed call
  to cuInit" on a host without a GPU, libjpeg's complaints about a damaged file), and the Python
  warnings and logging records of TensorFlow, Keras, absl and inat-tf, in this process, as the
  inat-* commands do (inat_tf/cli.py). The rest of stderr passes: your own prints, warnings and
  logging records, a traceback. Call it before the first use of TensorFlow: the start-up lines
  are printed when TensorFlow loads. A TF_CPP_* variable or python -W set by you wins (then it
  does nothing)."""
  _cli.quiet_tensorflow(in_a_script=True)


def __getattr__(name):
  if name in __all__:
    from inat_tf import api  # pylint: disable=g-import-not-at-top
    return getattr(api, name)
  raise AttributeError(f"module 'inat_tf' has no attribute {name!r}")
