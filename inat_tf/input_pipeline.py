"""tf.data pipelines from what `inat-build` wrote to batches for Keras, local or gs://.

  config = InputConfig(data_dir="gs://bucket/inat", model_name="inception_v3", image_size=299,
                       global_batch_size=256)
  train = strategy.distribute_datasets_from_function(
      lambda context: train_dataset(config, context))
  val = eval_dataset(dataclasses.replace(config, split="val"))

Training, one straight chain: shard files by input pipeline → shuffle files → interleave reads →
(cache) → shuffle → repeat → long-tail resampling → parse → fused decode-and-crop → augment →
normalise → batch (static shapes) → prefetch. Evaluation reads the split exactly once in order.
The test split has label -1 and keeps image ids for submissions.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

import models
from inat_tf import augment as augment_lib
from inat_tf import choices
from inat_tf import cli
from inat_tf import label_map as label_map_lib
from inat_tf import preprocessing
from inat_tf import records
from inat_tf import schema

SAMPLINGS = choices.SAMPLINGS


@dataclasses.dataclass(frozen=True)
class InputConfig:
  """Everything a pipeline needs; train and eval read the fields that concern them."""
  data_dir: str
  model_name: str = "inception_v3"   # picks the input normalisation
  split: str = "train"
  image_size: int = 299
  global_batch_size: int = 32
  sampling: str = "uniform"           # the paper's; or "balanced" / "sqrt" over classes
  color_distortion: bool = False
  crop_with_boxes: bool = False       # ground-truth boxes as crop hints
  shuffle_buffer: int = 4096         # records; shards are already shuffled at build time
  cache: bool = False                 # keep the encoded split in memory (small sets)
  deterministic: bool = False         # same batches every run (slower: no reordering)
  seed: int = 0
  synthetic: bool = False             # constant random batches: time a model without input cost
  data_service: str = ""              # tf.data service dispatcher "host:port" (training only)
  dtype: str = "float32"              # "bfloat16" halves host-to-TPU traffic
  # Crop ranges, flip, RandAugment, MixUp / CutMix (training); with mixing, training labels are
  # soft: [batch, classes] float32 instead of [batch] int32.
  augment: augment_lib.AugmentConfig = augment_lib.AugmentConfig()
  eval_crop_fraction: float = preprocessing.EVAL_CROP_FRACTION  # central crop, of the short side
  # Class indices whose images weigh 0 in eval_dataset's padded batches: species held out of
  # training (inat-build --holdout_species), which no trained answer can get right.
  unscored_classes: tuple = ()

  def validate(self):
    if self.sampling not in SAMPLINGS:
      raise ValueError(f"sampling={self.sampling!r}: expected one of {', '.join(SAMPLINGS)}")
    if self.image_size < models.min_image_size(self.model_name):
      raise ValueError(f"image_size={self.image_size} is below {self.model_name}'s minimum of "
                       f"{models.min_image_size(self.model_name)} pixels")
    if self.global_batch_size < 1:
      raise ValueError(f"global_batch_size={self.global_batch_size}: must be >= 1")
    if not 0 < self.eval_crop_fraction <= 1:
      raise ValueError(f"eval_crop_fraction={self.eval_crop_fraction}: expected a fraction of "
                       f"the short side in (0, 1], e.g. 0.875")
    self.augment.validate()


def _per_replica_batch(config, context):
  if context is None:
    return config.global_batch_size
  return context.get_per_replica_batch_size(config.global_batch_size)


def _files_for_this_pipeline(config, context):
  """File-level sharding across input pipelines; record-level when files are too few."""
  files = records.shard_files(config.data_dir, config.split)
  if context is None or context.num_input_pipelines == 1:
    return tf.data.Dataset.from_tensor_slices(files), None
  n, i = context.num_input_pipelines, context.input_pipeline_id
  if len(files) >= n:
    return tf.data.Dataset.from_tensor_slices(files).shard(n, i), None
  cli.warn(f"{config.data_dir} has {len(files)} {config.split} shards for {n} input pipelines: "
           f"sharding by record instead, so every pipeline reads every file. Build with a "
           f"smaller --examples_per_shard.")
  return tf.data.Dataset.from_tensor_slices(files), (n, i)


def resampling_weights(train_counts, sampling):
  """Per-class expected copies per epoch so that classes are drawn ∝ count^power (mean 1).

  uniform: power 1 (every image once, the paper's default); sqrt: 1/2; balanced: 0.
  """
  counts = np.maximum(np.asarray(train_counts, np.float64), 1)
  power = {"uniform": 1.0, "sqrt": 0.5, "balanced": 0.0}[sampling]
  target = counts ** power
  target /= target.sum()
  return target / (counts / counts.sum())


def _resample(dataset, weights, seed):
  """Repeats or drops each example at random, `weights[label]` copies on average.

  Resampling on the parsed label, before decoding, costs no extra reads or decodes, unlike
  rejection sampling (which would read ~14x the data to balance iNat2017's tail).
  """
  weights = tf.constant(weights, tf.float32)

  def copies(example, element_seed):
    weight = tf.gather(weights, example[schema.LABEL])
    whole = tf.floor(weight)
    extra = tf.cast(tf.random.stateless_uniform([], element_seed) < weight - whole, tf.float32)
    return tf.data.Dataset.from_tensors(example).repeat(tf.cast(whole + extra, tf.int64))

  seeds = tf.data.Dataset.random(seed=seed).batch(2)
  return tf.data.Dataset.zip((dataset, seeds)).flat_map(copies)


def _options(config):
  options = tf.data.Options()
  options.deterministic = config.deterministic
  options.autotune.enabled = True
  options.experimental_optimization.map_parallelization = True
  return options


def _synthetic(config, context, num_classes):
  """One random batch, repeated: measures the model alone."""
  batch = _per_replica_batch(config, context)
  images = tf.random.stateless_uniform([batch, config.image_size, config.image_size, 3], [1, 2],
                                       -1.0, 1.0, dtype=tf.float32)
  labels = tf.random.stateless_uniform([batch], [3, 4], 0, num_classes, dtype=tf.int32)
  return tf.data.Dataset.from_tensors((tf.cast(images, config.dtype), labels)).repeat()


def train_dataset(config, context=None):
  """Endless (images, labels) batches of the per-replica size, shapes static, for training.

  context: the tf.distribute.InputContext of this input pipeline (None: a single pipeline).
  """
  config.validate()
  label_map = label_map_lib.LabelMap.load(config.data_dir)
  if config.synthetic:
    return _synthetic(config, context, label_map.num_classes)
  normalize = models.preprocess_input(config.model_name)
  seed = config.seed + (context.input_pipeline_id if context else 0)
  keys = [schema.ENCODED, schema.LABEL] + ([schema.BBOX_YMIN, schema.BBOX_XMIN, schema.BBOX_YMAX,
                                            schema.BBOX_XMAX] if config.crop_with_boxes else [])

  rand_augment = augment_lib.rand_augment_layer(config.augment)
  mix_layers = augment_lib.mix_layers(config.augment)

  # The mapped functions are graph code as written: autograph's conversion of them (and of all
  # they call) only costs start-up time (BUILD_NOTES, "Start-up").
  @tf.autograph.experimental.do_not_convert
  def parse(serialized):
    return schema.parse(serialized, keys)

  @tf.autograph.experimental.do_not_convert
  def view(example, element_seed):
    boxes = None
    if config.crop_with_boxes:
      boxes = tf.stack([example[schema.BBOX_YMIN], example[schema.BBOX_XMIN],
                        example[schema.BBOX_YMAX], example[schema.BBOX_XMAX]], axis=-1)
    image = preprocessing.train_image(example[schema.ENCODED], config.image_size, element_seed,
                                      boxes=boxes, color_distortion=config.color_distortion,
                                      augment=config.augment, rand_augment=rand_augment)
    label = tf.cast(example[schema.LABEL], tf.int32)
    if mix_layers:  # mixed per batch below, then normalised
      return image, label
    return tf.cast(normalize(image), config.dtype), label

  @tf.autograph.experimental.do_not_convert
  def mix(batch, batch_seed):
    images, labels = augment_lib.mix_batch(
        mix_layers, batch[0], tf.one_hot(batch[1], label_map.num_classes), batch_seed)
    return tf.cast(normalize(images), config.dtype), labels

  files, record_shard = _files_for_this_pipeline(config, context)
  ds = files.shuffle(1024, seed=seed)                               # a new file order each epoch
  ds = ds.interleave(                                                # read many files at once
      lambda path: tf.data.TFRecordDataset(path, buffer_size=8 << 20),
      cycle_length=16, block_length=1, num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=config.deterministic)
  if record_shard:
    ds = ds.shard(*record_shard)                                     # too few files: by record
  if config.cache:
    ds = ds.cache()                                                  # encoded bytes, not pixels
  ds = ds.shuffle(config.shuffle_buffer, seed=seed)                  # mix across files
  ds = ds.repeat()
  ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
  if config.sampling != "uniform":                                   # long-tail resampling
    ds = _resample(ds, resampling_weights(label_map.train_counts, config.sampling), seed)
    ds = ds.shuffle(1024, seed=seed + 1)                             # spread repeated copies
  ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed + 2).batch(2)))
  ds = ds.map(view, num_parallel_calls=tf.data.AUTOTUNE)            # decode, crop, augment
  ds = ds.batch(_per_replica_batch(config, context), drop_remainder=True)  # static shapes
  if mix_layers:                                                     # MixUp / CutMix
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed + 3).batch(2)))
    ds = ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
  if config.data_service:                                            # preprocess on workers
    ds = ds.apply(tf.data.experimental.service.distribute(
        processing_mode=tf.data.experimental.service.ShardingPolicy.OFF,
        service=config.data_service, job_name=f"inat-train-{config.split}"))
  ds = ds.prefetch(tf.data.AUTOTUNE)                                 # overlap with the step
  return ds.with_options(_options(config))


def _pipeline_examples(config, context):
  """Examples each input pipeline reads in eval_dataset (from the manifest's shard counts)."""
  shards = records.shard_examples(config.data_dir, config.split)
  n = context.num_input_pipelines if context else 1
  if len(shards) < n:  # sharded by record
    total = sum(shards)
    return [total // n + (i < total % n) for i in range(n)]
  return [sum(shards[i::n]) for i in range(n)]


def eval_dataset(config, context=None, with_ids=False, pad_final_batch=False):
  """The split exactly once, in shard order: (images, labels) batches, or with image ids.

  with_ids: yield {"image", "label", "image_id"} dicts instead (predictions, submissions).
  pad_final_batch: every batch full size, padding with label -1 / image_id -1, and a weight per
    example (1 real, 0 padding and config.unscored_classes); and every input pipeline yields
    the same number of batches, so collective steps (several workers, TPU pods) never wait on a
    pipeline that has run dry.
  """
  config.validate()
  normalize = models.preprocess_input(config.model_name)
  keys = [schema.ENCODED, schema.LABEL, schema.IMAGE_ID]

  @tf.autograph.experimental.do_not_convert  # as train_dataset's
  def view(serialized):
    example = schema.parse(serialized, keys)
    image = tf.cast(normalize(preprocessing.eval_image(
        example[schema.ENCODED], config.image_size, config.eval_crop_fraction)), config.dtype)
    return {"image": image, "label": tf.cast(example[schema.LABEL], tf.int32),
            "image_id": example[schema.IMAGE_ID]}

  files, record_shard = _files_for_this_pipeline(config, context)
  ds = files.interleave(tf.data.TFRecordDataset, cycle_length=1)    # shard order, once
  if record_shard:
    ds = ds.shard(*record_shard)
  if config.cache:
    ds = ds.cache()
  ds = ds.map(view, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  batch = _per_replica_batch(config, context)
  if pad_final_batch:
    batches = max(math.ceil(n / batch) for n in _pipeline_examples(config, context))
    # A pipeline feeding several replicas (MirroredStrategy, a TPU host) hands its batches out in
    # groups, one per replica, and an incomplete last group is dropped: round up to whole groups.
    group = context.num_replicas_in_sync // context.num_input_pipelines if context else 1
    batches = math.ceil(batches / group) * group
    padding = {"image": tf.zeros([config.image_size] * 2 + [3], config.dtype),
               "label": tf.constant(-1), "image_id": tf.constant(-1, tf.int64),
               "weight": tf.constant(0.0)}
    unscored = tf.constant(list(config.unscored_classes), tf.int32)
    ds = ds.map(lambda e: {**e, "weight": tf.where(
        tf.reduce_any(tf.equal(e["label"], unscored)), 0.0, 1.0)})
    ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat())
    ds = ds.batch(batch, drop_remainder=True).take(batches)
  else:
    ds = ds.batch(batch)
  if not with_ids:
    ds = ds.map(lambda e: (e["image"], e["label"], e["weight"]) if pad_final_batch
                else (e["image"], e["label"]))
  return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(dataclasses.replace(
      config, deterministic=True)))

