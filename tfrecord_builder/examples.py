"""One table row + its checked JPEG → one serialized tf.train.Example (see inat_tf.schema)."""

import math

from inat_tf import schema
from tfrecord_builder import columns
from tfrecord_builder import image_check


def _clip01(value):
  return min(1.0, max(0.0, value))


def _box_lists(table, row, checked, label_map):
  """Boxes normalised by the JSON's size and clipped to [0, 1] (a few published boxes overhang);
  turned upright with the pixels when the JSON's size (hence its boxes) is the stored frame."""
  lists = {key: [] for key in schema.BOX_LISTS}
  boxes = table.boxes
  span = boxes.of_row(row)
  if span.start == span.stop:
    return lists
  width, height = float(table.widths[row]), float(table.heights[row])
  for (x, y, w, h), category_id, area in zip(boxes.xywh[span].tolist(),
                                             boxes.category_ids[span].tolist(),
                                             boxes.areas[span].tolist()):
    box = (x / width, y / height, (x + w) / width, (y + h) / height)
    if checked.json_frame == "stored":
      box = image_check.orient_box(box, checked.orientation)
    index = label_map.index_of(category_id)
    lists[schema.BBOX_XMIN].append(_clip01(box[0]))
    lists[schema.BBOX_YMIN].append(_clip01(box[1]))
    lists[schema.BBOX_XMAX].append(_clip01(box[2]))
    lists[schema.BBOX_YMAX].append(_clip01(box[3]))
    lists[schema.OBJECT_LABEL].append(index)
    lists[schema.OBJECT_SUPERCATEGORY].append(label_map.supercategories[index])
    lists[schema.OBJECT_AREA].append(area)
  return lists


def _location_features(table, row):
  features = {}
  latitude = float(table.latitudes[row])
  if not math.isnan(latitude):
    features.update({schema.LATITUDE: latitude, schema.LONGITUDE: float(table.longitudes[row]),
                     schema.HAS_COORDINATES: 1})
  uncertainty = float(table.uncertainties[row])
  if not math.isnan(uncertainty):
    features[schema.LOCATION_UNCERTAINTY] = uncertainty
  date = table.dates[row]
  if date:
    features.update({schema.DATE: date, schema.HAS_DATE: 1})
  date_c = float(table.dates_c[row])
  if not math.isnan(date_c):
    features[schema.DATE_C] = date_c
  user_id = int(table.user_ids[row])
  if user_id != columns.MISSING_INT:
    features[schema.USER_ID] = user_id
  return features


def serialize(table, row, checked, label_map):
  """Bytes of the Example for row `row` of a columns.SplitTable with `checked` image bytes."""
  image_id = int(table.ids[row])
  scalars = {
      schema.ENCODED: checked.jpeg,
      schema.FORMAT: b"jpeg",
      schema.HEIGHT: checked.height,
      schema.WIDTH: checked.width,
      schema.IMAGE_ID: image_id,
      schema.SOURCE_ID: str(image_id),
      schema.FILENAME: table.names[row],
  }
  category_id = int(table.category_ids[row])
  if category_id != -1:
    index = label_map.index_of(category_id)
    supercategory = label_map.supercategories[index]
    scalars.update({
        schema.LABEL: index,
        schema.CATEGORY_ID: category_id,
        schema.CLASS_TEXT: label_map.names[index],
        schema.SUPERCATEGORY: supercategory,
        schema.SUPERCATEGORY_TEXT: label_map.supercategory_names[supercategory],
    })
  scalars.update(_location_features(table, row))
  return schema.serialize_example(scalars, _box_lists(table, row, checked, label_map))
