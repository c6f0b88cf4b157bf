"""Review findings on the commands' public API (fast: source reading and pure functions).

The slow halves, on real models and exports: tests/test_evaluate_export.py (a server-invalid
record), tests/test_long_tail_models.py (predicting the tuning split), tests/test_detection.py
(the detector's versioned SavedModel), tests/test_geo.py (inat-classify's broken photos).
"""

import ast
import pathlib

from inat_tf import export
from inat_tf import predict

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("inat_tf", "tfrecord_builder", "models")
# A leading `split="val"` may stay positional (`evaluate(data_dir, model_dir, "test")`).
POSITIONAL_DEFAULTS_ALLOWED = {"split"}


def _wide_functions_with_positional_defaults(root=ROOT):
  found = []
  for package in PACKAGES:
    for path in sorted((root / package).rglob("*.py")):
      for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
          continue
        positional = node.args.posonlyargs + node.args.args
        names = [a.arg for a in positional if a.arg not in ("self", "cls")]
        if len(names) + len(node.args.kwonlyargs) <= 4:
          continue
        with_defaults = [a.arg for a in positional[len(positional) - len(node.args.defaults):]]
        if set(with_defaults) - POSITIONAL_DEFAULTS_ALLOWED:
          found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}({', '.join(names)})")
  return found


def test_wide_public_functions_take_their_optional_arguments_by_keyword():
  """Issue 18 item 4, as a kind: every public function of more than four parameters, in every
  package, takes its optional ones keyword-only (`evaluate(D, M, "val", *, flip=False, ...)`)."""
  assert _wide_functions_with_positional_defaults() == []


def test_the_rule_sees_a_wide_function_with_positional_defaults(tmp_path):
  """The scan above does find an offender (so its empty answer means something)."""
  (tmp_path / "inat_tf").mkdir()
  (tmp_path / "inat_tf" / "bad.py").write_text(
      "def evaluate(data_dir, model_dir, split='val', flip=False, multi_crop=False):\n  pass\n"
      "def fine(data_dir, model_dir, split='val', *, flip=False, multi_crop=False):\n  pass\n"
      "def narrow(a, b=1, c=2):\n  pass\n")
  assert _wide_functions_with_positional_defaults(tmp_path) == [
      "inat_tf/bad.py:1 evaluate(data_dir, model_dir, split, flip, multi_crop)"]


def test_fallback_rows_say_why_they_have_no_prediction():
  """Builder-rejected (not in the records) and server-invalid (marked by the SavedModel) images
  are named apart; neither is described as the other."""
  lines = predict.fallback_warnings("val", 5, [11, 12, 13], server_invalid=[12, 13],
                                    saved_model="E/saved_model/2")
  assert len(lines) == 2
  rejected, invalid = lines
  assert "1 images of the val split are not in the records (rejected by inat-build" in rejected
  assert rejected.endswith("[11]")
  assert "2 images of the val split are in the records but the SavedModel E/saved_model/2 " \
         "marked them invalid" in invalid
  assert "inat-build" not in invalid and invalid.endswith("[12, 13]")
  only_invalid = predict.fallback_warnings("test", 3, [7], server_invalid=[7], saved_model="E")
  assert len(only_invalid) == 1 and "marked them invalid" in only_invalid[0]
  assert "3 most frequent species" in only_invalid[0]
  assert predict.fallback_warnings("val", 5, []) == []
  many = predict.fallback_warnings("val", 5, list(range(12)))
  assert many[0].endswith("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9] ...")


def test_predicting_the_tuning_split_warns_and_other_splits_do_not():
  tune_half = {"split": "val", "part": "tune", "seed": 3, "images": 40}
  line = predict.tuning_warning("val", tune_half, "model dir runs/m (best)")
  assert line.startswith("inat-predict: warning: the long-tail adjustment of model dir runs/m "
                         "(best) was chosen on the tune half of val")
  assert "seed 3, 40 images" in line and "optimistic" in line
  assert "inat-eval --split val scores the other half only" in line
  assert "\n" not in line
  whole = predict.tuning_warning("minival", {"split": "minival", "part": "all"}, "SavedModel E")
  assert "chosen on all of minival" in whole and "optimistic" in whole
  assert predict.tuning_warning("test", tune_half, "x") is None
  assert predict.tuning_warning("val", None, "x") is None


def test_next_version_dir_follows_tf_servings_layout(tmp_path):
  assert export.next_version_dir(str(tmp_path / "new")) == str(tmp_path / "new" / "saved_model"
                                                               / "1")
  for name in ("1", "3", "notes", "10x"):
    (tmp_path / "saved_model" / name).mkdir(parents=True)
  assert export.next_version_dir(str(tmp_path)) == str(tmp_path / "saved_model" / "4")
