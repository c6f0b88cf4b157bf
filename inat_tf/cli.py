"""What every console command (inat-*) shares: quiet by default, a --help that lists the
command's flags, one line for a flag mistake, and the format of our own lines.

Ours: every line a command writes to stderr starts with `inat-NAME: ` (OUR_LINE; a stage in
brackets may follow the name, `inat-export (int8 calibration): `): its start and end lines,
progress, warnings (`inat-NAME: warning: ...`, see warn()) and the one-line errors. Anything else
on stderr comes from a library, or is the traceback of a bug in ours (never hidden).

Quiet by default, loud on request: TensorFlow 2.21's C++ side logs its start-up (oneDNN, CUDA
stubs, CPU features, and on a host without a GPU an error-level "failed call to cuInit") through
absl before its own log level applies, and later at run time (oneDNN's `E0000 ... DT_UINT8 only
on platforms with AVX-512` before every photo inat-classify decodes, the TFLite converter's
records and its bare `fully_quantize: 0, ...` line); absl and TensorFlow's Python side log in the
same glog format, and Keras and TensorFlow issue Python warnings. So each command:
  - sets TF_CPP_MIN_LOG_LEVEL=3 before TensorFlow is imported;
  - passes file descriptor 2 (C++ and Python alike) through a filter thread that drops NOISE:
    glog-format records of every level but FATAL, Python's default-format log records
    (`WARNING:absl:...`), absl's start-up banner and the bare lines above;
  - ignores Python warnings, and logs absl / TensorFlow records only from ERROR (the filter drops
    those lines anyway).
Any of --verbosity / -v (absl's flag), TF_CPP_MIN_LOG_LEVEL, TF_CPP_MAX_VLOG_LEVEL or
TF_CPP_VMODULE set by the user, or Python's -W / PYTHONWARNINGS for the warnings, turns this off:
the user chose what to see. A command's child processes (inat-quickstart's stages, the builder's
workers) inherit the quiet setting, marked by QUIET_MARK, as the command's own and not the user's.

Ctrl-C: from the moment inat_tf is imported by a console command, the first Ctrl-C (SIGINT)
ends it at once, the same way everywhere: the temporary files of writes in progress are removed
(run_common's atomic writes register them; a finished file is only ever renamed into place, so
nothing half-written is left looking complete), worker processes are killed, one line
`inat-NAME: interrupted[; advice]` goes to stderr and the exit status is 130, the shell's for
SIGINT. The advice ("rerun the same command to resume") comes only from commands with something
to resume from (flag_config.run_command's resume). Why not Python's KeyboardInterrupt: raised at
whatever bytecode runs next, inside TensorFlow it surfaced as 46 to 167 lines of traceback, as
"Exception ignored" (the Ctrl-C lost) or as SystemError ("bad argument to internal function").
The trainers stop at a step boundary instead (run_common.CtrlC replaces this handler while their
loop runs), and inat-quickstart passes the Ctrl-C to its running stage and waits for it.

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
import signal
import sys
import textwrap
import threading
import warnings

USER_LOG_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_CPP_VMODULE")
QUIET_MARK = "INAT_TF_QUIET"  # "1": TF_CPP_MIN_LOG_LEVEL was set by a quiet command, not the user
OUR_PACKAGES = ("inat_tf", "tfrecord_builder", "models")

# A line of ours on stderr (see above).
OUR_LINE = re.compile(r"^inat-[a-z]+(-[a-z]+)*( \([^)]*\))?: \S")
# Library lines: glog-format records (C++ and absl's Python handler) but FATAL; Python logging's
# default format; absl's banner; the second line of the CPU-feature notice; the TFLite
# converter's bare summary line.
_LIBRARY_LINES = (
    r"[IWE]\d{4} [\d:.]+\s+\d+ [\w/.-]+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: .* rebuild TensorFlow with"
    # The TFLite quantizer's settings, printed (not logged) by every int8 conversion.
    r"|fully_quantize: \d+, inference_type: "
    # The TFLite runtime's own bare INFO line when an interpreter starts (inat-export's int8
    # check runs the models it wrote).
    r"|INFO: Created TensorFlow Lite \w+ delegate for CPU\.$"
    # libjpeg's warnings and errors, printed bare by TensorFlow's and Pillow's decoders: the
    # texts of libjpeg-turbo's jerror.h (JWRN_*, and the JERR_* a decoder can meet in a damaged
    # or odd file); the file they concern is named by our own line.
    r"|Corrupt JPEG data: |Premature end of (JPEG|input) file|Unsupported marker type 0x"
    r"|Invalid SOS parameters for sequential JPEG|Inconsistent progression sequence"
    r"|Unknown Adobe color transform code|Warning: unknown JFIF revision number"
    r"|Application transferred too (many|few) scanlines"
    r"|Improper call to JPEG library in state \d+$|Not a JPEG file: starts with 0x"
    r"|Bogus (marker length|Huffman table definition|JPEG colorspace|sampling factors"
    r"|D[AHQ][CT] (index|value) )|Invalid component ID \d+ in SOS|DCT coefficient out of range"
    r"|Sampling factors too large for interleaved scan|Unsupported JPEG data precision \d+"
    r"|Too many color components: |Unsupported color conversion request"
    r"|Empty JPEG image \(DNL not supported\)|Didn't expect more than one scan"
    r"|Huffman code size table overflow|Missing Huffman code table entry"
    r"|Maximum supported image dimension is \d+ pixels|Empty input file$"
    r"|(Huffman|Quantization|Arithmetic) table 0x[0-9a-f]+ was not defined"
    r"|JPEG datastream contains no image|Invalid JPEG file structure: "
    r"|Unsupported JPEG process: SOF type 0x|Image too wide for this implementation"
    r"|Sorry, arithmetic coding is not implemented|Scan script does not transmit all data"
    r"|Invalid progressive parameters "
    # libpng's, printed bare by its default handlers.
    r"|libpng (warning|error): ")
# A command's stderr: every Python logging record in the default format too (ours go through
# say()/warn(), never through logging).
NOISE = re.compile(r"^((DEBUG|INFO|WARNING|ERROR):[\w.]+:|" + _LIBRARY_LINES + ")")
# inat_tf.quiet() in someone's script: only the libraries' own loggers, so theirs still print.
LIBRARY_LOGGERS = ("tensorflow", "absl", "keras", "h5py")
LIBRARY_NOISE = re.compile(r"^((DEBUG|INFO|WARNING|ERROR):(" + "|".join(LIBRARY_LOGGERS)
                           + r")\b[\w.]*:|" + _LIBRARY_LINES + ")")


def is_console_command():
  return os.path.basename(sys.argv[0] if sys.argv else "").startswith("inat-")


def command_name():
  """inat-NAME of the running console command; "inat-tf" when called from Python."""
  return os.path.basename(sys.argv[0]) if is_console_command() else "inat-tf"


def count(number, noun):
  """"1 photo", "2 photos", "1.5 epochs": a count and its noun, plural but for exactly 1."""
  shown = f"{number:,}" if isinstance(number, int) else f"{number:g}"
  return f"{shown} {noun}" + ("" if number == 1 else "s")


def say(text):
  """One of our lines on stderr: `inat-NAME: text` (a start or end line, progress)."""
  print(f"{command_name()}: {text}", file=sys.stderr, flush=True)


def warn(message):
  """Our own warning, on stderr: `inat-NAME: warning: message` (always shown)."""
  print(f"{command_name()}: warning: {message}", file=sys.stderr, flush=True)


_interrupt_advice = None  # () -> str: what the interrupted line advises
_temporaries = set()  # paths of writes in progress, removed on Ctrl-C
_stop_filter = None  # ends the stderr filter: its pending lines out, fd 2 the terminal's again


def on_interrupt(advice=None):
  """Installs (again) the Ctrl-C handler described above; advice() -> the end of the line."""
  global _interrupt_advice
  _interrupt_advice = advice
  if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, _interrupted)


def writing(path):
  """Registers the temporary file (or folder) of a write in progress; finished(path) forgets it."""
  _temporaries.add(path)


def finished(path):
  _temporaries.discard(path)


def _interrupted(signum, frame):
  del signum, frame
  advice = ""
  try:
    advice = _interrupt_advice() if _interrupt_advice else ""
  except Exception:  # pylint: disable=broad-except  (the line must still come)
    pass
  end_interrupted(advice)


def end_interrupted(advice="", during=""):
  """Ends the command after a Ctrl-C: temporaries removed, workers killed, one line
  `inat-NAME: interrupted[ during][; advice]`, exit 130 (see above)."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # one Ctrl-C is enough; the next changes nothing
  import shutil  # pylint: disable=g-import-not-at-top
  for path in list(_temporaries):
    if "://" not in path:
      shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else _remove(path)
  if "multiprocessing" in sys.modules:  # worker processes (make-sample, build): not left behind
    for child in sys.modules["multiprocessing"].active_children():
      child.kill()
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):
      pass
  if _stop_filter is not None:
    _stop_filter(timeout=0.5)
  line = (f"{command_name()}: interrupted" + (f" {during}" if during else "")
          + (f"; {advice}" if advice else "") + "\n")
  try:
    os.write(2, line.encode())
  except OSError:
    pass
  os._exit(130)  # pylint: disable=protected-access  (no exit handlers: nothing more to run)


def worker_started(parent_pid):
  """Initializer of our worker processes (the builder's, the sample generator's): a Ctrl-C is the
  parent's to handle (it kills them, end_interrupted), so a worker ignores SIGINT, which a
  terminal sends to the whole process group, instead of printing a KeyboardInterrupt traceback of
  its own; and it ends when the parent dies (a Ctrl-C, kill -9, the OOM killer) instead of
  waiting forever on its task queue: even one forked again by its pool while the parent was
  ending goes (Linux: the kernel sends SIGKILL, prctl PR_SET_PDEATHSIG; elsewhere a thread polls
  the parent's pid each second)."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  if sys.platform.startswith("linux"):
    import ctypes  # pylint: disable=g-import-not-at-top
    pr_set_pdeathsig = 1  # <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
  else:
    import time  # pylint: disable=g-import-not-at-top

    def watch():
      while os.getppid() == parent_pid:
        time.sleep(1)
      os._exit(1)  # pylint: disable=protected-access
    threading.Thread(target=watch, daemon=True).start()
  if os.getppid() != parent_pid:  # the parent died before the signal was armed
    os._exit(1)  # pylint: disable=protected-access


def _remove(path):
  try:
    os.remove(path)
  except OSError:
    pass


def _verbosity_asked(argv):
  for arg in argv[1:]:
    if arg == "--":
      return False
    if re.match(r"^--?(verbosity|v)(=|$)", arg):
      return True
  return False


def user_asked_for_logs(argv=None, environ=None):
  """Whether the user asked for TensorFlow's and absl's own records (--verbosity, or a TF_CPP_*
  variable not set by a quiet parent command)."""
  argv = sys.argv if argv is None else argv
  environ = os.environ if environ is None else environ
  if _verbosity_asked(argv):
    return True
  inherited = environ.get(QUIET_MARK) == "1"
  return any(name in environ and not (inherited and name == "TF_CPP_MIN_LOG_LEVEL")
             for name in USER_LOG_VARIABLES)


# The lines the stderr filter drops (NOISE, or LIBRARY_NOISE in a script); None until
# quiet_tensorflow took effect.
_noise = None


def quiet_tensorflow(in_a_script=False):
  """Before TensorFlow is imported: its records and the libraries' warnings hidden, unless the
  user asked for them. in_a_script (inat_tf.quiet()): the script's own warnings and logging
  records still print; only those of TensorFlow, Keras, absl and ours are hidden."""
  global _noise
  if user_asked_for_logs():
    return
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
  # Marked as ours, not the user's: an inat-* command the script starts stays quiet by default
  # rather than taking the inherited level for the user's request to see the logs.
  os.environ[QUIET_MARK] = "1"
  if not sys.warnoptions:  # python -W / PYTHONWARNINGS: the user's choice
    if in_a_script:
      warnings.filterwarnings("ignore", module=r"(" + "|".join(
          LIBRARY_LOGGERS + OUR_PACKAGES) + r")(\.|$)")
    else:
      warnings.simplefilter("ignore")
  import logging  # pylint: disable=g-import-not-at-top
  logging.getLogger("tensorflow").setLevel(logging.ERROR)
  _noise = LIBRARY_NOISE if in_a_script else NOISE
  _filter_stderr()


def refilter_stderr():
  """After file descriptor 2 was pointed elsewhere (inat-quickstart's stage, a child of the fork
  server, which imported inat_tf while preparing, before its output went to the quickstart's
  pipe): filter the new fd 2 instead of the old one."""
  if _noise is None:
    return
  if _stop_filter is not None:
    atexit.unregister(_stop_filter)  # the old filter's pipe lost its write end: it ends itself
  _filter_stderr()


def _filter_stderr():
  """Routes file descriptor 2 (C++ and Python alike) through a thread that drops NOISE lines."""
  try:
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    forward_to, restore_from = os.dup(2), os.dup(2)
  except OSError:  # no usable stderr: nothing to filter
    return
  global _stop_filter
  os.dup2(write_end, 2)
  os.close(write_end)

  def pump():
    with os.fdopen(read_end, "rb") as pipe, os.fdopen(forward_to, "wb", buffering=0) as out:
      for line in pipe:
        if not _noise.match(line.decode("utf-8", "replace")):
          out.write(line)

  thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
  thread.start()

  def restore(timeout=5):  # at exit: the last lines (sys.exit's message, a traceback) get through
    try:
      sys.stderr.flush()
    except (OSError, ValueError):
      pass
    os.dup2(restore_from, 2)  # closes the pipe's last write end: the thread sees EOF
    thread.join(timeout=timeout)

  _stop_filter = restore
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
  """The command's help: `doc`'s title and usage lines, its flags as absl renders them (wrapped,
  defaults shown), the rest of `doc`, and how to ask for more. The flags come before the prose
  (40-80 lines for some commands), so `--help | head` shows what to type."""
  if full:
    flag_text = values.get_help()
  else:
    # module_help starts with a line naming the module (here the script's path): not for people.
    flag_text = re.sub(r"^\s*\S+:\n", "", values.module_help(program), count=1)
  more = textwrap.fill("Also: --flagfile=FILE reads flags from a file; --verbosity=0 (or "
                       "TF_CPP_MIN_LOG_LEVEL=0) shows TensorFlow's and absl's own log records; "
                       "--helpfull lists every flag.", width=78, initial_indent="  ",
                       subsequent_indent="  ")
  paragraphs = re.split(r"\n\s*\n", (doc or "").strip())
  synopsis = 1  # the title, then the indented usage examples that follow it
  while synopsis < len(paragraphs) and all(
      line.startswith(" ") for line in paragraphs[synopsis].splitlines()):
    synopsis += 1
  head, rest = "\n\n".join(paragraphs[:synopsis]), "\n\n".join(paragraphs[synopsis:])
  return (f"{head}\n\nflags:\n{flag_text}\n\n" + (f"{rest}\n\n" if rest else "")
          + f"{more}\n")


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
    # absl's and TensorFlow's Python records below ERROR (the checkpoint saver logs an INFO line
    # on every save, the TFLite converter warnings), unless the user asked with --verbosity / -v.
    if _noise is not None and not values["verbosity"].present:
      from absl import logging  # pylint: disable=g-import-not-at-top
      logging.set_verbosity(logging.ERROR)
    return main(args)

  app.run(quiet_main, argv=argv, flags_parser=parse)
