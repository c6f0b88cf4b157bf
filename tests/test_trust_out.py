"""Trust on the way out (issue 13): multi-replica metrics, model-dir guard, data/model dir
agreement, quickstart reuse, no tracebacks, --help, quiet logs, per-item serving status."""

import glob
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests import helpers
from tests.conftest import TRAINED_DIR_STEPS
from tests.conftest import TRAINED_MODEL_GROUP
from tests.helpers import console_script

# One process, the CPU split into 4 logical devices once, then the same one-step run on 1, 2 and
# 4 replicas. Head-only training (BatchNorm in inference mode) without dropout makes the step's
# loss independent of how the global batch is split, so it must read the same on every count.
_REPLICAS_SCRIPT = textwrap.dedent("""
    import glob, json, sys
    import tensorflow as tf
    from inat_tf import distribution, evaluate, train
    distribution.split_cpu(4)
    data_dir, root = sys.argv[1], sys.argv[2]
    results = {}
    for replicas in (1, 2, 4):
      model_dir = f"{root}/r{replicas}"
      lines = []
      summary = train.train(train.TrainConfig(
          data_dir=data_dir, model_dir=model_dir, model="mobilenet_v1", image_size=32,
          batch_size=8, weights="none", train_steps=1, log_steps=1, train_head_epochs=100,
          dropout_rate=0.0, deterministic=True, distribution="mirrored",
          num_cpu_devices=replicas), log=lines.append)
      board = {}
      for path in glob.glob(f"{model_dir}/logs/*/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
          for value in event.summary.value:
            if value.HasField("tensor") and value.tensor.dtype != tf.string.as_datatype_enum:
              board[path.split("/")[-2] + "/" + value.tag] = float(
                  tf.make_ndarray(value.tensor))
      if replicas == 1:  # inat-eval's count of the val split, the same for every model
        eval_images = evaluate.evaluate(data_dir, model_dir)["images"]
      results[replicas] = {"lines": lines, "summary": summary, "board": board,
                           "eval_images": eval_images}
    print("RESULTS " + json.dumps(results))
""")


@pytest.mark.slow
def test_loss_and_val_count_do_not_depend_on_the_number_of_replicas(tiny_built_dir, tmp_path):
  result = helpers.run([sys.executable, "-c", _REPLICAS_SCRIPT, tiny_built_dir, tmp_path])
  assert result.returncode == 0, result.stderr[-3000:]
  results = json.loads(result.stdout.split("RESULTS ", 1)[1])
  assert "on 4 replicas" in " ".join(results["4"]["lines"])
  losses = {}
  for replicas, run in results.items():
    line = next(l for l in run["lines"] if l.startswith("step 1/1"))
    losses[replicas] = float(re.search(r"loss (\S+)", line).group(1))
    assert run["board"]["train/loss"] == pytest.approx(losses[replicas], abs=1e-3)
    # Every val image counted once, as inat-eval counts them (86 and 80 before the fix).
    assert run["summary"]["final_val_images"] == run["eval_images"], replicas
    assert f"({run['eval_images']} images)" in " ".join(run["lines"])
    assert run["board"]["val/loss"] > 0 and run["board"]["val/best_step"] == 1
  assert losses["2"] == pytest.approx(losses["1"], rel=1e-3)
  assert losses["4"] == pytest.approx(losses["1"], rel=1e-3)
  # The val split of the tiny set does not fill whole groups of per-replica batches on 4.
  assert results["1"]["eval_images"] % 8 != 0


# -- helpers --------------------------------------------------------------------------------------

def _our_console_scripts():
  from importlib.metadata import entry_points  # pylint: disable=g-import-not-at-top
  names = sorted(e.name for e in entry_points(group="console_scripts")
                 if e.dist and e.dist.name == "inat-tf")
  assert len(names) >= 12, names
  return names


def _snapshot(directory):
  """{relative path: (size, mtime)} of every file under directory."""
  found = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      found[os.path.relpath(path, directory)] = (os.path.getsize(path), os.stat(path).st_mtime_ns)
  return found


def _copy_data_dir(source, target, edit_label_map=None):
  """A copy of a built data dir; edit_label_map(document) changes its label_map.json in place."""
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.copytree(source, target)
  if edit_label_map:
    path = os.path.join(target, "label_map.json")
    with open(path) as f:
      document = json.load(f)
    edit_label_map(document)
    with open(path, "w") as f:
      json.dump(document, f)
  return str(target)


def _swap_first_two(document):
  first, second = document["classes"][0], document["classes"][1]
  for key in ("category_id", "name"):
    first[key], second[key] = second[key], first[key]


def _twenty_classes(document):
  last = document["classes"][-1]
  for i in range(len(document["classes"]), 20):
    document["classes"].append({**last, "index": i, "category_id": 10_000 + i,
                                "name": f"Extra species {i}"})
  document["num_classes"] = 20


def _run_commands(jobs, env=None):
  """[(exit status, stdout, stderr)] of console commands, each run to its end in turn."""
  outcomes = []
  for job in jobs:
    ran = helpers.run(job["argv"], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {}),
                                        **job.get("env", {})})
    outcomes.append((ran.returncode, ran.stdout, ran.stderr))
  return outcomes


def _one_line_error(outcome, *fragments, warnings_before=False):
  from inat_tf import cli  # pylint: disable=g-import-not-at-top
  code, _, err = outcome
  # The forked commands run with TF_CPP_MIN_LOG_LEVEL set, so without the start-up filter (the
  # literal-command test checks the filter): its records are dropped here instead.
  lines = [l for l in err.splitlines() if l.strip() and not cli.NOISE.match(l)]
  assert code != 0 and "Traceback" not in err, err[-3000:]
  # Before the error, only the command's own start line (issue 30), if it had begun.
  before = [l for l in lines[:-1] if not l.startswith(lines[-1].split(": ", 1)[0] + ": ")]
  assert lines and (not before or warnings_before), err[-3000:]
  for fragment in fragments:
    assert fragment in lines[-1], (fragment, lines[-1])
  return lines[-1]


# -- items 2, 4, 5, 6, 8: the commands, as a user runs them -------------------------------------

@TRAINED_MODEL_GROUP
@pytest.mark.slow
def test_commands_list_their_flags_and_answer_mistakes_in_one_line(
    tiny_built_dir, trained_dir, tmp_path):
  scripts = _our_console_scripts()
  other_order = _copy_data_dir(tiny_built_dir, tmp_path / "other_order", _swap_first_two)
  twenty = _copy_data_dir(tiny_built_dir, tmp_path / "twenty", _twenty_classes)
  before = _snapshot(trained_dir)
  data, model = f"--data_dir={tiny_built_dir}", f"--model_dir={trained_dir}"
  train_args = [data, model, "--model=mobilenet_v1", "--image_size=64", "--batch_size=32",
                "--weights=none", f"--train_steps={TRAINED_DIR_STEPS}"]
  jobs = [{"argv": [console_script(name), "--help"]} for name in scripts] + [
      {"argv": [console_script("inat-score"), f"--predictions={tmp_path}/missing.csv",
                f"--annotations={tmp_path}/missing.json"]},
      {"argv": [console_script("inat-eval"), f"--data_dir={other_order}", model]},
      {"argv": [console_script("inat-eval"), f"--data_dir={twenty}", model]},
      {"argv": [console_script("inat-predict"), f"--data_dir={twenty}", model,
                f"--output={tmp_path}/x.csv"]},
      {"argv": [console_script("inat-predict"), data, f"--saved_model={tmp_path}",
                f"--output={tmp_path}/x.csv"]},
      {"argv": [console_script("inat-train")] + train_args[:3] + ["--image_size=56"]},
      {"argv": [console_script("inat-train")] + train_args[:2] + ["--model=resnet50"]},
      {"argv": [console_script("inat-train"), data, f"--model_dir={tmp_path}/new",
                "--model=mobilenet_v1", "--image_size=16", "--train_steps=1"]},
      {"argv": [console_script("inat-train"), data, f"--model_dir={tmp_path}/offline",
                "--model=mobilenet_v1", "--image_size=32", "--train_steps=1",
                "--weights=imagenet"]},
      {"argv": [console_script("inat-train"), data, f"--model_dir={tmp_path}/slurm",
                "--model=mobilenet_v1", "--image_size=32", "--train_steps=1", "--weights=none"],
       "env": {"SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_JOB_ID": "1"}},
  ]
  # Offline: no cached weights, and every HTTPS request goes to a closed port.
  outcomes = _run_commands(jobs, env={
      "KERAS_HOME": str(tmp_path / "keras_home"), "https_proxy": "http://127.0.0.1:9",
      "HTTPS_PROXY": "http://127.0.0.1:9"})
  helps, outcomes = outcomes[:len(scripts)], outcomes[len(scripts):]
  for name, (_, out, err) in zip(scripts, helps):
    flag_lines = [l for l in out.splitlines() if "--" in l]
    assert flag_lines, f"{name} --help lists no flags: {out[-500:]} {err[-500:]}"
  score, eval_order, eval_twenty, predict_twenty, predict_no_model, *train = outcomes
  _one_line_error(score, "missing.csv not found", "submission CSV")
  for outcome, data_dir in ((eval_order, other_order), (eval_twenty, twenty),
                            (predict_twenty, twenty)):
    _one_line_error(outcome, f"data dir {data_dir}", f"model dir {trained_dir}")
  assert "class 0 is category" in _one_line_error(eval_order)
  assert "20 classes against the model's 13" in _one_line_error(eval_twenty)
  _one_line_error(predict_no_model, "no SavedModel in", "saved_model.pb")
  size, network, minimum, offline, slurm = train
  _one_line_error(size, "--image_size: 64 in the model dir, 56 now", "--overwrite",
                  "new --model_dir")
  _one_line_error(network, '--model: "mobilenet_v1" in the model dir, "resnet50" now')
  _one_line_error(minimum, "--image_size=16 is below the minimum of --model=mobilenet_v1, 32 "
                  "pixels")
  assert not (tmp_path / "new").exists()  # refused before the model dir was made
  # Keras's own warning (the ImageNet file is for 224 px inputs) comes before the message.
  _one_line_error(offline, "ImageNet weights", "--weights PATH", warnings_before=True)
  _one_line_error(slurm, "not started by srun", "srun inat-train")
  assert _snapshot(trained_dir) == before  # the refused reruns touched nothing


@pytest.mark.slow
def test_quiet_start_up_and_help_as_a_shell_pipeline(tmp_path):
  """The literal commands: no TensorFlow start-up records; --help piped to grep counts flags."""
  result = subprocess.run([console_script("inat-score"), f"--predictions={tmp_path}/none.csv",
                           f"--annotations={tmp_path}/none.json"], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")})
  assert result.returncode == 1
  assert result.stderr == f"inat-score: {tmp_path}/none.csv not found: expected the submission " \
                          f"CSV (inat-predict --output)\n"
  count = subprocess.run(f"{console_script('inat-make-sample')} --help | grep -c -- --",
                         shell=True, capture_output=True, text=True)
  assert int(count.stdout) > 0


# -- item 2: a model dir is guarded ---------------------------------------------------------------

@TRAINED_MODEL_GROUP
@pytest.mark.slow
def test_a_rerun_of_a_finished_run_changes_no_file(trained_dir):
  from inat_tf import train  # pylint: disable=g-import-not-at-top
  import dataclasses  # pylint: disable=g-import-not-at-top
  recorded = json.loads((trained_dir / "train_config.json").read_text())
  config = train.TrainConfig(**{f.name: recorded[f.name]
                                for f in dataclasses.fields(train.TrainConfig)})
  before = _snapshot(trained_dir)
  lines = []
  summary = train.train(config, log=lines.append)
  assert f"already holds this run, trained to step {TRAINED_DIR_STEPS}" in lines[-1]
  assert summary["steps"] == TRAINED_DIR_STEPS and summary["steps_this_run"] > 0
  assert _snapshot(trained_dir) == before


def test_run_differences_name_each_flag():
  from inat_tf import run_record  # pylint: disable=g-import-not-at-top
  recorded = {"model": "mobilenet_v1", "image_size": 64, "epochs": 3, "num_classes": 13}
  wanted = {"model": "inception_v3", "image_size": 56, "epochs": 10}
  assert run_record.differences(recorded, wanted) == [
      '--image_size: 64 in the model dir, 56 now',
      '--model: "mobilenet_v1" in the model dir, "inception_v3" now']


# -- item 3: the quickstart reuses only what matches ---------------------------------------------

def test_quickstart_redoes_the_first_changed_stage_and_all_after_it():
  from inat_tf import quickstart  # pylint: disable=g-import-not-at-top
  old = [("make-sample", ["inat-make-sample", "--num_species=13"]), ("build", ["inat-build"]),
         ("train", ["inat-train", "--image_size=48"]), ("eval", ["inat-eval"])]
  assert quickstart.changed_stages(old, dict(old)) == {}
  new = [("make-sample", ["inat-make-sample", "--num_species=14"]), ("build", ["inat-build"]),
         ("train", ["inat-train", "--image_size=56"]), ("eval", ["inat-eval"])]
  changed = quickstart.changed_stages(new, dict(old))
  assert list(changed) == ["make-sample", "build", "train", "eval"]
  assert changed["make-sample"] == ("settings differ from the last run (--num_species=14 now, "
                                    "--num_species=13 before)")
  only_size = [old[0], old[1], new[2], old[3]]
  assert list(quickstart.changed_stages(only_size, dict(old))) == ["train", "eval"]
  assert list(quickstart.changed_stages(old, {})) == ["make-sample", "build", "train", "eval"]


# -- item 6: damaged shards are named ------------------------------------------------------------

@TRAINED_MODEL_GROUP
@pytest.mark.slow
def test_a_damaged_val_shard_is_named_with_its_offset(tiny_built_dir, trained_dir, tmp_path):
  from inat_tf import evaluate, records  # pylint: disable=g-import-not-at-top
  data_dir = _copy_data_dir(tiny_built_dir, tmp_path / "damaged")
  shard = records.shard_files(data_dir, "val")[1]
  with open(shard, "r+b") as f:
    f.seek(os.path.getsize(shard) // 2)
    f.write(b"\x00" * 64)
  with pytest.raises(records.DamagedShard) as error:
    evaluate.evaluate(data_dir, str(trained_dir))
  message = str(error.value)
  assert re.match(rf"shard {re.escape(shard)} is damaged at byte offset \d+: delete it and rerun "
                  r"inat-build", message), message


# -- item 6: Ctrl-C, then a truncated newest checkpoint, then --overwrite --------------------------

@pytest.mark.slow
def test_ctrl_c_then_truncated_checkpoint_then_overwrite(tiny_built_dir, tmp_path):
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from inat_tf import train  # pylint: disable=g-import-not-at-top
  settings = dict(model="mobilenet_v1", image_size=32, batch_size=8, weights="none",
                  checkpoint_steps=2, log_steps=2, eval_every_epochs=100, keep_checkpoints=5)
  process = helpers.start(
      [console_script("inat-train"), f"--data_dir={tiny_built_dir}", f"--model_dir={tmp_path}",
       "--train_steps=100000"] + [f"--{k}={v}" for k, v in settings.items()])
  def saved():
    return tf.train.get_checkpoint_state(str(tmp_path / "checkpoints"))
  deadline = time.monotonic() + 300
  while (not saved() or len(saved().all_model_checkpoint_paths) < 2) and (
      process.poll() is None and time.monotonic() < deadline):
    time.sleep(0.2)
  process.send_signal(signal.SIGINT)
  process.wait(timeout=120)
  err = process.stderr
  assert process.returncode == 130, err[-3000:]
  assert "Traceback" not in err
  message = re.search(r"^inat-train: interrupted at step (\d+); last checkpoint (\S+); rerun the "
                      r"same command to resume$", err, re.M)
  assert message, err[-3000:]
  newest = message.group(2)
  assert newest == saved().model_checkpoint_path
  assert int(message.group(1)) >= int(newest.rsplit("-", 1)[1])

  # The machine dies mid-save: the newest checkpoint's data is cut short. The rerun falls back.
  data_file = glob.glob(newest + ".data-*")[0]
  with open(data_file, "r+b") as f:
    f.truncate(os.path.getsize(data_file) // 3)
  previous = saved().all_model_checkpoint_paths[-2]
  lines = []
  step = int(newest.rsplit("-", 1)[1]) + 1
  summary = train.train(train.TrainConfig(data_dir=str(tiny_built_dir), model_dir=str(tmp_path),
                                          train_steps=step, **settings), log=lines.append)
  text = "\n".join(lines)
  assert f"warning: checkpoint {newest} cannot be read" in text, text
  assert f"resuming from {previous} at step {previous.rsplit('-', 1)[1]}" in text, text
  assert summary["steps"] == step

  # Another image size: refused; with --overwrite: a new run in the same dir.
  other = dict(settings, image_size=40)
  with pytest.raises(train.TrainError, match="--image_size: 32 in the model dir, 40 now"):
    train.train(train.TrainConfig(data_dir=str(tiny_built_dir), model_dir=str(tmp_path),
                                  train_steps=1, **other), log=lines.append)
  summary = train.train(train.TrainConfig(data_dir=str(tiny_built_dir), model_dir=str(tmp_path),
                                          train_steps=1, overwrite=True, **other),
                        log=lines.append)
  assert summary["steps"] == summary["steps_this_run"] == 1
  assert json.loads((tmp_path / "train_config.json").read_text())["image_size"] == 40


# -- item 10: TFDS name, version and supervised keys -----------------------------------------------

@pytest.mark.slow
def test_tfds_reads_a_data_dir_by_name_version_and_as_supervised(tiny_built_dir):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder_from_directory(str(tiny_built_dir))
  assert (builder.info.name, str(builder.info.version)) == ("inat_tf", "1.0.0")
  image, label = next(iter(tfds.as_numpy(builder.as_dataset(split="val", as_supervised=True))))
  assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
  assert 0 <= label < builder.info.features["image/class/label"].num_classes == 13


# -- item 7: one progress format ------------------------------------------------------------------

def test_progress_line_gives_rate_share_and_eta():
  from inat_tf import progress  # pylint: disable=g-import-not-at-top
  assert progress.rate_text(500, 2000, 10.0) == ("500/2,000 images, 50 images/s, 25% done, "
                                                 "ETA 0m30s")
  assert progress.rate_text(0, 2000, 1.0).endswith("ETA ?")
  assert progress.rate_text(10, 100, 5.0, fraction=0.5).endswith("50% done, ETA 0m05s")
  assert progress.duration(3 * 3600 + 125) == "3h02m"
