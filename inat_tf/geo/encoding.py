"""Where and when a photo was taken, as the network's input.

A *place* is a float32 tensor [N, 3]: latitude (degrees, [-90, 90]), longitude (degrees,
[-180, 180]) and date as the fraction of the year elapsed ([0, 1)); NaN marks a missing value.
Every caller (records, serving signatures, EXIF, flags) turns its inputs into a place, and
`encode` / `has_place` are the only readers of it, so one rule decides what counts as missing.

Input encoding of Mac Aodha et al. 2019 (Sec. 3.2): each coordinate is scaled to [-1, 1]
(longitude / 180, latitude / 90, date · 2 - 1) and wrapped with sin(πx), cos(πx), so that
longitude -180 meets 180 and 31 December meets 1 January.
"""

import math

import tensorflow as tf

from inat_tf import schema

# The record features a place is read from (inat-build stores them; see inat_tf.schema).
PLACE_KEYS = (schema.LATITUDE, schema.LONGITUDE, schema.HAS_COORDINATES, schema.DATE)
# Days before the first of each month, and days in it, in a common year (leap years add 29 Feb).
_DAYS_BEFORE_MONTH = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DATE_PATTERN = r"\s*\d{4}[-:/]\d{2}[-:/]\d{2}([ T].*)?"


def date_fraction(dates):
  """Fraction of the year elapsed at the start of each date's day, from date strings.

  dates: string tensor, any shape, "YYYY-MM-DD[ HH:MM:SS[+zone]]" as iNat publishes them (also
  "YYYY:MM:DD ..." as EXIF writes them, or "YYYY/MM/DD"). Returns float32 of the same shape, see
  `date_fraction_from_parts`; NaN for an empty or malformed string. Pure TF string ops, so it
  runs inside the exported serving graph.
  """
  dates = tf.convert_to_tensor(dates, tf.string)
  well_formed = tf.strings.regex_full_match(dates, _DATE_PATTERN)
  safe = tf.where(well_formed, tf.strings.strip(dates), "2001-01-01")

  def number(start, length):
    return tf.strings.to_number(tf.strings.substr(safe, start, length), tf.int32)

  month = tf.where(well_formed, number(5, 2), 0)  # month 0: missing
  return date_fraction_from_parts(number(0, 4), month, number(8, 2))


def date_fraction_from_parts(year, month, day):
  """(day of year - 1) / days in that year, in [0, 1), from int32 year, month, day (any equal
  shapes); NaN where the date is impossible or missing (month outside 1-12, a day not in that
  month such as 2017-02-29; 0 marks missing). Arithmetic and gathers only, so it converts to
  TFLite builtins (the TFLite model takes the date as these three numbers)."""
  year, month, day = (tf.cast(v, tf.int32) for v in (year, month, day))
  leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
  month_index = tf.clip_by_value(month, 1, 12) - 1
  before = tf.gather(tf.constant(_DAYS_BEFORE_MONTH, tf.int32), month_index)
  days_in_month = (tf.gather(tf.constant(_DAYS_IN_MONTH, tf.int32), month_index)
                   + tf.cast(leap & (month == 2), tf.int32))
  valid = (month >= 1) & (month <= 12) & (day >= 1) & (day <= days_in_month)
  day_of_year = before + tf.clip_by_value(day, 1, 31) + tf.cast(leap & (month > 2), tf.int32)
  days_in_year = tf.where(leap, 366.0, 365.0)
  fraction = tf.cast(day_of_year - 1, tf.float32) / days_in_year
  return tf.where(valid, fraction, tf.fill(tf.shape(fraction), math.nan))


def place(latitude, longitude, date_fraction_values):
  """Stacks [N] latitude, longitude (degrees) and date fraction into a place [N, 3] float32.

  Out-of-range coordinates (|latitude| > 90, |longitude| > 180) become NaN (missing): a wrong
  position must not be read as a different real one.
  """
  latitude = tf.cast(latitude, tf.float32)
  longitude = tf.cast(longitude, tf.float32)
  fraction = tf.cast(date_fraction_values, tf.float32)
  coordinates_ok = (tf.abs(latitude) <= 90.0) & (tf.abs(longitude) <= 180.0)  # False for NaN
  nan = tf.fill(tf.shape(latitude), math.nan)
  date_ok = (fraction >= 0.0) & (fraction <= 1.0)
  return tf.stack([tf.where(coordinates_ok, latitude, nan),
                   tf.where(coordinates_ok, longitude, nan), tf.where(date_ok, fraction, nan)],
                  axis=-1)


def has_place(places, use_date=True):
  """[N] bool: the rows the prior can be applied to (coordinates present, and a date if the prior
  was trained with dates). Written with comparisons, which are False for NaN, so it converts to
  TFLite builtins."""
  present = (places[:, 0] == places[:, 0]) & (places[:, 1] == places[:, 1])
  if use_date:
    present &= places[:, 2] == places[:, 2]
  return present


def num_features(use_date=True):
  return 6 if use_date else 4


def encode(places, use_date=True):
  """The network input [N, 6] (or [N, 4] without dates) float32 for a place [N, 3].

  Columns: sin(π lon/180), sin(π lat/90), cos(π lon/180), cos(π lat/90), then sin(π(2d-1)),
  cos(π(2d-1)) for the date fraction d (Mac Aodha et al. 2019, Sec. 3.2). Missing values are
  encoded as 0 so the numbers stay finite; `has_place` says which rows mean anything.
  """
  places = tf.where(places == places, places, tf.zeros_like(places))  # NaN → 0
  scaled = [places[:, 1] / 180.0, places[:, 0] / 90.0]
  if use_date:
    scaled.append(places[:, 2] * 2.0 - 1.0)
  x = math.pi * tf.stack(scaled[:2], axis=-1)
  columns = [tf.sin(x), tf.cos(x)]
  if use_date:
    t = math.pi * scaled[2][:, tf.newaxis]
    columns += [tf.sin(t), tf.cos(t)]
  return tf.concat(columns, axis=-1)


def places_from_examples(examples):
  """A place [N, 3] from parsed record features (inat_tf.schema keys LATITUDE, LONGITUDE,
  HAS_COORDINATES, DATE; batched [N] or single []), as inat-build stored them."""
  single = examples[schema.LATITUDE].shape.rank == 0
  get = (lambda key: examples[key][tf.newaxis]) if single else (lambda key: examples[key])
  has = tf.cast(get(schema.HAS_COORDINATES), tf.bool)
  nan = tf.fill(tf.shape(has), math.nan)
  result = place(tf.where(has, get(schema.LATITUDE), nan),
                 tf.where(has, get(schema.LONGITUDE), nan), date_fraction(get(schema.DATE)))
  return result[0] if single else result

