"""The evaluation report: metrics as plain data, one renderer, one self-contained page.

Fast tests check the metrics on hand-made tables and every rendering of one report; the slow ones
evaluate the tiny trained model, open its page in headless Chromium, and render a report at the
published scale (10,000 species, 100,000 images).
"""

import base64
import io
import json
import os
import re
import time

import html5lib
import numpy as np
import pytest
from PIL import Image

from inat_tf import label_map as label_map_lib
from inat_tf.report import accuracy
from inat_tf.report import blocks
from inat_tf.report import browser
from inat_tf.report import calibration
from inat_tf.report import errors
from inat_tf.report import page
from inat_tf.report import photos as photos_lib
from inat_tf.report import render
from inat_tf.report import sections
from tests.conftest import TRAINED_MODEL_GROUP

# Set by .ci/run: there, a missing Chromium fails the browser tests instead of skipping them.
REQUIRE_CHROMIUM = "INAT_TF_REQUIRE_CHROMIUM"
XHTML = "{http://www.w3.org/1999/xhtml}"


def chromium_or_skip():
  if browser.find_chromium() is None:
    if os.environ.get(REQUIRE_CHROMIUM):
      pytest.fail(f"{REQUIRE_CHROMIUM} is set but no Chromium is installed (apt-get install "
                  f"chromium)")
    pytest.skip(f"no Chromium (apt-get install chromium); CI sets {REQUIRE_CHROMIUM} and fails")


def _label_map():
  """Four species in two genera of one super-category, one of another: counts 5, 50, 150, 2."""
  return label_map_lib.LabelMap(
      category_ids=(3, 5, 7, 9), names=("Abies alba", "Abies grandis", "Cedrus libani",
                                        "Dodo ineptus"),
      supercategories=(0, 0, 0, 1), supercategory_names=("Plantae", "Aves"),
      train_counts=(5, 50, 150, 2), edition="2017")


# image id, label, top-5, top-1 confidence
_TABLE = [
    (10, 0, [0, 1, 2, 3, 3], 0.9),   # right
    (11, 0, [1, 0, 2, 3, 3], 0.8),   # Abies alba taken for Abies grandis (same genus)
    (12, 0, [1, 0, 2, 3, 3], 0.6),   # again, less sure
    (13, 1, [0, 1, 2, 3, 3], 0.7),   # the other way
    (14, 2, [2, 0, 1, 3, 3], 0.95),  # right
    (15, 3, [2, 0, 1, 3, 3], 0.99),  # Dodo taken for Cedrus: other genus, other super-category
    (16, -1, [0, 1, 2, 3, 3], 0.5),  # unlabelled: never scored
]


def _arrays():
  ids, labels, top, confidence = (np.array([row[k] for row in _TABLE]) for k in range(4))
  return ids, labels, top, confidence


def _report(label_map=None):
  """A report dict as inat-eval builds it, from _TABLE."""
  label_map = label_map or _label_map()
  ids, labels, top, confidence = _arrays()
  report = accuracy.summarize(labels, top, label_map)
  report.update(model="mobilenet_v1", model_dir="/m", which="best", data_dir="/d", split="val",
                edition="2017", date="2030-01-01T00:00:00+00:00", scored_part="all",
                settings={"crop": "central 87.5% crop"})
  labelled = labels >= 0
  report["calibration"] = calibration.reliability(confidence[labelled],
                                                  top[labelled, 0] == labels[labelled])
  report["errors"] = {**errors.summary(labels, top[:, 0], label_map),
                      "confused_pairs": errors.confused_pairs(labels, top[:, 0], confidence, ids,
                                                              label_map),
                      "confident_mistakes": errors.confident_mistakes(labels, top[:, 0],
                                                                      confidence, ids, label_map)}
  return report


def _jpeg(color, size=(300, 200)):
  buffer = io.BytesIO()
  Image.new("RGB", size, color).save(buffer, format="JPEG")
  return buffer.getvalue()


def _photos():
  """Thumbnails for every photo the _report page shows, but no train photo of species 1."""
  photos = photos_lib.Photos()
  for image_id in (11, 13, 15, 12):
    photos.images[f"val:{image_id}"] = photos_lib.thumbnail(_jpeg((200, 40, image_id)))
  for species, image_id in ((0, 900), (2, 902)):
    photos.train_examples[species] = image_id
    photos.images[f"train:{image_id}"] = photos_lib.thumbnail(_jpeg((10, 90, 200)))
  photos.missing["train-species:1"] = "no train photo of this species in the 20,000 train records"
  return photos


def _parse(text):
  """The page as an element tree; html5lib's strict mode raises on any parse error."""
  return html5lib.HTMLParser(strict=True, namespaceHTMLElements=True).parse(text)


# -- metrics as plain data ---------------------------------------------------------------------


def test_calibration_equals_guo_et_al_formula_on_a_hand_made_table():
  confidences = np.array([0.05, 0.5, 0.55, 0.95, 1.0, 0.0])
  hits = np.array([False, True, False, True, True, False])
  result = calibration.reliability(confidences, hits, num_bins=10)
  # Bins ((m-1)/10, m/10]: {0.05, 0.0} in bin 0, {0.5} in bin 4, {0.55} in bin 5, {0.95, 1.0} in 9.
  by_bin = {i: b for i, b in enumerate(result["bins"]) if b["images"]}
  assert sorted(by_bin) == [0, 4, 5, 9]
  assert by_bin[9]["accuracy"] == 1.0 and by_bin[9]["confidence"] == pytest.approx(0.975)
  expected = (2 * abs(0 - 0.025) + abs(1 - 0.5) + abs(0 - 0.55) + 2 * abs(1 - 0.975)) / 6
  assert result["ece"] == pytest.approx(expected)
  assert result["num_bins"] == 10 and "Guo et al. 2017" in result["method"]
  assert calibration.reliability(np.full(4, 0.5), np.array([1, 1, 0, 0], bool))["ece"] == 0
  with pytest.raises(ValueError, match="probabilities in"):
    calibration.reliability(np.array([0.5, 3.0]), np.array([True, False]))


def test_errors_on_a_hand_made_table():
  label_map = _label_map()
  ids, labels, top, confidence = _arrays()
  summary = errors.summary(labels, top[:, 0], label_map)
  assert summary == {"top1_errors": 4, "same_genus": 3, "same_supercategory": 3}
  pairs = errors.confused_pairs(labels, top[:, 0], confidence, ids, label_map)
  assert [(p["true"], p["predicted"], p["count"], p["reverse_count"]) for p in pairs] == [
      (0, 1, 2, 1), (1, 0, 1, 2), (3, 2, 1, 0)]
  assert pairs[0]["image_id"] == 11 and pairs[0]["confidence"] == 0.8  # its most confident error
  assert pairs[0]["same_genus"] and pairs[0]["true_genus"] == "Abies"  # 2017: from the binomial
  assert not pairs[2]["same_genus"]
  mistakes = errors.confident_mistakes(labels, top[:, 0], confidence, ids, label_map)
  # Image 12 repeats image 11's pair (Abies alba taken for Abies grandis), less sure: left out.
  assert [(m["image_id"], m["predicted_name"]) for m in mistakes] == [
      (15, "Cedrus libani"), (11, "Abies grandis"), (13, "Abies alba")]
  assert len(errors.confident_mistakes(labels, top[:, 0], confidence, ids, label_map,
                                       limit=1)) == 1
  per_class = {c["name"]: c for c in accuracy.summarize(labels, top, label_map)["classes"]}
  assert per_class["Abies alba"]["confused_with"] == "Abies grandis"
  assert per_class["Abies alba"]["confused_count"] == 2
  assert per_class["Cedrus libani"]["confused_with"] == ""


def test_prior_changes_count_each_way():
  label_map = _label_map()
  labels = np.array([0, 1, 2, 3, -1])
  before = (np.array([0, 0, 2, 1, 0]), np.full(5, 0.5))
  after = (np.array([1, 1, 2, 2, 3]), np.array([0.6, 0.7, 0.5, 0.8, 0.9]))
  changes = errors.prior_changes(labels, before, after, np.arange(5), label_map)
  assert (changes["changed"], changes["right_to_wrong"], changes["wrong_to_right"],
          changes["wrong_to_wrong"]) == (3, 1, 1, 1)  # the unlabelled image is not counted
  assert changes["examples"]["wrong_to_right"][0]["image_id"] == 1
  assert changes["examples"]["right_to_wrong"][0]["with_prior_name"] == "Abies grandis"


def test_thumbnail_is_a_small_jpeg_of_the_record_image():
  thumb = photos_lib.thumbnail(_jpeg((0, 120, 0), size=(900, 600)))
  with Image.open(io.BytesIO(thumb)) as image:
    assert image.format == "JPEG" and image.size == (160, 107)
    assert image.getpixel((80, 50))[1] > 100
  with pytest.raises(OSError):
    photos_lib.thumbnail(b"not a jpeg")


# -- one report, every rendering ---------------------------------------------------------------


def test_text_and_markdown_show_the_same_tables_in_their_own_syntax():
  report = _report()
  built = sections.eval_sections(report)
  text = render.text(built)
  assert "**" not in text and "|---" not in text and "| " not in text  # plain text, no markdown
  assert "top-1 33.33% (chance 25.00%)" in text
  assert re.search(r"Plantae\s+3\s+68\.3\s+44\.44%\s+100\.00%", text)  # aligned columns
  assert "Expected calibration error" in text
  markdown = render.markdown(built)
  assert markdown.startswith("# mobilenet_v1 on val: evaluation report")
  assert "| Super-category | Species | Avg train images | Top-1 | Top-5 |" in markdown
  assert "| 2 | Abies alba | Abies | Abies grandis | Abies | 1 |" in markdown
  # The per-species table is the page's (and per_class.csv's), not the terminal's.
  assert "Most often taken for" not in text and "Most often taken for" not in markdown
  assert json.loads(render.json_text(report))["top1"] == report["top1"]


def test_a_table_or_plot_kept_off_the_terminal_says_where_it_is():
  """A table shown with no rows in the terminal (text_rows=0) printed its header over nothing,
  then "... 30 more" (inat-eval's precision-coverage curve): now one line saying where it is."""
  rows = tuple({"coverage": c / 10} for c in range(30))
  table = blocks.Table((blocks.Column("coverage", "Coverage", "percent"),), rows, text_rows=0)
  assert render.text_table(table) == ["  its 30 rows in report.html"]
  plot = blocks.Plot("Precision against coverage", "Coverage (%)", "Precision (%)", (
      blocks.Series("model", (1.0, 2.0), (3.0, 4.0)),), table)
  text = render.text([blocks.Section("curve", "open-set", "Curves", (plot,))])
  assert ("Precision against coverage: plotted in report.html, its 30 points under The "
          "numbers") in text
  assert "Coverage" not in text.replace("against coverage", "")  # no header over no rows
  markdown = render.markdown([blocks.Section("curve", "open-set", "Curves", (plot,))])
  assert "| Coverage |" not in markdown and "its 30 rows in report.html" in markdown


def test_calibrated_rules_below_their_target_are_said_to_be(tmp_path):
  """"Calibrated rules meet 95 %" read as a promise where the scored images gave 70 %: the
  report says what was reached, and why it can fall short (too few held-out images)."""
  def rule(name, title, precision):
    return {"rule": name, "title": title, "setting": "", "precision": precision,
            "answered": 1.0, "species_coverage": 0.5, "species_precision": precision,
            "mistakes": 3, "mistake_severity": 1.0, "severity_per_image": 0.1}
  report = {"model": "m", "split": "val", "answers": {
      "images": 92, "scored": "the report half", "target_precision": 0.95,
      "held_out": {"images": 89, "split": "val", "part": "tune"}, "curves": [],
      "rules": [rule("argmax", "argmax", 0.6), rule("precision", "ours", 0.7),
                rule("risk", "risk", 0.96)]}}
  text = render.text([sections.answers_beyond_species(report)])
  assert "chosen to reach 95.00% at each rank on 89 held-out images (val, tune)" in text
  assert "they reach 70.00% (ours), 96.00% (risk)" in text
  assert "Below the target: 89 held-out images are too few" in text
  report["answers"]["rules"][1]["precision"] = 0.94
  assert "Below the target" not in render.text([sections.answers_beyond_species(report)])
  # The plot's points carry the table's names ("ours"), not the flag value ("precision").
  plot = [b for b in sections.answers_beyond_species(report).blocks
          if isinstance(b, blocks.Plot)][0]
  assert plot.series[-1].labels == ("argmax", "ours", "risk")


def test_json_refuses_numbers_json_cannot_carry():
  with pytest.raises(ValueError, match="NaN or infinite"):
    render.json_text({"top1": float("nan")})
  assert json.loads(render.json_text({"n": np.int64(3), "a": np.arange(2)})) == {"n": 3,
                                                                               "a": [0, 1]}


def test_the_page_parses_embeds_every_image_and_holds_report_json_headline(tmp_path):
  report = _report()
  photos = _photos()
  built = sections.eval_sections(report, photos)
  text = page.html_page(built, photos.images)
  tree = _parse(text)
  # Every image is inside the file, and decodes.
  images = tree.findall(f".//{XHTML}img")
  assert len(images) == 2 + 2 * 3 + 2 * 3 - 2  # 2 plots; 3 pair and 3 mistake cards; 2 missing
  for image in images:
    kind, payload = re.fullmatch(r"data:image/(png|jpeg);base64,(.+)", image.get("src")).groups()
    with Image.open(io.BytesIO(base64.b64decode(payload))) as decoded:
      assert decoded.format.lower() == kind
  assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)  # nothing from the network
  # The headline is report.json's number.
  figures = {f.get("data-key"): f for f in tree.iter(f"{XHTML}div") if f.get("data-key")}
  stored = json.loads(render.json_text(report))
  assert float(figures["top1"].get("data-value")) == stored["top1"]
  assert float(figures["top5"].get("data-value")) == stored["top5"]
  # A missing train photo says why, in its place.
  assert "no train photo of this species in the 20,000 train records" in text
  # Fig. 5's table of numbers is report.json's bins.
  fig5 = tree.find(f".//{XHTML}section[@id='fig5']")
  cells = [[td.text for td in row.findall(f"{XHTML}td")]
           for row in fig5.findall(f".//{XHTML}tbody/{XHTML}tr")]
  assert cells == [[b["train_images"], str(b["species"]), f"{100 * b['top1_mean']:.2f}%",
                    f"{100 * b['top1_median']:.2f}%"] for b in stored["train_count_bins"]]
  # The per-species rows travel as JSON, one array per species.
  payload = json.loads(tree.find(f".//{XHTML}script[@type='application/json']").text)
  assert len(payload["rows"]) == len(stored["classes"]) == 4
  assert payload["rows"][0][0] == "Abies alba"


def test_markup_in_names_stays_text_everywhere():
  label_map = _label_map()
  hostile = label_map_lib.LabelMap(
      label_map.category_ids, ("</script><b id=x>bold</b>", "a & b", "c\"d", "e<f"),
      label_map.supercategories, ("<i>P</i>", "Aves"), label_map.train_counts, edition="2017")
  report = _report(hostile)
  # Every section with names in it (the plots, drawn by matplotlib, have none).
  text = page.html_page([sections.overview(report), sections.supercategories(report),
                         sections.confusions(report), sections.mistakes(report),
                         sections.species_table(report)])
  tree = _parse(text)
  assert tree.find(f".//{XHTML}b[@id='x']") is None and tree.find(f".//{XHTML}i") is None
  payload = json.loads(tree.find(f".//{XHTML}script[@type='application/json']").text)
  assert payload["rows"][0][0] == "</script><b id=x>bold</b>"


def _open_rates_section(report, photos=None):
  """A metric that is not in EVAL_SECTIONS: the way a new one (roll-up, open set) is added."""
  del photos
  rows = tuple({"coverage": c, "precision": p} for c, p in report["open_set"])
  table = blocks.Table((blocks.Column("coverage", "Coverage", "percent"),
                        blocks.Column("precision", "Precision", "percent")), rows)
  return blocks.Section("precision-coverage", "open-set", "Precision against coverage", (
      blocks.Plot("precision-coverage", "Coverage (%)", "Precision (%)", (blocks.Series(
          "model", tuple(100 * c for c, _ in report["open_set"]),
          tuple(100 * p for _, p in report["open_set"])),), table),))


def test_a_new_metric_is_one_section_function_in_every_rendering():
  report = dict(_report(), open_set=[(0.5, 0.9), (1.0, 0.33)])
  built = sections.eval_sections(report, extra=[_open_rates_section])
  assert [s.group for s in built].index("open-set") < [s.group for s in built].index("errors")
  assert "Precision against coverage" in render.text(built)
  assert "| 50.00% | 90.00% |" in render.markdown(built)
  tree = _parse(page.html_page([s for s in built if s.group in ("summary", "open-set")]))
  section = tree.find(f".//{XHTML}section[@id='precision-coverage']")
  assert section.find(f".//{XHTML}img").get("src").startswith("data:image/png;base64,")
  heading = [h.text for h in tree.iter(f"{XHTML}h2")]
  assert "Open set: which answers to trust" in heading


def test_a_section_naming_an_unknown_group_is_refused():
  with pytest.raises(ValueError, match="group 'misc'"):
    blocks.Section("x", "misc", "X", ())


# -- the browser -------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_browser_check_catches_a_broken_script(tmp_path):
  """The console check is real: a page with a script error and a failed load reports both."""
  chromium_or_skip()
  bad = tmp_path / "bad.html"
  bad.write_text("<!DOCTYPE html><title>t</title><script>console.error('boom'); nothing();"
                 "</script><img src='missing.png' alt=''>")
  result = browser.open_page(str(bad))
  assert any("console.error: boom" in e for e in result.errors)
  assert any("ReferenceError: nothing is not defined" in e for e in result.errors)
  assert any("missing.png" in e for e in result.errors)


@pytest.mark.slow
def test_the_page_opens_in_chromium_without_errors_and_sorts(tmp_path):
  chromium_or_skip()
  photos = _photos()
  path = tmp_path / "report.html"
  path.write_text(page.html_page(sections.eval_sections(_report(), photos), photos.images))
  # Click "Top-1" of the per-species table twice (descending, then ascending); read the names.
  result = browser.open_page(str(path), screenshot=str(tmp_path / "report.png"), full_page=True,
                             evaluate="""(() => {
    const box = document.querySelector('#species div.sortable');
    const names = () => [...box.querySelectorAll('tbody tr')].map(r => r.cells[0].textContent);
    const header = [...box.querySelectorAll('th')].find(h => h.textContent === 'Top-1');
    header.click(); const down = names(); header.click();
    return {down: down, up: names(), shown: box.querySelector('.count').textContent};
  })()""")
  assert result.errors == []
  assert all(url.startswith(("file:", "data:")) for url in result.requests), result.requests
  assert result.script["down"][0] == "Cedrus libani"  # top-1 100%
  assert result.script["up"][0] == "Abies grandis"     # top-1 0%, before Dodo by name order
  assert result.script["shown"] == "4 of 4 rows shown"
  assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_report_at_full_scale_stays_small(tmp_path):
  """10,000 species, 100,000 images: the page stays under 15 MB; times are printed, not asserted."""
  from inat_tf.report import plots  # pylint: disable=g-import-not-at-top
  from inat_tf.report import synthetic  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  report, photos = synthetic.report(num_classes=10_000, num_images=100_000)
  built = sections.eval_sections(report, photos)
  text = page.html_page(built, photos.images, plots.render_all(built))
  seconds = time.perf_counter() - start
  size = len(text.encode("utf-8"))
  print(f"\n10,000 species, 100,000 images: page {size / 1e6:.2f} MB, made in {seconds:.1f} s")
  assert size < 15e6
  assert len(json.loads(re.search(r'<script type="application/json" id="rows-0">(.*?)</script>',
                                  text).group(1))["rows"]) == 10_000
  if browser.find_chromium():
    (tmp_path / "report.html").write_text(text)
    result = browser.open_page(str(tmp_path / "report.html"))
    print(f"opened in headless Chromium in {result.load_seconds:.2f} s")
    assert result.errors == []


# -- inat-eval on the tiny trained model -------------------------------------------------------


@pytest.mark.slow
@TRAINED_MODEL_GROUP
def test_inat_eval_prints_plain_text_and_writes_a_page_a_browser_opens(tiny_built_dir,
                                                                       trained_dir, tmp_path):
  from tests import helpers  # pylint: disable=g-import-not-at-top
  result = helpers.run([helpers.console_script("inat-eval"), f"--data_dir={tiny_built_dir}",
                        f"--model_dir={trained_dir}", f"--output_dir={tmp_path}"])
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  assert "**" not in out and "|---" not in out
  assert out.rstrip().splitlines()[-1].startswith(f"Report: {tmp_path}/report.html")
  stored = json.loads((tmp_path / "report.json").read_text())
  assert f"top-1 {100 * stored['top1']:.2f}%" in out
  text = (tmp_path / "report.html").read_text()
  tree = _parse(text)
  figures = {f.get("data-key"): f for f in tree.iter(f"{XHTML}div") if f.get("data-key")}
  assert float(figures["top1"].get("data-value")) == stored["top1"]
  # The photos came from the records: one per confused pair's error and one train photo of what
  # it was taken for (the tiny set's train split is read whole within the limit).
  pairs = stored["errors"]["confused_pairs"]
  assert pairs, "the tiny model makes errors on val"
  for pair in pairs:
    assert f"val image {pair['image_id']}" in text
    assert str(pair["predicted"]) in stored["photos"]["train_examples"]
  assert stored["photos"]["missing"] == {}
  assert (tmp_path / "accuracy_vs_train_images.png").read_bytes()[:4] == b"\x89PNG"
  chromium_or_skip()
  opened = browser.open_page(str(tmp_path / "report.html"), screenshot=str(tmp_path / "page.png"),
                             full_page=True)
  assert opened.errors == []
  assert all(url.startswith(("file:", "data:")) for url in opened.requests)


def test_the_location_table_on_an_unlabelled_split_says_so_with_dashes():
  """inat-predict --geo_dir prints this table for the test split, which has no labels."""
  from inat_tf import trained_model  # pylint: disable=g-import-not-at-top
  from inat_tf.geo import report as geo_report  # pylint: disable=g-import-not-at-top
  predictions = trained_model.Predictions(
      image_ids=np.arange(3), labels=np.full(3, -1), top_indices=np.array([[0, 1], [1, 0], [0, 1]]),
      top_scores=np.zeros([3, 2]), geo_top_indices=np.array([[1, 0], [1, 0], [0, 1]]),
      geo_top_scores=np.zeros([3, 2]), has_place=np.array([True, True, False]))
  comparison = dict(geo_report.compare(predictions), geo_dir="/g")
  text = render.text([sections.location_prior({"location_prior": comparison})])
  assert "2 of 3 images have a place; the prior changed the top-1 of 1." in text
  assert re.search(r"all images\s+0\s+–\s+–\s+–\s+–", text)
