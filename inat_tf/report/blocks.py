"""The plain-data blocks a report is made of, and the page's groups: what every renderer reads.

A report is a list of Sections; a Section holds blocks. Every block is plain data (numbers,
strings, tuples), built by inat_tf/report/sections.py from the metric dictionaries, and rendered
by inat_tf/report/render.py (terminal text, markdown) and inat_tf/report/page.py (HTML). A new
metric needs a new Section of these blocks, never a new writer:

  Facts      label: value lines (settings, where things are)
  Headline   the few numbers a reader looks at first, each with an optional baseline beside it
  Table      columns (with a format each) and rows (dicts); sortable ones become a JSON-backed
             table that sorts and filters in the page
  Plot       series of (x, y) drawn as points, lines or bars, reference lines, a diagonal; always
             with the Table of its numbers, which text and markdown show instead of the picture
  Gallery    a Table whose every row also has photos (thumbnails from the records)
  Text       a paragraph
"""

import dataclasses
from typing import Optional

# Where a block is shown: the terminal (inat-eval's output), report.md, report.html.
TERMINAL, MARKDOWN, HTML = "terminal", "markdown", "html"
EVERYWHERE = frozenset((TERMINAL, MARKDOWN, HTML))
FILES = frozenset((MARKDOWN, HTML))   # too long for a terminal
PAGE_ONLY = frozenset((HTML,))        # needs the page (its numbers are in report.json / CSVs)

# The page's groups, in page order, and their headings. A section names its group; groups with no
# section are left out of every rendering.
GROUPS = (
    ("summary", "Summary"),
    # Right after the headline: a prior changes it, and this says how.
    ("location", "Location prior"),
    ("accuracy", "Accuracy"),
    ("roll-up", "Roll-up to genus or family"),
    ("open-set", "Open set: which answers to trust"),
    ("calibration", "Calibration"),
    ("errors", "Errors"),
    ("species", "Per species"),
)
GROUP_NAMES = tuple(name for name, _ in GROUPS)

# Column formats: how a cell's value is written (None is written as a dash everywhere).
FORMATS = ("text", "int", "percent", "float1", "float2", "float3", "points")


@dataclasses.dataclass(frozen=True)
class Column:
  """One table column: the row key it reads, its header, and its format (FORMATS).

  "percent" takes a fraction in [0, 1] and writes 56.38%; "points" takes a difference of fractions
  and writes +1.25 (percentage points); "int" writes 12,345.
  """
  key: str
  label: str
  format: str = "text"

  def __post_init__(self):
    if self.format not in FORMATS:
      raise ValueError(f"column {self.key!r}: format {self.format!r}, expected one of "
                       f"{', '.join(FORMATS)}")

  @property
  def numeric(self):
    return self.format != "text"


@dataclasses.dataclass(frozen=True)
class Table:
  """Rows (dicts keyed by Column.key) under columns.

  sortable: in the page, the rows travel as compact JSON and a few lines of JavaScript sort (click
  a header), filter (type) and show them 100 at a time; use it for tables of thousands of rows.
  text_rows: terminal and markdown show the first N rows only and say how many more there are.
  """
  columns: tuple
  rows: tuple
  caption: str = ""
  sortable: bool = False
  text_rows: Optional[int] = None
  shown_in: frozenset = EVERYWHERE


@dataclasses.dataclass(frozen=True)
class Series:
  """One data series of a plot: style "points", "line" or "bars" (bars: x is the bar's centre and
  width its width, in x units). labels: short text drawn at each (x, y), e.g. how many images a
  bar stands for."""
  label: str
  x: tuple
  y: tuple
  style: str = "line"
  width: float = 0.0
  labels: tuple = ()


@dataclasses.dataclass(frozen=True)
class ReferenceLine:
  """A horizontal line across a plot at height y, labelled in the legend."""
  label: str
  y: float


@dataclasses.dataclass(frozen=True)
class Plot:
  """A figure (matplotlib in the page, inat_tf/report/plots.py) and the table of its numbers.

  Axis values are plotted as given: pass percentages if the axis label says %. x_log: a log x
  axis (symmetric-log when some x is 0). diagonal: the y = x line (a reliability diagram's).
  file_name: also written beside the report under this name (the paper's Fig. 5 is).
  """
  title: str
  x_label: str
  y_label: str
  series: tuple
  table: Table
  reference_lines: tuple = ()
  x_log: bool = False
  x_range: Optional[tuple] = None
  y_range: Optional[tuple] = None
  diagonal: bool = False
  file_name: str = ""
  shown_in: frozenset = EVERYWHERE


@dataclasses.dataclass(frozen=True)
class Photo:
  """A thumbnail by record: split and image id (key() names it in the photo store); caption under
  it. missing: why there is no photo (shown in its place) when the store cannot have it."""
  split: str
  image_id: Optional[int]
  caption: str = ""
  missing: str = ""

  def key(self):
    return photo_key(self.split, self.image_id)

  def with_caption(self, caption):
    return dataclasses.replace(self, caption=caption)


def photo_key(split, image_id):
  """The photo store's key of a record's thumbnail: "val:123"."""
  return f"{split}:{image_id}"


@dataclasses.dataclass(frozen=True)
class Gallery:
  """A table whose row i is also shown as a card with photos[i] (a tuple of Photo); terminal and
  markdown show the table alone. card_columns: the Columns a card lists under its photos
  (default: the table's; the photos' captions often say the rest)."""
  table: Table
  photos: tuple
  card_columns: tuple = ()
  shown_in: frozenset = EVERYWHERE


@dataclasses.dataclass(frozen=True)
class Figure:
  """One headline number: value (a fraction), and where the settings change it, the baseline
  (e.g. the image-only figure beside the one with the location prior)."""
  key: str
  label: str
  value: Optional[float]
  baseline: Optional[float] = None
  baseline_label: str = ""
  chance: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Headline:
  figures: tuple
  note: str = ""
  shown_in: frozenset = EVERYWHERE


@dataclasses.dataclass(frozen=True)
class Facts:
  """(label, value) lines under an optional title; values are strings. The page shows
  consecutive Facts side by side."""
  items: tuple
  title: str = ""
  shown_in: frozenset = EVERYWHERE


@dataclasses.dataclass(frozen=True)
class Text:
  text: str
  shown_in: frozenset = EVERYWHERE


@dataclasses.dataclass(frozen=True)
class Section:
  """A titled part of the report. id: a short anchor ("confusions"); group: one of GROUP_NAMES."""
  id: str
  group: str
  title: str
  blocks: tuple
  note: str = ""

  def __post_init__(self):
    if self.group not in GROUP_NAMES:
      raise ValueError(f"section {self.id!r}: group {self.group!r}, expected one of "
                       f"{', '.join(GROUP_NAMES)}")


def in_page_order(sections):
  """Sections sorted by group (GROUPS order), keeping their order inside a group."""
  rank = {name: i for i, name in enumerate(GROUP_NAMES)}
  return sorted(sections, key=lambda s: rank[s.group])


def visible(blocks, medium):
  """The blocks shown in medium (TERMINAL, MARKDOWN or HTML)."""
  return [b for b in blocks if medium in b.shown_in]


def format_value(value, fmt):
  """One cell as text: None is "–"; see Column for the formats."""
  if value is None:
    return "–"
  if fmt == "percent":
    return f"{100 * value:.2f}%"
  if fmt == "points":
    return f"{100 * value:+.2f}"
  if fmt == "int":
    return f"{int(value):,}"
  if fmt in ("float1", "float2", "float3"):
    return f"{value:.{fmt[-1]}f}"
  return str(value)
