"""The console commands' flags and entry points: one module per command, none importing
TensorFlow.

  inat_tf/commands/<command>.py   inat-<command>'s config dataclass (one field per flag:
                                  default and help text, flag_config) and run(), the console
                                  script's entry point (setup.py), e.g. commands/train.py holds
                                  TrainConfig and runs `inat-train`.

run() parses the flags and answers --help, -h and every flag mistake without importing
TensorFlow (a fraction of a second instead of 5-7 s); only then does flag_config.run_command
import the command's implementation (`inat_tf.train:main`, ...), whose docstring is the usage
text. The implementation modules import their config from here, so each flag is declared once.
The names a flag chooses from come from TensorFlow-free modules (inat_tf/choices.py, editions,
long_tail, recipes, models), and the exceptions a command answers in one line from
inat_tf/errors.py.
"""

from inat_tf import choices
from inat_tf import flag_config


def which_field():
  """The config field (flag) --which best|final, the same for inat-eval, inat-predict,
  inat-export and inat-classify."""
  return flag_config.field("best", "Which saved model of --model_dir: best (best val top-1) or "
                           "final.", choices=choices.SAVED_MODELS)
