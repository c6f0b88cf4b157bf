"""Detection: the paper's second system (Tables 5 and 6), on the boxes in our TFRecords.

A keras-hub RetinaNet (`keras_hub.models.RetinaNetObjectDetector`) on a feature pyramid tapped from
the networks of `models/` (ImageNet init through `models.build`), trained and scored with COCO
metrics (pycocotools) at one of three label granularities: species, superclass, agnostic.

Modules, in the order data flows:
  classes    the detector's classes at a granularity: ids, names, super-categories, mapping
  data       records -> (images in [0, 1], dense padded targets); aspect-keeping resize, flip
  backbones  a models/ network -> keras-hub FeaturePyramidBackbone (P3-P5, odd maps padded)
  decoder    per-class non-max suppression with a low score threshold (AP needs it)
  model      DetectorConfig (detector_config.json) -> RetinaNetObjectDetector; checkpoints
  train      `inat-detect-train`
  coco       records and detections <-> COCO ground truth / results; COCOeval metrics
  evaluate   `inat-detect-eval`: Table 5 per super-category, Table 6 cross-granularity
  export     `inat-detect-export`: SavedModel, image bytes -> boxes in pixels, ids, scores
"""
