"""What the answer pipeline costs inat-eval / inat-predict: trained_model.predict through
inat_tf.answers.answer (argmax, iNat's rule, the risk rule with a restriction) side by side with
the loop it replaced (softmax averaged over views, top-5: the code before issue 27), on the same
model and split, in one run. Prints images/s, the ratio to the plain loop, peak RSS, and checks
that the plain loop's top-5 equals the pipeline's (the Kaggle CSV's ids).

  nice -n 10 python benchmarks/answer_pipeline.py --work_dir /tmp/answer_bench [--image_size 64]

The first run generates the default sample download (40 species, ~2,500 images), builds it and
trains MobileNet V1 for a few steps (the timing does not depend on how well it is trained); a
rerun reuses them. Each variant runs --repeats times, interleaved; the fastest run is reported.
"""

import argparse
import os
import resource
import time

import numpy as np


def _prepare(work_dir, image_size):
  from inat_tf import sample_download
  from inat_tf import train
  from tfrecord_builder import build
  raw, data, model = (os.path.join(work_dir, name) for name in ("download", "data", "model"))
  if not os.path.exists(os.path.join(raw, "val2017.json")):
    sample_download.make_sample(raw, sample_download.SampleConfig())
  if not os.path.exists(os.path.join(data, "manifest.json")):
    status, summary = build.build(build.BuildConfig(raw_dir=raw, data_dir=data),
                                  log=lambda m: None)
    assert status == 0, summary
  if not os.path.exists(os.path.join(model, "best.keras")):
    train.train(train.TrainConfig(
        data_dir=data, model_dir=model, model="mobilenet_v1", image_size=image_size,
        batch_size=32, weights="none", train_steps=20, log_steps=1000, eval_every_epochs=1000),
        log=lambda m: None)
  return data, model


def _plain(trained, data_dir, split, batch_size=64):
  """The inference loop before the pipeline (trained_model.predict at the CLI round)."""
  import tensorflow as tf
  from inat_tf import records
  from inat_tf import schema

  def views(example):
    return trained.eval_views(example[schema.ENCODED]), example[schema.IMAGE_ID]
  dataset = (records.examples(data_dir, split, [schema.ENCODED, schema.IMAGE_ID])
             .map(views, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
             .prefetch(tf.data.AUTOTUNE))

  @tf.function
  def top_k(images):
    shape = tf.shape(images)
    logits = trained.model(tf.reshape(images, tf.concat([[-1], shape[2:]], 0)), training=False)
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
    probabilities = tf.reduce_mean(tf.reshape(probabilities, [shape[0], shape[1], -1]), axis=1)
    return tf.math.top_k(probabilities, 5)
  ids, indices = [], []
  for images, batch_ids in dataset:
    top = top_k(images)
    ids.append(batch_ids.numpy())
    indices.append(top.indices.numpy())
  return np.concatenate(ids), np.concatenate(indices)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", required=True)
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--split", default="val")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  data_dir, model_dir = _prepare(args.work_dir, args.image_size)
  from inat_tf import answers
  from inat_tf import records
  from inat_tf import rollup
  from inat_tf import taxonomy
  from inat_tf import trained_model
  trained = trained_model.load(model_dir)
  tree = taxonomy.from_label_map(trained.label_map)
  top_node = tree.ancestors[0, tree.num_ranks - 1]
  allowed = tree.members(top_node)
  variants = {
      "plain softmax + top-5 (before)": lambda: _plain(trained, data_dir, args.split),
      "pipeline, argmax": lambda: trained_model.predict(
          trained, data_dir, args.split, command="bench",
          answer_config=answers.AnswerConfig(rule=rollup.ArgmaxRule())),
      "pipeline, iNat's rule": lambda: trained_model.predict(
          trained, data_dir, args.split, command="bench",
          answer_config=answers.AnswerConfig(rule=rollup.InatRule())),
      f"pipeline, risk rule, restricted to {tree.node_names[top_node]}":
          lambda: trained_model.predict(
              trained, data_dir, args.split, command="bench", allowed=allowed,
              answer_config=answers.AnswerConfig(rule=rollup.RiskRule(0.5))),
  }
  images = records.split_examples(data_dir, args.split)
  for run in variants.values():  # warm: traces, file cache
    run()
  best = {name: float("inf") for name in variants}
  results = {}
  for _ in range(args.repeats):
    for name, run in variants.items():
      start = time.perf_counter()
      results[name] = run()
      best[name] = min(best[name], time.perf_counter() - start)
  plain_ids, plain_top = results["plain softmax + top-5 (before)"]
  piped = results["pipeline, argmax"]
  order = np.argsort(plain_ids)
  same = (np.array_equal(plain_ids[order], np.sort(piped.image_ids)) and np.array_equal(
      plain_top[order], piped.top_indices[np.argsort(piped.image_ids)]))
  base = best["plain softmax + top-5 (before)"]
  print(f"{images:,} {args.split} images, {trained.label_map.num_classes} classes, "
        f"{tree.num_ranks} ranks, {trained.model_name} {trained.image_size} px; "
        f"best of {args.repeats}")
  print(f"{'variant':<55} {'seconds':>8} {'images/s':>9} {'x plain':>8}")
  for name, seconds in best.items():
    print(f"{name:<55} {seconds:8.2f} {images / seconds:9.1f} {seconds / base:8.2f}")
  print(f"top-5 of the pipeline (argmax) == plain top-5 on every image: {same}")
  print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
  main()
