"""benchmarks/recipes.py's table and results file, on hand-written runs (issue 31: the spread over
seeds, and the verdict on the mean)."""

import os

import pytest

from benchmarks import recipes


def _run(arm, seed, top1, network="resnet50", kind="frame"):
  return dict(key=f"{arm}-{network}-{kind}-{seed}", arm=arm, kind=kind, network=network,
              image_size=32, epochs=20, seed=seed, top1=top1, train_top1=0.5)


def test_table_gives_mean_and_spread_over_seeds_and_judges_the_mean():
  runs = [_run("recipe", 0, 0.50), _run("recipe", 1, 0.40), _run("recipe", 2, 0.30),
          _run("anchor", 0, 0.40), _run("anchor", 1, 0.40), _run("anchor", 2, 0.40),
          # A second network whose mean is 3 points below: one seed above does not save it.
          _run("recipe", 0, 0.45, "resnet50_se"), _run("recipe", 1, 0.31, "resnet50_se"),
          _run("recipe", 2, 0.35, "resnet50_se"),
          # A recipe run without its anchor is left out of the cell.
          _run("recipe", 3, 0.99)]
  lines, failing = recipes.table({r["key"]: r for r in runs})
  rows = {line.split(" | ")[2]: line for line in lines[2:]}
  assert rows["resnet50"] == ("| frame | 20 | resnet50 | 32 | 3 | 40.0 +- 10.0 | 40.0 +- 0.0 | "
                              "+0.0 (10.0; -10.0 .. +10.0) | 50 % | 50 % | yes |")
  assert "| 3 | 37.0 +- 7.2 |" in rows["resnet50_se"] and rows["resnet50_se"].endswith(
      "-3.0 (7.2; -9.0 .. +5.0) | 50 % | 50 % | NO |")
  assert failing == [("frame", 20, "resnet50_se")]


def test_results_file_resumes_and_skips_a_torn_last_line(tmp_path):
  path = tmp_path / "results" / "runs.jsonl"
  # pylint: disable=protected-access
  first = dict(_run("recipe", 0, 0.5), machine=recipes._machine())
  recipes._append(str(path), first)
  with open(path, "a") as f:
    f.write('{"key": "half-writ')  # a run killed while appending
  assert recipes._load(str(path)) == {first["key"]: first}
  assert first["machine"].endswith(" cores")
  # The next run's record goes on a line of its own, not onto the fragment.
  second = _run("recipe", 1, 0.4)
  recipes._append(str(path), second)
  assert recipes._load(str(path)) == {first["key"]: first, second["key"]: second}


def test_each_run_is_a_fresh_process_and_returns_its_result():
  """Runs go to a spawned process each (one process for all grew to 19.7 GB): another pid,
  arguments in and the result back."""
  # pylint: disable=protected-access
  assert recipes._in_fresh_process(os.getpid) != os.getpid()
  assert recipes._in_fresh_process(recipes._digest, ["a", 1]) == recipes._digest(["a", 1])
  # A run that raises: a RuntimeError here with the child's traceback, not a hang.
  with pytest.raises(RuntimeError, match="(?s)failed in its process:.*ZeroDivisionError"):
    recipes._in_fresh_process(divmod, 1, 0)
