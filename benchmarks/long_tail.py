"""Long-tail remedies side by side on a steeply imbalanced generated set (issue 15's evidence).

  python benchmarks/long_tail.py --work_dir /tmp/inat-long-tail

1. inat-make-sample: --num_species species whose train counts fall geometrically from
   --max_train to --max_train / --imbalance (200:1 by default: 200 images down to 1), and a balanced
   held-out val split (--val_per_species images of every species), built with inat-build.
2. val is cut per species into a tune half and a report half (long_tail.stratified_halves, seed 0).
   Every number printed is on the report half; the tune half only chooses tau (inat-adjust).
3. MobileNet V1 from scratch, the same steps, schedule and seed for every training run:
     cross_entropy     the baseline
     class_balanced    --loss class_balanced (Cui et al. 2019)
     logit_adjusted    --loss logit_adjusted, tau 1 (Menon et al. 2021). balanced_softmax (Ren et
                       al. 2020) is the same loss at tau 1, so it is not trained twice.
     drw               --loss class_balanced --deferred_start_epoch (2/3 of the run; Cao et al.)
     drs               --sampling balanced --deferred_start_epoch (same point)
   and, on the cross-entropy model without retraining its backbone (inat-adjust, then loaded the
   way inat-eval / inat-predict / inat-export load it):
     posthoc_la        logit adjustment, tau chosen on the tune half (Menon et al. 2021)
     tau_norm          tau-normalised classifier, tau chosen on the tune half (Kang et al. 2020)
     crt               classifier re-trained with class-balanced sampling (Kang et al. 2020)
   Each model is the final one (no choice of checkpoint on val).
4. Prints overall top-1 / top-5 and many / medium / few-shot top-1 (> 100, 20-100, < 20 training
   images), each with its gain over cross-entropy in points.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRAINED = ("cross_entropy", "class_balanced", "logit_adjusted", "drw", "drs")
POST_HOC = {"posthoc_la": "logit_adjustment", "tau_norm": "tau_norm", "crt": "crt"}


def _data(args):
  """The generated download and its build, by the commands themselves (reused if present)."""
  data_dir = os.path.join(args.work_dir, "data")
  if os.path.exists(os.path.join(data_dir, "manifest.json")):
    return data_dir
  raw = os.path.join(args.work_dir, "raw")
  bin_dir = os.path.dirname(sys.executable)
  for command in (
      [os.path.join(bin_dir, "inat-make-sample"), f"--output_dir={raw}",
       f"--num_species={args.num_species}", f"--max_train_per_species={args.max_train}",
       f"--min_train_per_species={max(1, round(args.max_train / args.imbalance))}",
       f"--val_per_species={args.val_per_species}", f"--max_side={args.max_side}",
       f"--seed={args.seed}", "--noquirky_images"],
      [os.path.join(bin_dir, "inat-build"), f"--raw_dir={raw}", f"--data_dir={data_dir}",
       "--examples_per_shard=1000"]):
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
  return data_dir


def _train(args, data_dir, name):
  from inat_tf import train
  model_dir = os.path.join(args.work_dir, f"{name}-seed{args.train_seed}")
  shutil.rmtree(model_dir, ignore_errors=True)
  remedy = {
      "cross_entropy": {}, "class_balanced": {"loss": "class_balanced"},
      "logit_adjusted": {"loss": "logit_adjusted"},
      "drw": {"loss": "class_balanced", "deferred_start_epoch": args.epochs * 2 / 3},
      "drs": {"sampling": "balanced", "deferred_start_epoch": args.epochs * 2 / 3},
  }[name]
  config = train.TrainConfig(
      data_dir=data_dir, model_dir=model_dir, model="mobilenet_v1", image_size=args.image_size,
      batch_size=args.batch_size, epochs=args.epochs, weights="none", optimizer="rmsprop",
      learning_rate=args.learning_rate, lr_schedule="cosine", warmup_epochs=1, bn_momentum=0.9,
      eval_every_epochs=1e9, log_steps=10 ** 9, checkpoint_steps=10 ** 9, seed=args.train_seed,
      **remedy)
  train.train(config, log=lambda message: None)
  return model_dir


def _post_hoc(args, data_dir, ce_dir, name):
  from inat_tf import adjust
  model_dir = os.path.join(args.work_dir, f"{name}-seed{args.train_seed}")
  shutil.rmtree(model_dir, ignore_errors=True)
  shutil.copytree(ce_dir, model_dir)
  result = adjust.adjust(adjust.AdjustConfig(
      data_dir=data_dir, model_dir=model_dir, method=POST_HOC[name], which="final",
      seed=0, crt_epochs=args.crt_epochs), log=lambda message: None)
  return model_dir, result["adjustment"]


def _report_half_scores(data_dir, model_dir):
  """Scores on val's report half, through the loader inat-eval / predict / export use."""
  import numpy as np
  from inat_tf import evaluate
  from inat_tf import long_tail
  from inat_tf import trained_model
  trained = trained_model.load(model_dir, "final")
  predictions = trained_model.predict(trained, data_dir, "val")
  keep = ~long_tail.stratified_halves(predictions.labels, predictions.image_ids, 0)
  predictions = predictions.subset(keep)
  report = evaluate.summarize(predictions, trained.label_map)
  return {"top1": report["top1"], "top5": report["top5"], "images": int(np.sum(keep)),
          **{b: report["shots"][b]["top1"] for b in long_tail.BUCKETS}}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", required=True)
  parser.add_argument("--num_species", type=int, default=60)
  parser.add_argument("--max_train", type=int, default=200)
  parser.add_argument("--imbalance", type=float, default=200)
  parser.add_argument("--val_per_species", type=int, default=20)
  parser.add_argument("--max_side", type=int, default=64)
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--epochs", type=float, default=30)
  parser.add_argument("--learning_rate", type=float, default=0.05,
                      help="per 32 images (inat-train's convention)")
  parser.add_argument("--crt_epochs", type=float, default=10)
  parser.add_argument("--seed", type=int, default=0, help="of the generated data")
  parser.add_argument("--train_seed", type=int, default=0,
                      help="of initialisation and input order (all runs share it)")
  parser.add_argument("--methods", default=",".join(TRAINED + tuple(POST_HOC)))
  args = parser.parse_args()
  methods = args.methods.split(",")
  os.makedirs(args.work_dir, exist_ok=True)
  data_dir = _data(args)

  from inat_tf import label_map as label_map_lib
  from inat_tf import long_tail
  counts = label_map_lib.LabelMap.load(data_dir).train_counts
  buckets = long_tail.shot_buckets(counts)
  print(f"settings: {vars(args)}")
  print(f"train: {sum(counts)} images, {len(counts)} species, {max(counts)}:{min(counts)} "
        f"imbalance; species per bucket: " + ", ".join(
            f"{b} {int((buckets == b).sum())}" for b in long_tail.BUCKETS), flush=True)

  rows, seconds = {}, {}
  ce_dir = os.path.join(args.work_dir, f"cross_entropy-seed{args.train_seed}")
  for name in methods:
    start = time.monotonic()
    if name in TRAINED:
      model_dir, label = _train(args, data_dir, name), name
    else:
      model_dir, adjustment = _post_hoc(args, data_dir, ce_dir, name)
      label = f"CE + {adjustment.describe()}"
    seconds[name] = time.monotonic() - start
    rows[name] = (label, _report_half_scores(data_dir, model_dir))
    scores = rows[name][1]
    print(f"  {label}: top-1 {100 * scores['top1']:.2f}% ({seconds[name]:.0f} s)", flush=True)

  keys = ("top1", "top5") + long_tail.BUCKETS
  base = rows.get("cross_entropy", (None, None))[1]
  images = next(iter(rows.values()))[1]["images"]
  print(f"\nval report half: {images} images (held out from every choice); top-1 per bucket is "
        f"the mean over its species; (+x) = points over cross-entropy")
  header = f"{'method':16}" + "".join(f"{k:>14}" for k in keys)
  print(header + "\n" + "-" * len(header))
  for name, (label, scores) in rows.items():
    cells = []
    for k in keys:
      if scores[k] is None:  # a bucket without species
        cells.append("-")
        continue
      value = 100 * scores[k]
      gain = f" ({value - 100 * base[k]:+.1f})" if base and name != "cross_entropy" else ""
      cells.append(f"{value:.1f}{gain}")
    print(f"{name:16}" + "".join(f"{c:>14}" for c in cells))
  print("\n" + "\n".join(f"{name}: {label}" for name, (label, _) in rows.items()
                         if name in POST_HOC))
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"\nwall time per method: " + ", ".join(f"{n} {s:.0f} s" for n, s in seconds.items()) +
        f"; peak RSS {peak:.0f} MB")


if __name__ == "__main__":
  main()
