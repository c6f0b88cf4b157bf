"""Per-class non-max suppression with a low score threshold, as keras-hub's prediction decoder.

keras-hub 0.32's default decoder (keras_hub.layers.NonMaxSuppression) keeps only scores >= 0.5
and suppresses across classes (one label per box, the arg-max). COCO AP integrates precision down
to low recall, so detections scoring 0.05-0.5 count, and with thousands of species the second-best
class of a box is often the right one: this decoder keeps, per class, boxes scoring >= 0.05 after
NMS (tf.image.combined_non_max_suppression), like the TF Object Detection API's post-processing.
"""

import keras
import tensorflow as tf


class PerClassNMS(keras.layers.Layer):
  """(decoded boxes [B, N, 4] yxyx, class logits [B, N, C]) → the keras-hub output dict:
  boxes [B, K, 4], confidence [B, K], labels [B, K] (class index), num_detections [B]; rows past
  num_detections are -1."""

  def __init__(self, bounding_box_format="yxyx", from_logits=True, iou_threshold=0.5,
               confidence_threshold=0.05, max_detections=100, pre_nms_top_k=1000, **kwargs):
    super().__init__(**kwargs)
    if bounding_box_format != "yxyx":
      raise ValueError(f"bounding_box_format={bounding_box_format!r}: expected 'yxyx'")
    self.bounding_box_format = bounding_box_format  # RetinaNetObjectDetector reads it
    self.from_logits = from_logits
    self.iou_threshold = iou_threshold
    self.confidence_threshold = confidence_threshold
    self.max_detections = max_detections
    self.pre_nms_top_k = pre_nms_top_k
    self.built = True

  def call(self, box_prediction, class_prediction, images=None):
    del images  # boxes are absolute pixels already
    scores = tf.cast(class_prediction, tf.float32)
    scores = tf.sigmoid(scores) if self.from_logits else scores
    boxes = tf.cast(box_prediction, tf.float32)
    # Only the best-scoring anchors go into NMS: its cost grows with anchors x classes.
    k = min(self.pre_nms_top_k, boxes.shape[1]) if boxes.shape[1] else self.pre_nms_top_k
    k = tf.minimum(k, tf.shape(boxes)[1])
    top = tf.math.top_k(tf.reduce_max(scores, axis=-1), k=k).indices
    boxes = tf.gather(boxes, top, batch_dims=1)
    scores = tf.gather(scores, top, batch_dims=1)
    result = tf.image.combined_non_max_suppression(
        boxes[:, :, tf.newaxis, :], scores, max_output_size_per_class=self.max_detections,
        max_total_size=self.max_detections, iou_threshold=self.iou_threshold,
        score_threshold=self.confidence_threshold, pad_per_class=False, clip_boxes=False)
    valid = tf.range(self.max_detections)[tf.newaxis, :] < result.valid_detections[:, tf.newaxis]
    return {"boxes": tf.where(valid[..., tf.newaxis], result.nmsed_boxes, -1.0),
            "confidence": tf.where(valid, result.nmsed_scores, -1.0),
            "labels": tf.where(valid, tf.cast(result.nmsed_classes, tf.int32), -1),
            "num_detections": result.valid_detections}

  def get_config(self):
    return {**super().get_config(), "bounding_box_format": self.bounding_box_format,
            "from_logits": self.from_logits, "iou_threshold": self.iou_threshold,
            "confidence_threshold": self.confidence_threshold,
            "max_detections": self.max_detections, "pre_nms_top_k": self.pre_nms_top_k}
