"""The whole chain, as the README's first command runs it, at a smaller size."""

import json
import re

import pytest

from tests import helpers
from tests.helpers import console_script

SMALL = ["--num_species=13", "--max_train_per_species=8", "--max_side=64", "--image_size=48",
         "--epochs=3", "--notflite"]


@pytest.mark.slow
def test_quickstart_runs_every_stage_and_reuses_them(tmp_path):
  command = [console_script("inat-quickstart"), f"--output_dir={tmp_path}"] + SMALL
  first = helpers.run(command)
  assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
  for stage in ("make-sample", "build", "train", "eval", "predict", "export"):
    assert f"== {stage}: " in first.stdout, stage
  assert "Quickstart done" in first.stdout and "chance" in first.stdout
  assert "Stage times      make-sample" in first.stdout
  assert f"Report           {tmp_path}/eval/report.html" in first.stdout
  for path in ("submission.csv", "export/saved_model/1/saved_model.pb", "eval/report.md",
               "eval/report.html",
               "eval/accuracy_vs_train_images.png", "model/logs/train", "logs/train.log"):
    assert (tmp_path / path).exists(), path
  report = json.loads((tmp_path / "eval" / "report.json").read_text())
  assert report["num_classes"] == 13
  # The scores it prints are the eval stage's, recomputed here from its predictions.csv against
  # the val JSON (first row: id, label, top-5 category ids), as a third party would.
  val = json.loads((tmp_path / "download" / "val2017.json").read_text())
  labels = {a["image_id"]: a["category_id"] for a in val["annotations"]}
  rows = [line.split(",") for line in
          (tmp_path / "eval" / "predictions.csv").read_text().splitlines()[1:]]
  top5 = {int(r[0]): [int(c) for c in r[2].split()] for r in rows}
  assert sorted(top5) == sorted(labels) and report["images"] == len(labels)
  top1 = sum(top5[i][0] == labels[i] for i in labels) / len(labels)
  in_top5 = sum(labels[i] in top5[i] for i in labels) / len(labels)
  assert (report["top1"], report["top5"]) == (pytest.approx(top1), pytest.approx(in_top5))
  assert f"top-1 {100 * top1:.1f}%" in first.stdout
  assert f"top-5 {100 * in_top5:.1f}%" in first.stdout
  rows = (tmp_path / "submission.csv").read_text().splitlines()
  assert rows[0] == "id,predicted" and len(rows) == 1 + 13 * 4
  # Quiet (issue 30): no TensorFlow, absl or CUDA line on the terminal or in any stage's log;
  # a first line saying what it will do, a last one what it did.
  from inat_tf import cli  # pylint: disable=g-import-not-at-top
  assert first.stderr == ""
  for log in sorted((tmp_path / "logs").iterdir()):
    noise = [line for line in log.read_text().splitlines() if cli.NOISE.match(line)
             or "cuInit" in line or "Warning:" in line]
    assert noise == [], (log.name, noise)
  lines = first.stdout.strip().splitlines()
  assert lines[0].startswith(f"inat-quickstart: make-sample, build, train, eval, predict, "
                             f"export into {tmp_path}: a 13-species iNat2017 sample")
  assert lines[-1].startswith("inat-quickstart: done in ") and f"top-1 {100 * top1:.1f}%" in (
      lines[-1])

  again = helpers.run(command)
  assert again.returncode == 0, again.stdout[-3000:]
  for stage in ("make-sample", "eval", "predict", "export"):
    assert f"== {stage}: reusing its result from 20" in again.stdout, stage
  # The rerun says what it reused and from when, and keeps every stage's earlier log.
  reused = re.search(r"^  Reused +(.*)$", again.stdout, re.M).group(1)
  assert re.fullmatch(r"make-sample \(from \S+ \S+\), eval \(from \S+ \S+\), predict \(from "
                      r"\S+ \S+\), export \(from \S+ \S+\)", reused), reused
  assert "4 of 6 stages reused" in again.stdout.strip().splitlines()[-1]
  train_log = (tmp_path / "logs" / "train.log").read_text()
  assert train_log.count("\n==== ") + train_log.startswith("==== ") == 2
  assert "inat-train: done: " in train_log and "already holds this run" in train_log
  assert "0 shard(s) to write" in again.stdout      # the builder kept its shards
  total_steps = json.loads((tmp_path / "model" / "train_summary.json").read_text())["steps"]
  assert f"already holds this run, trained to step {total_steps}" in again.stdout  # no file changed


@pytest.mark.slow
def test_a_failing_stage_stops_the_quickstart_with_its_exit_status(tmp_path):
  """The stage's own one-line error is shown, and its exit status reaches the quickstart's line
  (stages are children of a fork server on Linux)."""
  result = helpers.run([console_script("inat-quickstart"), f"--output_dir={tmp_path}",
                        "--num_species=5", "--notflite"])
  assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
  assert ("inat-make-sample: Invalid sample settings: num_species=5: need at least 13 for "
          "iNat2017") in result.stdout
  assert result.stderr.strip().splitlines()[-1] == (
      f"inat-quickstart: the make-sample stage failed (exit 1); its output is in "
      f"{tmp_path}/logs/make-sample.log")
  assert "== build" not in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_the_readmes_stage_table_is_what_the_quickstart_runs():
  """README "What the quickstart does" lists each stage's command with every flag the quickstart
  passes (it had left out --log_steps, --tflite and the sample's size)."""
  import os  # pylint: disable=g-import-not-at-top
  import shlex  # pylint: disable=g-import-not-at-top
  from inat_tf import quickstart  # pylint: disable=g-import-not-at-top
  from inat_tf.commands.quickstart import QuickstartConfig  # pylint: disable=g-import-not-at-top

  readme = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "README.md"),
                encoding="utf-8").read()
  table = readme.split("| stage | command |", 1)[1].split("\n\n", 1)[0]
  listed = {}
  for name, command in re.findall(r"^\| ([\w-]+) \| `([^`]+)` \|", table, re.M):
    words, argv = shlex.split(command), []
    for word in words[1:]:  # `--flag value` as `--flag=value`
      if argv and argv[-1].startswith("--") and "=" not in argv[-1] and not word.startswith("-"):
        argv[-1] += f"={word}"
      else:
        argv.append(word)
    listed[name] = [words[0]] + sorted(argv)
  config = QuickstartConfig()
  paths = quickstart.stage_paths(config.output_dir)
  stages = quickstart._stages(config, paths)  # pylint: disable=protected-access
  run = {name: [os.path.basename(argv[0])] + sorted(argv[1:]) for name, argv in stages}
  assert listed == run
