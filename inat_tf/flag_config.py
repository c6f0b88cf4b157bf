"""One way from a command's config dataclass to its absl flags and back, for every command.

Each field of the config carries its help text (and, for an enum, its choices) in its metadata,
next to its default, so a flag is declared once:

  @dataclasses.dataclass(frozen=True)
  class BuildConfig:
    raw_dir: str = flag_config.field(help="Folder with the download.")          # required
    seed: int = flag_config.field(0, "Seed of the shuffle into shards.")

  flag_config.define_flags(BuildConfig)              # --raw_dir (required), --seed
  config = flag_config.from_flags(BuildConfig)       # after absl has parsed argv

The flag's kind follows the field's type: bool, int, float, str, tuple (a comma-separated list),
or an enum when `choices` is given. A field without a default is a required flag.
"""

import ast
import dataclasses
import importlib
import importlib.util
import sys
import typing


def field(default=dataclasses.MISSING, help="", *, choices=None):  # pylint: disable=redefined-builtin
  """A dataclass field that is also a flag: `help` is the flag's help text; `choices` makes it an
  enum flag. Without a default, the field (and the flag) is required."""
  if not help:
    raise ValueError("every flag needs its help text")
  metadata = {"help": help, "choices": tuple(choices) if choices is not None else None}
  return dataclasses.field(default=default, metadata=metadata)


def _flags_module():
  from absl import flags  # pylint: disable=g-import-not-at-top  (commands only)
  return flags


def define_flags(config_class, flag_values=None):
  """Defines one absl flag per field of config_class on flag_values (absl's FLAGS by default)."""
  flags = _flags_module()
  flag_values = flags.FLAGS if flag_values is None else flag_values  # empty ones are falsy
  hints = typing.get_type_hints(config_class)
  for f in dataclasses.fields(config_class):
    if "help" not in f.metadata:
      raise TypeError(f"{config_class.__name__}.{f.name} is not a flag_config.field")
    kind, help_text = hints[f.name], f.metadata["help"]
    required = f.default is dataclasses.MISSING
    default = None if required else f.default
    # Declared for the running script: absl's --help lists the main module's flags only.
    common = dict(flag_values=flag_values, required=required, module_name=sys.argv[0])
    if f.metadata["choices"] is not None:
      flags.DEFINE_enum(f.name, default, list(f.metadata["choices"]), help_text, **common)
      # absl's `<a|b|c>: help` has no spaces to wrap at (--model's list broke mid-word).
      flag_values[f.name].help = f"{help_text} One of: " + ", ".join(
          choice or '""' for choice in f.metadata["choices"]) + "."
    elif kind is bool:
      flags.DEFINE_bool(f.name, default, help_text, **common)
    elif kind is int:
      flags.DEFINE_integer(f.name, default, help_text, **common)
    elif kind is float:
      flags.DEFINE_float(f.name, default, help_text, **common)
    elif kind is str:
      flags.DEFINE_string(f.name, default, help_text, **common)
    elif kind is tuple:
      flags.DEFINE_list(f.name, None if required else list(default), help_text, **common)
    else:
      raise TypeError(f"{config_class.__name__}.{f.name}: no flag kind for {kind}")


def from_flags(config_class, flag_values=None):
  """config_class built from the parsed flags that define_flags defined."""
  flag_values = _flags_module().FLAGS if flag_values is None else flag_values
  hints = typing.get_type_hints(config_class)
  return config_class(**{
      f.name: tuple(getattr(flag_values, f.name)) if hints[f.name] is tuple
      else getattr(flag_values, f.name) for f in dataclasses.fields(config_class)})


def run_command(name, config_class, main, *, errors=(), extra_flags=None, argv=None,
                positional=False, check=None, resume=None):
  """A console entry point: defines config_class's flags (and extra_flags(absl.flags), if any),
  parses argv, calls check and then main with (config, flag_values) (with positional=True, also
  args: the arguments left after the flags); an exception of a type in `errors` (the user's
  mistake) or an errors.UsageError exits with one line, `NAME: message`, instead of a traceback.

  main: a function, or "package.module:function", imported only once the flags are parsed and
  checked (the command's implementation imports TensorFlow; --help, flag mistakes and check's
  refusals do not need it). --help shows that module's docstring, read from its source.
  check: refuses, before any work, what cannot succeed (output paths, a split without labels);
  TensorFlow-free, so it answers in a fraction of a second.
  resume: resume(config) -> the advice a Ctrl-C ends with, e.g. "rerun the same command to
  resume", or "" when there is nothing to resume from (cli.on_interrupt).
  """
  from inat_tf import cli  # pylint: disable=g-import-not-at-top
  from inat_tf import errors as errors_lib  # pylint: disable=g-import-not-at-top
  flags = _flags_module()
  define_flags(config_class)
  if extra_flags is not None:
    extra_flags(flags)

  def absl_main(args):
    config = from_flags(config_class)
    rest = (args[1:],) if positional else ()
    cli.on_interrupt((lambda: resume(config)) if resume is not None else None)
    try:
      if check is not None:
        check(config, flags.FLAGS, *rest)
      _resolve(main)(config, flags.FLAGS, *rest)
    except (errors_lib.UsageError,) + tuple(errors) as e:
      sys.exit(f"{name}: {e}")

  # --help shows the command module's docstring (flags here belong to the script, not a module).
  cli.run(absl_main, argv, doc=_docstring(main), name=name)


def _resolve(main):
  if not isinstance(main, str):
    return main
  module_name, function = main.split(":")
  return getattr(importlib.import_module(module_name), function)


def _docstring(main):
  """The docstring of main's module; for "module:function", read from the source (no import)."""
  if not isinstance(main, str):
    return sys.modules[main.__module__].__doc__
  spec = importlib.util.find_spec(main.split(":")[0])
  with open(spec.origin, encoding="utf-8") as f:
    return ast.get_docstring(ast.parse(f.read()), clean=False)
