"""Issue 26, the build stage: the streamed JSON reader, the column catalog and the shard plan give
what the whole-document reader and the per-image records gave (fast, no build)."""

import io
import json
import math

import numpy as np
import pytest

from tfrecord_builder import columns
from tfrecord_builder import json_stream
from tfrecord_builder import plan


def _read(text, block, streamed_keys=("images",)):
  got = {key: [] for key in streamed_keys}
  rest, _ = json_stream.read(io.BytesIO(text.encode("utf-8")),
                             {key: got[key].append for key in streamed_keys})
  return rest, got


@pytest.mark.parametrize("block", [1, 7, 4096])
def test_streamed_reader_gives_what_json_loads_gives(block, monkeypatch):
  monkeypatch.setattr(json_stream, "_BLOCK", block)  # elements and numbers cut by the window
  rng = np.random.default_rng(block)
  images = [{"id": int(i), "file_name": f"train/ü{i}/x.jpg", "width": int(rng.integers(1, 999)),
             "latitude": float("nan") if i % 3 == 0 else float(rng.normal()),
             "tags": [1, [2, {"a": None}], "s,]}"]} for i in range(50)]
  document = {"info": {"year": 2021}, "images": images, "categories": [{"id": 1}],
              "annotations": [], "n": 12345678901234567890}
  text = json.dumps(document, indent=2 if block == 7 else None)
  rest, got = _read(text, block, ("images", "annotations"))
  expected = json.loads(text)
  assert json.dumps(got["images"]) == json.dumps(expected["images"])  # NaN included
  assert rest == {**{k: v for k, v in expected.items() if k not in ("images", "annotations")},
                  "images": None, "annotations": None}


@pytest.mark.parametrize("text,where", [
    ('{"images": [1, 2', "line 1 column 17"),
    ('{"images": [1 2]}', "line 1 column 15"),
    ('{\n "images": [\n  {"id": 1},\n  {"id": }\n ]\n}', "line 4 column 10"),
    ('{"images": [1]} trailing', "line 1 column 17"),
])
def test_malformed_json_is_named_by_line_and_column(text, where, monkeypatch):
  monkeypatch.setattr(json_stream, "_BLOCK", 5)
  with pytest.raises(json_stream.MalformedJson, match=f"malformed JSON at {where}"):
    _read(text, 5)


def test_plan_is_the_same_deal_as_before_the_columns():
  """The shard of every id as the per-record planner dealt them (sorted ids, permuted with
  default_rng([seed, split offset]), np.array_split): a data dir built before resumes as is."""
  ids = np.random.default_rng(0).permutation(10_000)[:2_345].astype(np.int64)
  new = plan.plan_split("val", ids, 100, seed=3)
  ordered = np.array(sorted(ids.tolist()), np.int64)
  shuffled = ordered[np.random.default_rng([3, plan.SPLIT_SEED_OFFSETS["val"]]).permutation(
      len(ordered))]
  old = {int(i): shard for shard, members in enumerate(np.array_split(shuffled, 24))
         for i in members}
  assert new.num_shards == 24 and new.shard_sizes == [98] * 17 + [97] * 7
  assert {int(i): int(s) for i, s in zip(ids, new.shard_of_row)} == old


def _table(names, split="train"):
  builder = columns.TableBuilder(split)
  for i, name in enumerate(names):
    builder.ids.append(100 + i)
    builder.widths.append(10 + i)
    builder.heights.append(5)
    builder.names.append(name)
    builder.latitudes.append(math.nan if i % 2 else 1.5 * i)
    builder.longitudes.append(math.nan if i % 2 else -2.0)
    builder.uncertainties.append(math.nan)
    builder.dates.append("" if i % 2 else f"2020-01-{i + 1:02d}")
  return builder.build()


def test_columns_take_concat_and_the_name_index():
  names = ["train/a/1.jpg", "train/b/2.jpg", "train/a/3.jpg", "x.jpg", "train/b/2.jpg"]
  table = _table(names)
  assert [table.names[i] for i in range(5)] == names and table.dates[2] == "2020-01-03"
  part = table.take(np.array([4, 0]))
  assert [part.names[i] for i in range(2)] == ["train/b/2.jpg", "train/a/1.jpg"]
  assert part.ids.tolist() == [104, 100] and part.dates[1] == "2020-01-01"
  assert table.take(np.array([True, False, True, False, False])).ids.tolist() == [100, 102]
  other = _table(["val/z.jpg", "train/a/3.jpg"], "val")
  both = columns.concat([table, other], "minival")
  assert [both.names[i] for i in range(7)] == names + ["val/z.jpg", "train/a/3.jpg"]
  index = columns.NameIndex({"train": table, "val": other})
  assert index.lookup("train/b/2.jpg") == [("train", 1), ("train", 4)]
  assert index.lookup("train/a/3.jpg") == [("train", 2), ("val", 1)]
  assert index.lookup("train/a/3.jpg", ["val"]) == [("val", 1)]
  assert index.lookup("missing.jpg") == []
  groups = columns.shared_name_groups([table, other])
  assert sorted(groups) == [[(0, 1), (0, 4)], [(0, 2), (1, 1)]]
  assert table.row_of(103) == 3 and table.row_of(7) is None
