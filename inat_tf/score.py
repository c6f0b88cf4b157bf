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

import array
import csv
import io
import json
import os

import numpy as np

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


class _Annotation(tuple):
  """(image_id, category_id) of a well-formed annotation record, kept instead of its dict."""
  __slots__ = ()


class _Id(int):
  """The integer id of another record (an image, a category, a license), kept instead of its
  dict."""
  __slots__ = ()


def _compact(record):
  """json object_hook, called on every object as it is decoded (innermost first). Scoring needs
  only an annotation's two ids and an image's or category's id, so such records are kept as a
  small tuple or int, never as dicts of every field: a 500,000-image iNat2021 JSON peaks at its
  text plus ~150 bytes per image, not ~1.8 KB (issue 26). Records with a malformed id stay dicts,
  so that ground_truth can show them."""
  if _is_int(record.get("image_id")) and _is_int(record.get("category_id")):
    return _Annotation((record["image_id"], record["category_id"]))
  if _is_int(record.get("id")) and "image_id" not in record and "category_id" not in record:
    return _Id(record["id"])
  return record


def _read_json(path):
  """The JSON document, its records compacted (see _compact); ValueError when unreadable."""
  try:
    return json.loads(_read_bytes(path).decode("utf-8-sig"), object_hook=_compact)
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
    if not isinstance(a, _Annotation):
      a = (a.get("image_id"), a.get("category_id")) if isinstance(a, dict) else (None, None)
      if not (_is_int(a[0]) and _is_int(a[1])):
        problems.append(f"annotations[{i}] = {str(document['annotations'][i])[:80]}: expected "
                        f"integer image_id and category_id")
        continue
    image_id, category_id = a
    if labels.setdefault(image_id, category_id) != category_id:
      problems.append(f"annotations[{i}]: image {image_id} has two categories "
                      f"({labels[image_id]} and {category_id})")
  images = document.get("images")
  image_ids = set()
  for i, image in enumerate(images if isinstance(images, list) else []):
    image_id = image.get("id") if isinstance(image, dict) else image
    if isinstance(image, (_Id, dict)) and _is_int(image_id):
      image_ids.add(image_id)
    else:
      problems.append(f"images[{i}] = {str(image)[:80]}: expected an object with an integer id")
  if not isinstance(images, list):
    problems.append("no 'images' list")
  categories = {int(c) if isinstance(c, _Id) else c["id"] for c in document.get("categories", [])
                if isinstance(c, _Id) or (isinstance(c, dict) and _is_int(c.get("id")))}
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


class Submission:
  """The rows of a submission CSV as arrays (8 bytes per number): image ids, the physical line
  each ends on, and the predicted category ids (count per row; -1 pads a row with fewer)."""

  def __init__(self, count):
    self.count = count
    self.image_ids, self.lines, self.labels = (array.array("q") for _ in range(3))

  def add(self, image_id, line, labels):
    self.image_ids.append(image_id)
    self.lines.append(line)
    self.labels.extend((labels + [-1] * self.count)[:self.count])

  def __len__(self):
    return len(self.image_ids)

  def top(self, k):
    """[rows, k] int64 predicted category ids, best first."""
    return np.frombuffer(self.labels, np.int64).reshape(-1, self.count)[:, :k]


def _doubled(submission):
  """(line, message) for each row repeating an earlier row's image id."""
  ids = np.frombuffer(submission.image_ids, np.int64)
  lines = np.frombuffer(submission.lines, np.int64)
  order = np.lexsort((lines, ids))  # by id, then by line: a run's first row is the original
  repeat = np.flatnonzero(ids[order][1:] == ids[order][:-1]) + 1
  first_of_run = np.maximum.accumulate(np.where(
      np.r_[True, ids[order][1:] != ids[order][:-1]], np.arange(len(order)), 0))
  return [(int(lines[order[r]]), f"line {lines[order[r]]}: image id {ids[order[r]]} again "
                                 f"(first on line {lines[order[first_of_run[r]]]})")
          for r in repeat]


def read_submission(path, known_images, known_categories, edition=None):
  """The CSV's rows as a Submission; raises ScoreError naming every problem by line.

  Rows are read one at a time and kept as arrays, never as lists of fields or a dict per row
  (issue 26: 500,000 rows).
  """
  edition = edition or editions.get("2017")
  try:
    data = _read_bytes(path)
  except OSError as e:
    raise ScoreError(path, [f"cannot read it: {e.strerror or e}"]) from None
  try:
    text = data.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise ScoreError(path, [f"not UTF-8 text ({e}); save the CSV as UTF-8"]) from None
  del data
  problems, submission = [], Submission(edition.submission_labels)  # problems: (line, message)
  reader = csv.reader(io.StringIO(text, newline=""))
  try:
    header = next(reader, [])
    wrong_header = []
    columns = _header_columns(header, edition, wrong_header)
    if columns is None:
      raise ScoreError(path, wrong_header)
    # reader.line_num: the physical line a row ends on (a quoted field may hold a line break).
    for row in reader:
      _check_row(reader.line_num, row, header, columns, edition, known_images, known_categories,
                 problems, submission)
  except csv.Error as e:
    raise ScoreError(path, [f"line {reader.line_num}: not valid CSV ({e})"]) from None
  del text
  problems += _doubled(submission)
  predicted = np.frombuffer(submission.image_ids, np.int64)
  missing = np.setdiff1d(np.fromiter(known_images, np.int64, len(known_images)), predicted)
  messages = [message for _, message in sorted(problems, key=lambda p: p[0])]
  if missing.size:
    messages.append(f"{missing.size} image(s) of the annotations have no row, e.g. "
                    f"{missing[:10].tolist()}")
  if messages:
    raise ScoreError(path, messages)
  return submission


def _check_row(number, row, header, columns, edition, known_images, known_categories, problems,
               submission):
  """Checks one CSV row; adds it to `submission` or (line, message) to `problems`."""
  if not any(field.strip() for field in row):
    return
  if len(row) != len(header):
    problems.append((number, f"line {number}: expected {len(header)} fields "
                             f"({','.join(edition.submission_header)}), found {len(row)}: "
                             f"{','.join(row)[:60]!r}"))
    return
  id_column, predicted_column = edition.submission_header
  image_text, predicted_text = row[columns[id_column]], row[columns[predicted_column]]
  try:
    image_id = int(image_text.strip())
    labels = [int(x) for x in predicted_text.split()]
  except ValueError:
    problems.append((number, f"line {number}: ids must be integers, found "
                             f"{','.join(row)[:60]!r}"))
    return
  count = edition.submission_labels
  if len(labels) != count:
    problems.append((number, f"line {number}: image {image_id} has {len(labels)} predicted "
                             f"labels, expected {count} (iNat{edition.name})"))
  unknown = [c for c in labels if c not in known_categories]
  if unknown:
    problems.append((number, f"line {number}: image {image_id}: unknown category ids {unknown}"))
  if image_id not in known_images:
    problems.append((number, f"line {number}: image id {image_id} is not in the annotations"))
  else:
    submission.add(image_id, number, labels)


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
  del document
  submission = read_submission(predictions_path, image_ids, categories, edition)
  ids = np.frombuffer(submission.image_ids, np.int64)
  labelled = np.fromiter((i in labels for i in ids.tolist()), bool, len(ids))
  if not labelled.any():
    raise ValueError(f"{annotations_path}: none of its images has a label to score against")
  truth = np.fromiter((labels[i] for i in ids[labelled].tolist()), np.int64, labelled.sum())
  k = edition.submission_labels
  top = submission.top(k)[labelled]
  result = {"images": int(labelled.sum()), "edition": edition.name, "labels_per_row": k,
            "top1_error": float(np.mean(top[:, 0] != truth))}
  result[f"top{k}_error"] = float(np.mean(~(top == truth[:, None]).any(axis=1)))
  return result


def main(c, _):
  """inat-score's work once its flags are parsed (inat_tf/commands/score.py)."""
  result = score(c.predictions, c.annotations, c.edition)
  k = result["labels_per_row"]
  extra = f", top-{k} error {100 * result[f'top{k}_error']:.2f}%" if k > 1 else ""
  print(f"{result['images']:,} images (iNat{result['edition']} format): top-1 error "
        f"{100 * result['top1_error']:.2f}%{extra}")

