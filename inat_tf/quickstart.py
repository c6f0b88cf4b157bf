"""`inat-quickstart`: the whole chain on the bundled sample, each stage the real command.

  inat-quickstart --output_dir runs/quickstart        # a few minutes on two CPU cores

make-sample → build → train → eval → predict → export, each run as the console command a user
would run on the full download (printed before it runs), then a summary: val top-1 / top-5
against chance, the per-super-category table, where everything is, and how long each stage took.
A rerun reuses what is finished (the sample, the builder's shards, the trainer's checkpoints, and
reports, CSV and exports newer than the model), but only what was made with the same settings:
each stage's command line is recorded in OUTPUT_DIR/stages.json, and a stage whose command
differs from the recorded one is redone from scratch (its output deleted), and every stage after
it too. --overwrite starts over.
"""

import atexit
import dataclasses
import json
import multiprocessing
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import threading
import time
import traceback

from inat_tf import editions
from inat_tf import flag_config


def _script(name):
  """The installed console script next to this interpreter (the venv's bin/)."""
  path = os.path.join(os.path.dirname(sys.executable), name)
  return path if os.path.exists(path) else name


def _stages(f, paths):
  sample = [_script("inat-make-sample"), f"--output_dir={paths['download']}",
            f"--num_species={f.num_species}",
            f"--max_train_per_species={f.max_train_per_species}", f"--max_side={f.max_side}",
            f"--edition={f.edition}"]
  build = [_script("inat-build"), f"--raw_dir={paths['download']}",
           f"--data_dir={paths['data']}", f"--examples_per_shard={f.examples_per_shard}"]
  # MobileNet V1 from scratch: the fastest of the paper's networks on a CPU; no ImageNet weights
  # (no download); batch-norm momentum lowered so that a few hundred steps settle its statistics;
  # cosine decay, because a short run ends before the paper's x0.94-per-4-epochs decay bites
  # (at 80 px, 10 epochs: 62 % val top-1 against 59 % at 96 px, 12 epochs, exponential).
  train = [_script("inat-train"), f"--data_dir={paths['data']}", f"--model_dir={paths['model']}",
           f"--model={f.model}", f"--image_size={f.image_size}", f"--batch_size={f.batch_size}",
           f"--epochs={f.epochs}", "--weights=none", f"--learning_rate={f.learning_rate}",
           "--bn_momentum=0.9", "--lr_schedule=cosine", "--log_steps=20"]
  evaluate = [_script("inat-eval"), f"--data_dir={paths['data']}",
              f"--model_dir={paths['model']}", "--split=val", f"--output_dir={paths['eval']}"]
  predict = [_script("inat-predict"), f"--data_dir={paths['data']}",
             f"--model_dir={paths['model']}", "--split=test",
             f"--output={paths['submission']}"]
  export = [_script("inat-export"), f"--model_dir={paths['model']}",
            f"--export_dir={paths['export']}", f"--data_dir={paths['data']}",
            f"--{'' if f.tflite else 'no'}tflite"]
  return [("make-sample", sample), ("build", build), ("train", train), ("eval", evaluate),
          ("predict", predict), ("export", export)]


STAGES_FILE = "stages.json"


def _stage_outputs(name, paths):
  """What a stage writes (deleted before it is redone with other settings)."""
  return {"make-sample": [paths["download"]], "build": [paths["data"]],
          "train": [paths["model"]], "eval": [paths["eval"]],
          "predict": [paths["submission"]], "export": [paths["export"]]}[name]


def changed_stages(stages, recorded):
  """{stage: reason} of the stages to redo from scratch: the first whose command differs from
  the recorded one (or that has no record), and every stage after it."""
  changed, reason = {}, None
  for name, command in stages:
    before = recorded.get(name)
    if reason is None and before != command:
      if before is None:
        reason = f"no record of its settings in {STAGES_FILE}"
      else:
        now_only = [a for a in command[1:] if a not in before]
        before_only = [a for a in before[1:] if a not in command]
        reason = (f"settings differ from the last run ({' '.join(now_only) or '-'} now, "
                  f"{' '.join(before_only) or '-'} before)")
    elif reason is not None and not reason.startswith("an earlier"):
      reason = f"an earlier stage was redone ({reason})"
    if reason is not None:
      changed[name] = reason
  return changed


def _remove(path):
  if os.path.isdir(path):
    shutil.rmtree(path)
  elif os.path.exists(path):
    os.remove(path)


def _reusable(name, paths):
  """Whether a stage's result is already there: the sample complete, or an output of the model
  newer than the model. build and train always run: they resume by themselves."""
  if name == "make-sample":
    return _sample_is_complete(paths["download"], paths["edition"])
  outputs = {"eval": os.path.join(paths["eval"], "report.json"), "predict": paths["submission"],
             "export": os.path.join(paths["export"], "export_info.json")}
  if name not in outputs or not os.path.exists(outputs[name]):
    return False
  from inat_tf import trained_model  # pylint: disable=g-import-not-at-top  (TensorFlow: only here)
  model = os.path.join(paths["model"], trained_model.model_file("best"))
  return os.path.exists(model) and os.path.getmtime(outputs[name]) >= os.path.getmtime(model)


def _sample_is_complete(download, edition_name="2017"):
  """Every file the edition publishes is there (the generator renames each when complete), and
  no other edition's train JSON (a reused output_dir from another --edition)."""
  edition = editions.get(edition_name)
  others = {e.splits["train"].annotations for e in editions.EDITIONS.values()} - {
      edition.splits["train"].annotations}
  return (all(os.path.exists(os.path.join(download, n)) for n in edition.file_names())
          and not any(os.path.exists(os.path.join(download, n)) for n in others))


# TensorFlow's and Keras's own chatter (glog/absl records, converter notes, warnings): kept in the
# stage's log file, not shown.
_NOISE = re.compile(r"^([IWE]\d{4} \d\d:\d\d|WARNING: All log messages|To enable the following "
                    r"instructions|INFO:tensorflow:|WARNING:absl:|fully_quantize:|\S+\.py:\d+: \w*"
                    r"Warning|  warnings\.warn)")


def _stage_process(script, argv, environment, output):
  """In a child of the fork server: the console script run as `python script argv...` would, in
  `environment`, its stdout and stderr both into `output` (a pipe to the quickstart)."""
  for fd in (1, 2):
    os.dup2(output.fileno(), fd)
  output.close()
  os.environ.clear()
  os.environ.update(environment)
  sys.argv = [script] + argv
  sys.path[0] = os.path.dirname(os.path.abspath(script))
  code = 0
  try:
    runpy.run_path(script, run_name="__main__")
  except SystemExit as e:
    if isinstance(e.code, str):
      print(e.code, file=sys.stderr)
      code = 1
    else:
      code = e.code or 0
  except KeyboardInterrupt:
    code = 130  # what the shell reports for a Python killed by Ctrl-C
  except BaseException:  # pylint: disable=broad-except  (reported as the interpreter would)
    traceback.print_exc()
    code = 1
  finally:
    # What the interpreter's exit does: join non-daemon threads, run the exit handlers.
    threading._shutdown()  # pylint: disable=protected-access
    atexit._run_exitfuncs()  # pylint: disable=protected-access
    sys.stdout.flush()
    sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access  (exit handlers ran above)


def _is_python_script(path):
  """An installed console script (its first line a python shebang), not a shell wrapper."""
  try:
    with open(path, "rb") as f:
      first = f.readline(512)
  except OSError:
    return False
  return first.startswith(b"#!") and b"python" in first


_fork_server = None


def _start_stage(command, environment):
  """(the read end of the running stage's output, a function that waits for its exit status).
  Where the platform forks (Linux), each
  stage is a child of one fork server that imported TensorFlow and Keras once (multiprocessing's
  forkserver; it stays, ~0.8 GB, until the quickstart ends): six stages would otherwise pay the
  ~3.5 CPU-second import six times. Elsewhere, or for a command that is not an installed Python
  script, a fresh interpreter."""
  global _fork_server
  if sys.platform.startswith("linux") and _is_python_script(command[0]):
    if _fork_server is None:
      _fork_server = multiprocessing.get_context("forkserver")
      _fork_server.set_forkserver_preload(["tensorflow", "keras"])
    reader, writer = _fork_server.Pipe(duplex=False)
    process = _fork_server.Process(target=_stage_process,
                                   args=(command[0], command[1:], environment, writer))
    process.start()
    writer.close()  # the child holds the only write end: its exit ends the output
    output = os.fdopen(os.dup(reader.fileno()), encoding="utf-8", errors="replace")
    reader.close()

    def wait():
      process.join()
      return process.exitcode
    return output, wait
  process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=environment)
  return process.stdout, process.wait


def _run_stage(name, command, log_path):
  """Runs one command, its output shown and kept in log_path; exits the quickstart on failure."""
  print(f"\n== {name}: {shlex.join(command)}", flush=True)
  start = time.monotonic()
  with open(log_path, "w") as log:
    # TensorFlow's start-up records go to the stage's log, not the screen.
    output, wait = _start_stage(command, {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    with output:
      for line in output:
        log.write(line)
        if not _NOISE.match(line):
          print(f"   {line}", end="", flush=True)
  status = wait()
  if status != 0:
    sys.exit(f"inat-quickstart: the {name} stage failed (exit {status}); its output "
             f"is in {log_path}")
  return time.monotonic() - start


def _write_json(path, document):
  with open(path + ".tmp", "w") as f:
    json.dump(document, f, indent=1)
  os.replace(path + ".tmp", path)


def summary_text(paths, report, timings):
  lines = ["", "=" * 72,
           f"Quickstart done. On the sample's val split ({report['images']} images, "
           f"{report['num_classes']} species):",
           f"  top-1 {100 * report['top1']:.1f}%  (chance {100 * report['chance_top1']:.1f}%)   "
           f"top-5 {100 * report['top5']:.1f}%  (chance {100 * report['chance_top5']:.1f}%)   "
           f"top-5 error {100 * report['top5_error']:.1f}%", "",
           "  Super-category   species  top-1   top-5"]
  for row in report["supercategories"]:
    lines.append(f"  {row['supercategory']:<17} {row['species']:>6}  {100 * row['top1']:5.1f}%  "
                 f"{100 * row['top5']:5.1f}%")
  if report.get("ranks"):
    lines += ["", "  At each rank     " + "  ".join(
        f"{row['rank']} {100 * row['top1']:.1f}%" for row in report["ranks"])]
  lines += ["",
            f"  Kaggle CSV       {paths['submission']}",
            f"  SavedModel       {os.path.join(paths['export'], 'saved_model')}",
            f"  Report           {paths['eval']}/report.html (open it in a browser; tables "
            f"also in report.md)",
            f"  TensorBoard      tensorboard --logdir {os.path.join(paths['model'], 'logs')}",
            "  Stage times      " + ", ".join(f"{n} {s:.0f}s" for n, s in timings.items()) +
            f" (total {sum(timings.values()):.0f}s)", "=" * 72]
  return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
  """inat-quickstart's flags."""
  output_dir: str = flag_config.field("runs/quickstart", "Where every stage writes.")
  overwrite: bool = flag_config.field(False, "Delete output_dir first instead of reusing it.")
  num_species: int = flag_config.field(40, "Sample size: species (>= 13).")
  max_train_per_species: int = flag_config.field(80, "Sample size: the commonest species' images.")
  max_side: int = flag_config.field(128, "Sample image size.")
  examples_per_shard: int = flag_config.field(256, "Builder: examples per shard.")
  model: str = flag_config.field("mobilenet_v1", "Network (see models.MODEL_NAMES).")
  image_size: int = flag_config.field(80, "Training image size.")
  batch_size: int = flag_config.field(32, "Global batch size.")
  epochs: float = flag_config.field(10, "Training epochs.")
  learning_rate: float = flag_config.field(0.1, "Learning rate per 32 images.")
  tflite: bool = flag_config.field(True, "Also export TFLite models.")
  edition: str = flag_config.field("2017", "Which competition edition's layout the sample "
                                   "download has (inat_tf.editions).", choices=editions.NAMES)


def run(argv=None):
  """Console entry point `inat-quickstart`."""

  def main(f, _):
    root = os.path.abspath(f.output_dir)
    if f.overwrite and os.path.exists(root):
      shutil.rmtree(root)
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    paths = {name: os.path.join(root, name) for name in ("download", "data", "model", "eval",
                                                          "export")}
    paths["submission"] = os.path.join(root, "submission.csv")
    paths["edition"] = f.edition
    timings = {}
    stages = _stages(f, paths)
    record_path = os.path.join(root, STAGES_FILE)
    recorded = {}
    if os.path.exists(record_path):
      with open(record_path) as record_file:
        recorded = json.load(record_file)
    changed = changed_stages(stages, recorded)
    for name, command in stages:
      if name in changed:
        if any(os.path.exists(p) for p in _stage_outputs(name, paths)):
          print(f"\n== {name}: redoing it, {changed[name]}")
        for path in _stage_outputs(name, paths):
          _remove(path)
      elif _reusable(name, paths):
        print(f"\n== {name}: reusing its result (--overwrite to redo)")
        timings[name] = 0.0
        continue
      recorded.pop(name, None)  # no record while its output is being rewritten
      _write_json(record_path, recorded)
      timings[name] = _run_stage(name, command, os.path.join(root, "logs", f"{name}.log"))
      recorded[name] = command
      _write_json(record_path, recorded)
    with open(os.path.join(paths["eval"], "report.json")) as report_file:
      report = json.load(report_file)
    print(summary_text(paths, report, timings))

  flag_config.run_command("inat-quickstart", QuickstartConfig, main, argv=argv)


if __name__ == "__main__":
  run()
