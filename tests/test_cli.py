"""The command line itself (issues 30 and 25): --help and -h fast and readable, flags parsed
without TensorFlow, every flag mistake in one line; quiet by default, a start and an end line;
refusals before the work; Ctrl-C in one line everywhere; hints that name the right flag and file.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests import helpers
from tests.helpers import console_script

# Every console script of setup.py, by its command name (inat-NAME).
COMMANDS = ("make-sample", "build", "data-service", "train", "eval", "predict", "score", "export",
            "adjust", "quickstart", "train-geo", "classify", "overlap", "detect-train",
            "detect-eval", "detect-export")


def _plain_environment():
  """The user's default: no TensorFlow log variable set (the commands' quiet path)."""
  return {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}


def test_every_console_script_is_listed():
  from importlib.metadata import entry_points  # pylint: disable=g-import-not-at-top
  installed = sorted(e.name for e in entry_points(group="console_scripts")
                     if e.dist and e.dist.name == "inat-tf")
  assert installed == sorted(f"inat-{name}" for name in COMMANDS)


@pytest.mark.slow
def test_command_modules_import_without_tensorflow():
  """The flags of every command parse without TensorFlow, Keras or NumPy (inat_tf/commands)."""
  modules = [f"inat_tf.commands.{name.replace('-', '_')}" for name in COMMANDS]
  script = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "  importlib.import_module(name)\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'numpy', 'keras_hub') "
            "if m in sys.modules))\n")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**_plain_environment(), "PYTHONWARNINGS": "ignore"})
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMANDS)
def test_help_is_fast_readable_and_exits_0(name):
  script = console_script(f"inat-{name}")
  start = time.monotonic()
  result = subprocess.run([script, "--help"], capture_output=True, text=True,
                          env=_plain_environment())
  seconds = time.monotonic() - start
  print(f"inat-{name} --help: {seconds:.2f} s")  # the figure; asserted loosely (loaded CI)
  assert result.returncode == 0 and result.stderr == "", result.stderr
  assert seconds < 2
  text = result.stdout
  assert "\nflags:\n  --" in text
  # The flags right after the title and usage lines, the long prose after them (it came first,
  # pushing the flags 40-80 lines down).
  assert "flags:" in text.splitlines()[:15], text[:2000]
  # A usage line continued with a backslash in the docstring read `--epochs 10        --weights`.
  assert not re.search(r"\S {8,}--\w", text), text
  # Every choice of every enum flag is printed whole (absl's `<a|b|c>` list broke mid-word).
  for choices in re.findall(r"One of: ([^.]*)\.", text.replace("\n    ", " ")):
    for choice in choices.split(", "):
      assert re.search(rf"(?<![\w/]){re.escape(choice)}(?![\w/])", text), choice
  short = subprocess.run([script, "-h"], capture_output=True, text=True, env=_plain_environment())
  assert (short.returncode, short.stdout) == (0, text)


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMANDS)
def test_a_flagfile_that_is_not_there_is_one_line(name, tmp_path):
  result = subprocess.run([console_script(f"inat-{name}"), f"--flagfile={tmp_path}/nope.flags"],
                          capture_output=True, text=True, env=_plain_environment())
  assert result.returncode == 1 and result.stdout == ""
  assert result.stderr == (f"inat-{name}: cannot read the --flagfile: [Errno 2] No such file or "
                           f"directory: '{tmp_path}/nope.flags'; see inat-{name} --help\n")


# -- shared by the tests below: a tiny model, photos, a tiny download ------------------------------

CLI_GROUP = pytest.mark.xdist_group("cli")  # one worker trains the model below once


@pytest.fixture(scope="module")
def cli_model(tiny_built_dir, tmp_path_factory):
  """MobileNet V1 at 32 px, two steps on the tiny set: a real model dir, made in seconds."""
  from inat_tf import train  # pylint: disable=g-import-not-at-top
  model_dir = tmp_path_factory.mktemp("cli_model")
  train.train(train.TrainConfig(
      data_dir=str(tiny_built_dir), model_dir=str(model_dir), model="mobilenet_v1",
      image_size=32, batch_size=16, weights="none", train_steps=2, log_steps=1),
      log=lambda message: None)
  return model_dir


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  """Twelve small JPEGs, as a folder of one's own photos."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  folder = tmp_path_factory.mktemp("photos")
  for i in range(12):
    Image.new("RGB", (48, 40), (20 * i, 120, 200 - 10 * i)).save(folder / f"p{i:02d}.jpg")
  return folder


@pytest.fixture(scope="module")
def tiny_raw(tmp_path_factory):
  """A 13-species iNat2017 download, 2 train images a species at 32 px."""
  from inat_tf import sample_download  # pylint: disable=g-import-not-at-top
  raw = tmp_path_factory.mktemp("tiny_raw")
  sample_download.make_sample(str(raw), sample_download.SampleConfig(
      num_species=13, min_train_per_species=2, max_train_per_species=2, max_side=32,
      num_workers=1))
  return raw


def _copy_model(model_dir, target):
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.copytree(model_dir, target)
  return target


def _ours(stderr):
  """The lines of stderr that are not ours (inat_tf/cli.py OUR_LINE)."""
  from inat_tf import cli  # pylint: disable=g-import-not-at-top
  return [line for line in stderr.splitlines() if line.strip() and not cli.OUR_LINE.match(line)]


def _library_lines(stdout):
  """Lines on stdout in a library's log format (glog, Python logging, Python warnings)."""
  from inat_tf import cli  # pylint: disable=g-import-not-at-top
  return [line for line in stdout.splitlines()
          if cli.NOISE.match(line) or re.search(r"\.py:\d+: \w*Warning", line)]


# -- issue 30 items 2 and 3: quiet, and a start and an end line ------------------------------------

# Where each long command's start and end lines go: its log's stream.
LOGS_TO_STDOUT = {"train", "adjust", "train-geo"}


def _score_files(raw, tmp_path):
  """A perfect submission of the tiny download's val split, for inat-score."""
  val = json.loads((raw / "val2017.json").read_text())
  rows = [f"{a['image_id']},{a['category_id']} {a['category_id']} {a['category_id']} "
          f"{a['category_id']} {a['category_id']}" for a in val["annotations"]]
  (tmp_path / "val.csv").write_text("id,predicted\n" + "\n".join(rows) + "\n")
  return [f"--predictions={tmp_path}/val.csv", f"--annotations={raw}/val2017.json"]


def _quiet_case(name, data, model, raw, photos, tmp_path):
  """argv (after the script) of one run of inat-NAME on the tiny set, to its end."""
  data_flag, model_flag = f"--data_dir={data}", f"--model_dir={model}"
  cases = {
      "make-sample": [f"--output_dir={tmp_path}/raw", "--num_species=13",
                      "--min_train_per_species=2", "--max_train_per_species=2", "--max_side=32"],
      "build": [f"--raw_dir={raw}", f"--data_dir={tmp_path}/data", "--examples_per_shard=64"],
      "train": [data_flag, f"--model_dir={tmp_path}/model", "--model=mobilenet_v1",
                "--image_size=32", "--batch_size=16", "--train_steps=2", "--weights=none"],
      "eval": [data_flag, model_flag, f"--output_dir={tmp_path}/eval"],
      # A folder that does not exist yet (issue 25 item 7): made, as inat-eval's is.
      "predict": [data_flag, model_flag, f"--output={tmp_path}/new/submission.csv"],
      "export": [model_flag, f"--export_dir={tmp_path}/export", data_flag],
      "classify": [model_flag, str(photos), f"--output_csv={tmp_path}/new/photos.csv"],
      "adjust": lambda: [data_flag, f"--model_dir={_copy_model(model, tmp_path / 'adjusted')}",
                         "--method=logit_adjustment"],
      "train-geo": [data_flag, f"--geo_dir={tmp_path}/geo", "--epochs=1"],
      "overlap": [data_flag, f"--other={data}"],
      "score": lambda: _score_files(raw, tmp_path),
  }
  case = cases[name]
  return case() if callable(case) else case


LONG_COMMANDS = ("make-sample", "build", "train", "eval", "predict", "export", "classify",
                 "adjust", "train-geo")


@CLI_GROUP
@pytest.mark.slow
@pytest.mark.parametrize("name", LONG_COMMANDS + ("overlap", "score"))
def test_a_command_run_by_hand_prints_only_its_own_lines(
    name, tiny_built_dir, cli_model, tiny_raw, photos, tmp_path):
  """Run with the user's default environment (no TF_CPP_* variable: the quiet path), every
  stderr line is ours (`inat-NAME: ...`, cli.OUR_LINE) and stdout holds no library record; a
  long command's log starts with what it will do and ends with what it did. The commands run in
  children of the tests' zygote, which imported TensorFlow already, so inat-overlap runs in a
  fresh process: TensorFlow's start-up records (oneDNN, CUDA stubs, cuInit) are filtered too."""
  argv = [console_script(f"inat-{name}")] + _quiet_case(name, tiny_built_dir, cli_model,
                                                         tiny_raw, photos, tmp_path)
  if name == "overlap":  # a fresh process, TensorFlow's own start-up included (not the zygote's)
    result = subprocess.run(argv, capture_output=True, text=True, env=_plain_environment())
  else:
    result = helpers.run(argv, env=_plain_environment())
  assert result.returncode == 0, result.stderr[-3000:]
  assert _ours(result.stderr) == [], result.stderr
  assert _library_lines(result.stdout) == [], result.stdout
  if name in LONG_COMMANDS:
    log = (result.stdout if name in LOGS_TO_STDOUT else result.stderr).strip().splitlines()
    print(f"{log[0]}\n{log[-1]}")
    assert log[0].startswith(f"inat-{name}: ") and "done" not in log[0], log
    assert log[-1].startswith(f"inat-{name}: done"), log
    assert re.search(r"\d+m\d\ds|\d+s\b", log[-1]), log[-1]  # the wall time
  if name == "train":
    first, last = log[0], log[-1]
    for words in ("mobilenet_v1", "32 px", "13 classes", "from random weights", "rmsprop",
                  "learning rate 0.00225 (0.0045 per 32 images)", "x0.94 every 4 epochs",
                  "2 steps", "of 16 images on 1 replica", "recipe -", f"into {tmp_path}/model"):
      assert words in first, (words, first)
    summary = json.loads((tmp_path / "model" / "train_summary.json").read_text())
    assert (f"best val top-1 {100 * summary['best_val_top1']:.1f}% at step "
            f"{summary['best_val_step']}") in last and f"models in {tmp_path}/model" in last
    assert "top-1 many " in result.stdout and " - medium" not in result.stdout
  if name == "build":
    assert "iNat2017 download in" in log[0]
  if name in ("predict", "classify"):
    assert list((tmp_path / "new").iterdir())  # the output's new folder was made, and written
  if name == "export":  # the int8 models' agreement with float, said (and warned if short)
    check = json.loads((tmp_path / "export" / "export_info.json").read_text())["int8_check"]
    for model, measured in check["models"].items():
      said = (f"inat-export: {model}: same top-1 as model.tflite on "
              f"{100 * measured['agreement']:.1f} % of {check['images']} val images")
      assert said in result.stderr, result.stderr
      warned = f"inat-export: warning: {model} " in result.stderr
      assert warned == (measured["agreement"] < 0.97 or measured["top1_change_points"] < -1), \
          result.stderr


# -- issue 25 item 7: refused before the work -------------------------------------------------------

def _refusal_cases(blocked, tmp):
  """(command, argv, words of the one-line refusal): every output path in a folder that cannot
  be made (under a regular file, `blocked`), and the other mistakes found before any work."""
  out = f"{blocked}/sub"
  data, model = f"--data_dir={tmp}/data", f"--model_dir={tmp}/model"
  cannot = "cannot write"
  return [
      ("make-sample", [f"--output_dir={out}"], f"--output_dir={out}: {cannot}"),
      ("build", [f"--raw_dir={tmp}", f"--data_dir={out}"], f"--data_dir={out}: {cannot}"),
      ("train", [data, f"--model_dir={out}"], f"--model_dir={out}: {cannot}"),
      ("eval", [data, model, f"--output_dir={out}"], f"--output_dir={out}: {cannot}"),
      ("predict", [data, model, f"--output={out}/s.csv"], f"--output={out}/s.csv: {cannot}"),
      ("export", [model, f"--export_dir={out}"], f"--export_dir={out}: {cannot}"),
      ("adjust", [data, f"--model_dir={blocked}", "--method=tau_norm"],
       f"--model_dir={blocked}: {cannot}"),
      ("quickstart", [f"--output_dir={out}"], f"--output_dir={out}: {cannot}"),
      ("train-geo", [data, f"--geo_dir={out}"], f"--geo_dir={out}: {cannot}"),
      ("classify", [model, str(tmp), f"--output_csv={out}/c.csv"],
       f"--output_csv={out}/c.csv: {cannot}"),
      ("classify", [model, str(tmp), f"--output_json={out}/c.json"],
       f"--output_json={out}/c.json: {cannot}"),
      ("detect-train", [data, f"--model_dir={out}"], f"--model_dir={out}: {cannot}"),
      ("detect-eval", [data, model, f"--output_dir={out}"], f"--output_dir={out}: {cannot}"),
      ("detect-export", [model, f"--export_dir={out}"], f"--export_dir={out}: {cannot}"),
      # The example: the test split has no labels; and its variant in inat-adjust.
      ("eval", [data, model, "--split=test"], "--split=test: the test split has no labels"),
      ("adjust", [data, model, "--method=tau_norm", "--tune_split=test"],
       "--tune_split=test: the test split has no labels"),
      ("classify", [model, str(tmp), "--top_k=0"], "--top_k=0: must be at least 1"),
      ("export", [model, f"--export_dir={tmp}/e", "--top_k=-3"], "--top_k=-3: must be at least 1"),
      ("export", [model, f"--export_dir={tmp}/e", "--location_floor=0.1"],
       "--location_floor sets how the location prior is combined: give --geo_dir"),
      ("eval", [data, model, "--batch_size=0"], "--batch_size=0: must be at least 1"),
      ("classify", [model], "name at least one PHOTO_OR_FOLDER"),
      ("eval", [data, model, "--which=final"], "; it has best.keras: --which best"),
      ("classify", [model, str(tmp), "--latitude=137", "--longitude=2", f"--geo_dir={tmp}/g"],
       "--latitude 137.0 --longitude 2.0: expected degrees in [-90, 90] and [-180, 180]"),
      ("classify", [model, str(tmp), "--latitude=41"], "Give --latitude and --longitude together"),
      # A mistyped model dir (it printed its start line, then failed after loading TensorFlow).
      *[(name, [f"--model_dir={tmp}/modl", *more],
         f"{tmp}/modl/best.keras (or train_config.json beside it) not found: the model dir "
         f"(--model_dir) must be a directory written by inat-train") for name, more in (
             ("eval", [data]), ("predict", [data, f"--output={tmp}/s.csv"]),
             ("export", [f"--export_dir={tmp}/e"]), ("classify", [str(tmp)]),
             ("adjust", [data, "--method=tau_norm"]))],
  ]


@pytest.mark.slow
def test_every_output_path_and_split_is_refused_before_any_work(tmp_path):
  """Each refusal is one line, and comes before TensorFlow is even imported, let alone a model
  or a shard read: a `tensorflow` that cannot be imported is first on the path."""
  blocked = tmp_path / "a_file"
  blocked.write_text("not a folder\n")
  poison = tmp_path / "poison"
  for module in ("tensorflow", "keras"):
    (poison / module).mkdir(parents=True)
    (poison / module / "__init__.py").write_text(
        f"raise ImportError('{module} imported before the refusal')\n")
  environment = {**_plain_environment(), "PYTHONPATH": str(poison)}
  model = tmp_path / "model"  # what the model-dir check looks for (nothing reads them)
  model.mkdir()
  for name in ("best.keras", "train_config.json"):
    (model / name).write_text("")
  for name, argv, words in _refusal_cases(blocked, tmp_path):
    start = time.monotonic()
    result = subprocess.run([console_script(f"inat-{name}")] + argv, capture_output=True,
                            text=True, env=environment)
    print(f"inat-{name} refused in {time.monotonic() - start:.2f} s: {result.stderr.strip()}")
    assert result.returncode == 1 and result.stdout == "", (name, result.stdout, result.stderr)
    assert result.stderr.startswith(f"inat-{name}: ") and result.stderr.count("\n") == 1, (
        name, result.stderr)
    assert words in result.stderr, (name, words, result.stderr)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "model", "poison"]  # no more


# -- issue 25 item 8: Ctrl-C, one line everywhere ---------------------------------------------------

def _descendants(pid):
  """Every living process below pid (from /proc: Linux)."""
  children = {}
  for entry in os.listdir("/proc"):
    if entry.isdigit():
      try:
        with open(f"/proc/{entry}/stat") as f:
          fields = f.read().rsplit(")", 1)[1].split()
      except OSError:
        continue
      if fields[0] != "Z":
        children.setdefault(int(fields[1]), []).append(int(entry))
  found, todo = [], [pid]
  while todo:
    for child in children.get(todo.pop(), []):
      found.append(child)
      todo.append(child)
  return found


def _alive(pid):
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


def _interrupt_case(name, data, model, photos, sample, tmp_path):
  """(argv after the script, what the command prints once its work is under way, the advice its
  interrupted line must give or "" for none)."""
  data_flag, model_flag = f"--data_dir={data}", f"--model_dir={model}"
  return {
      "make-sample": ([f"--output_dir={tmp_path}/raw", "--num_workers=2"],
                      "inat-make-sample: a sample", ""),
      "build": ([f"--raw_dir={sample}", f"--data_dir={tmp_path}/data", "--num_workers=2",
                 "--examples_per_shard=300"], "shard(s) to write",
                "rerun the same command to resume"),
      # Stopped at a step boundary after the checkpoint of step 2: something to resume from.
      "train": ([data_flag, f"--model_dir={tmp_path}/model", "--model=mobilenet_v1",
                 "--image_size=32", "--batch_size=16", "--train_steps=500", "--weights=none",
                 "--log_steps=1", "--checkpoint_steps=2", "--eval_every_epochs=1000"],
                "\nstep 4/", "rerun the same command to resume"),
      "eval": ([data_flag, model_flag, f"--output_dir={tmp_path}/eval"], "inat-eval: scoring",
               ""),
      "predict": ([data_flag, model_flag, f"--output={tmp_path}/s.csv"], "inat-predict: ", ""),
      "export": ([model_flag, f"--export_dir={tmp_path}/export", data_flag], "inat-export: ", ""),
      "adjust": (lambda: [data_flag, f"--model_dir={_copy_model(model, tmp_path / 'adjusted')}",
                          "--method=tau_norm"], "inat-adjust: tau_norm", ""),
      "classify": ([model_flag, str(photos)], "inat-classify: ", ""),
      "train-geo": ([data_flag, f"--geo_dir={tmp_path}/geo", "--epochs=2000", "--log_steps=1",
                     "--batch_size=8"], "\nstep 2/", None),
      "quickstart": ([f"--output_dir={tmp_path}/quickstart", "--num_species=13",
                      "--max_side=64", "--notflite"], "   inat-make-sample: a sample", ""),
      "data-service": (["--role=dispatcher"], "serving on", ""),
      "detect-train": ([data_flag, f"--model_dir={tmp_path}/detector", "--image_size=64",
                        "--weights=none", "--train_steps=500", "--log_steps=1"],
                       "inat-detect-train: ", None),
  }[name]


@CLI_GROUP
@pytest.mark.slow
@pytest.mark.parametrize("name", ["make-sample", "build", "train", "eval", "predict", "export",
                                  "adjust", "classify", "train-geo", "quickstart",
                                  "data-service", "detect-train"])
def test_ctrl_c_mid_work_is_one_line_exit_130_and_leaves_no_process(
    name, tiny_built_dir, cli_model, photos, sample_dir, tmp_path):
  """A real SIGINT to the running command, as a terminal's Ctrl-C to its process: exit 130, one
  line saying so (advice to rerun only where there is something to resume from), no traceback,
  no process of its left, no temporary file left behind."""
  argv, under_way, advice = _interrupt_case(name, tiny_built_dir, cli_model, photos, sample_dir,
                                            tmp_path)
  argv = argv() if callable(argv) else argv
  command = helpers.start([console_script(f"inat-{name}")] + argv, env=_plain_environment())
  deadline = time.monotonic() + 300
  while under_way not in "\n".join(command.output_so_far()) and command.poll() is None:
    assert time.monotonic() < deadline, command.output_so_far()
    time.sleep(0.05)
  if name == "make-sample":
    time.sleep(1)  # its worker processes started
  workers = _descendants(command.pid)
  command.send_signal(signal.SIGINT)
  assert command.wait(120) == 130, (command.stdout[-2000:], command.stderr[-2000:])
  assert "Traceback" not in command.stdout + command.stderr, command.stderr
  assert _ours(command.stderr) == [], command.stderr
  said = [line for line in command.stderr.splitlines() if "interrupted" in line]
  assert len(said) == 1 and said[0] == command.stderr.strip().splitlines()[-1], command.stderr
  assert said[0].startswith(f"inat-{name}: interrupted"), said
  if advice:
    assert advice in said[0], said
  elif advice is not None:  # nothing to resume from: no advice to rerun
    assert "rerun" not in said[0], said
  deadline = time.monotonic() + 10
  while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
    time.sleep(0.1)
  assert not [pid for pid in workers if _alive(pid)], workers
  assert not [str(p) for p in tmp_path.rglob("*.incomplete-*")]
  print(f"inat-{name}: {len(workers)} process(es) below it; {said[0]}")


# -- issue 25 item 8: the mistakes found after the flags, still one line ----------------------------

@CLI_GROUP
@pytest.mark.slow
def test_late_mistakes_are_one_line(tiny_built_dir, cli_model, photos, tmp_path):
  """A stale long-tail adjustment in inat-classify (eval, predict and export already refused it),
  a batch that does not divide over the replicas, and a split the data dir lacks (in each
  command that reads one)."""
  from inat_tf import long_tail  # pylint: disable=g-import-not-at-top
  stale = _copy_model(cli_model, tmp_path / "stale")
  long_tail.save_adjustment(str(stale), "best", long_tail.Adjustment(
      "logit_adjustment", 1.0, {"split": "val", "part": "tune", "seed": 0, "images": 1},
      "0" * 64))  # made for other weights, as after a retraining
  data = f"--data_dir={tiny_built_dir}"
  cases = [
      ("classify", [f"--model_dir={stale}", str(photos)], "made for other best.keras weights"),
      ("train", [data, f"--model_dir={tmp_path}/m", "--model=mobilenet_v1", "--image_size=32",
                 "--weights=none", "--train_steps=1", "--distribution=mirrored",
                 "--num_cpu_devices=2", "--batch_size=5"],
       "--batch_size=5 does not divide over the 2 replicas of MirroredStrategy: give a multiple "
       "of 2, e.g. 4 or 6"),
      ("predict", [data, f"--model_dir={cli_model}", "--split=minival",
                   f"--output={tmp_path}/m.csv"], "--minival_fraction"),
      # The same mistake in every command that reads a split (inat-eval's was a KeyError).
      ("eval", [data, f"--model_dir={cli_model}", "--split=minival",
                f"--output_dir={tmp_path}/e"], "--minival_fraction"),
      ("adjust", [data, f"--model_dir={_copy_model(cli_model, tmp_path / 'adj')}",
                  "--method=logit_adjustment", "--tune_split=minival"], "--minival_fraction"),
  ]
  for name, argv, words in cases:
    result = helpers.run([console_script(f"inat-{name}")] + argv, env=_plain_environment())
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert _ours(result.stderr) == [], result.stderr  # its start line, perhaps, then the error
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"inat-{name}: ") and words in last, (words, result.stderr)
    print(last)


# -- issue 25 item 9: hints that lead somewhere -----------------------------------------------------

@pytest.mark.slow
def test_hints_name_the_flag_and_this_editions_files(tmp_path):
  """The minival hint names the flag that makes one; the detection hint of a 2021 data dir and
  the location-prior hint of a 2019 one name no 2017 file as theirs; inat-score names the
  edition's own JSONs."""
  from inat_tf import errors  # pylint: disable=g-import-not-at-top
  from inat_tf import records  # pylint: disable=g-import-not-at-top
  from inat_tf import sample_download  # pylint: disable=g-import-not-at-top
  from inat_tf import score  # pylint: disable=g-import-not-at-top
  from inat_tf.detection import data as detection_data  # pylint: disable=g-import-not-at-top
  from inat_tf.geo import train as geo_train  # pylint: disable=g-import-not-at-top
  from tests.conftest import build_download  # pylint: disable=g-import-not-at-top

  with pytest.raises(FileNotFoundError, match=r"inat-build --raw_dir RAW --data_dir .* "
                                              r"--minival_fraction 0\.05"):
    records.shard_files(str(tmp_path), "minival")

  built = {}
  for name in ("2021", "2019"):
    raw = tmp_path / f"raw{name}"
    sample_download.make_sample(str(raw), sample_download.SampleConfig(
        edition=name, num_species=11, min_train_per_species=2, max_train_per_species=2,
        max_side=32, quirky_images=False, num_workers=1))
    built[name] = (raw, build_download(raw, tmp_path / f"data{name}", 64))

  with pytest.raises(errors.DetectionDataError) as boxes:  # the example
    detection_data.check_has_boxes(str(built["2021"][1]), "val")
  assert "iNat2021 publishes no boxes" in str(boxes.value)
  assert "val_2017_bboxes.json (iNat2017)" in str(boxes.value)
  assert "put it beside" not in str(boxes.value)

  with pytest.raises(errors.TrainError) as places:  # a variant: the location prior's hint
    geo_train.train(geo_train.GeoTrainConfig(data_dir=str(built["2019"][1]),
                                             geo_dir=str(tmp_path / "geo")),
                    log=lambda message: None)
  assert "iNat2019 publishes no locations" in str(places.value)
  assert "train2017_locations.json (iNat2017)" in str(places.value)
  assert "train.json (iNat2021)" in str(places.value)

  raw = built["2021"][0]  # the scorer names 2021's files, not 2017's
  (tmp_path / "empty.csv").write_text("Id,Predicted\n")
  with pytest.raises(ValueError, match=r"\(val\.json, not public_test\.json\)"):
    score.score(str(tmp_path / "empty.csv"), str(raw / "public_test.json"))
  with pytest.raises(FileNotFoundError, match=r"\(val\.json, not public_test\.json\)"):
    score.score(str(tmp_path / "empty.csv"), str(tmp_path / "val.json"))
  with pytest.raises(FileNotFoundError, match=r"val2017\.json, val2018\.json, val2019\.json, "
                                              r"val\.json"):
    score.score(str(tmp_path / "empty.csv"), str(tmp_path / "labels.json"))
