"""Evaluation reports: metrics as plain data, and ONE renderer for terminal text, markdown, JSON
and a self-contained HTML page.

  accuracy.py      top-1 / top-5 overall, per species, super-category, shot bucket, rank, Fig. 5 bins
  calibration.py   reliability diagram bins and the expected calibration error (Guo et al. 2017)
  errors.py        most-confused species pairs, most confident mistakes, what a location prior changed
  blocks.py        the vocabulary: Section, Facts, Headline, Table, Plot, Gallery, Text
  sections.py      report dict -> Sections (what each metric looks like, once for every rendering)
  render.py        Sections -> terminal text, markdown; report dict -> JSON
  page.py          Sections -> one HTML page (plots, photos, sortable tables, all embedded)
  plots.py         Plot -> PNG (matplotlib)
  photos.py        thumbnails (Pillow, DCT-scaled decode) and the Photo blocks pointing at them
  record_photos.py the bounded passes over the records that fetch them (TensorFlow)
  browser.py       headless Chromium over the DevTools pipe: console errors, load time, screenshot

Adding a metric (e.g. roll-up, open-set): compute it as plain data (numbers, strings, lists and
dicts, no numpy arrays) into the report dict, e.g. report["open_set"] = {...}; write one function
`f(report, photos=None) -> blocks.Section or None` (None when its data is absent) whose Section
names a group of blocks.GROUPS ("roll-up", "open-set", ...) and holds Tables, Plots (with the
Table of their numbers), Galleries or Text; add it to sections.EVAL_SECTIONS (or pass it in
`extra=`). Terminal text, report.md, report.html and report.json then all carry it; nothing else
changes. A setting that changes the answers goes into report["settings"] (sections.SETTINGS
lists the page's lines: crop, long-tail adjustment, location prior, restriction, roll-up rule).
"""
