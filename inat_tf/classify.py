"""`inat-classify`: which species are in my photos?

  inat-classify PHOTO_OR_FOLDER... --model_dir M [--top_k 5] [--output_csv F] [--output_json F]
  inat-classify photos/ --model_dir M --geo_dir G                       # place from each EXIF
  inat-classify a.jpg --model_dir M --geo_dir G --latitude 37.77 --longitude -122.42 \\
                --date 2017-06-01                                      # place given

Answer flags (inat_tf/answer_options.py): --rollup_rule (default inat: iNaturalist's published
roll-up; precision / risk use the calibration inat-eval stored beside the model), --taxon NAME,
--checklist FILE (restriction), --location_floor F and --captive (with --geo_dir). Under each
photo's table a line `answer: ...` says what the answer is and where it came from
(inat_tf.answers.explain: the roll-up step, the image's rank and score, the location factor,
the restriction, MSP and energy); the CSV and JSON carry taxon, taxon_rank, taxon_score, msp,
energy and the explanation.

The top-k species per photo with their scientific names (and common names where the label map
has them: iNat2021 publishes `common_name`, iNat2017 does not) and probabilities, as a table on
the terminal and optionally as CSV and JSON. Folders are searched recursively, in sorted order,
and every file in them is accounted for: classified, or listed as skipped with its reason (on the
terminal, as CSV rows with `skipped_reason`, and in the JSON's "skipped").

Formats: JPEG, PNG, GIF, BMP and WebP go to the model as they are (the serving graph decodes
them); TIFF, HEIC/HEIF (iPhones' default, through pillow-heif) and any other still-image format
Pillow reads are decoded by Pillow, turned upright by their EXIF orientation and sent as a
lossless PNG of the same pixels. A file is recognised by its first bytes, not its extension.

Each photo goes through the same graph as the exported SavedModel (inat_tf.export.serving_module:
the same decoding, EXIF orientation of JPEGs, central crop and resize), so a photo gets the
answer serving_default (or serving_with_place) would give. With --geo_dir, the
place is --latitude/--longitude and --date where given, otherwise the photo's own EXIF GPS
position and capture date (DateTimeOriginal, else DateTime) where present; each photo's line says
which it used. EXIF GPS of exactly (0, 0) is no position (a phone without a fix writes it, and
Android's photo picker zeroes it for privacy; exiftool and photo apps read it so), and the line
says so. A photo with no usable place gets the image-only answer.
"""

import csv
import dataclasses
import io
import json
import math
import os
import sys
import time

import numpy as np
import tensorflow as tf
from PIL import ExifTags
from PIL import Image
from PIL import ImageOps

from inat_tf import cli
from inat_tf import progress
from inat_tf import records
from inat_tf import run_common
from inat_tf import trained_model
from inat_tf.geo import encoding
from inat_tf.commands import classify as classify_command
from inat_tf.commands.classify import ClassifyConfig  # pylint: disable=unused-import
from inat_tf.errors import ClassifyError

# What the serving graph decodes itself (tf.io.decode_image); other formats go through Pillow.
GRAPH_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
NOT_AN_IMAGE = ("not an image file inat-classify reads (JPEG, PNG, GIF, BMP, WebP, TIFF, HEIC or "
                "another still-image format Pillow reads)")
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
  """Files named, and every file under folders named (recursive, sorted): each is classified or
  skipped with its reason later, none is passed over here. ClassifyError for a path that does not
  exist or a folder with no files at all."""
  paths = []
  for argument in arguments:
    if tf.io.gfile.isdir(argument):
      found = sorted(os.path.join(root, name) for root, _, names in tf.io.gfile.walk(argument)
                     for name in names)
      if not found:
        raise ClassifyError(f"{argument}: this folder holds no files")
      paths += found
    elif tf.io.gfile.exists(argument):
      paths.append(argument)
    else:
      raise ClassifyError(f"{argument}: no such file or folder")
  return paths


def sniff_format(head):
  """The image format of a file from its first 16 bytes: one of GRAPH_FORMATS, "TIFF", "HEIF",
  or None (unknown: Pillow may still read it). Signatures: JPEG SOI FF D8 FF; PNG's 8-byte
  signature; GIF87a/89a; BMP "BM"; WebP RIFF....WEBP; TIFF II*\0 / MM\0*; HEIF an ISO-BMFF
  `ftyp` box with a HEIF brand (ISO/IEC 23008-12)."""
  if head.startswith(b"\xff\xd8\xff"):
    return "JPEG"
  if head.startswith(b"\x89PNG\r\n\x1a\n"):
    return "PNG"
  if head[:6] in (b"GIF87a", b"GIF89a"):
    return "GIF"
  if head.startswith(b"BM"):
    return "BMP"
  if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
    return "WEBP"
  if head[:4] in (b"II*\0", b"MM\0*"):
    return "TIFF"
  if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"hevx", b"heim",
                                             b"heis", b"mif1", b"msf1"):
    return "HEIF"
  return None


def _open_with_pillow(data):
  """A Pillow image of `data`, HEIF included where pillow-heif is installed."""
  try:
    import pillow_heif  # pylint: disable=g-import-not-at-top  (HEIC: optional at import time)
    pillow_heif.register_heif_opener()
  except ImportError:
    pass
  return Image.open(io.BytesIO(data))


def model_bytes(data):
  """(bytes the serving graph decodes, None) for one file's content, or (None, reason).

  GRAPH_FORMATS pass unchanged. Anything else Pillow reads is decoded, turned upright by its EXIF
  orientation (as the builder and the serving graph do for JPEGs) and re-encoded as a lossless
  PNG of the same pixels, so the model sees what a JPEG of it would show, without a second lossy
  step."""
  if sniff_format(data[:16]) in GRAPH_FORMATS:
    return data, None
  try:
    image = _open_with_pillow(data)
    image = ImageOps.exif_transpose(image).convert("RGB")
  except Exception:  # pylint: disable=broad-except  (any unreadable file is skipped with a reason)
    return None, NOT_AN_IMAGE
  out = io.BytesIO()
  image.save(out, "PNG", compress_level=1)  # lossless; level 1: speed over size, never stored
  return out.getvalue(), None


def _degrees(value, reference, negative):
  """EXIF GPS (degrees, minutes, seconds) rationals and N/S/E/W reference → signed degrees."""
  degrees, minutes, seconds = (float(v) for v in value)
  result = degrees + minutes / 60 + seconds / 3600
  return -result if str(reference).strip().upper() == negative else result


# exif_place's latitude and longitude for EXIF GPS of exactly (0, 0), which is no position.
NULL_ISLAND = "0, 0"


def exif_place(data):
  """(latitude, longitude, date) from a photo's EXIF (GPS IFD; DateTimeOriginal, else DateTime),
  each None when absent or unreadable; latitude and longitude are both NULL_ISLAND for GPS of
  exactly (0, 0) (no position: phones without a fix write it, Android's photo picker zeroes it).
  Pillow's getexif (HEIC too, with pillow-heif); never raises for a bad photo."""
  try:
    exif = _open_with_pillow(data).getexif()
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
  if latitude == 0 and longitude == 0:  # "null island": no fix, or zeroed for privacy
    latitude = longitude = NULL_ISLAND
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
  elif exif_latitude == NULL_ISLAND:
    latitude, longitude, position = None, None, "no position (EXIF GPS 0, 0 means no fix)"
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


def _explained(outputs, taxonomy, restriction_words, config):
  """(answer dict, one-line explanation) of item 0 of the serving outputs (inat_tf.export)."""
  from inat_tf import answers  # pylint: disable=g-import-not-at-top
  row = {key: outputs[key].numpy() for key in ("taxon", "rank", "species", "vision_rank",
                                                "vision_score", "location_factor",
                                                "allowed_mass", "msp", "energy")}
  row["score"] = outputs["taxon_score"].numpy()
  row["species_score"] = outputs["scores"].numpy()[:, 0]
  row["used_place"] = outputs["used_place"].numpy() if "used_place" in outputs else \
      np.zeros(1, bool)
  taxon = int(row["taxon"][0])
  answer = {"taxon": outputs["taxon_name"].numpy()[0].decode("utf-8"),
            "taxon_rank": outputs["taxon_rank"].numpy()[0].decode("utf-8"),
            "taxon_score": float(row["score"][0]), "msp": float(row["msp"][0]),
            "energy": float(row["energy"][0]),
            "lineage": " > ".join(name for _, name in taxonomy.lineage(taxon)) if taxon >= 0
                       else ""}
  answer["explanation"] = answers.explain(row, 0, taxonomy, restriction=restriction_words,
                                          config=config)
  return answer


def classify(paths, model_dir, *, geo_dir="", given=Place(), top_k=5, which="best",
             options=None):
  """Classifies photos; returns (results, skipped). given: a Place from flags, else EXIF.

  options: the answer flags (answer_options.Options: roll-up rule, restriction, location floor,
  captive); a calibrated rule must have been stored by inat-eval.
  results: [{"photo", "place": {...} or None, "predictions": [{"rank", "category_id", "name",
  "common_name", "probability"}], "answer": {"taxon", "taxon_rank", "taxon_score", "msp",
  "energy", "lineage", "explanation"}}]; skipped: [{"photo", "reason"}].
  """
  from inat_tf import answer_options  # pylint: disable=g-import-not-at-top
  from inat_tf import answers  # pylint: disable=g-import-not-at-top
  options = options or answer_options.Options()
  from inat_tf import export  # pylint: disable=g-import-not-at-top
  from inat_tf.geo import prior as prior_lib  # pylint: disable=g-import-not-at-top
  latitude, longitude, date = given.latitude, given.longitude, given.date
  problem = classify_command.place_problem(latitude, longitude, date, geo_dir)
  if problem:  # refused before TensorFlow by inat-classify; here for calls from Python
    raise ClassifyError(problem)
  if date and math.isnan(float(encoding.date_fraction([date]).numpy()[0])):
    raise ClassifyError(f"--date {date!r}: expected a real date as YYYY-MM-DD")
  trained = trained_model.load(model_dir, which)
  prior = prior_lib.load(geo_dir) if geo_dir else None
  if prior is not None:
    prior.check_matches(trained.label_map, model_dir)
  tree = answer_options.taxonomy_of(trained)
  allowed, restriction_words = answer_options.restriction(options, tree, trained.label_map)
  allowed = tf.constant(np.ones(tree.num_classes, bool) if allowed is None else allowed)
  rule = answer_options.rule_for_model(options, trained, model_dir, which, command="inat-classify")
  config = answers.AnswerConfig(rule=rule, floor=options.floor)
  module = export.serving_module(trained, top_k, prior, answer_config=config)
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
    encoded, reason = model_bytes(data)
    if encoded is None:
      skipped.append({"photo": path, "reason": reason})
      continue
    place = None
    # No decode error reaches here: the serving graph decodes in a tf.data pipeline with
    # ignore_errors and marks an item it cannot decode (or crop) valid = false (inat_tf.export).
    if prior is None:
      outputs = module.from_bytes_masked(tf.constant([encoded]), allowed)
    else:
      lat, lon, when, source = _place_for(data, given)
      outputs = module.from_bytes_and_place_masked(
          tf.constant([encoded]), tf.constant([math.nan if lat is None else lat], tf.float32),
          tf.constant([math.nan if lon is None else lon], tf.float32),
          tf.constant([when or ""]), allowed, tf.constant([options.captive]))
      used = bool(outputs["used_place"].numpy()[0])
      if options.captive:
        source += ", not used: --captive"
      place = {"latitude": lat, "longitude": lon, "date": when, "source": source,
               "used": used}
    if not bool(outputs["valid"].numpy()[0]):
      skipped.append({"photo": path, "reason": "damaged: its image data does not decode"})
      continue
    predictions = []
    for rank, (cid, name, score) in enumerate(zip(
        outputs["category_ids"].numpy()[0].tolist(), outputs["class_names"].numpy()[0],
        outputs["scores"].numpy()[0].tolist()), start=1):
      if cid < 0:  # no species: a restriction with fewer than --top_k allowed
        break
      predictions.append({"rank": rank, "category_id": cid, "name": name.decode("utf-8"),
                          "common_name": common[index_of[cid]], "probability": score})
    results.append({"photo": path, "place": place, "predictions": predictions,
                    "answer": _explained(outputs, tree, restriction_words, config)})
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
    if result.get("answer"):
      out.append(f"  answer: {result['answer']['explanation']}")
  return "\n".join(out)


def write_csv(path, results, skipped=()):
  """One row per photo and rank, then one row per skipped file (its reason in skipped_reason,
  the other columns empty)."""
  fields = ["photo", "rank", "category_id", "name", "common_name", "probability", "latitude",
            "longitude", "date", "place_used", "place_source", "taxon", "taxon_rank",
            "taxon_score", "msp", "energy", "explanation", "skipped_reason"]
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
                       "place_source": place.get("source", "no --geo_dir"),
                       **{k: v for k, v in (result.get("answer") or {}).items()
                          if k in fields}})
  for item in skipped:
    writer.writerow({"photo": item["photo"], "skipped_reason": item["reason"]})
  _write_atomically(path, buffer.getvalue())


def write_json(path, results, skipped):
  _write_atomically(path, json.dumps({"photos": results, "skipped": skipped}, indent=1))


def _write_atomically(path, text):
  run_common.write_text(path, text)


def main(c, _, paths):
  """inat-classify's work once its flags are parsed (inat_tf/commands/classify.py)."""
  start = time.monotonic()
  photos = photo_paths(paths)
  cli.say(f"{cli.count(len(photos), 'photo')} with "
          f"{os.path.join(c.model_dir, trained_model.model_file(c.which))}"
          f"{' and the location prior ' + c.geo_dir if c.geo_dir else ''}, top {c.top_k}")
  from inat_tf import answer_options  # pylint: disable=g-import-not-at-top
  results, skipped = classify(photos, c.model_dir, geo_dir=c.geo_dir,
                              given=Place(c.latitude, c.longitude, c.date), top_k=c.top_k,
                              which=c.which, options=answer_options.Options.from_config(c))
  for item in skipped:
    print(f"inat-classify: skipped {item['photo']}: {item['reason']}", file=sys.stderr)
  if results:
    print(table(results), flush=True)
  if c.output_csv:
    write_csv(c.output_csv, results, skipped)
  if c.output_json:
    write_json(c.output_json, results, skipped)
  if not results:
    sys.exit("inat-classify: no photo could be classified")
  cli.say(f"done: {cli.count(len(results), 'photo')} classified, "
          f"{cli.count(len(skipped), 'file')} skipped in "
          f"{progress.duration(time.monotonic() - start)}"
          + "".join(f"; {kind} in {path}" for kind, path in (("CSV", c.output_csv),
                                                             ("JSON", c.output_json)) if path))

