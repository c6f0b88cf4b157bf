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

import importlib.util
import sys

# keras-hub and pycocotools come with the `detection` extra: without it, say how to get it
# instead of failing on an import deep inside a module.
_MISSING = [name for name in ("keras_hub", "pycocotools") if importlib.util.find_spec(name) is None]
if _MISSING:
  _MESSAGE = (f"detection needs {' and '.join(_MISSING)}, installed with the detection extra: "
              f"pip install -e \".[detection]\" (or pip install \"inat-tf[detection]\")")
  if sys.argv and sys.argv[0].rsplit("/", 1)[-1].startswith("inat-detect"):
    sys.exit(f"{sys.argv[0].rsplit('/', 1)[-1]}: {_MESSAGE}")
  raise ImportError(_MESSAGE)
