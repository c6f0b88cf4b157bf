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
import json
import multiprocessing
import os
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

from inat_tf import cli
from inat_tf import editions
from inat_tf import progress
from inat_tf.commands.quickstart import QuickstartConfig  # pylint: disable=unused-import


def _script(name):
  """The installed console script next to this interpreter (the venv's bin/)."""
  path = os.path.join(os.path.dirname(sys.executable), name)
  return path if os.path.exists(path) else name


def stage_paths(root):
  """{what: path} of everything the stages write under --output_dir."""
  paths = {name: os.path.join(root, name) for name in ("download", "data", "model", "eval",
                                                        "export")}
  paths["submission"] = os.path.join(root, "submission.csv")
  return paths


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
    if isinstance(before, dict):  # {"command": [...], "finished": time}
      before = before.get("command")
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


def _stage_process(script, argv, environment, output):
  """In a child of the fork server: the console script run as `python script argv...` would, in
  `environment`, its stdout and stderr both into `output` (a pipe to the quickstart). In a process
  group of its own: a Ctrl-C reaches it through the quickstart (_CtrlC), once."""
  os.setpgrp()
  for fd in (1, 2):
    os.dup2(output.fileno(), fd)
  output.close()
  cli.refilter_stderr()  # preparing this process imported inat_tf while fd 2 was the quickstart's
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
  """(the read end of the running stage's output, a function that waits for its exit status,
  its pid, which is also its process group's id).
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
    return output, wait, process.pid
  process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=environment, process_group=0)
  return process.stdout, process.wait, process.pid


class _CtrlC:
  """Ctrl-C in the quickstart: the running stage gets it (its own process group, so a terminal's
  Ctrl-C reaches it only this way, once) and handles it as the command does (inat-train stops at
  a step boundary, inat-build keeps its shards); the quickstart waits for it, then ends with one
  line, exit 130. A second Ctrl-C, or one between stages, ends everything at once."""

  def __init__(self):
    self.stage, self.pid, self.pressed = None, None, False
    self.resumable = False  # a stage finished before, or the running one resumes (build, train)
    if threading.current_thread() is threading.main_thread():
      signal.signal(signal.SIGINT, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    if self.pid is None or self.pressed:
      if self.pid is not None:
        _kill_group(self.pid, signal.SIGKILL)
      cli.end_interrupted(self.advice, self.during)
    self.pressed = True
    _kill_group(self.pid, signal.SIGINT)

  @property
  def during(self):
    return f"during the {self.stage} stage" if self.stage else "between stages"

  @property
  def advice(self):
    if not self.resumable:
      return ""
    return ("rerun the same command to resume (finished stages are reused, build and train go "
            "on where they stopped)")


def _kill_group(pid, signal_number):
  """The stage's process group; the stage alone if it has not made its group yet."""
  for kill in (os.killpg, os.kill):
    try:
      kill(pid, signal_number)
      return
    except OSError:  # no such group yet, or already gone
      pass


def _run_stage(name, command, log_path, ctrl_c):
  """Runs one command, its output shown and appended to log_path (each run under a dated
  header, so a rerun keeps the history); exits the quickstart on failure or Ctrl-C."""
  print(f"\n== {name}: {shlex.join(command)}", flush=True)
  start = time.monotonic()
  with open(log_path, "a") as log:
    log.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(command)}\n")
    # Each stage is quiet as the command is (inat_tf/cli.py): what it prints is shown and kept.
    output, wait, ctrl_c.pid = _start_stage(command, dict(os.environ))
    ctrl_c.stage = name
    with output:
      for line in output:
        log.write(line)
        print(f"   {line}", end="", flush=True)
  status = wait()
  ctrl_c.pid = None
  if ctrl_c.pressed:
    cli.end_interrupted(ctrl_c.advice, ctrl_c.during)
  if status != 0:
    sys.exit(f"inat-quickstart: the {name} stage failed (exit {status}); its output "
             f"is in {log_path}")
  return time.monotonic() - start


def _write_json(path, document):
  with open(path + ".tmp", "w") as f:
    json.dump(document, f, indent=1)
  os.replace(path + ".tmp", path)


def summary_text(paths, report, timings, reused=None):
  """The closing table; reused: {stage: when its reused result was made}."""
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
            f" (total {sum(timings.values()):.0f}s)"]
  if reused:
    lines.append("  Reused           " + ", ".join(f"{n} (from {when})"
                                                  for n, when in reused.items()))
  lines.append("=" * 72)
  return "\n".join(lines)


def main(f, _):
  """inat-quickstart's work once its flags are parsed (inat_tf/commands/quickstart.py)."""
  start = time.monotonic()
  root = os.path.abspath(f.output_dir)
  print(f"inat-quickstart: make-sample, build, train, eval, predict, export into {root}: a "
        f"{f.num_species}-species iNat{f.edition} sample (at most {f.max_train_per_species} train "
        f"images a species, {f.max_side} px), {f.model} at {f.image_size} px for {f.epochs:g} "
        f"epochs from random weights (batch {f.batch_size}, learning rate {f.learning_rate:g}), "
        f"SavedModel{' and TFLite' if f.tflite else ''}", flush=True)
  ctrl_c = _CtrlC()
  if f.overwrite and os.path.exists(root):
    shutil.rmtree(root)
  os.makedirs(os.path.join(root, "logs"), exist_ok=True)
  paths = stage_paths(root)
  paths["edition"] = f.edition
  timings = {}
  stages = _stages(f, paths)
  record_path = os.path.join(root, STAGES_FILE)
  recorded = {}
  if os.path.exists(record_path):
    with open(record_path) as record_file:
      recorded = json.load(record_file)
  changed = changed_stages(stages, recorded)
  reused = {}  # stage -> when the result it reuses was made
  for name, command in stages:
    if name in changed:
      if any(os.path.exists(p) for p in _stage_outputs(name, paths)):
        print(f"\n== {name}: redoing it, {changed[name]}")
      for path in _stage_outputs(name, paths):
        _remove(path)
    elif _reusable(name, paths):
      before = recorded.get(name)
      reused[name] = before.get("finished", "an earlier run") if isinstance(before, dict) else \
          "an earlier run"
      print(f"\n== {name}: reusing its result from {reused[name]} (--overwrite to redo)")
      timings[name] = 0.0
      continue
    ctrl_c.resumable = bool(recorded) or name in ("build", "train")
    recorded.pop(name, None)  # no record while its output is being rewritten
    _write_json(record_path, recorded)
    timings[name] = _run_stage(name, command, os.path.join(root, "logs", f"{name}.log"), ctrl_c)
    recorded[name] = {"command": command, "finished": time.strftime("%Y-%m-%d %H:%M")}
    _write_json(record_path, recorded)
  with open(os.path.join(paths["eval"], "report.json")) as report_file:
    report = json.load(report_file)
  print(summary_text(paths, report, timings, reused))
  print(f"inat-quickstart: done in {progress.duration(time.monotonic() - start)}: val top-1 "
        f"{100 * report['top1']:.1f}% (chance {100 * report['chance_top1']:.1f}%)"
        + (f", {len(reused)} of {len(stages)} stages reused" if reused else "")
        + f"; everything in {root}, each stage's log in {os.path.join(root, 'logs')}")

