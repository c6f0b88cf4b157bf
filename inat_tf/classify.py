"""`inat-classify`: which species are in my photos?

  inat-classify PHOTO_OR_FOLDER... --model_dir M [--top_k 5] [--output_csv F] [--output_json F]
  inat-classify photos/ --model_dir M --geo_dir G                       # place from each EXIF
  inat-classify a.jpg --model_dir M --geo_dir G --latitude 37.77 --longitude -122.42 \\
                --date 2017-06-01                                      # place given

The top-k species per photo with their scientific names (and common names where the label map
has them: iNat2021 publishes `common_name`, iNat2017 does not) and probabilities, as a table on
the terminal and optionally as CSV and JSON. Folders are searched recursively for .jpg, .jpeg,
.png, .gif and .bmp files, in sorted order.

Each photo goes through the same graph as the exported SavedModel (inat_tf.export.serving_module:
the same decoding, EXIF orientation of JPEGs, central crop and resize), so a photo gets the
answer serving_default (or serving_with_place) would give. With --geo_dir, the
place is --latitude/--longitude and --date where given, otherwise the photo's own EXIF GPS
position and capture date (DateTimeOriginal, else DateTime) where present; each photo's line says
which it used. A photo with no usable place gets the image-only answer. Unreadable files are
reported and skipped; the others are still classified.
"""

import csv
import dataclasses
import io
import json
import math
import os
import sys
import time

import tensorflow as tf
from PIL import ExifTags
from PIL import Image

from inat_tf import cli
from inat_tf import progress
from inat_tf import records
from inat_tf import run_common
from inat_tf import trained_model
from inat_tf.geo import encoding
from inat_tf.commands.classify import ClassifyConfig  # pylint: disable=unused-import
from inat_tf.errors import ClassifyError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
_GPS_LATITUDE_REF, _GPS_LATITUDE, _GPS_LONGITUDE_REF, _GPS_LONGITUDE = 1, 2, 3, 4
_DATE_TIME_ORIGINAL, _DATE_TIME = 36867, 306


@dataclasses.dataclass(frozen=True)
class Place:
  """Where and when the photos were taken, as given by flags; None / "" = not given (then each
  photo's EXIF is read)."""
  latitude: float = None   # degrees, [-90, 90]
  longitude: float = None  # degrees, [-180, 180]
  date: str = ""           # YYYY-MM-DD


def photo_paths(arguments):
  """Files named, and image files under folders named (recursive, sorted); ClassifyError for a
  path that does not exist or a folder without images."""
  paths = []
  for argument in arguments:
    if tf.io.gfile.isdir(argument):
      found = sorted(os.path.join(root, name) for root, _, names in tf.io.gfile.walk(argument)
                     for name in names if name.lower().endswith(EXTENSIONS))
      if not found:
        raise ClassifyError(f"{argument}: no {', '.join(EXTENSIONS)} files in this folder")
      paths += found
    elif tf.io.gfile.exists(argument):
      paths.append(argument)
    else:
      raise ClassifyError(f"{argument}: no such file or folder")
  return paths


def _degrees(value, reference, negative):
  """EXIF GPS (degrees, minutes, seconds) rationals and N/S/E/W reference → signed degrees."""
  degrees, minutes, seconds = (float(v) for v in value)
  result = degrees + minutes / 60 + seconds / 3600
  return -result if str(reference).strip().upper() == negative else result


def exif_place(data):
  """(latitude, longitude, date) from a photo's EXIF (GPS IFD; DateTimeOriginal, else DateTime),
  each None when absent or unreadable. Pillow's getexif; never raises for a bad photo."""
  try:
    exif = Image.open(io.BytesIO(data)).getexif()
  except Exception:  # pylint: disable=broad-except  (any unreadable photo has no EXIF to use)
    return None, None, None
  latitude = longitude = None
  try:
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    if _GPS_LATITUDE in gps and _GPS_LONGITUDE in gps:
      latitude = _degrees(gps[_GPS_LATITUDE], gps.get(_GPS_LATITUDE_REF, "N"), "S")
      longitude = _degrees(gps[_GPS_LONGITUDE], gps.get(_GPS_LONGITUDE_REF, "E"), "W")
      if not (math.isfinite(latitude) and math.isfinite(longitude)):
        latitude = longitude = None
  except (TypeError, ValueError, ZeroDivisionError):
    latitude = longitude = None
  date = None
  try:
    stamp = exif.get_ifd(ExifTags.IFD.Exif).get(_DATE_TIME_ORIGINAL) or exif.get(_DATE_TIME)
    if isinstance(stamp, str) and len(stamp) >= 10:
      date = stamp[:10].replace(":", "-")  # EXIF writes "YYYY:MM:DD HH:MM:SS"
  except (TypeError, ValueError):
    date = None
  return latitude, longitude, date


def _place_for(data, given):
  """(latitude, longitude, date, source words) for one photo: flags first, then EXIF."""
  exif_latitude, exif_longitude, exif_date = exif_place(data)
  if given.latitude is not None:
    latitude, longitude, position = given.latitude, given.longitude, "position from flags"
  elif exif_latitude is not None:
    latitude, longitude, position = exif_latitude, exif_longitude, "position from EXIF GPS"
  else:
    latitude, longitude, position = None, None, "no position"
  if given.date:
    date, when = given.date, "date from flags"
  elif exif_date:
    date, when = exif_date, "date from EXIF"
  else:
    date, when = None, "no date"
  return latitude, longitude, date, f"{position}, {when}"


def _common_names(model_dir, num_classes):
  """Common names from the model dir's label_map.json where its classes carry `common_name`."""
  document = run_common.read_json(os.path.join(model_dir, records.LABEL_MAP))
  classes = sorted(document["classes"], key=lambda c: c["index"])
  names = [c.get("common_name") or "" for c in classes]
  return names if len(names) == num_classes else [""] * num_classes


def classify(paths, model_dir, *, geo_dir="", given=Place(), top_k=5, which="best"):
  """Classifies photos; returns (results, skipped). given: a Place from flags, else EXIF.

  results: [{"photo", "place": {...} or None, "predictions": [{"rank", "category_id", "name",
  "common_name", "probability"}]}]; skipped: [{"photo", "reason"}].
  """
  from inat_tf import export  # pylint: disable=g-import-not-at-top
  from inat_tf.geo import prior as prior_lib  # pylint: disable=g-import-not-at-top
  latitude, longitude, date = given.latitude, given.longitude, given.date
  if (latitude is None) != (longitude is None):
    raise ClassifyError("Give --latitude and --longitude together")
  if (latitude is not None or date) and not geo_dir:
    raise ClassifyError("--latitude, --longitude and --date are used by a location prior: "
                        "give --geo_dir (inat-train-geo) too")
  if latitude is not None and not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
    raise ClassifyError(f"--latitude {latitude} --longitude {longitude}: expected degrees in "
                        f"[-90, 90] and [-180, 180]")
  if date and math.isnan(float(encoding.date_fraction([date]).numpy()[0])):
    raise ClassifyError(f"--date {date!r}: expected a real date as YYYY-MM-DD")
  trained = trained_model.load(model_dir, which)
  prior = prior_lib.load(geo_dir) if geo_dir else None
  if prior is not None:
    prior.check_matches(trained.label_map, model_dir)
  module = export.serving_module(trained, top_k, prior)
  common = _common_names(model_dir, trained.label_map.num_classes)
  index_of = {cid: i for i, cid in enumerate(trained.label_map.category_ids)}
  results, skipped = [], []
  for path in paths:
    try:
      with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    except tf.errors.OpError as e:
      skipped.append({"photo": path, "reason": f"cannot read: {e.message}"})
      continue
    place = None
    # No decode error reaches here: the serving graph decodes in a tf.data pipeline with
    # ignore_errors and marks an item it cannot decode (or crop) valid = false (inat_tf.export).
    if prior is None:
      outputs = module.from_bytes(tf.constant([data]))
    else:
      lat, lon, when, source = _place_for(data, given)
      outputs = module.from_bytes_and_place(
          tf.constant([data]), tf.constant([math.nan if lat is None else lat], tf.float32),
          tf.constant([math.nan if lon is None else lon], tf.float32),
          tf.constant([when or ""]))
      used = bool(outputs["used_place"].numpy()[0])
      place = {"latitude": lat, "longitude": lon, "date": when, "source": source,
               "used": used}
    if not bool(outputs["valid"].numpy()[0]):
      skipped.append({"photo": path, "reason": "not a readable JPEG, PNG, GIF or BMP image"})
      continue
    predictions = []
    for rank, (cid, name, score) in enumerate(zip(
        outputs["category_ids"].numpy()[0].tolist(), outputs["class_names"].numpy()[0],
        outputs["scores"].numpy()[0].tolist()), start=1):
      predictions.append({"rank": rank, "category_id": cid, "name": name.decode("utf-8"),
                          "common_name": common[index_of[cid]], "probability": score})
    results.append({"photo": path, "place": place, "predictions": predictions})
  return results, skipped


def place_words(place):
  if place is None:
    return "image only (no --geo_dir)"
  if not place["used"]:
    return f"image only ({place['source']})"
  return (f"prior at {place['latitude']:.4f}, {place['longitude']:.4f}"
          + (f" on {place['date']}" if place["date"] else "") + f" ({place['source']})")


def table(results):
  """The terminal table: a row per photo and rank, then the place each photo's answer used."""
  header = ("Photo", "Rank", "Species", "Common name", "Probability")
  rows = [[(r["photo"] if p["rank"] == 1 else "", str(p["rank"]), p["name"], p["common_name"],
            f"{100 * p['probability']:.1f}%") for p in r["predictions"]] for r in results]
  if not any(row[3] for group in rows for row in group):  # iNat2017 has no common names
    header = header[:3] + header[4:]
    rows = [[row[:3] + row[4:] for row in group] for group in rows]
  widths = [max([len(h)] + [len(row[i]) for group in rows for row in group])
            for i, h in enumerate(header)]
  line = lambda row: "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
  out = [line(header), line(["-" * w for w in widths])]
  for result, group in zip(results, rows):
    out += [line(row) for row in group] + [f"  -> {place_words(result['place'])}"]
  return "\n".join(out)


def write_csv(path, results):
  fields = ["photo", "rank", "category_id", "name", "common_name", "probability", "latitude",
            "longitude", "date", "place_used", "place_source"]
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
  writer.writeheader()
  for result in results:
    place = result["place"] or {}
    for p in result["predictions"]:
      writer.writerow({**{k: p[k] for k in ("rank", "category_id", "name", "common_name",
                                            "probability")},
                       "photo": result["photo"], "latitude": place.get("latitude", ""),
                       "longitude": place.get("longitude", ""), "date": place.get("date", ""),
                       "place_used": place.get("used", False),
                       "place_source": place.get("source", "no --geo_dir")})
  _write_atomically(path, buffer.getvalue())


def write_json(path, results, skipped):
  _write_atomically(path, json.dumps({"photos": results, "skipped": skipped}, indent=1))


def _write_atomically(path, text):
  run_common.write_text(path, text)


def main(c, _, paths):
  """inat-classify's work once its flags are parsed (inat_tf/commands/classify.py)."""
  start = time.monotonic()
  photos = photo_paths(paths)
  cli.say(f"{len(photos):,} photo(s) with "
          f"{os.path.join(c.model_dir, trained_model.model_file(c.which))}"
          f"{' and the location prior ' + c.geo_dir if c.geo_dir else ''}, top {c.top_k}")
  results, skipped = classify(photos, c.model_dir, geo_dir=c.geo_dir,
                              given=Place(c.latitude, c.longitude, c.date), top_k=c.top_k,
                              which=c.which)
  for item in skipped:
    print(f"inat-classify: skipped {item['photo']}: {item['reason']}", file=sys.stderr)
  if results:
    print(table(results), flush=True)
  if c.output_csv:
    write_csv(c.output_csv, results)
  if c.output_json:
    write_json(c.output_json, results, skipped)
  if not results:
    sys.exit("inat-classify: no photo could be classified")
  cli.say(f"done: {len(results):,} classified, {len(skipped):,} skipped in "
          f"{progress.duration(time.monotonic() - start)}"
          + "".join(f"; {kind} in {path}" for kind, path in (("CSV", c.output_csv),
                                                             ("JSON", c.output_json)) if path))

