"""The fixed sets of names that flags choose from (and a default limit), free of TensorFlow and NumPy, so that every command
parses its flags and answers --help without importing it (issue 30).

Each name keeps its meaning, and its old name, in the module that uses it: records.READABLE_SPLITS,
input_pipeline.SAMPLINGS, distribution.STRATEGIES, trained_model.CHOICES, long_tail.LOSSES and
.METHODS, detection.backbones.BACKBONES and image_check.DEFAULT_MAX_PIXELS are these values. A new flag whose choices live in a module that
imports TensorFlow puts them here.
"""

from inat_tf import editions

# Every split a data dir may hold: the published ones and the held-out one inat-build can carve
# out of train (--minival_fraction / --minival_ids).
READABLE_SPLITS = editions.SPLITS + ("minival",)
# Class sampling of the training input (input_pipeline.py).
SAMPLINGS = ("uniform", "balanced", "sqrt")
# tf.distribute strategies (distribution.py).
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
# The saved models of a model dir (--which): best.keras, final.keras (trained_model.py).
SAVED_MODELS = ("best", "final")
# Long-tail losses (inat-train --loss) and post-hoc adjustments (inat-adjust --method),
# long_tail.py.
LOSSES = ("cross_entropy", "class_balanced", "logit_adjusted", "balanced_softmax")
ADJUSTMENTS = ("logit_adjustment", "tau_norm", "crt")
# The models/ networks a detector's feature pyramid can tap (detection/backbones.py TAPS).
DETECTION_BACKBONES = ("mobilenet_v1", "resnet50", "resnet101", "resnet152", "inception_v3")
# inat-build --max_image_pixels's default (tfrecord_builder/image_check.py): 10,000 x 10,000;
# iNat images are at most 800 (2017) to 2048 px.
MAX_IMAGE_PIXELS = 100_000_000
# Roll-up rules of the answer pipeline (--rollup_rule; inat_tf/answer_options.py): the top
# species, iNaturalist's published rule, ours (per-rank thresholds calibrated to
# --rollup_precision), conditional risk over the tree (its lambda calibrated the same way).
ROLLUP_RULES = ("argmax", "inat", "precision", "risk")
# The rules calibrated on held-out images (stored in MODEL_DIR/rollup-<which>.json).
CALIBRATED_ROLLUP_RULES = ("precision", "risk")
