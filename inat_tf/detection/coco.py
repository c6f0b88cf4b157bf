"""Our records and detections as COCO JSON, and COCO metrics by pycocotools' COCOeval.

Ground truth comes from the records (boxes normalised to [0, 1] → pixels of the original image),
detections from the detector (already mapped back to the original image's pixels). Category ids
are the detector's output ids at its granularity (classes.py): JSON category_ids for species,
super-category indices for superclass, 1 for agnostic.
"""

import contextlib
import copy
import io

import numpy as np
import tensorflow as tf
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inat_tf import schema
from inat_tf.detection import classes as classes_lib
from inat_tf.detection import data

METRICS = ("AP", "AP50", "AP75", "AR1", "AR10")
_STATS_INDEX = {"AP": 0, "AP50": 1, "AP75": 2, "AR1": 6, "AR10": 7}  # COCOeval.stats order


def read_ground_truth(data_dir, split, single_instance=None):
  """[{image_id, height, width, boxes: [[ymin, xmin, ymax, xmax] in pixels], species: [label-map
  index], areas: [published area]}] for the images data.eval_dataset yields, in its order."""
  images = []
  for features in data.boxed_examples(data_dir, split, single_instance):
    height, width = int(features[schema.HEIGHT]), int(features[schema.WIDTH])
    normalised = np.stack([features[k].numpy() for k in data.BOX_KEYS], axis=-1)
    images.append({"image_id": int(features[schema.IMAGE_ID]), "height": height, "width": width,
                   "boxes": (normalised * [height, width, height, width]).tolist(),
                   "species": features[schema.OBJECT_LABEL].numpy().tolist(),
                   "areas": features[schema.OBJECT_AREA].numpy().tolist()})
  return images


def _xywh(box):
  ymin, xmin, ymax, xmax = (float(v) for v in box)
  return [xmin, ymin, xmax - xmin, ymax - ymin]


def ground_truth_json(images, classes):
  """COCO ground-truth dataset dict of `images` (read_ground_truth) at `classes`' granularity."""
  annotations = []
  for image in images:
    for box, species, area in zip(image["boxes"], image["species"], image["areas"]):
      k = classes.species_to_class[species]
      if k < 0:
        raise ValueError(f"image {image['image_id']}: a box of label-map index {species}, which "
                         f"is in none of the nine boxed super-categories")
      xywh = _xywh(box)
      annotations.append({"id": len(annotations) + 1, "image_id": image["image_id"],
                          "category_id": classes.ids[k], "bbox": xywh, "iscrowd": 0,
                          "area": area if area > 0 else xywh[2] * xywh[3]})
  return {"images": [{"id": i["image_id"], "height": i["height"], "width": i["width"]}
                     for i in images],
          "categories": [{"id": cid, "name": name, "supercategory": sc}
                         for cid, name, sc in zip(classes.ids, classes.names,
                                                  classes.supercategories)],
          "annotations": annotations}


def results_json(detections, classes):
  """COCO results list from [{image_id, boxes (yxyx pixels), scores, classes (detector index)}]."""
  return [{"image_id": d["image_id"], "category_id": classes.ids[int(k)], "bbox": _xywh(box),
           "score": float(score)}
          for d in detections for box, score, k in zip(d["boxes"], d["scores"], d["classes"])]


def convert_results(results, source, target, iou_threshold=0.5):
  """Re-labels COCO results of a `source`-granularity detector as `target` classes (Table 6:
  a species detector scored at super-class or agnostic level).

  Per-class NMS may keep several species on one box; once they share a coarser label they are
  duplicates (false positives at that level), so they are suppressed again per image and label.
  """
  order = classes_lib.GRANULARITIES
  if order.index(target.granularity) <= order.index(source.granularity):
    raise ValueError(f"can only coarsen: {source.granularity} → {target.granularity}")
  supercategory_of = dict(zip(source.ids, source.supercategories))
  target_of_supercategory = dict(zip(target.supercategories, target.ids))
  groups = {}
  for r in results:
    label = (target.ids[0] if target.granularity == "agnostic"
             else target_of_supercategory[supercategory_of[r["category_id"]]])
    groups.setdefault((r["image_id"], label), []).append({**r, "category_id": label})
  converted = []
  for group in groups.values():
    x, y, w, h = np.array([r["bbox"] for r in group], np.float32).T
    keep = tf.image.non_max_suppression(
        np.stack([y, x, y + h, x + w], axis=1), [r["score"] for r in group],
        max_output_size=len(group), iou_threshold=iou_threshold)
    converted.extend(group[i] for i in keep.numpy())
  return converted


def score(ground_truth, results, category_ids=None, image_ids=None):
  """{metric: value} by COCOeval (bbox), optionally restricted to categories and images.

  A metric with no ground truth in the restriction is None.
  """
  with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
    # Copies: COCO.loadRes and COCOeval write fields (area, id, ignore, ...) into what they get.
    gt = COCO()
    gt.dataset = copy.deepcopy(ground_truth)
    gt.createIndex()
    if not results:  # loadRes fails on an empty list; nothing detected scores 0
      has_gt = bool(gt.getAnnIds(imgIds=image_ids or [], catIds=category_ids or []))
      return {m: 0.0 if has_gt else None for m in METRICS}
    evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), "bbox")
    if category_ids is not None:
      evaluator.params.catIds = list(category_ids)
    if image_ids is not None:
      evaluator.params.imgIds = list(image_ids)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  return {m: (None if evaluator.stats[i] < 0 else float(evaluator.stats[i]))
          for m, i in _STATS_INDEX.items()}


def table(ground_truth, results, classes, images, species_supercategory):
  """Rows "Overall" and one per super-category with ground truth: {"images": n, metric: value}.

  At species and superclass granularity a super-category's row keeps its own classes, over all
  images (a bird species detected on an insect image stays a false positive), so Overall is the
  mean over the classes of all rows. Agnostic has one class: a row keeps its own images.
  species_supercategory[i]: super-category name of label-map index i.
  """
  image_supercategory = {image["image_id"]: {species_supercategory[s] for s in image["species"]}
                         for image in images}
  rows = {"Overall": {"images": len(images), **score(ground_truth, results)}}
  present = sorted({name for names in image_supercategory.values() for name in names})
  for name in present:
    image_ids = [i for i, names in image_supercategory.items() if name in names]
    if classes.granularity == "agnostic":
      restriction = {"category_ids": list(classes.ids), "image_ids": image_ids}
    else:
      restriction = {"category_ids": [cid for cid, sc in zip(classes.ids, classes.supercategories)
                                      if sc == name]}
    rows[name] = {"images": len(image_ids), **score(ground_truth, results, **restriction)}
  return rows

