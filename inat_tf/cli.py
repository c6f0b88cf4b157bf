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
setuptools wrote (no flags), so `inat-eval --help` listed nothing; and it exits with status 1 and
knows no -h. `run` declares the command's flags key flags of that stub and answers --help, -h,
-? and --helpshort (and --helpfull) itself, exit 0, with the command module's docstring as the
usage text. A flag absl refuses (unknown, a value it cannot parse, a required one missing, a
--flagfile it cannot read) is one line, `inat-NAME: ...; see inat-NAME --help`, exit 1.
"""

import atexit
import os
import re
import sys
import textwrap
import threading

USER_LOG_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_CPP_VMODULE")
OUR_PACKAGES = ("inat_tf", "tfrecord_builder", "models")

# C++ records (file.cc) at info/warning level, the CUDA-less host's cuInit error, absl's banner,
# and the second line of the CPU-feature notice.
NOISE = re.compile(
    r"^([IW]\d{4} [\d:.]+\s+\d+ [\w/.-]+\.(cc|h):\d+\]"
    r"|E\d{4} [\d:.]+\s+\d+ cuda\w*\.cc:\d+\] failed call to cuInit"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow with)")


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


HELP_ARGUMENTS = ("-h", "-help", "--help", "-?", "--helpshort", "-helpshort")
FULL_HELP_ARGUMENTS = ("--helpfull", "-helpfull")


def _help_asked(argv):
  """"short", "full" or None: whether argv (before a `--`) asks for help."""
  for arg in argv[1:]:
    if arg == "--":
      return None
    if arg in HELP_ARGUMENTS:
      return "short"
    if arg in FULL_HELP_ARGUMENTS:
      return "full"
  return None


def usage(values, program, doc, full=False):
  """The command's help: `doc`, its flags as absl renders them (wrapped, defaults shown), and how
  to ask for more."""
  if full:
    flag_text = values.get_help()
  else:
    # module_help starts with a line naming the module (here the script's path): not for people.
    flag_text = re.sub(r"^\s*\S+:\n", "", values.module_help(program), count=1)
  more = textwrap.fill("Also: --flagfile=FILE reads flags from a file; --verbosity=0 (or "
                       "TF_CPP_MIN_LOG_LEVEL=0) shows TensorFlow's and absl's own log records; "
                       "--helpfull lists every flag.", width=78, initial_indent="  ",
                       subsequent_indent="  ")
  return f"{(doc or '').strip()}\n\nflags:\n{flag_text}\n\n{more}\n"


def flag_error(name, error, values):
  """One line for an absl flags.Error: what is wrong and where help is."""
  text = str(error).strip()
  missing = re.search(r"Flag --(\w+) must have a value other than None", text)
  if missing and missing.group(1) in values:
    flag = missing.group(1)
    text = f"--{flag} is required ({values[flag].help.rstrip('.')})"
  text = text.replace("ERROR:: Unable to open flagfile:", "cannot read the --flagfile:")
  text = " ".join(text.replace(" ?", "?").split())
  return f"{name}: {text}; see {name} --help"


def run(main, argv=None, doc=None, name=None):
  """absl's app.run(main, argv), with --help / -h (exit 0) listing this command's flags under
  `doc` (default: the docstring of the last of our modules that declared a flag), and a flag
  mistake answered in one line `NAME: ...` (exit 1)."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  values = flags.FLAGS
  argv = list(sys.argv if argv is None else argv)
  program = sys.argv[0]
  name = name or os.path.basename(program)
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
  help_asked = _help_asked(argv)
  if help_asked:
    sys.stdout.write(usage(values, program, doc, full=help_asked == "full"))
    sys.exit(0)

  def parse(args):
    try:
      return values(args)
    except flags.Error as e:
      sys.exit(flag_error(name, e, values))

  def quiet_main(args):
    # TensorFlow's Python records below WARNING too (the checkpoint saver logs an INFO line on
    # every save through absl), unless the user asked for a level with --verbosity / -v.
    if _quiet and not values["verbosity"].present:
      from absl import logging  # pylint: disable=g-import-not-at-top
      logging.set_verbosity(logging.WARNING)
    return main(args)

  app.run(quiet_main, argv=argv, flags_parser=parse)
