"""The Python entry points (inat_tf/api.py, as `inat_tf.<name>`) and the README's example of them,
run on the session fixtures, so that the README and the code cannot drift apart (issue 30 item 6).
"""

import dataclasses
import io
import math
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import ExifTags
from PIL import Image

import inat_tf
from inat_tf import classify
from inat_tf import trained_model
from inat_tf.geo import prior as prior_lib
from tests.conftest import TRAINED_MODEL_GROUP

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The README example's paths, and the fixture each stands for in the test.
README_PATHS = ("runs/quickstart/data", "runs/quickstart/model", "runs/quickstart/geo",
                "my_photo.jpg")


def readme_python_example():
  """The README's one ```python block."""
  blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
  assert len(blocks) == 1, f"README.md has {len(blocks)} python blocks; the test runs exactly one"
  return blocks[0]


def val_batch(data_dir, size):
  return next(iter(inat_tf.read_split(str(data_dir), "val").batch(size)))


@pytest.mark.slow
@TRAINED_MODEL_GROUP
def test_the_readme_python_example_runs(tiny_built_dir, trained_dir, geo_dir, tmp_path, capsys):
  photo = tmp_path / "photo.png"  # a PNG under a .jpg-free name: any format the README promises
  Image.open(io.BytesIO(val_batch(tiny_built_dir, 1)["image_bytes"].numpy()[0])).save(photo)
  code = readme_python_example()
  # inat_tf.quiet() would filter this test process's stderr and set TensorFlow's log level in
  # its environment, which every later command of this worker would inherit (a quickstart test
  # failed on it); its own test runs it in a subprocess.
  assert "inat_tf.quiet()" in code
  code = code.replace("inat_tf.quiet()", "pass")
  for placeholder, path in zip(README_PATHS, (tiny_built_dir, trained_dir, geo_dir, photo)):
    assert f'"{placeholder}"' in code, f"the README example no longer reads {placeholder}"
    code = code.replace(f'"{placeholder}"', repr(str(path)))
  namespace = {}
  exec(compile(code, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  printed = capsys.readouterr().out.splitlines()
  model, p = namespace["model"], namespace["p"]
  assert p.dtype == np.float32 and p.shape[1] == model.label_map.num_classes
  np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
  assert printed and printed[-1].startswith("val top-1")


@pytest.mark.slow
@TRAINED_MODEL_GROUP
def test_probabilities_equal_inat_classify_and_inat_eval(tiny_built_dir, trained_dir, geo_dir,
                                                         tmp_path):
  """The same numbers as inat-classify (the serving graph) for photos with and without a place,
  and as inat-eval's inference loop with the prior for a split read by read_split."""
  model, prior = inat_tf.load_model(str(trained_dir)), inat_tf.load_prior(str(geo_dir))
  batch = val_batch(tiny_built_dir, 1000)
  stored = batch["image_bytes"].numpy()
  # A JPEG as stored and a PNG, without a place; a JPEG turned by EXIF, with GPS and a date.
  paths = [tmp_path / "0.jpg", tmp_path / "1.png", tmp_path / "2.jpg"]
  paths[0].write_bytes(stored[0])
  Image.open(io.BytesIO(stored[1])).save(paths[1])
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
  exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (37.0, 46.0, 12.0), 3: "W", 4: (122.0, 25.0, 12.0)}
  exif[ExifTags.IFD.Exif] = {36867: "2017:06:01 10:30:00"}
  Image.open(io.BytesIO(stored[2])).save(paths[2], exif=exif)
  results, skipped = classify.classify([str(path) for path in paths], str(trained_dir),
                                       geo_dir=str(geo_dir), top_k=3)
  assert not skipped and [r["place"]["used"] for r in results] == [False, False, True]
  places = [r["place"] for r in results]
  p = inat_tf.probabilities(model, [path.read_bytes() for path in paths], prior=prior,
                            latitude=[place["latitude"] for place in places],
                            longitude=[place["longitude"] for place in places],
                            date=[place["date"] for place in places])
  for row, result in zip(p, results):
    ids = [model.label_map.category_ids[i] for i in np.argsort(-row)[:3]]
    assert ids == [x["category_id"] for x in result["predictions"]]
    np.testing.assert_allclose(np.sort(row)[::-1][:3],
                               [x["probability"] for x in result["predictions"]], atol=1e-6)

  # A split as read_split gives it, the records' own places passed on as they are.
  p = inat_tf.probabilities(model, batch["image_bytes"], prior=prior, latitude=batch["latitude"],
                            longitude=batch["longitude"], date=batch["date"])
  loop = trained_model.predict(model, str(tiny_built_dir), "val", geo_prior=prior)
  assert (loop.image_ids == batch["image_id"].numpy()).all()
  assert (np.argsort(-p, axis=1)[:, :5] == loop.geo_top_indices).all()
  np.testing.assert_allclose(np.sort(p, axis=1)[:, ::-1][:, :5], loop.geo_top_scores, atol=1e-5)
  # Records without coordinates read as NaN; without a place (or date), the image-only answer.
  no_place = ~loop.has_place
  no_coordinates = np.isnan(batch["latitude"].numpy())
  assert no_coordinates.any() and no_place[no_coordinates].all()
  np.testing.assert_array_equal(no_place, no_coordinates | (batch["date"].numpy() == b""))
  image_only = inat_tf.probabilities(model, batch["image_bytes"])
  np.testing.assert_array_equal(p[no_place], image_only[no_place])


@pytest.mark.slow
@TRAINED_MODEL_GROUP
def test_probabilities_refuse_what_they_cannot_answer(trained_dir, geo_dir, tiny_built_dir):
  model, prior = inat_tf.load_model(str(trained_dir)), inat_tf.load_prior(str(geo_dir))
  good = val_batch(tiny_built_dir, 1)["image_bytes"].numpy()[0]
  cases = [
      (dict(image_bytes=[good, b"not an image", good[:40]]), r"items \[1, 2\] are not readable"),
      (dict(image_bytes=[]), "empty"),
      (dict(image_bytes=[good], latitude=10.0, longitude=20.0), "give prior="),
      (dict(image_bytes=[good], prior=prior, latitude=95.0, longitude=0.0), r"photos \[0\]:.*90"),
      (dict(image_bytes=[good, good], prior=prior, latitude=[1.0, math.nan],
            longitude=[2.0, 3.0]), "both or neither"),
      (dict(image_bytes=[good], prior=prior, date="2017-02-30"), r"photos \[0\]: date"),
      (dict(image_bytes=[good] * 3, prior=prior, latitude=[1.0, 2.0], longitude=[1.0, 2.0]),
       "2 values for 3 photos"),
  ]
  for kwargs, message in cases:
    with pytest.raises(ValueError, match=message):
      inat_tf.probabilities(model, **kwargs)
  other = dataclasses.replace(prior, label_map=dataclasses.replace(
      prior.label_map, category_ids=tuple(i + 1 for i in prior.label_map.category_ids)))
  with pytest.raises(prior_lib.GeoError, match="classes"):
    inat_tf.probabilities(model, [good], prior=other)
  # One place for every photo, and a place without a date for a prior that wants one: allowed.
  p = inat_tf.probabilities(model, [good, good], prior=prior, latitude=1.0, longitude=2.0)
  assert p.shape == (2, model.label_map.num_classes)
  with pytest.raises(FileNotFoundError, match="inat-build"):
    inat_tf.read_split(str(geo_dir), "val")
  with pytest.raises(ValueError, match="split='dev'"):
    inat_tf.read_split(str(tiny_built_dir), "dev")


@pytest.mark.slow
def test_import_inat_tf_stays_free_of_tensorflow():
  """`import inat_tf` (what every command's --help needs) imports no TensorFlow."""
  subprocess.run([sys.executable, "-c", "import sys, inat_tf; "
                  "assert 'tensorflow' not in sys.modules, 'import inat_tf imported TensorFlow'"],
                 check=True, cwd=ROOT, timeout=120)


@pytest.mark.slow
def test_quiet_keeps_tensorflows_lines_off_stderr_and_lets_ours_through():
  """The README example's `inat_tf.quiet()`: TensorFlow's start-up records (printed without it,
  so the check can fail) are gone; the script's own line, warning, logging record and exit
  message are not."""
  import os  # pylint: disable=g-import-not-at-top
  from inat_tf import cli  # pylint: disable=g-import-not-at-top
  environment = {k: v for k, v in os.environ.items()
                 if k not in cli.USER_LOG_VARIABLES + (cli.QUIET_MARK, "PYTHONWARNINGS")}
  script = ("import logging, sys, warnings, inat_tf\nlogging.basicConfig()\n"
            "{quiet}import tensorflow as tf\n"
            "tf.constant(1) + 1\nprint('my own line', file=sys.stderr)\n"
            "warnings.warn('my warning')\nlogging.getLogger('myapp').error('my record')\n"
            "import os\nprint(os.environ.get('INAT_TF_QUIET'))\n"
            "raise SystemExit('the end')\n")
  stderr, stdout = {}, {}
  for name, quiet in (("loud", ""), ("quiet", "inat_tf.quiet()\n")):
    result = subprocess.run([sys.executable, "-c", script.format(quiet=quiet)], cwd=ROOT,
                            env=environment, capture_output=True, text=True, timeout=120,
                            check=False)
    stderr[name] = [line for line in result.stderr.splitlines() if line.strip()]
    stdout[name] = result.stdout.strip()
  assert any(cli.NOISE.match(line) for line in stderr["loud"]), stderr["loud"]
  # The level it sets is marked as not the user's: an inat-* command the script starts (it
  # inherits the environment) stays quiet rather than reading it as a request for the logs.
  assert (stdout["loud"], stdout["quiet"]) == ("None", "1")
  assert stderr["quiet"] == ["my own line", "<string>:7: UserWarning: my warning",
                             "ERROR:myapp:my record", "the end"], stderr["quiet"]


def test_entry_points_resolve_on_first_use():
  from inat_tf import api  # pylint: disable=g-import-not-at-top
  assert sorted(inat_tf.__all__) == ["load_model", "load_prior", "probabilities", "read_split"]
  for name in inat_tf.__all__:
    assert getattr(inat_tf, name) is getattr(api, name) and getattr(api, name).__doc__
  with pytest.raises(AttributeError, match="no_such_name"):
    inat_tf.no_such_name  # pylint: disable=pointless-statement
