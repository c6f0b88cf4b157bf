"""Restriction: which species an answer may be, as a boolean mask over the classes.

From a user (inat-eval, inat-predict, inat-classify: --taxon NAME, --checklist FILE), the mask
is made here, host-side, with one-line errors:
  taxon_mask(taxonomy, "Aves")          the species under a taxon of any rank (taxonomy.find)
  checklist_mask(path, label_map)       a file of category ids, one a line ('#' comments and
                                        blank lines allowed)
From a request to a served model, in the graph (a SavedModel signature; TF Serving's REST JSON
in its columnar form, which lets these per-request lists have their own length:
  {"inputs": {"image_bytes": [{"b64": "..."}], "allowed_category_ids": [3, 17],
              "allowed_taxa": ["Aves"]}}):
  mask_from_category_ids(category_ids, allowed_ids)   [K] int64 dataset category ids
  mask_from_taxa(taxonomy, names)                     [K] string taxon names (exact, any rank)
An empty list restricts nothing; both lists given: the species allowed by both. An id or a name
the model does not know fails the request with InvalidArgumentError naming it (TF Serving returns
it as the error message), rather than being dropped silently.

The pipeline (inat_tf.answers) renormalises the probabilities over the allowed species exactly:
p(y | y allowed) = p(y) / sum over allowed of p; no retraining.
"""

import numpy as np
import tensorflow as tf


class RestrictionError(ValueError):
  """A checklist or taxon cannot restrict this model; the message names the file and line."""


def combine_masks(*masks):
  """The species allowed by every given mask (None masks are skipped); None when none is given."""
  given = [np.asarray(m, bool) for m in masks if m is not None]
  return np.logical_and.reduce(given) if given else None


def taxon_mask(taxonomy, name):
  """bool [num_classes]: the species under the taxon `name` (see Taxonomy.find for the forms).
  Raises inat_tf.taxonomy.TaxonomyError (a ValueError) naming unknown or ambiguous names."""
  return taxonomy.members(taxonomy.find(name))


def checklist_mask(path, label_map):
  """bool [num_classes]: the species whose category ids are listed in the file at `path`.

  One integer category id a line; blank lines and text after '#' are ignored. Raises
  RestrictionError naming the file and line of a line that is not an id or an id the label map
  lacks, and FileNotFoundError for a missing file.
  """
  with tf.io.gfile.GFile(path) as f:
    lines = f.read().splitlines()
  mask = np.zeros(label_map.num_classes, bool)
  for number, line in enumerate(lines, 1):
    text = line.split("#", 1)[0].strip()
    if not text:
      continue
    try:
      category_id = int(text)
    except ValueError:
      raise RestrictionError(f"checklist {path}, line {number}: {text!r} is not a category id "
                             f"(expected one integer id a line, as in the dataset's JSON)"
                             ) from None
    try:
      mask[label_map.index_of(category_id)] = True
    except KeyError:
      raise RestrictionError(f"checklist {path}, line {number}: category id {category_id} is not "
                             f"in the model's label map ({label_map.num_classes} categories); "
                             f"use the ids of the dataset the model was trained on") from None
  if not mask.any():
    raise RestrictionError(f"checklist {path} lists no category ids")
  return mask


def mask_from_category_ids(category_ids, allowed_ids):
  """[C] bool: classes whose category id is in allowed_ids ([K] int64); all true when K = 0.

  category_ids: [C] the label map's ids (class index order). Raises InvalidArgumentError naming
  the first id that is not a category of the model.
  """
  category_ids = tf.cast(tf.convert_to_tensor(category_ids), tf.int64)
  allowed_ids = tf.cast(tf.convert_to_tensor(allowed_ids), tf.int64)
  matches = tf.equal(allowed_ids[:, tf.newaxis], category_ids[tf.newaxis, :])  # [K, C]
  known = tf.reduce_any(matches, axis=1)
  unknown = tf.boolean_mask(allowed_ids, tf.logical_not(known))
  check = tf.debugging.Assert(
      tf.reduce_all(known),
      ["allowed_category_ids holds ids that are not categories of this model, first:",
       unknown[:1]])
  with tf.control_dependencies([check]):
    mask = tf.reduce_any(matches, axis=0)
  return tf.logical_or(mask, tf.equal(tf.size(allowed_ids), 0))


def mask_from_taxa(taxonomy, names):
  """[C] bool: the species under any of the taxa `names` ([K] string, exact names at any rank);
  all true when K = 0. Raises InvalidArgumentError naming the first name that is not exactly one
  taxon of the model (unknown, or a homonym: ask by category ids then)."""
  names = tf.convert_to_tensor(names, tf.string)
  matches = tf.equal(names[:, tf.newaxis], tf.constant(list(taxonomy.node_names))[tf.newaxis, :])
  count = tf.reduce_sum(tf.cast(matches, tf.int32), axis=1)
  bad = tf.boolean_mask(names, tf.not_equal(count, 1))
  check = tf.debugging.Assert(
      tf.reduce_all(tf.equal(count, 1)),
      ["allowed_taxa holds names that are not exactly one taxon of this model, first:", bad[:1]])
  with tf.control_dependencies([check]):
    allowed_nodes = tf.reduce_any(matches, axis=0)  # [num_nodes]
  mask = tf.reduce_any(tf.gather(allowed_nodes, tf.constant(taxonomy.ancestors, tf.int32)),
                       axis=1)
  return tf.logical_or(mask, tf.equal(tf.size(names), 0))
