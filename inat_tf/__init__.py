"""inat-tf: the iNaturalist 2017 dataset as TFRecords, Keras models, Kaggle CSVs and SavedModels."""

import os

# TensorFlow's x86 CPU kernels are ~40 % faster with oneDNN, which this TensorFlow build leaves
# off unless asked (measured: Inception V3 at 75 px, 17 -> 24 images/s on 2 cores). Must be set
# before TensorFlow is imported; an explicit setting by the user wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from inat_tf import cli as _cli  # pylint: disable=g-import-not-at-top

if _cli.is_console_command():  # an inat-* command: quiet, and one line for a Ctrl-C (cli.py)
  _cli.quiet_tensorflow()
  _cli.on_interrupt()
