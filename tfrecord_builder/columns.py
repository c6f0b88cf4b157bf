"""A split's images as columns: numpy arrays, one row per image, no Python object per image.

At iNat2021's 3.3 M images, one Python record per image (a dataclass with its strings and a dict
entry) cost ~1.7 KB each; these columns cost (bytes per image, 2021 layout):

  id 8, width 4, height 4, category id 4, file name: folder index 4 + base name ~40 + offset 8,
  name hash 8, latitude 4, longitude 4, location uncertainty 4, date ~25 + offset 8
  (2017/2018 locations add date_c 4, user id 8; 2017 boxes ~48 per box)

~125 bytes per image: ~410 MB at 3.3 M. File names are stored as a folder (shared by a species'
images) plus the base name; `name_hashes` (Python's str hash, stable within one process and its
forked workers) find an archive member's rows by binary search.
"""

import array
import bisect
import dataclasses

import numpy as np

MISSING_INT = np.iinfo(np.int64).min  # user_id not given


class StringColumn:
  """Strings in one UTF-8 blob with offsets; strings[i] decodes one on demand."""

  def __init__(self, blob, offsets):
    self.blob, self.offsets = blob, offsets  # bytes or bytearray, int64 [n + 1]

  def __len__(self):
    return len(self.offsets) - 1

  def __getitem__(self, i):
    return self.blob[self.offsets[i]:self.offsets[i + 1]].decode("utf-8")

  def take(self, rows):
    lengths = np.diff(self.offsets)[rows]
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts = self.offsets[:-1][rows]
    view = np.frombuffer(self.blob, np.uint8)
    index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return StringColumn(view[index].tobytes(), offsets)

  @property
  def nbytes(self):
    return len(self.blob) + self.offsets.nbytes


class StringBuilder:
  """Appends strings into a growing blob (no Python object kept per string)."""

  def __init__(self):
    self._blob, self._offsets = bytearray(), array.array("q", [0])

  def append(self, text):
    self._blob += text.encode("utf-8")
    self._offsets.append(len(self._blob))

  def build(self):
    # Zero-copy: the column keeps the builder's buffers (a copy would hold every name twice
    # for a moment: ~90 bytes per image at the peak of reading the JSON).
    return StringColumn(self._blob, np.frombuffer(self._offsets, np.int64))


class NameColumn:
  """File names as (folder, base name): names[i] == folders[folder_index[i]] + "/" + base[i]."""

  def __init__(self, folders, folder_index, base):
    self.folders, self.folder_index, self.base = folders, folder_index, base

  def __len__(self):
    return len(self.base)

  def __getitem__(self, i):
    folder = self.folders[self.folder_index[i]]
    return f"{folder}/{self.base[i]}" if folder else self.base[i]

  def take(self, rows):
    return NameColumn(self.folders, self.folder_index[rows], self.base.take(rows))

  @property
  def nbytes(self):
    return self.folder_index.nbytes + self.base.nbytes


class NameBuilder:
  def __init__(self):
    self._folders, self._index = {}, array.array("i")
    self._base, self._hashes = StringBuilder(), array.array("q")

  def append(self, name):
    folder, _, base = name.rpartition("/")
    self._index.append(self._folders.setdefault(folder, len(self._folders)))
    self._base.append(base)
    self._hashes.append(hash(name))

  def build(self):
    folders = tuple(self._folders)  # insertion order = index
    return (NameColumn(folders, np.frombuffer(self._index, np.int32), self._base.build()),
            np.frombuffer(self._hashes, np.int64))


@dataclasses.dataclass
class Boxes:
  """COCO boxes of a split in pixels of the JSON's size, grouped by row: rows[i]'s boxes are
  [starts[i], starts[i + 1])."""
  starts: np.ndarray        # int64 [n + 1]
  xywh: np.ndarray          # float64 [boxes, 4]
  category_ids: np.ndarray  # int64 [boxes]
  areas: np.ndarray         # float64 [boxes]

  @classmethod
  def empty(cls, rows):
    return cls(np.zeros(rows + 1, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64),
               np.zeros(0))

  def of_row(self, row):
    return slice(self.starts[row], self.starts[row + 1])

  def take(self, rows):
    counts = np.diff(self.starts)[rows]
    starts = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    index = (np.repeat(self.starts[:-1][rows] - starts[:-1], counts) + np.arange(starts[-1])
             ).astype(np.int64)
    return Boxes(starts, self.xywh[index], self.category_ids[index], self.areas[index])

  @property
  def nbytes(self):
    return self.starts.nbytes + self.xywh.nbytes + self.category_ids.nbytes + self.areas.nbytes


@dataclasses.dataclass
class SplitTable:
  """One split's kept images, row by row (see the module docstring for the bytes)."""
  split: str
  ids: np.ndarray            # int64
  widths: np.ndarray         # int32, as the JSON gives them
  heights: np.ndarray        # int32
  category_ids: np.ndarray   # int64, -1 for an unlabelled (test) image
  names: NameColumn
  name_hashes: np.ndarray    # int64, hash(file_name)
  latitudes: np.ndarray      # float32, NaN when unknown (longitude too)
  longitudes: np.ndarray     # float32
  uncertainties: np.ndarray  # float32, NaN when unknown
  dates: StringColumn        # "" when unknown
  dates_c: np.ndarray        # float32, NaN when unknown (2017/2018 location files)
  user_ids: np.ndarray       # int64, MISSING_INT when unknown
  boxes: Boxes

  def __len__(self):
    return len(self.ids)

  def take(self, rows):
    """A table of the given rows (an int index array or a boolean mask), in that order."""
    rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, np.int64)
    fields = {}
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      fields[field.name] = (value if field.name == "split" else value[rows]
                            if isinstance(value, np.ndarray) else value.take(rows))
    return SplitTable(**fields)

  def renamed(self, split):
    return dataclasses.replace(self, split=split)

  def row_of(self, image_id):
    """The row of an image id, or None (ids are unique in a table)."""
    order = self._id_order
    i = np.searchsorted(self.ids, image_id, sorter=order)
    return int(order[i]) if i < len(order) and self.ids[order[i]] == image_id else None

  @property
  def _id_order(self):
    if "_order" not in self.__dict__:
      self.__dict__["_order"] = np.argsort(self.ids, kind="stable")
    return self.__dict__["_order"]

  def rows_named(self, name):
    """Rows whose file_name is `name`, in row order."""
    order = self._hash_order
    key = hash(name)
    start = np.searchsorted(self.name_hashes, key, side="left", sorter=order)
    end = np.searchsorted(self.name_hashes, key, side="right", sorter=order)
    return sorted(int(r) for r in order[start:end] if self.names[r] == name)

  @property
  def _hash_order(self):
    if "_hash_order_cache" not in self.__dict__:
      self.__dict__["_hash_order_cache"] = np.argsort(self.name_hashes, kind="stable")
    return self.__dict__["_hash_order_cache"]

  @property
  def nbytes(self):
    return sum(v.nbytes for v in vars(self).values() if hasattr(v, "nbytes"))


class TableBuilder:
  """Accumulates rows in typed arrays (array.array: no Python object per value)."""

  def __init__(self, split):
    self.split = split
    self.ids, self.widths, self.heights = array.array("q"), array.array("i"), array.array("i")
    self.names = NameBuilder()
    self.latitudes, self.longitudes = array.array("f"), array.array("f")
    self.uncertainties, self.dates = array.array("f"), StringBuilder()

  def build(self):
    n = len(self.ids)
    as_np = lambda a, dtype: np.frombuffer(a, dtype) if len(a) else np.zeros(0, dtype)
    names, hashes = self.names.build()
    return SplitTable(
        split=self.split, ids=as_np(self.ids, np.int64), widths=as_np(self.widths, np.int32),
        heights=as_np(self.heights, np.int32), category_ids=np.full(n, -1, np.int64),
        names=names, name_hashes=hashes, latitudes=as_np(self.latitudes, np.float32),
        longitudes=as_np(self.longitudes, np.float32),
        uncertainties=as_np(self.uncertainties, np.float32), dates=self.dates.build(),
        dates_c=np.full(n, np.nan, np.float32), user_ids=np.full(n, MISSING_INT, np.int64),
        boxes=Boxes.empty(n))


def shared_name_groups(tables):
  """[[(table index, row), ...]] for every file name listed more than once across `tables`.

  Sorted hashes find the candidates (O(n log n) in numpy); the names themselves confirm them.
  """
  hashes = np.concatenate([t.name_hashes for t in tables]) if tables else np.zeros(0, np.int64)
  owner = np.concatenate([np.full(len(t), i, np.int32) for i, t in enumerate(tables)]
                         ) if tables else np.zeros(0, np.int32)
  rows = np.concatenate([np.arange(len(t)) for t in tables]) if tables else np.zeros(0)
  order = np.argsort(hashes, kind="stable")
  sorted_hashes = hashes[order]
  repeated = np.flatnonzero(sorted_hashes[1:] == sorted_hashes[:-1])
  groups = []
  if not len(repeated):
    return groups
  by_name = {}
  for position in np.unique(np.concatenate([repeated, repeated + 1])):
    table, row = int(owner[order[position]]), int(rows[order[position]])
    by_name.setdefault(tables[table].names[row], []).append((table, row))
  return [members for _, members in sorted(by_name.items()) if len(members) > 1]


def _concat_strings(parts):
  blob = b"".join(p.blob for p in parts)
  shifts = np.cumsum([0] + [len(p.blob) for p in parts[:-1]])
  offsets = np.concatenate([[0]] + [p.offsets[1:] + shift for p, shift in zip(parts, shifts)])
  return StringColumn(blob, offsets.astype(np.int64))


def concat(tables, split):
  """One table of `tables`' rows, in order, named `split`."""
  folders = {}
  indices = []
  for table in tables:
    remap = np.array([folders.setdefault(f, len(folders)) for f in table.names.folders],
                     np.int32)
    indices.append(remap[table.names.folder_index] if len(remap) else table.names.folder_index)
  box_counts = np.concatenate([np.diff(t.boxes.starts) for t in tables])
  starts = np.zeros(len(box_counts) + 1, np.int64)
  np.cumsum(box_counts, out=starts[1:])
  join = lambda name: np.concatenate([getattr(t, name) for t in tables])
  return SplitTable(
      split=split, ids=join("ids"), widths=join("widths"), heights=join("heights"),
      category_ids=join("category_ids"),
      names=NameColumn(tuple(folders), np.concatenate(indices),
                       _concat_strings([t.names.base for t in tables])),
      name_hashes=join("name_hashes"), latitudes=join("latitudes"),
      longitudes=join("longitudes"), uncertainties=join("uncertainties"),
      dates=_concat_strings([t.dates for t in tables]), dates_c=join("dates_c"),
      user_ids=join("user_ids"),
      boxes=Boxes(starts, np.concatenate([t.boxes.xywh for t in tables]).reshape(-1, 4),
                  np.concatenate([t.boxes.category_ids for t in tables]),
                  np.concatenate([t.boxes.areas for t in tables])))


class NameIndex:
  """Finds the rows listing a file name across tables: 17 bytes per row (hash, table, row).

  lookup() costs one binary search (np.searchsorted) and one name comparison per candidate:
  ~2-4 us per archive member, whatever the number of listed images.
  """

  def __init__(self, tables):
    self.tables = dict(tables)
    self.splits = list(self.tables)
    hashes = [t.name_hashes for t in self.tables.values()]
    hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.int64)
    owner = np.concatenate([np.full(len(t), i, np.int8) for i, t in enumerate(
        self.tables.values())]) if self.tables else np.zeros(0, np.int8)
    rows = np.concatenate([np.arange(len(t), dtype=np.int32) for t in self.tables.values()]
                          ) if self.tables else np.zeros(0, np.int32)
    order = np.argsort(hashes, kind="stable")  # equal hashes keep table, then row, order
    # array.array, searched with bisect: numpy's searchsorted releases and retakes the GIL on
    # every call, and with the inflater thread busy each retake waited for its turn (~0.35 ms
    # per archive member, measured under cProfile); bisect on an array never lets go of it.
    self._hashes = array.array("q", hashes[order].tobytes())
    self._owner = array.array("b", owner[order].tobytes())
    self._rows = array.array("i", rows[order].tobytes())

  def lookup(self, name, splits=None):
    """[(split, row)] of every listing of `name` (in `splits`, default all), in table order."""
    key = hash(name)
    hashes = self._hashes
    i = bisect.bisect_left(hashes, key)
    found = []
    while i < len(hashes) and hashes[i] == key:
      split = self.splits[self._owner[i]]
      if splits is None or split in splits:
        row = int(self._rows[i])
        if self.tables[split].names[row] == name:
          found.append((split, row))
      i += 1
    return found

  def first_listing(self, name, splits=None):
    found = self.lookup(name, splits)
    return found[0] if found else None

  @property
  def nbytes(self):
    return sum(len(a) * a.itemsize for a in (self._hashes, self._owner, self._rows))
