"""Synthetic "species photographs" for the sample download.

A species is drawn as a body whose outline belongs to its super-category, whose colour belongs to
its genus and whose number of spots is its own. Siblings in a genus therefore differ only in their
spot count, like the paper's two-spot and seven-spot ladybirds (its Fig. 1): learnable, but
fine-grained. Background, pose, size, lighting and clutter vary from photo to photo.

Two departures from that default, for benchmarks that must not reward one kind of data only
(issue 31): `subject_scale` below 1 draws small animals among more twigs and spotless look-alike
objects; a look with a `handedness` is not mirror-symmetric: its head sits on one side and its
photos are never mirrored, so a left-right flip turns it into its mirror-image sibling.
"""

import colorsys
import dataclasses
import math

import numpy as np
from PIL import Image, ImageChops, ImageDraw


def _regular_polygon(sides, phase=-math.pi / 2):
  return [(math.cos(phase + 2 * math.pi * i / sides), math.sin(phase + 2 * math.pi * i / sides))
          for i in range(sides)]


def _polar_outline(radius_fn, points=48):
  return [(radius_fn(t) * math.cos(t), radius_fn(t) * math.sin(t))
          for t in np.linspace(0, 2 * math.pi, points, endpoint=False)]


# One outline per super-category (13). Coordinates are arbitrary; `_fit_outline` maps each
# outline onto the instance's box so that the box is exactly the outline's extent.
OUTLINES = {
    "ellipse": _regular_polygon(40),
    "rectangle": [(0, 0), (1, 0), (1, 1), (0, 1)],
    "triangle": [(0.5, 0), (1, 1), (0, 1)],
    "diamond": [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)],
    "pentagon": _regular_polygon(5),
    "hexagon": _regular_polygon(6, phase=0),
    "star": _polar_outline(lambda t: 1.0 if round(t / (math.pi / 5)) % 2 == 0 else 0.5, 10),
    "cross": [(0.32, 0), (0.68, 0), (0.68, 0.32), (1, 0.32), (1, 0.68), (0.68, 0.68),
              (0.68, 1), (0.32, 1), (0.32, 0.68), (0, 0.68), (0, 0.32), (0.32, 0.32)],
    "semicircle": [(math.cos(t), -math.sin(t)) for t in np.linspace(0, math.pi, 24)],
    "trapezoid": [(0.25, 0), (0.75, 0), (1, 1), (0, 1)],
    "arrow": [(0, 0.3), (0.6, 0.3), (0.6, 0), (1, 0.5), (0.6, 1), (0.6, 0.7), (0, 0.7)],
    "kite": [(0.5, 0), (1, 0.35), (0.5, 1), (0, 0.35)],
    "flower": _polar_outline(lambda t: 0.7 + 0.3 * math.cos(6 * t), 60),
}


@dataclasses.dataclass(frozen=True)
class SpeciesLook:
  """What tells a species apart in its photos."""
  outline: str        # a key of OUTLINES, shared by a super-category
  body_hue: float     # in [0, 1), shared by a genus
  dark_spots: bool    # shared by a genus
  spot_count: int     # 1..7, unique within a genus
  habitat_hue: float  # background tint, shared by a super-category
  # 0: mirror-symmetric as a species (each photo mirrored at random). +1 / -1: the head is on the
  # right / left and photos are never mirrored, as left- and right-eyed flatfish.
  handedness: int = 0


def _hsv(hue, saturation, value):
  return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


_NOISE_TILE_SIDE = 1024
_NOISE_AMPLITUDE = 10
_noise_tile = None


def _sensor_noise(width, height, rng):
  """A window of one fixed noise tile (values 0..2*amplitude): random-looking, costs a crop."""
  global _noise_tile
  if _noise_tile is None:
    values = np.random.default_rng(1234).integers(
        0, 2 * _NOISE_AMPLITUDE + 1, size=(_NOISE_TILE_SIDE, _NOISE_TILE_SIDE), dtype=np.uint8)
    _noise_tile = Image.fromarray(values).convert("RGB")
  if width > _NOISE_TILE_SIDE or height > _NOISE_TILE_SIDE:
    return Image.fromarray(rng.integers(0, 2 * _NOISE_AMPLITUDE + 1, size=(height, width),
                                        dtype=np.uint8)).convert("RGB")
  x = int(rng.integers(0, _NOISE_TILE_SIDE - width + 1))
  y = int(rng.integers(0, _NOISE_TILE_SIDE - height + 1))
  return _noise_tile.crop((x, y, x + width, y + height))


def _background(width, height, hue, rng):
  """A blotchy, noisy scene: coarse random colour field upsampled, plus sensor noise."""
  grid = rng.integers(3, 7, size=2)
  hues = (hue + rng.normal(0, 0.06, size=grid)) % 1.0
  saturation = rng.uniform(0.2, 0.7, size=grid)
  value = rng.uniform(0.25, 0.9, size=grid)
  coarse = np.array([[_hsv(h, s, v) for h, s, v in zip(hr, sr, vr)]
                     for hr, sr, vr in zip(hues, saturation, value)], dtype=np.uint8)
  # Smooth at quarter size, then cheap nearest-neighbour up: the noise hides the 4x4 blocks.
  field = Image.fromarray(coarse).resize((max(1, width // 4), max(1, height // 4)),
                                         Image.BILINEAR).resize((width, height), Image.NEAREST)
  return ImageChops.add(field, _sensor_noise(width, height, rng), offset=-_NOISE_AMPLITUDE)


def _fit_outline(outline, box, mirror):
  xs, ys = zip(*OUTLINES[outline])
  x0, y0, w, h = box
  min_x, max_x, min_y, max_y = min(xs), max(xs), min(ys), max(ys)
  points = []
  for x, y in zip(xs, ys):
    u = (x - min_x) / (max_x - min_x)
    points.append((x0 + w * ((1 - u) if mirror else u), y0 + h * (y - min_y) / (max_y - min_y)))
  return points


def _draw_clutter(draw, width, height, rng, subject_scale=1.0):
  """Twigs and pebbles that belong to no species, so the model must find the animal.

  Below subject_scale 1, more twigs (up to 3 / subject_scale) and 1-3 spotless look-alike
  objects of the animals' own size, shape and colour range.
  """
  for _ in range(int(rng.integers(0, int(round(4 / subject_scale))))):
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    length = rng.uniform(0.1, 0.4) * min(width, height)
    angle = rng.uniform(0, math.pi)
    colour = _hsv(rng.uniform(), rng.uniform(0, 0.4), rng.uniform(0.2, 0.8))
    draw.line([(x, y), (x + length * math.cos(angle), y + length * math.sin(angle))],
              fill=colour, width=max(1, int(min(width, height) / 60)))
  if subject_scale < 1:
    short = min(width, height)
    for _ in range(int(rng.integers(1, 4))):
      side = short * subject_scale * rng.uniform(0.3, 0.75)
      x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
      outline = str(rng.choice(sorted(OUTLINES)))
      draw.polygon(_fit_outline(outline, (x, y, side, side), mirror=rng.uniform() < 0.5),
                   fill=_hsv(rng.uniform(), rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95)))


def _draw_instance(draw, look, box, rng):
  x0, y0, w, h = box
  body = _hsv(look.body_hue + rng.normal(0, 0.015), rng.uniform(0.6, 0.95),
              rng.uniform(0.6, 0.95))
  mirror = rng.uniform() < 0.5 if not look.handedness else look.handedness < 0
  draw.polygon(_fit_outline(look.outline, box, mirror=mirror), fill=body)
  if look.handedness:  # a dark head on one side: what a left-right flip changes
    head = 0.18 * min(w, h)
    hx = x0 + w * (0.8 if look.handedness > 0 else 0.2)
    hy = y0 + 0.4 * h
    draw.ellipse([hx - head, hy - head, hx + head, hy + head], fill=_hsv(look.body_hue, 0.9, 0.3))
  spot = _hsv(0, 0, 0.08) if look.dark_spots else _hsv(0, 0, 0.97)
  size = min(w, h)
  spot_radius = max(1.2, 0.07 * size)
  cx, cy = x0 + w / 2, y0 + h / 2
  ring = 0.0 if look.spot_count == 1 else 0.24 * size
  phase = rng.uniform(0, 2 * math.pi)
  for i in range(look.spot_count):
    angle = phase + 2 * math.pi * i / look.spot_count
    sx, sy = cx + ring * math.cos(angle), cy + ring * math.sin(angle)
    draw.ellipse([sx - spot_radius, sy - spot_radius, sx + spot_radius, sy + spot_radius],
                 fill=spot)


def _place_instances(width, height, count, rng, subject_scale=1.0):
  """Boxes [x, y, w, h] in pixels, inside the image; one large animal or several smaller ones
  (sides 30-75 % of the short side for one, 15-35 % each for several, x subject_scale)."""
  short = min(width, height)
  boxes = []
  for _ in range(count):
    scale = rng.uniform(0.3, 0.75) if count == 1 else rng.uniform(0.15, 0.35)
    scale *= subject_scale
    w = min(width - 2, short * scale * rng.uniform(0.8, 1.25))
    h = min(height - 2, short * scale * rng.uniform(0.8, 1.25))
    x = rng.uniform(1, width - w - 1)
    y = rng.uniform(1, height - h - 1)
    boxes.append((round(x, 2), round(y, 2), round(w, 2), round(h, 2)))
  return boxes


def draw_photo(look, width, height, num_instances, rng, *, subject_scale=1.0):
  """Returns (RGB PIL image, list of [x, y, w, h] pixel boxes, one per drawn animal).

  subject_scale: the animals' size relative to the default (0 < subject_scale <= 1); below 1 the
  scene also gets more clutter and look-alike objects (_draw_clutter).
  """
  image = _background(width, height, look.habitat_hue, rng)
  draw = ImageDraw.Draw(image)
  _draw_clutter(draw, width, height, rng, subject_scale)
  boxes = _place_instances(width, height, num_instances, rng, subject_scale)
  for box in boxes:
    _draw_instance(draw, look, box, rng)
  return image, boxes
