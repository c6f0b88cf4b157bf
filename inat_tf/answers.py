"""THE answer pipeline: from an image model's logits to one answer per image, with an open-set
score and the facts that explain it. `answer(inputs, taxonomy, config)` is the one entry point
for inat-eval, inat-predict, inat-classify and inat-export (SavedModel and TFLite) alike.

Order, each step with its source:
  1. Vision probabilities. p(y | image) = softmax of the logits, averaged over views (flip /
     multi-crop), by the same ops as trained_model.predict, so a top-k taken from it (the Kaggle
     CSV) is what it was before this pipeline existed.
     Long-tail adjustment: already in the logits. A stored post-hoc adjustment (logit adjustment,
     Menon et al. 2021; tau-norm and cRT, Kang et al. 2020) rewrites the classifier's weights when
     the model is loaded (trained_model.load -> long_tail.apply_stored), so every consumer and the
     exported graphs see it once; tau-norm and cRT are not logit offsets, so the pipeline could not
     apply them anyway. The pipeline applies NO adjustment of its own; config.long_tail only names
     the one in force, for the explanation.
  2. Location, a boost not a filter (Mac Aodha et al., ICCV 2019, Sec. 3.1, with iNaturalist's
     floor): inat_tf.geo.prior.combine, p(y | image) · max(σ(f_y(place)), floor), renormalised;
     the image-only probabilities, bit for bit, for an image without a place or opted out
     (captive / cultivated).
  3. Restriction (inat_tf.restriction): the species allowed (a taxon, a checklist, a request's
     ids), renormalised exactly over them: p(y | allowed) = p(y) / sum_allowed p. Computed in log
     space from the logits (log-softmax averaged over views with logsumexp, plus the log location
     factor), so that species whose float32 probability underflowed to 0 still rank by their
     logits; an unrestricted row is step 2's output itself.
  4. Roll-up (inat_tf.rollup, on inat_tf.taxonomy's static tables): the species, or the genus,
     family, ... the rule answers, with its mass.
  5. Open-set scores, for "is this a species the model knows?": the maximum softmax probability
     of step 3's distribution (Hendrycks & Gimpel, ICLR 2017; high = known) and the energy
     -log sum_{allowed y} exp(logit_y), averaged over views (Liu et al., NeurIPS 2020,
     "Energy-based Out-of-distribution Detection", eq. 3 with T = 1; low = known). Energy needs
     logits, which every consumer has (they all run the Keras network or its exported graph).

Every step is a pure function of tensors and static tables written with TensorFlow ops that
run eagerly, inside a SavedModel and as TFLite builtins (tests/test_answers.py converts it).
"""

import dataclasses

import tensorflow as tf

from inat_tf import rollup
from inat_tf.geo import prior as prior_lib


@dataclasses.dataclass(frozen=True)
class AnswerConfig:
  """What is static in a pipeline: the rule, the location floor, how many species to list."""
  rule: object = rollup.InatRule()  # an inat_tf.rollup rule
  floor: float = prior_lib.DEFAULT_FLOOR  # location floor (0: the plain product)
  top_k: int = 5                    # species listed per image (the Kaggle CSV's ids)
  long_tail: str = ""               # the adjustment already in the logits, for the explanation


@dataclasses.dataclass(frozen=True)
class Inputs:
  """One batch. Optional inputs are None (a static choice: the graph is traced without them).

  logits: [N, C] or [N, V, C] float (V views of each image).
  prior_logits: [N, C] float, the location prior's output (inat_tf.geo.prior.GeoPrior.logits).
  has_place: [N] bool, which images have a usable place (GeoPrior.available); with prior_logits.
  opt_out: [N] bool, captive / cultivated: the place is not used.
  allowed: [C] or [N, C] bool, the species an answer may be (inat_tf.restriction).
  """
  logits: object
  prior_logits: object = None
  has_place: object = None
  opt_out: object = None
  allowed: object = None


# Outputs of `answer`, each [N] unless said otherwise.
OUTPUTS = {
    "probabilities": "[N, C] float32 after location and restriction (step 3)",
    "top_classes": "[N, top_k] int32 class indices by `probabilities`, best first; -1 past the "
                   "allowed species (a restriction with fewer than top_k: never an outside one)",
    "top_scores": "[N, top_k] float32 their probabilities (0 where -1)",
    "taxon": "int32 the answered taxon (a taxonomy node; -1: no answer)",
    "rank": "int32 its rank index in taxonomy.ranks (num_ranks: no answer)",
    "score": "float32 its mass under `probabilities` (0: no answer)",
    "species": "int32 the most probable species, the one the answer rolled up from",
    "species_score": "float32 its probability under `probabilities`",
    "vision_rank": "int32 that species' rank by the image alone (1 = the image's first choice)",
    "vision_score": "float32 its probability by the image alone (step 1)",
    "used_place": "bool whether the location prior was applied",
    "location_factor": "float32 max(σ, floor) of that species where used, else 1",
    "allowed_mass": "float32 step 2's mass on the allowed species (1: unrestricted)",
    "msp": "float32 maximum softmax probability (high: a known species)",
    "energy": "float32 -logsumexp of the allowed logits (low: a known species)",
}


def vision_probabilities(logits):
  """([N, C] mean over views of softmax(logits), [N, V, C] float32 logits): step 1."""
  logits = tf.cast(logits, tf.float32)
  if logits.shape.rank == 2:
    logits = logits[:, tf.newaxis, :]
  return tf.reduce_mean(tf.nn.softmax(logits), axis=1), logits


def answer(inputs, taxonomy, config=AnswerConfig()):
  """The pipeline (module docstring) on one batch: a dict of the tensors named in OUTPUTS.

  inputs: Inputs; taxonomy: inat_tf.taxonomy.Taxonomy of the model's label map; config:
  AnswerConfig. Raises ValueError when the inputs do not fit the taxonomy or each other (a
  static check at trace time).
  """
  rollup.check_rule(config.rule, taxonomy)
  num_classes = taxonomy.num_classes
  vision, logits = vision_probabilities(inputs.logits)
  if logits.shape[-1] is not None and logits.shape[-1] != num_classes:
    raise ValueError(f"logits have {logits.shape[-1]} classes but the taxonomy "
                     f"{num_classes}: use the taxonomy of the model's own label map")
  log_softmax = tf.nn.log_softmax(logits)
  log_vision = (tf.reduce_logsumexp(log_softmax, axis=1) -
                tf.math.log(tf.cast(tf.shape(logits)[1], tf.float32)))

  # 2. Location.
  if inputs.prior_logits is not None:
    if inputs.has_place is None:
      raise ValueError("prior_logits need has_place (GeoPrior.available) beside them")
    used = prior_lib.used_place(inputs.has_place, inputs.opt_out)
    located = prior_lib.combine(vision, inputs.prior_logits, inputs.has_place,
                                floor=config.floor, opt_out=inputs.opt_out)
    log_factor = tf.where(used[:, tf.newaxis],
                          prior_lib.log_location_factor(inputs.prior_logits, config.floor), 0.0)
  else:
    if inputs.has_place is not None:
      raise ValueError("has_place was given without prior_logits: pass the location prior's "
                       "logits too, or neither")
    used = tf.zeros_like(vision[:, 0], tf.bool)
    located, log_factor = vision, tf.zeros_like(vision)

  # 3. Restriction.
  if inputs.allowed is not None:
    allowed = tf.broadcast_to(tf.cast(inputs.allowed, tf.bool), tf.shape(vision))
    allowed_mass = tf.reduce_sum(tf.where(allowed, located, 0.0), axis=1)
    restricted = tf.nn.softmax(tf.where(allowed, log_vision + log_factor, float("-inf")))
    unrestricted = tf.reduce_all(allowed, axis=1, keepdims=True)
    any_allowed = tf.reduce_any(allowed, axis=1, keepdims=True)
    final = tf.where(unrestricted, located, tf.where(any_allowed, restricted, 0.0))
    allowed_logits = tf.where(allowed[:, tf.newaxis, :], logits, float("-inf"))
  else:
    allowed_mass = tf.ones_like(vision[:, 0])
    final, allowed_logits = located, logits

  # 4. Roll-up.
  rolled = rollup.roll_up(final, taxonomy, config.rule)

  # 5. Answer, open-set scores, explanation.
  species = tf.argmax(final, axis=1, output_type=tf.int32)
  pick = lambda values: tf.reduce_sum(values * tf.one_hot(species, num_classes), axis=1)
  vision_score = pick(vision)
  top = tf.math.top_k(final, min(config.top_k, num_classes))
  top_classes, top_scores = top.indices, top.values
  if inputs.allowed is not None:  # fill with "no species", not with outside species at 0
    listed = tf.gather(allowed, top_classes, batch_dims=1)
    top_classes = tf.where(listed, top_classes, -1)
    top_scores = tf.where(listed, top_scores, 0.0)
  return {
      "probabilities": final,
      "top_classes": top_classes,
      "top_scores": top_scores,
      "taxon": rolled["node"],
      "rank": rolled["rank"],
      "score": rolled["score"],
      "species": species,
      "species_score": pick(final),
      "vision_rank": 1 + tf.reduce_sum(tf.cast(vision > vision_score[:, tf.newaxis], tf.int32),
                                       axis=1),
      "vision_score": vision_score,
      "used_place": used,
      "location_factor": tf.where(used, tf.exp(pick(log_factor)), 1.0),
      "allowed_mass": allowed_mass,
      "msp": tf.reduce_max(final, axis=1),
      "energy": tf.reduce_mean(-tf.reduce_logsumexp(allowed_logits, axis=-1), axis=1),
  }


def explain(outputs, index, taxonomy, *, restriction="", config=AnswerConfig()):
  """One line saying where image `index`'s answer came from, e.g.

    genus Corvus 0.93 (rolled up from species Corvus corax 0.41; image: rank 1, 0.38;
    location x0.91 before renormalising; restricted to Aves, 62% of the probability; MSP 0.41,
    energy -7.2)

  outputs: `answer`'s dict (tensors or numpy); restriction: how the allowed species were chosen
  (e.g. "Aves", "checklist birds.txt"), "" for none.
  """
  row = {key: _value(value, index) for key, value in outputs.items() if key in OUTPUTS}
  species = f"species {taxonomy.node_names[row['species']]} {row['species_score']:.2f}"
  details = []
  if row["species_score"] <= 0:
    head = "no answer"
    details.append("no allowed species has any probability")
  elif row["taxon"] < 0:
    head = "no answer"
    details.append(f"no taxon sure enough by rule {config.rule.name}; most probable {species}")
  else:
    head = f"{taxonomy.describe(row['taxon'])} {row['score']:.2f}"
    if row["taxon"] != row["species"]:
      details.append(f"rolled up from {species} by rule {config.rule.name}")
  details.append(f"image: rank {row['vision_rank']}, {row['vision_score']:.2f}")
  if config.long_tail:
    details.append(f"long-tail: {config.long_tail}")
  if not row["used_place"]:
    details.append("no location")
  elif config.floor > 0 and row["location_factor"] <= config.floor * (1 + 1e-6):
    details.append(f"location x{row['location_factor']:.3g} (the floor: far from where the "
                   f"species is known)")
  else:  # a factor before renormalising: the score may still rise (the others fell more)
    details.append(f"location x{row['location_factor']:.3g} before renormalising")
  if restriction:
    details.append(f"restricted to {restriction}, {100 * row['allowed_mass']:.0f}% of the "
                   f"probability")
  details.append(f"MSP {row['msp']:.2f}, energy {row['energy']:.1f}")
  return f"{head} ({'; '.join(details)})"


def _value(value, index):
  value = value.numpy() if hasattr(value, "numpy") else value
  item = value[index]
  return item.item() if hasattr(item, "item") and getattr(item, "ndim", 1) == 0 else item
