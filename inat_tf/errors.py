"""The exceptions a command answers with one line (`inat-NAME: message`, exit 1) instead of a
traceback: the user's mistakes and the states a rerun or another flag fixes.

Defined here, free of TensorFlow, because each command's entry point (inat_tf/commands/) names
them before anything heavy is imported; each module that raises one re-exports it under its old
name (train.TrainError is this TrainError). A new such exception goes here.
"""


class UsageError(Exception):
  """The command line asks for what cannot be done (an output folder that cannot be written, a
  split without labels to score, --top_k 0); found before any work, always answered in one line.
  """


class TrainError(Exception):
  """Training cannot start; the message says why and what to do."""


class TrainInterrupted(TrainError):
  """Ctrl-C (SIGINT) during training; the message says where it stopped and how to resume."""


class BuildError(Exception):
  """The build cannot start or continue; the message says why and what to do."""


class PredictError(Exception):
  """The submission cannot be made right; the message says why."""


class ClassifyError(Exception):
  """The command cannot run as asked; the message says why and what to do."""


class AdjustError(Exception):
  """The adjustment cannot be made as asked; the message says why and what to do."""


class GeoError(Exception):
  """The prior cannot be used as asked; the message says why and what to do."""


class DetectionDataError(Exception):
  """The data dir cannot feed a detector; the message says why and what to do."""


class DetectTrainError(Exception):
  """Training cannot start; the message says why and what to do."""


class LongTailError(ValueError):
  """A long-tail remedy cannot be applied as asked; the message says why and what to do."""
