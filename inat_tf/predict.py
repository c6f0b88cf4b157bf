"""`inat-predict`: a Kaggle submission in the format of the data dir's edition, best first.

The header and the number of category ids per row are those that edition's competition asked
for (inat_tf.editions): `id,predicted` with 5 ids (2017), 3 (2018) or 1 (2019); `Id,Predicted`
with 5 ids (2021).

  inat-predict --data_dir D --model_dir M --split test --output submission.csv
  inat-predict --data_dir D --saved_model E --split val --output val.csv   # from inat-export

Answer flags (inat_tf/answer_options.py; --model_dir only): --taxon NAME / --checklist FILE
restrict the species listed (renormalised exactly); --rollup_rule inat|precision|risk also writes
OUTPUT.answers.csv (id, taxon, rank, score, the species it rolled up from, MSP, energy). Without
a restriction the submission is byte for byte the top-k of the model's probabilities, whatever
the rule (tests/test_answers_commands.py).

One row per image the split's JSON lists (data_dir/image_ids.json), in id order: none missing,
none doubled. An image without a prediction still gets a row, the five most frequent training
species, and a warning names it and why: the builder rejected it (unreadable, so not in the
records), or, with --saved_model, the serving graph marked it invalid (its `valid` output).
Category ids are the dataset's own, never the model's class indices.

Predicting the split a stored long-tail adjustment (inat-adjust) was chosen on writes every row
all the same, and a warning says a score on that split computed from this CSV is optimistic
(inat-eval scores only the report half there; see tuning_warning).
"""

import dataclasses
import itertools
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

from inat_tf import editions
from inat_tf import label_map as label_map_lib
from inat_tf import long_tail
from inat_tf import progress
from inat_tf import records
from inat_tf import schema
from inat_tf.commands.predict import PredictConfig  # pylint: disable=unused-import
from inat_tf.errors import PredictError

HEADER = "id,predicted"  # 2017's; each edition's: submission_format()


def submission_format(label_map):
  """(header line, category ids per row) of the edition the label map was built from."""
  edition = editions.get(label_map.edition or "2017")  # label maps before editions: 2017
  return ",".join(edition.submission_header), edition.submission_labels


def listed_image_ids(data_dir, split):
  listed = records.image_ids(data_dir)
  if split not in listed:
    raise records.missing_split(data_dir, split)
  return listed[split]


def keras_predictions(data_dir, model_dir, split, *, which="best", batch_size=64, flip=False,
                      geo_dir="", options=None, command="inat-predict", species_per_row=0):
  """(trained, Predictions, restriction words) from a model dir (inat-train) through the answer
  pipeline with the answer flags `options` (answer_options.Options; default: argmax, no
  restriction); geo_dir: a location prior (inat-train-geo). species_per_row: the ids a
  submission row must list; PredictError (before any image is read) when the restriction allows
  fewer species."""
  from inat_tf import answer_options  # pylint: disable=g-import-not-at-top  (Keras: not for inat-score)
  from inat_tf import answers  # pylint: disable=g-import-not-at-top
  from inat_tf import trained_model  # pylint: disable=g-import-not-at-top
  from inat_tf.geo import prior as prior_lib  # pylint: disable=g-import-not-at-top
  options = options or answer_options.Options(rule="argmax")
  trained = trained_model.load(model_dir, which)
  label_map_lib.check_same(data_dir, model_dir)
  prior = prior_lib.load(geo_dir) if geo_dir else None
  if prior is not None:
    prior.check_matches(trained.label_map, model_dir)
  tree = answer_options.taxonomy_of(trained)
  allowed, words = answer_options.restriction(options, tree, trained.label_map)
  if allowed is not None and int(np.sum(allowed)) < species_per_row:
    raise PredictError(
        f"{words} allows {int(np.sum(allowed))} species, fewer than the {species_per_row} a "
        f"submission row lists: restrict to at least {species_per_row}, or score the "
        f"restriction with inat-eval (its top-5 counts only allowed species)")
  rule = answer_options.rule_for_model(options, trained, model_dir, which, data_dir=data_dir,
                                       flip=flip, command=command)
  config = answers.AnswerConfig(rule=rule, floor=options.floor)
  predictions = trained_model.predict(trained, data_dir, split, batch_size=batch_size, flip=flip,
                                      geo_prior=prior, command=command, answer_config=config,
                                      allowed=allowed, captive=options.captive)
  return trained, predictions, words


def category_ids_of(category_ids, top_indices):
  """int [N, K] category ids of class indices; -1 stays -1 (no species: a restriction with fewer
  than K allowed species), where numpy's indexing would give the last category."""
  top_indices = np.asarray(top_indices)
  return np.where(top_indices >= 0, np.asarray(category_ids)[np.maximum(top_indices, 0)], -1)


def from_keras(data_dir, model_dir, split, *, which="best", batch_size=64, flip=False,
               options=None):
  """ByImage: the top-5 category ids of each image of a split, from a model dir (inat-train)."""
  trained, predictions, _ = keras_predictions(data_dir, model_dir, split, which=which,
                                              batch_size=batch_size, flip=flip, options=options)
  ids = np.asarray(trained.label_map.category_ids)
  return ByImage.of(predictions.image_ids, category_ids_of(ids, predictions.top_indices))


def from_keras_with_prior(data_dir, model_dir, geo_dir, split, *, which="best", batch_size=64,
                          flip=False, options=None):
  """(ByImage image only, ByImage with the location prior, their comparison
  (inat_tf.geo.report.compare, scored where the split has labels)) from a model dir and a
  prior dir (inat-train-geo)."""
  from inat_tf.geo import report  # pylint: disable=g-import-not-at-top
  trained, predictions, _ = keras_predictions(data_dir, model_dir, split, which=which,
                                              batch_size=batch_size, flip=flip, geo_dir=geo_dir,
                                              options=options)
  ids = np.asarray(trained.label_map.category_ids)
  return (ByImage.of(predictions.image_ids, category_ids_of(ids, predictions.top_indices)),
          ByImage.of(predictions.image_ids, category_ids_of(ids, predictions.geo_top_indices)),
          report.compare(predictions))


def _check_export_classes(data_dir, export_dir):
  """The export's labels.txt (class index, category id, name) must match the data dir's."""
  labels_path = os.path.join(export_dir, "labels.txt")
  if not tf.io.gfile.exists(labels_path):
    return  # a SavedModel moved away from its export dir: its category ids are checked per row
  with tf.io.gfile.GFile(labels_path) as f:
    exported = [int(line.split("\t")[1]) for line in f.read().splitlines() if line]
  ours = list(label_map_lib.LabelMap.load(data_dir).category_ids)
  if exported != ours:
    raise PredictError(f"the label map of data dir {data_dir} differs from export dir "
                       f"{export_dir}'s labels.txt ({len(ours)} classes against "
                       f"{len(exported)}): use the data dir the model was trained on")


def from_saved_model(data_dir, export_dir, split, *, batch_size=64):
  """(ByImage of the top-5 category ids, [ids marked invalid]) from a SavedModel (inat-export),
  fed the stored JPEG bytes.

  export_dir: inat-export's --export_dir, its saved_model/ child or a version dir in it. Images
  the model marks invalid (serving's per-item `valid` output) get no prediction (the caller's
  fallback) and are listed, in record order, so the caller can say why they have none.
  """
  from inat_tf import export  # pylint: disable=g-import-not-at-top
  saved_model, export_dir = export.find_saved_model(export_dir)
  _check_export_classes(data_dir, export_dir)
  serve = tf.saved_model.load(saved_model).signatures["serving_default"]
  dataset = records.examples(data_dir, split, [schema.ENCODED, schema.IMAGE_ID]).batch(batch_size)
  image_ids, category_ids, invalid = [], [], []
  total = records.split_examples(data_dir, split)
  with records.read_guard(data_dir, [split]), progress.Progress("inat-predict", total) as bar:
    for batch in dataset:
      outputs = serve(image_bytes=batch[schema.ENCODED])
      valid = outputs["valid"].numpy() if "valid" in outputs else np.ones(
          len(batch[schema.IMAGE_ID]), bool)
      image_ids.append(batch[schema.IMAGE_ID].numpy()[valid])
      invalid += batch[schema.IMAGE_ID].numpy()[~valid].tolist()
      category_ids.append(outputs["category_ids"].numpy()[valid, :5])
      bar.images += len(valid)
  return ByImage.of(np.concatenate(image_ids), np.concatenate(category_ids)), invalid


@dataclasses.dataclass(frozen=True, eq=False)
class ByImage:
  """The predicted category ids of each image, best first, as two arrays sorted by image id:
  8 + 4·K bytes per image (a dict of lists held ~660; issue 26: 500 k test images)."""
  image_ids: np.ndarray     # int64 [N], ascending, distinct
  category_ids: np.ndarray  # int32 [N, K]

  @classmethod
  def of(cls, image_ids, category_ids):
    """From [N] image ids (any order) and [N, K] category ids; PredictError on a doubled id."""
    image_ids = np.asarray(image_ids, np.int64)
    order = np.argsort(image_ids, kind="stable")
    image_ids = image_ids[order]
    doubled = image_ids[1:][image_ids[1:] == image_ids[:-1]]
    if doubled.size:
      raise PredictError(f"image id {doubled[0]} appears twice in the records; rebuild the data "
                         f"dir with inat-build")
    category_ids = (np.asarray(category_ids, np.int32).reshape(len(order), -1) if len(order)
                    else np.zeros([0, 0], np.int32))
    return cls(image_ids, category_ids[order])

  def first(self, k):
    """The same with the first k category ids per image."""
    return ByImage(self.image_ids, self.category_ids[:, :k])

  def to_dict(self):
    """{image id: [category ids]}: small splits and tests."""
    return dict(zip(self.image_ids.tolist(), self.category_ids.tolist()))

  def __len__(self):
    return len(self.image_ids)

  def __eq__(self, other):
    return (isinstance(other, ByImage) and np.array_equal(self.image_ids, other.image_ids)
            and np.array_equal(self.category_ids, other.category_ids))


ROWS_PER_WRITE = 50_000


def submission_rows(listed_ids, predicted, fallback):
  """(rows, filled): the CSV lines `id,c1 c2 ...` for every listed image id in id order, as an
  iterator that formats them a chunk at a time, and the ids given `fallback` (no prediction).

  predicted: a ByImage (or {image id: [category ids]}). Raises PredictError when it has images
  the list does not.
  """
  if not isinstance(predicted, ByImage):
    predicted = ByImage.of(list(predicted), list(predicted.values()))
  listed = np.sort(np.asarray(listed_ids, np.int64))
  unknown = np.setdiff1d(predicted.image_ids, listed)
  if unknown.size:
    raise PredictError(f"{unknown.size} predicted images are not in the split's JSON (first: "
                       f"{unknown[:5].tolist()}); the data dir and image_ids.json disagree: "
                       f"rebuild it")
  position = np.minimum(np.searchsorted(predicted.image_ids, listed),
                        max(len(predicted) - 1, 0))
  found = (predicted.image_ids[position] == listed) if len(predicted) else np.zeros(
      len(listed), bool)
  fallback_text = " ".join(str(c) for c in fallback)

  def rows():
    for start in range(0, len(listed), ROWS_PER_WRITE):
      stop = start + ROWS_PER_WRITE
      tops = predicted.category_ids[position[start:stop]].tolist() if len(predicted) else None
      for i, (image_id, hit) in enumerate(zip(listed[start:stop].tolist(),
                                              found[start:stop].tolist())):
        yield f"{image_id},{' '.join(map(str, tops[i])) if hit else fallback_text}"

  return rows(), listed[~found].tolist()


def fallback_warnings(split, per_row, filled, *, server_invalid=(), saved_model=""):
  """The warning lines for the rows filled with the fallback, one per cause: images of the split's
  JSON that are not in the records (the builder rejected them, manifest.json says why) and images
  in the records that the SavedModel marked invalid (serving's `valid` output: its graph could not
  decode them). [] when nothing was filled."""
  marked = set(server_invalid)
  causes = (
      ([i for i in filled if i not in marked],
       "are not in the records (rejected by inat-build, see manifest.json)"),
      ([i for i in filled if i in marked],
       f"are in the records but the SavedModel {saved_model} marked them invalid (its `valid` "
       f"output: the serving graph could not decode them)"))
  return [f"inat-predict: warning: {len(ids)} images of the {split} split {why}; they get the "
          f"{per_row} most frequent species: {ids[:10]}{' ...' if len(ids) > 10 else ''}"
          for ids, why in causes if ids]


def tuning_warning(split, tuned_on, source):
  """The warning line when the model's stored long-tail adjustment was chosen on (part of)
  `split`, else None. tuned_on: long_tail.Adjustment.tuned_on ({"split", "part", "seed",
  "images"}) or None; source: the model dir or SavedModel, for the message.

  inat-predict still writes every listed image (a submission has one row per image; inat-score
  refuses a CSV with ids missing), tune half included, so a score computed from this CSV on this
  split is optimistic; inat-eval scores the report half only (long_tail.reported_mask)."""
  if not tuned_on or tuned_on.get("split") != split:
    return None
  if tuned_on.get("part") == "tune":
    chosen = (f"the tune half of {split} (long_tail.stratified_halves, seed "
              f"{tuned_on.get('seed', 0)}, {tuned_on.get('images', '?')} images)")
    instead = f"inat-eval --split {split} scores the other half only"
  else:
    chosen = f"all of {split}"
    instead = f"inat-eval refuses --split {split} for this model"
  return (f"inat-predict: warning: the long-tail adjustment of {source} was chosen on {chosen}; "
          f"those images are in this CSV too, so scores on {split} computed from it are "
          f"optimistic ({instead})")


def _tuned_on(model_dir, saved_model, which):
  """tuned_on of the adjustment inside the model predicted with (None if it has none)."""
  if model_dir:
    adjustment, _ = long_tail.load_adjustment(model_dir, which)
    return adjustment.tuned_on if adjustment is not None else None
  from inat_tf import export  # pylint: disable=g-import-not-at-top
  info_path = os.path.join(export.find_saved_model(saved_model)[1], "export_info.json")
  if not tf.io.gfile.exists(info_path):
    return None  # a SavedModel moved away from its export dir
  with tf.io.gfile.GFile(info_path) as f:
    return json.load(f).get("long_tail_tuned_on")


def write_submission(path, rows, header=HEADER):
  """Writes the header and `rows` (any iterable of lines) under a temporary name, then renames;
  returns the number of rows. Written ROWS_PER_WRITE lines at a time."""
  temporary, count = path + ".tmp", 0
  rows = iter(rows)
  with tf.io.gfile.GFile(temporary, "w") as f:
    f.write(header + "\n")
    while chunk := list(itertools.islice(rows, ROWS_PER_WRITE)):
      f.write("\n".join(chunk) + "\n")
      count += len(chunk)
  tf.io.gfile.rename(temporary, path, overwrite=True)
  return count


def image_only_path(output):
  """Where inat-predict --geo_dir writes the image-only submission beside `output`."""
  stem, extension = os.path.splitext(output)
  return f"{stem}.image_only{extension or '.csv'}"


def answers_path(output):
  """Where inat-predict --rollup_rule R (not argmax) writes each image's answer beside `output`."""
  stem, _ = os.path.splitext(output)
  return f"{stem}.answers.csv"


def answer_rows(predictions, taxonomy, label_map):
  """CSV text: per image its answered taxon (name, rank, score), the species it rolled up from
  (category id), MSP and energy, by image id."""
  import csv  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(["id", "taxon", "rank", "score", "species_category_id", "species_score",
                   "msp", "energy"])
  found = predictions.answers
  for n in np.argsort(predictions.image_ids, kind="stable"):
    taxon = int(found["taxon"][n])
    writer.writerow([int(predictions.image_ids[n]),
                     taxonomy.node_names[taxon] if taxon >= 0 else "",
                     taxonomy.rank_of(taxon) if taxon >= 0 else "",
                     f"{found['score'][n]:.6g}",
                     label_map.category_ids[int(found["species"][n])],
                     f"{found['species_score'][n]:.6g}", f"{found['msp'][n]:.6g}",
                     f"{found['energy'][n]:.6g}"])
  return buffer.getvalue()


def predict_to_csv(data_dir, split, output, *, model_dir="", saved_model="", which="best",
                   batch_size=64, flip=False, log=print, geo_dir="", options=None):
  """Writes the submission CSV; returns the number of rows filled by the fallback.

  geo_dir: a location prior (inat-train-geo, --model_dir only); `output` then holds the
  predictions with the prior, image_only_path(output) those without, and the log compares them.
  options: the answer flags (answer_options.Options): a restriction changes the species listed;
  a roll-up rule other than argmax also writes answers_path(output).
  """
  start = time.monotonic()
  if bool(model_dir) == bool(saved_model):
    raise PredictError("Give exactly one of --model_dir (inat-train) and --saved_model "
                       "(inat-export)")
  if geo_dir and saved_model:
    raise PredictError("--geo_dir goes with --model_dir; a SavedModel exported with --geo_dir "
                       "has the prior inside (signature serving_with_place)")
  label_map = label_map_lib.LabelMap.load(data_dir)
  image_only, server_invalid, predictions = None, [], None
  if saved_model:
    predicted, server_invalid = from_saved_model(data_dir, saved_model, split,
                                                 batch_size=batch_size)
  else:
    trained, predictions, _ = keras_predictions(
        data_dir, model_dir, split, which=which, batch_size=batch_size, flip=flip,
        geo_dir=geo_dir, options=options, species_per_row=submission_format(label_map)[1])
    ids = np.asarray(trained.label_map.category_ids)
    image_only = ByImage.of(predictions.image_ids, category_ids_of(ids, predictions.top_indices))
    if geo_dir:
      from inat_tf.geo import report  # pylint: disable=g-import-not-at-top
      predicted = ByImage.of(predictions.image_ids,
                             category_ids_of(ids, predictions.geo_top_indices))
      comparison = report.compare(predictions)
    else:
      predicted, image_only = image_only, None
  header, per_row = submission_format(label_map)
  most_frequent = np.argsort(label_map.train_counts, kind="stable")[::-1][:per_row]
  fallback = [label_map.category_ids[i] for i in most_frequent]
  listed = listed_image_ids(data_dir, split)
  rows, filled = submission_rows(listed, predicted.first(per_row), fallback)
  written = write_submission(output, rows, header)
  if image_only is not None:
    from inat_tf.report import render  # pylint: disable=g-import-not-at-top
    from inat_tf.report import sections  # pylint: disable=g-import-not-at-top
    write_submission(image_only_path(output),
                     submission_rows(listed, image_only.first(per_row), fallback)[0], header)
    log(f"inat-predict: image-only predictions in {image_only_path(output)}")
    log(render.text([sections.location_prior(
        {"location_prior": dict(comparison, geo_dir=geo_dir)})]).rstrip())
  for line in fallback_warnings(split, per_row, filled, server_invalid=server_invalid,
                                saved_model=saved_model):
    log(line)
  warning = tuning_warning(split, _tuned_on(model_dir, saved_model, which),
                           f"model dir {model_dir} ({which})" if model_dir
                           else f"SavedModel {saved_model}")
  if warning:
    log(warning)
  if predictions is not None and options is not None and options.rule != "argmax":
    from inat_tf import answer_options  # pylint: disable=g-import-not-at-top
    from inat_tf import run_common  # pylint: disable=g-import-not-at-top
    run_common.write_text(answers_path(output), answer_rows(
        predictions, answer_options.taxonomy_of(trained), label_map))
    log(f"inat-predict: answers (roll-up rule {options.rule}: taxon, rank, score, MSP, energy) "
        f"in {answers_path(output)}" + (f"; the {len(filled):,} fallback rows have none"
                                         if filled else ""))
  elif tf.io.gfile.exists(answers_path(output)):  # an earlier run's: not this CSV's answers
    tf.io.gfile.remove(answers_path(output))
  log(f"inat-predict: done: wrote {written:,} rows to {output} in "
      f"{progress.duration(time.monotonic() - start)}"
      + (f", {len(filled):,} of them the fallback (see above)" if filled else ""))
  return len(filled)


def main(c, _):
  """inat-predict's work once its flags are parsed (inat_tf/commands/predict.py)."""
  from inat_tf import answer_options  # pylint: disable=g-import-not-at-top
  source = (f"the SavedModel {c.saved_model}" if c.saved_model else
            f"{c.model_dir}/{c.which}.keras" + (" with the location prior " + c.geo_dir
                                                  if c.geo_dir else ""))
  header, per_row = submission_format(label_map_lib.LabelMap.load(c.data_dir))
  print(f"inat-predict: {source} on the {c.split} split of {c.data_dir} "
        f"({len(listed_image_ids(c.data_dir, c.split)):,} images listed) to {c.output}: "
        f"header {header}, {per_row} category id(s) per row", file=sys.stderr, flush=True)
  predict_to_csv(c.data_dir, c.split, c.output, model_dir=c.model_dir,
                 saved_model=c.saved_model, which=c.which, batch_size=c.batch_size,
                 flip=c.flip, log=lambda message: print(message, file=sys.stderr),
                 geo_dir=c.geo_dir, options=answer_options.Options.from_config(c))

