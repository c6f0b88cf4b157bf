"""Calibration of the top-1 answer as plain data: a reliability diagram and the expected
calibration error.

Guo et al. 2017, "On Calibration of Modern Neural Networks" (ICML), Sec. 2: the top-1 confidence
(the highest class probability) of each image is put into M equal-width bins over [0, 1] (bin m
holds confidences in ((m-1)/M, m/M]; the first also holds 0), and

  ECE = sum over bins of |B_m| / n * |acc(B_m) - conf(B_m)|

with acc the bin's top-1 accuracy and conf its mean confidence; they use M = 15. Numpy only.
"""

import numpy as np

NUM_BINS = 15  # Guo et al. 2017's M
METHOD = (f"Guo et al. 2017: the top-1 confidence of each image in {NUM_BINS} equal-width bins "
          f"over [0, 1]; the gap between each bin's accuracy and mean confidence, averaged over "
          f"the bins weighted by their images")


def reliability(confidences, hits, num_bins=NUM_BINS):
  """{"method", "num_bins", "ece", "images", "bins": [{"low", "high", "images", "accuracy",
  "confidence"}]} (accuracy and confidence None for an empty bin; fractions in [0, 1]).

  confidences: float [N] top-1 probabilities in [0, 1]; hits: bool [N], top-1 right.
  Raises ValueError on a confidence outside [0, 1] (not a probability) or no images.
  """
  confidences = np.asarray(confidences, np.float64)
  hits = np.asarray(hits, bool)
  if confidences.shape != hits.shape or confidences.ndim != 1 or not len(confidences):
    raise ValueError(f"reliability: expected two [N] arrays with N > 0, got shapes "
                     f"{confidences.shape} and {hits.shape}")
  # float32 softmax sums may exceed 1 by a rounding step.
  if np.any(confidences < 0) or np.any(confidences > 1 + 1e-5) or np.isnan(confidences).any():
    raise ValueError(f"reliability: confidences must be probabilities in [0, 1], got range "
                     f"[{confidences.min()}, {confidences.max()}]")
  # Bin m holds ((m-1)/M, m/M]: ceil(c * M) - 1, with 0 in the first bin.
  which = np.clip(np.ceil(confidences * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
  images = np.bincount(which, minlength=num_bins)
  right = np.bincount(which, weights=hits, minlength=num_bins)
  summed = np.bincount(which, weights=np.minimum(confidences, 1.0), minlength=num_bins)
  bins, ece = [], 0.0
  for m in range(num_bins):
    n = int(images[m])
    accuracy = float(right[m] / n) if n else None
    confidence = float(summed[m] / n) if n else None
    if n:
      ece += n / len(confidences) * abs(accuracy - confidence)
    bins.append({"low": m / num_bins, "high": (m + 1) / num_bins, "images": n,
                 "accuracy": accuracy, "confidence": confidence})
  return {"method": METHOD, "num_bins": num_bins, "ece": float(ece),
          "images": int(len(confidences)), "bins": bins}
