"""`inat-score`: the error of a Kaggle submission CSV against a JSON with annotations.

  inat-score --predictions val.csv --annotations val2017.json [--edition 2017]

The competitions' metric: an image counts as an error unless its true category id is among the
predicted ones (top-k error; k is the number of labels per row that edition's Kaggle asked for,
inat_tf.editions: 5 in 2017 and 2021, 3 in 2018, 1 in 2019); top-1 error too. The edition comes
from --edition, else from the annotations' file name (val2018.json, val.json, ...), else from
its info.year.

The file is read as CSV (Python's csv module, RFC 4180): quoted fields, CRLF line ends, a UTF-8
byte-order mark (Excel writes one) and columns in any order are accepted, as Kaggle accepts them;
the header must use that edition's spelling (`id,predicted`, or `Id,Predicted` for 2021). Every
problem is named with its line: a wrong header, malformed rows, the wrong number of labels, ids
the JSON does not list, ids listed twice, unknown category ids, and images the CSV leaves out.
"""

import csv
import io
import json
import os

from inat_tf import editions
from inat_tf.commands.score import ScoreConfig  # pylint: disable=unused-import

MAX_REPORTED = 20


class ScoreError(Exception):
  """The submission (or the annotations) is not valid; `problems` lists every reason."""

  def __init__(self, path, problems):
    self.problems = problems
    shown = "\n  ".join(problems[:MAX_REPORTED])
    more = (f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED
            else "")
    super().__init__(f"{path}: {len(problems)} problem(s):\n  {shown}{more}")


def _is_int(value):
  return isinstance(value, int) and not isinstance(value, bool)


def _read_bytes(path):
  """The file's bytes. A local path is read without TensorFlow, so that inat-score answers in a
  fraction of a second instead of paying its ~3.5 s import; any other (gs://, ...) goes through
  tf.io.gfile. Raises OSError with the reason."""
  if "://" not in path:
    with open(path, "rb") as f:
      return f.read()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (remote paths only)
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  except tf.errors.OpError as e:
    raise OSError(e.message) from None


def _exists(path):
  if "://" not in path:
    return os.path.exists(path)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (remote paths only)
  return tf.io.gfile.exists(path)


def _read_json(path):
  try:
    return json.loads(_read_bytes(path).decode("utf-8-sig"))
  except OSError as e:
    raise ValueError(f"{path}: cannot read it: {e.strerror or e}") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: malformed JSON ({e})") from None


def _val_json(edition=None):
  """The labelled JSON a hint names: `edition`'s val JSON, or every edition's."""
  if edition is not None:
    return f"{edition.splits['val'].annotations}, not {edition.splits['test'].annotations}"
  return "the download's val JSON: " + ", ".join(
      dict.fromkeys(e.splits["val"].annotations for e in editions.EDITIONS.values()))


def ground_truth(annotations_path, document=None, edition=None):
  """({image id: category id}, {category ids}, {listed image ids}); ScoreError names every bad
  record (an annotation without an integer image_id or category_id, an image without an id).
  edition: whose file names a hint gives (default: every edition's)."""
  document = _read_json(annotations_path) if document is None else document
  if not isinstance(document, dict) or not document.get("annotations"):
    raise ValueError(f"{annotations_path}: no 'annotations'; scoring needs a JSON with labels "
                     f"({_val_json(edition)})")
  problems, labels = [], {}
  for i, a in enumerate(document["annotations"]):
    if not (isinstance(a, dict) and _is_int(a.get("image_id")) and _is_int(a.get("category_id"))):
      problems.append(f"annotations[{i}] = {str(a)[:80]}: expected integer image_id and "
                      f"category_id")
    elif labels.setdefault(a["image_id"], a["category_id"]) != a["category_id"]:
      problems.append(f"annotations[{i}]: image {a['image_id']} has two categories "
                      f"({labels[a['image_id']]} and {a['category_id']})")
  images = document.get("images")
  image_ids = set()
  for i, image in enumerate(images if isinstance(images, list) else []):
    if isinstance(image, dict) and _is_int(image.get("id")):
      image_ids.add(image["id"])
    else:
      problems.append(f"images[{i}] = {str(image)[:80]}: expected an object with an integer id")
  if not isinstance(images, list):
    problems.append("no 'images' list")
  categories = {c["id"] for c in document.get("categories", []) if isinstance(c, dict)
                and _is_int(c.get("id"))}
  if problems:
    raise ScoreError(annotations_path, problems)
  return labels, categories, image_ids


def edition_of(annotations_path, document, edition=""):
  """The Edition whose submission format applies; ValueError when it cannot be told."""
  if edition:
    return editions.get(edition)
  found = editions.from_annotations_path(annotations_path)
  if found is not None:
    return found
  year = document.get("info", {}).get("year") if isinstance(document, dict) else None
  if str(year) in editions.EDITIONS:
    return editions.get(str(year))
  raise ValueError(f"{annotations_path}: cannot tell which edition's submission format applies "
                   f"(not a published file name, no info.year); pass --edition "
                   f"({', '.join(editions.NAMES)})")


def _header_columns(header, edition, problems):
  """{expected column name: position} or None after recording why the header is wrong."""
  expected = edition.submission_header
  names = [name.strip() for name in header]
  spelled = ",".join(expected)
  if sorted(names) == sorted(expected):
    return {name: names.index(name) for name in expected}
  if sorted(n.lower() for n in names) == sorted(e.lower() for e in expected):
    problems.append(f"line 1: expected the header {spelled!r} (iNat{edition.name}'s spelling), "
                    f"found {','.join(names)!r}")
  else:
    problems.append(f"line 1: expected the header {spelled!r}, found "
                    f"{','.join(names)[:60] if names else 'an empty file'!r}")
  return None


def read_submission(path, known_images, known_categories, edition=None):
  """{image id: [category ids]}; raises ScoreError naming every problem by line."""
  edition = edition or editions.get("2017")
  id_column, predicted_column = edition.submission_header
  count = edition.submission_labels
  try:
    data = _read_bytes(path)
  except OSError as e:
    raise ScoreError(path, [f"cannot read it: {e.strerror or e}"]) from None
  try:
    text = data.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise ScoreError(path, [f"not UTF-8 text ({e}); save the CSV as UTF-8"]) from None
  problems, predictions, first_line = [], {}, {}
  reader = csv.reader(io.StringIO(text, newline=""))
  try:
    header = next(reader, [])
    columns = _header_columns(header, edition, problems)
    # reader.line_num: the physical line a row ends on (a quoted field may hold a line break).
    rows = [] if columns is None else [(reader.line_num, row) for row in reader]
  except csv.Error as e:
    raise ScoreError(path, [f"line {reader.line_num}: not valid CSV ({e})"]) from None
  for number, row in rows:
    if not any(field.strip() for field in row):
      continue
    if len(row) != len(header):
      problems.append(f"line {number}: expected {len(header)} fields "
                      f"({','.join(edition.submission_header)}), found {len(row)}: "
                      f"{','.join(row)[:60]!r}")
      continue
    image_text, predicted_text = row[columns[id_column]], row[columns[predicted_column]]
    try:
      image_id = int(image_text.strip())
      labels = [int(x) for x in predicted_text.split()]
    except ValueError:
      problems.append(f"line {number}: ids must be integers, found {','.join(row)[:60]!r}")
      continue
    if len(labels) != count:
      problems.append(f"line {number}: image {image_id} has {len(labels)} predicted labels, "
                      f"expected {count} (iNat{edition.name})")
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
  if missing and columns is not None:
    problems.append(f"{len(missing)} image(s) of the annotations have no row, e.g. "
                    f"{missing[:10]}")
  if problems:
    raise ScoreError(path, problems)
  return predictions


def score(predictions_path, annotations_path, edition=""):
  """{"images", "edition", "labels_per_row", "top1_error", "top{k}_error"} of a CSV.

  Raises ScoreError (every problem, by line), ValueError (unreadable annotations) or
  FileNotFoundError naming a file that is not there.
  """
  named = editions.get(edition) if edition else editions.from_annotations_path(annotations_path)
  for path, what in ((predictions_path, "submission CSV (inat-predict --output)"),
                     (annotations_path, f"annotations JSON ({_val_json(named)})")):
    if not _exists(path):
      raise FileNotFoundError(f"{path} not found: expected the {what}")
  document = _read_json(annotations_path)
  edition = edition_of(annotations_path, document, edition)
  labels, categories, image_ids = ground_truth(annotations_path, document, edition)
  predictions = read_submission(predictions_path, image_ids, categories, edition)
  scored = [(labels[i], top) for i, top in predictions.items() if i in labels]
  if not scored:
    raise ValueError(f"{annotations_path}: none of its images has a label to score against")
  k = edition.submission_labels
  result = {"images": len(scored), "edition": edition.name, "labels_per_row": k,
            "top1_error": sum(top[0] != label for label, top in scored) / len(scored)}
  result[f"top{k}_error"] = sum(label not in top for label, top in scored) / len(scored)
  return result


def main(c, _):
  """inat-score's work once its flags are parsed (inat_tf/commands/score.py)."""
  result = score(c.predictions, c.annotations, c.edition)
  k = result["labels_per_row"]
  extra = f", top-{k} error {100 * result[f'top{k}_error']:.2f}%" if k > 1 else ""
  print(f"{result['images']:,} images (iNat{result['edition']} format): top-1 error "
        f"{100 * result['top1_error']:.2f}%{extra}")

