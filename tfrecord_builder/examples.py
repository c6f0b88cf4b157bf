"""One image record + its checked JPEG → one serialized tf.train.Example (see inat_tf.schema)."""

from inat_tf import schema


def _clip01(value):
  return min(1.0, max(0.0, value))


def _box_lists(record, label_map):
  """Boxes normalised by the JSON's size and clipped to [0, 1] (a few published boxes overhang)."""
  lists = {key: [] for key in schema.BOX_LISTS}
  for box in record.boxes:
    index = label_map.index_of(box.category_id)
    lists[schema.BBOX_XMIN].append(_clip01(box.x / record.width))
    lists[schema.BBOX_YMIN].append(_clip01(box.y / record.height))
    lists[schema.BBOX_XMAX].append(_clip01((box.x + box.width) / record.width))
    lists[schema.BBOX_YMAX].append(_clip01((box.y + box.height) / record.height))
    lists[schema.OBJECT_LABEL].append(index)
    lists[schema.OBJECT_SUPERCATEGORY].append(label_map.supercategories[index])
    lists[schema.OBJECT_AREA].append(box.area)
  return lists


def _location_features(location):
  if location is None:
    return {}
  features = {}
  if location.latitude is not None:
    features.update({schema.LATITUDE: location.latitude, schema.LONGITUDE: location.longitude,
                     schema.HAS_COORDINATES: 1})
  if location.uncertainty is not None:
    features[schema.LOCATION_UNCERTAINTY] = location.uncertainty
  if location.date is not None:
    features.update({schema.DATE: location.date, schema.HAS_DATE: 1})
  if location.date_c is not None:
    features[schema.DATE_C] = location.date_c
  if location.user_id is not None:
    features[schema.USER_ID] = location.user_id
  return features


def serialize(record, checked, label_map):
  """Bytes of the Example for `record` (an annotations.ImageRecord) with `checked` image bytes."""
  scalars = {
      schema.ENCODED: checked.jpeg,
      schema.FORMAT: b"jpeg",
      schema.HEIGHT: checked.height,
      schema.WIDTH: checked.width,
      schema.IMAGE_ID: record.image_id,
      schema.SOURCE_ID: str(record.image_id),
      schema.FILENAME: record.file_name,
  }
  if record.category_id != -1:
    index = label_map.index_of(record.category_id)
    supercategory = label_map.supercategories[index]
    scalars.update({
        schema.LABEL: index,
        schema.CATEGORY_ID: record.category_id,
        schema.CLASS_TEXT: label_map.names[index],
        schema.SUPERCATEGORY: supercategory,
        schema.SUPERCATEGORY_TEXT: label_map.supercategory_names[supercategory],
    })
  scalars.update(_location_features(record.location))
  return schema.serialize_example(scalars, _box_lists(record, label_map))
