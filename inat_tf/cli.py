"""What every console command (inat-*) shares: a quiet TensorFlow start-up and a --help that
lists the command's flags.

Quiet start-up: TensorFlow 2.21's C++ side logs its start-up (oneDNN, CUDA stubs, CPU features,
and on a host without a GPU an error-level "failed call to cuInit") through absl before its own
log level applies, so TF_CPP_MIN_LOG_LEVEL alone does not hide them. Each command therefore sets
TF_CPP_MIN_LOG_LEVEL=2 and passes its stderr through a filter that drops exactly those C++
info/warning records (`I0000 00:00:1795992824.783671 29906 port.cc:153] ...`), the cuInit error and the
"WARNING: All log messages before absl::InitializeLog()" banner; everything else, the commands'
own messages and Python warnings included, passes unchanged. Python's absl records below WARNING
are dropped unless --verbosity is given (the checkpoint saver logs at INFO on every save).
Setting any of TF_CPP_MIN_LOG_LEVEL, TF_CPP_MAX_VLOG_LEVEL or TF_CPP_VMODULE turns all of this
off: the user chose the log level.

--help: absl prints the key flags of the main module, which for a console command is the stub
setuptools wrote (no flags), so `inat-eval --help` listed nothing. `run` declares the command's
flags key flags of that stub, and shows the command module's docstring as the usage text.
"""

import atexit
import os
import re
import sys
import threading

USER_LOG_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_CPP_VMODULE")
OUR_PACKAGES = ("inat_tf", "tfrecord_builder", "models")

# C++ records (file.cc) at info/warning level, the CUDA-less host's cuInit error, absl's banner,
# and the second line of the CPU-feature notice.
NOISE = re.compile(
    r"^([IW]\d{4} [\d:.]+\s+\d+ [\w/.-]+\.(cc|h):\d+\]"
    r"|E\d{4} [\d:.]+\s+\d+ cuda\w*\.cc:\d+\] failed call to cuInit"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow with"
    # The TFLite quantizer's settings, printed (not logged) by every int8 conversion.
    r"|fully_quantize: \d+, inference_type: \d+, input_inference_type: )")


def is_console_command():
  return os.path.basename(sys.argv[0] if sys.argv else "").startswith("inat-")


_quiet = False  # set when quiet_tensorflow took effect


def quiet_tensorflow():
  """Before TensorFlow is imported: its start-up records hidden, unless the user set a level."""
  global _quiet
  if any(name in os.environ for name in USER_LOG_VARIABLES):
    return
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
  _filter_stderr()
  _quiet = True


def _filter_stderr():
  """Routes file descriptor 2 (C++ and Python alike) through a thread that drops NOISE lines."""
  try:
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    forward_to, restore_from = os.dup(2), os.dup(2)
  except OSError:  # no usable stderr: nothing to filter
    return
  os.dup2(write_end, 2)
  os.close(write_end)

  def pump():
    with os.fdopen(read_end, "rb") as pipe, os.fdopen(forward_to, "wb", buffering=0) as out:
      for line in pipe:
        if not NOISE.match(line.decode("utf-8", "replace")):
          out.write(line)

  thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
  thread.start()

  def restore():  # at exit: the last lines (sys.exit's message, a traceback) get through
    try:
      sys.stderr.flush()
    except (OSError, ValueError):
      pass
    os.dup2(restore_from, 2)  # closes the pipe's last write end: the thread sees EOF
    thread.join(timeout=5)

  atexit.register(restore)


def run(main, argv=None, doc=None):
  """absl's app.run(main, argv), with --help listing this command's flags (see above) under
  `doc` (default: the docstring of the last of our modules that declared a flag)."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  values = flags.FLAGS
  program = sys.argv[0]
  command_modules = []
  for module, module_flags in values.flags_by_module_dict().items():
    if module.split(".")[0] in OUR_PACKAGES:
      command_modules.append(module)
      for flag in module_flags:
        values.register_key_flag_for_module(program, flag)
  main_module = sys.modules["__main__"]
  if doc is None and command_modules:
    doc = sys.modules[command_modules[-1]].__doc__
  if not main_module.__doc__ and doc:
    main_module.__doc__ = doc.replace("%", "%%")

  def quiet_main(args):
    # TensorFlow's Python records below WARNING too (the checkpoint saver logs an INFO line on
    # every save through absl), unless the user asked for a level with --verbosity / -v.
    if _quiet and not values["verbosity"].present:
      from absl import logging  # pylint: disable=g-import-not-at-top
      logging.set_verbosity(logging.WARNING)
    return main(args)

  app.run(quiet_main, argv=argv)
