"""`inat-score`: top-1 and top-5 error of a Kaggle submission CSV against a JSON with annotations.

  inat-score --predictions val.csv --annotations val2017.json

The competition's metric: an image counts as an error unless its true category id is among the
five predicted ones. Every problem with the file is named (line, id and what was expected):
a wrong header, malformed rows, fewer or more than five labels, ids the JSON does not list,
ids listed twice, category ids the JSON does not know, and images the CSV leaves out.
"""

import json
import sys

import tensorflow as tf

from inat_tf.predict import HEADER

NUM_LABELS = 5
MAX_REPORTED = 20


class ScoreError(Exception):
  """The submission is not valid; `problems` lists every reason, with line numbers."""

  def __init__(self, path, problems):
    self.problems = problems
    shown = "\n  ".join(problems[:MAX_REPORTED])
    more = (f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED
            else "")
    super().__init__(f"{path}: {len(problems)} problem(s):\n  {shown}{more}")


def _ground_truth(annotations_path):
  with tf.io.gfile.GFile(annotations_path) as f:
    try:
      document = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{annotations_path}: malformed JSON ({e})") from None
  if not isinstance(document, dict) or not document.get("annotations"):
    raise ValueError(f"{annotations_path}: no 'annotations'; scoring needs a JSON with labels "
                     f"(val2017.json, not test2017.json)")
  labels = {a["image_id"]: a["category_id"] for a in document["annotations"]}
  categories = {c["id"] for c in document.get("categories", [])}
  image_ids = {image["id"] for image in document["images"]}
  return labels, categories, image_ids


def read_submission(path, known_images, known_categories):
  """{image id: [5 category ids]}; raises ScoreError naming every problem."""
  with tf.io.gfile.GFile(path) as f:
    lines = f.read().splitlines()
  problems, predictions, first_line = [], {}, {}
  if not lines or lines[0].strip() != HEADER:
    problems.append(f"line 1: expected the header {HEADER!r}, found "
                    f"{lines[0][:60] if lines else 'an empty file'!r}")
  for number, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    parts = line.split(",")
    if len(parts) != 2:
      problems.append(f"line {number}: expected 'id,predicted', found {line[:60]!r}")
      continue
    image_text, predicted_text = parts[0].strip(), parts[1].split()
    try:
      image_id = int(image_text)
      labels = [int(x) for x in predicted_text]
    except ValueError:
      problems.append(f"line {number}: ids must be integers, found {line[:60]!r}")
      continue
    if len(labels) != NUM_LABELS:
      problems.append(f"line {number}: image {image_id} has {len(labels)} predicted labels, "
                      f"expected {NUM_LABELS}")
    unknown = [c for c in labels if c not in known_categories]
    if unknown:
      problems.append(f"line {number}: image {image_id}: unknown category ids {unknown}")
    if image_id not in known_images:
      problems.append(f"line {number}: image id {image_id} is not in the annotations")
    elif image_id in predictions:
      problems.append(f"line {number}: image id {image_id} again (first on line "
                      f"{first_line[image_id]})")
    else:
      predictions[image_id], first_line[image_id] = labels, number
  missing = sorted(known_images - set(predictions))
  if missing:
    problems.append(f"{len(missing)} image(s) of the annotations have no row, e.g. "
                    f"{missing[:10]}")
  if problems:
    raise ScoreError(path, problems)
  return predictions


def score(predictions_path, annotations_path):
  """{"images", "top1_error", "top5_error"} of a CSV; raises ScoreError / ValueError."""
  labels, categories, image_ids = _ground_truth(annotations_path)
  predictions = read_submission(predictions_path, image_ids, categories)
  scored = [(labels[i], top) for i, top in predictions.items() if i in labels]
  return {"images": len(scored),
          "top1_error": sum(top[0] != label for label, top in scored) / len(scored),
          "top5_error": sum(label not in top for label, top in scored) / len(scored)}


def run(argv=None):
  """Console entry point `inat-score`."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string("predictions", None, "Submission CSV (id,predicted).", required=True)
  flags.DEFINE_string("annotations", None, "COCO-style JSON with annotations (e.g. "
                      "val2017.json).", required=True)

  def main(_):
    f = flags.FLAGS
    try:
      result = score(f.predictions, f.annotations)
    except (ScoreError, ValueError) as e:
      sys.exit(f"inat-score: {e}")
    print(f"{result['images']:,} images: top-1 error {100 * result['top1_error']:.2f}%, "
          f"top-5 error {100 * result['top5_error']:.2f}%")

  app.run(main, argv=argv)


if __name__ == "__main__":
  run()
