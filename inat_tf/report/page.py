"""Renders Sections (inat_tf/report/blocks.py) as one self-contained HTML page.

Everything is inside the file: plots as PNG and photos as JPEG data URIs (base64), the CSS, and a
few lines of plain JavaScript that sort and filter the long tables, whose rows travel as compact
JSON (arrays, not markup) and are drawn 100 at a time. No framework, no server, no network: the
page opens from a file. Cells are escaped (html.escape, and textContent in the script).
"""

import base64
import html
import json

from inat_tf.report import blocks
from inat_tf.report.blocks import (  # pylint: disable=g-importing-member
    Facts, Gallery, Headline, Plot, Table, Text)

ROWS_AT_ONCE = 100  # rows a sortable table draws before "show all"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;
  margin:0;background:#fafafa}
header{background:#14324a;color:#fff;padding:18px 28px 12px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600}
header nav a{color:#bcd7ee;margin-right:14px;font-size:13px;text-decoration:none}
header nav a:hover{text-decoration:underline}
main{max-width:1240px;margin:0 auto;padding:8px 24px 40px}
h2{font-size:19px;border-bottom:2px solid #14324a;padding-bottom:3px;margin:32px 0 8px}
h3{font-size:16px;margin:22px 0 6px}
.note{color:#555;margin:2px 0 8px}
table{border-collapse:collapse;margin:6px 0 10px;background:#fff}
th,td{padding:3px 10px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}
th{background:#eef2f6;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:4px 0}
.facts-row{display:flex;flex-wrap:wrap;gap:8px 48px;margin:8px 0}
.facts h4{margin:6px 0 4px;font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:#555}
.facts{max-width:640px}
.facts dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:0}
.facts dt{color:#555}.facts dd{margin:0;overflow-wrap:anywhere}
.headline{display:flex;flex-wrap:wrap;gap:14px;margin:12px 0 4px}
.figure{background:#fff;border:1px solid #d9dee3;border-radius:6px;padding:10px 18px;min-width:170px}
.figure .label{display:block;color:#555;font-size:13px}
.figure .value{display:block;font-size:30px;font-weight:650;color:#14324a}
.figure .baseline,.figure .chance{display:block;color:#555;font-size:12.5px}
figure.plot{margin:8px 0}
figure.plot img{max-width:100%;height:auto;border:1px solid #e3e3e3;background:#fff}
details{margin:4px 0 10px}summary{cursor:pointer;color:#14324a}
.gallery{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0}
.card{background:#fff;border:1px solid #d9dee3;border-radius:6px;padding:8px;width:250px}
.card.wide{width:340px}
.card .photos{display:flex;gap:6px}
.card figure{margin:0;width:160px}
.card figure img{width:160px;height:160px;object-fit:cover;border-radius:3px;display:block}
.card figcaption{font-size:11.5px;color:#555;margin-top:2px}
.card figcaption .what{font-style:italic;color:#1d1d1f;font-size:12.5px}
.card .missing{width:160px;height:160px;background:#f0f0f0;color:#777;font-size:11.5px;
  display:flex;align-items:center;justify-content:center;text-align:center;border-radius:3px}
.card dl{display:grid;grid-template-columns:max-content auto;gap:0 8px;margin:6px 0 0;
  font-size:12.5px}
.card dt{color:#555}.card dd{margin:0}
.sortable input{padding:4px 8px;width:280px;margin:4px 0}
.sortable th{cursor:pointer;user-select:none;white-space:nowrap}
.sortable td{white-space:nowrap}
.sortable th,.sortable td{padding:3px 7px}
.sortable td:first-child{font-style:italic}
.sortable .scroll{overflow-x:auto}
.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
.sortable th[aria-sort=descending]::after{content:" \\25BC"}
.sortable .count{color:#555;margin:2px 0}
"""

# Sorts (click a header), filters (type) and draws a sortable table from its JSON, ROWS_AT_ONCE
# rows at a time. Cells go in as textContent: no markup from the data is ever parsed.
_SCRIPT = """
(function () {
  function cell(value, format) {
    if (value === null || value === undefined) return "\\u2013";
    if (format === "percent") return (100 * value).toFixed(2) + "%";
    if (format === "points") return (value >= 0 ? "+" : "") + (100 * value).toFixed(2);
    if (format === "int") return Number(value).toLocaleString("en-US");
    if (format.slice(0, 5) === "float") return Number(value).toFixed(Number(format.slice(5)));
    return String(value);
  }
  document.querySelectorAll("div.sortable").forEach(function (box) {
    var data = JSON.parse(document.getElementById(box.dataset.rows).textContent);
    var body = box.querySelector("tbody"), filter = box.querySelector("input");
    var count = box.querySelector(".count"), more = box.querySelector("button");
    var headers = box.querySelectorAll("th"), limit = ROWS_AT_ONCE, column = -1, sign = 1;
    var text = data.rows.map(function (row) { return row.join(" ").toLowerCase(); });
    var order = data.rows.map(function (_, i) { return i; });
    function draw() {
      var needle = filter.value.trim().toLowerCase();
      var shown = needle ? order.filter(function (i) { return text[i].indexOf(needle) >= 0; })
                         : order;
      var rows = document.createDocumentFragment();
      shown.slice(0, limit).forEach(function (i) {
        var tr = document.createElement("tr");
        data.rows[i].forEach(function (value, c) {
          var td = document.createElement("td");
          td.textContent = cell(value, data.formats[c]);
          if (data.formats[c] !== "text") td.className = "num";
          tr.appendChild(td);
        });
        rows.appendChild(tr);
      });
      body.replaceChildren(rows);
      count.textContent = Math.min(limit, shown.length).toLocaleString("en-US") + " of " +
          shown.length.toLocaleString("en-US") + " rows shown" +
          (needle ? " (filtered from " + order.length.toLocaleString("en-US") + ")" : "");
      more.hidden = shown.length <= limit;
    }
    headers.forEach(function (th, c) {
      th.addEventListener("click", function () {
        sign = column === c ? -sign : (data.formats[c] === "text" ? 1 : -1);
        column = c;
        var numeric = data.formats[c] !== "text";
        order.sort(function (a, b) {
          var x = data.rows[a][c], y = data.rows[b][c];
          if (x === null || y === null) return (x === null) - (y === null);  // empty cells last
          return sign * (numeric ? x - y : String(x).localeCompare(String(y))) || a - b;
        });
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", sign > 0 ? "ascending" : "descending");
        draw();
      });
    });
    filter.addEventListener("input", function () { limit = ROWS_AT_ONCE; draw(); });
    more.addEventListener("click", function () { limit = Infinity; draw(); });
    draw();
  });
})();
""".replace("ROWS_AT_ONCE", str(ROWS_AT_ONCE))


def _e(value):
  return html.escape(str(value), quote=True)


def data_uri(mime, payload):
  return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


class _Page:
  """One page being written: collects the JSON payloads of sortable tables."""

  def __init__(self, photos, plot_pngs):
    self.photos = photos or {}
    self.plot_pngs = plot_pngs
    self.payloads = []

  # Blocks -----------------------------------------------------------------------------------

  def table(self, table):
    if table.sortable:
      return self.sortable(table)
    head = "".join(f'<th class="num">{_e(c.label)}</th>' if c.numeric else f"<th>{_e(c.label)}</th>"
                   for c in table.columns)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"num" if c.numeric else ""}">'
            f"{_e(blocks.format_value(row.get(c.key), c.format))}</td>" for c in table.columns)
        + "</tr>" for row in table.rows)
    caption = f"<caption>{_e(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

  def sortable(self, table):
    name = f"rows-{len(self.payloads)}"
    # Compact: one array per row, fractions to 4 decimals (what 2-decimal percentages need).
    rows = [[round(v, 4) if isinstance(v, float) else v for v in (r.get(c.key) for c in
                                                                    table.columns)]
            for r in table.rows]
    payload = json.dumps({"formats": [c.format for c in table.columns], "rows": rows},
                         separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # "</" would end the script element early; JSON allows the escaped form.
    self.payloads.append((name, payload.replace("</", "<\\/")))
    head = "".join(f'<th class="{"num" if c.numeric else ""}">{_e(c.label)}</th>'
                   for c in table.columns)
    return (f'<div class="sortable" data-rows="{name}">'
            f'<input type="search" placeholder="Filter (any column)" aria-label="Filter rows">'
            f'<p class="count"></p><div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody></tbody></table></div>"
            f'<button type="button" hidden>Show all rows</button></div>')

  def plot(self, plot):
    png = self.plot_pngs[id(plot)]
    return (f'<figure class="plot"><img src="{data_uri("image/png", png)}" alt="{_e(plot.title)}"'
            f' width="800" height="450"><details><summary>The numbers</summary>'
            f"{self.table(plot.table)}</details></figure>")

  def photo(self, photo):
    jpeg = self.photos.get(photo.key()) if photo.image_id is not None else None
    caption = photo.caption or (f"{photo.split} image {photo.image_id}"
                                if photo.image_id is not None else "")
    # A caption's first line names what is shown (a species), the rest says where it is from.
    first, _, rest = caption.partition("\n")
    text = f'<span class="what">{_e(first)}</span>' + (f"<br>{_e(rest)}" if rest else "")
    if jpeg is None:
      why = photo.missing or "no photo"
      return (f'<figure><div class="missing">{_e(why)}</div>'
              f"<figcaption>{text}</figcaption></figure>")
    return (f'<figure><img src="{data_uri("image/jpeg", jpeg)}" alt="{_e(caption)}">'
            f"<figcaption>{text}</figcaption></figure>")

  def gallery(self, gallery):
    cards = []
    columns = gallery.card_columns or gallery.table.columns
    for row, photos in zip(gallery.table.rows, gallery.photos):
      facts = "".join(f"<dt>{_e(c.label)}</dt><dd>{_e(blocks.format_value(row.get(c.key), c.format))}"
                      f"</dd>" for c in columns)
      wide = " wide" if len(photos) > 1 else ""
      cards.append(f'<div class="card{wide}"><div class="photos">'
                   f'{"".join(self.photo(p) for p in photos)}</div><dl>{facts}</dl></div>')
    caption = f"<h4>{_e(gallery.table.caption)}</h4>" if gallery.table.caption else ""
    return f'{caption}<div class="gallery">{"".join(cards)}</div>'

  def headline(self, headline):
    figures = []
    for f in headline.figures:
      baseline = (f'<span class="baseline">{_e(f.baseline_label)} '
                  f'{_e(blocks.format_value(f.baseline, "percent"))} '
                  f'({_e(blocks.format_value(f.value - f.baseline, "points"))} points)</span>'
                  if f.baseline is not None and f.value is not None else "")
      chance = (f'<span class="chance">chance {_e(blocks.format_value(f.chance, "percent"))}'
                f"</span>" if f.chance is not None else "")
      # data-value: the exact number, for anyone (and the tests) to compare with report.json.
      figures.append(f'<div class="figure" data-key="{_e(f.key)}" data-value="{f.value!r}">'
                     f'<span class="label">{_e(f.label)}</span>'
                     f'<span class="value">{_e(blocks.format_value(f.value, "percent"))}</span>'
                     f"{baseline}{chance}</div>")
    note = f'<p class="note">{_e(headline.note)}</p>' if headline.note else ""
    return f'<div class="headline">{"".join(figures)}</div>{note}'

  def block(self, block):
    if isinstance(block, Text):
      return f"<p>{_e(block.text)}</p>"
    if isinstance(block, Facts):
      title = f"<h4>{_e(block.title)}</h4>" if block.title else ""
      return (f'<div class="facts">{title}<dl>' + "".join(
          f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in block.items) + "</dl></div>")
    if isinstance(block, Headline):
      return self.headline(block)
    if isinstance(block, Table):
      return self.table(block)
    if isinstance(block, Plot):
      return self.plot(block)
    if isinstance(block, Gallery):
      return self.gallery(block)
    raise TypeError(f"no HTML rendering for {type(block).__name__}")

  # The page ---------------------------------------------------------------------------------

  def section(self, section, heading=True):
    shown = blocks.visible(section.blocks, blocks.HTML)
    title = f"<h3>{_e(section.title)}</h3>" if heading else ""
    note = f'<p class="note">{_e(section.note)}</p>' if section.note else ""
    parts = []
    for n, block in enumerate(shown):
      # Consecutive Facts side by side, in one row.
      starts = isinstance(block, Facts) and (n == 0 or not isinstance(shown[n - 1], Facts))
      ends = isinstance(block, Facts) and (n + 1 == len(shown) or
                                           not isinstance(shown[n + 1], Facts))
      parts.append(('<div class="facts-row">' if starts else "") + self.block(block) +
                   ("</div>" if ends else ""))
    return f'<section id="{_e(section.id)}">{title}{note}{"".join(parts)}</section>'


  def document(self, sections, title):
    sections = [s for s in sections if blocks.visible(s.blocks, blocks.HTML)]
    titles = dict(blocks.GROUPS)
    body, nav = [], []
    for n, section in enumerate(sections):
      if n == 0:  # the summary: under the page's own heading
        body.append(self.section(section, heading=False))
        continue
      if section.group != sections[n - 1].group:
        body.append(f'<h2 id="group-{_e(section.group)}">{_e(titles[section.group])}</h2>')
        nav.append(f'<a href="#group-{_e(section.group)}">{_e(titles[section.group])}</a>')
      body.append(self.section(section))
    payloads = "".join(f'<script type="application/json" id="{name}">{payload}</script>'
                       for name, payload in self.payloads)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{_e(title)}</h1><nav>{''.join(nav)}</nav></header>"
            f"<main>{''.join(body)}</main>{payloads}<script>{_SCRIPT}</script></body></html>\n")


def html_page(sections, photos=None, plot_pngs=None, title=""):
  """The page as a string. sections: in page order (the first is shown under the title);
  photos: {blocks.photo_key: JPEG bytes}; plot_pngs: {id(plot): PNG bytes} from
  plots.render_all(sections) (drawn here when not given); title: defaults to the first section's.
  """
  if plot_pngs is None:
    from inat_tf.report import plots  # pylint: disable=g-import-not-at-top  (matplotlib)
    plot_pngs = plots.render_all(sections)
  return _Page(photos, plot_pngs).document(list(sections), title or sections[0].title)
