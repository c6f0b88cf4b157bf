"""Renders Sections (inat_tf/report/blocks.py) as terminal text or markdown, and a report dict as
JSON. The HTML page is inat_tf/report/page.py. Every block kind is written here once, for every
report that uses it.

  print(render.text(sections))          # plain aligned text, as inat-eval prints it
  render.markdown(sections)             # report.md
  render.json_text(report)              # report.json
"""

import json

import numpy as np

from inat_tf.report import blocks
from inat_tf.report.blocks import (  # pylint: disable=g-importing-member
    Facts, Gallery, Headline, Plot, Table, Text)

INDENT = "  "


def _rows(table):
  shown = table.rows if table.text_rows is None else table.rows[:table.text_rows]
  return shown, len(table.rows) - len(shown)


def _cells(table, rows):
  return [[blocks.format_value(row.get(c.key), c.format) for c in table.columns] for row in rows]


def _headline_parts(figure):
  extra = []
  if figure.baseline is not None:
    extra.append(f"{figure.baseline_label} {blocks.format_value(figure.baseline, 'percent')}")
  if figure.chance is not None:
    extra.append(f"chance {blocks.format_value(figure.chance, 'percent')}")
  return blocks.format_value(figure.value, "percent"), extra


def _kept_off(rows):
  """What a table shown without rows says instead of a header over nothing."""
  return f"its {rows:,} rows in report.html" if rows else "no rows"


# -- terminal text -----------------------------------------------------------------------------


def text_table(table, indent=INDENT):
  """A Table as aligned plain text: numbers right-aligned, words left-aligned."""
  rows, more = _rows(table)
  if not rows:  # a header over no rows says nothing: say where the rows are
    return ([f"{indent}{table.caption}"] if table.caption else []) + [indent + _kept_off(more)]
  cells = [[c.label for c in table.columns]] + _cells(table, rows)
  widths = [max(len(row[i]) for row in cells) for i in range(len(table.columns))]
  lines = [f"{indent}{table.caption}"] if table.caption else []
  for row in cells:
    lines.append(indent + "  ".join(
        (cell.rjust(w) if column.numeric else cell.ljust(w))
        for cell, w, column in zip(row, widths, table.columns)).rstrip())
  if more:
    lines.append(f"{indent}... {more:,} more in report.html")
  return lines


def _text_block(block):
  if isinstance(block, Text):
    return [INDENT + block.text]
  if isinstance(block, Facts):
    width = max((len(label) for label, _ in block.items), default=0)
    return ([f"{INDENT}{block.title}:"] if block.title else []) + [
        f"{INDENT * (2 if block.title else 1)}{label:<{width}}  {value}"
        for label, value in block.items]
  if isinstance(block, Headline):
    parts = []
    for figure in block.figures:
      value, extra = _headline_parts(figure)
      parts.append(f"{figure.label.lower()} {value}" + (f" ({', '.join(extra)})" if extra else ""))
    return [INDENT + "   ".join(parts)]
  if isinstance(block, Table):
    return text_table(block)
  if isinstance(block, Plot):
    rows, more = _rows(block.table)
    if not rows:  # the plot is the point: one line saying where it is
      return [f"{INDENT}{block.title}: " + (f"plotted in report.html, its {more:,} points under "
                                            f"The numbers" if more else "nothing to plot")]
    return [f"{INDENT}{block.title}"] + text_table(block.table)
  if isinstance(block, Gallery):
    return text_table(block.table)
  raise TypeError(f"no text rendering for {type(block).__name__}")


def text(sections):
  """Plain aligned text (no markdown): each section's title, then its blocks, indented."""
  lines = []
  for section in sections:
    shown = blocks.visible(section.blocks, blocks.TERMINAL)
    if not shown:
      continue
    lines += ["", section.title]
    for block in shown:
      lines += _text_block(block)
  return "\n".join(lines).lstrip("\n") + "\n"


# -- markdown ----------------------------------------------------------------------------------


def _escape(cell):
  return cell.replace("|", "\\|")


def markdown_table(table):
  rows, more = _rows(table)
  lines = [f"*{table.caption}*", ""] if table.caption else []
  if not rows:
    return lines + [_kept_off(more) + "."]
  lines += ["| " + " | ".join(c.label for c in table.columns) + " |",
            "|" + "|".join("---:" if c.numeric else "---" for c in table.columns) + "|"]
  lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |"
            for row in _cells(table, rows)]
  if more:
    lines += ["", f"... {more:,} more rows in report.html."]
  return lines


def _markdown_block(block):
  if isinstance(block, Text):
    return [block.text]
  if isinstance(block, Facts):
    return ([f"{block.title}:", ""] if block.title else []) + [
        f"- **{label}**: {value}" for label, value in block.items]
  if isinstance(block, Headline):
    parts = []
    for figure in block.figures:
      value, extra = _headline_parts(figure)
      parts.append(f"{figure.label} **{value}**" + (f" ({', '.join(extra)})" if extra else ""))
    return [", ".join(parts) + "." + (f" {block.note}" if block.note else "")]
  if isinstance(block, Table):
    return markdown_table(block)
  if isinstance(block, Plot):
    picture = [f"![{block.title}]({block.file_name})", ""] if block.file_name else []
    return picture + markdown_table(block.table)
  if isinstance(block, Gallery):
    return markdown_table(block.table)
  raise TypeError(f"no markdown rendering for {type(block).__name__}")


def markdown(sections):
  """Markdown: the first section's title as the document's heading, the others as ## headings."""
  lines = []
  for n, section in enumerate(sections):
    shown = blocks.visible(section.blocks, blocks.MARKDOWN)
    if not shown:
      continue
    lines += ["#" * (1 if n == 0 else 2) + " " + section.title, ""]
    if section.note:
      lines += [section.note, ""]
    for block in shown:
      lines += _markdown_block(block) + [""]
  return "\n".join(lines).rstrip("\n") + "\n"


# -- JSON --------------------------------------------------------------------------------------


def _plain(value):
  """numpy scalars and arrays as Python numbers and lists (json's default hook)."""
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  raise TypeError(f"{type(value).__name__} is not JSON data")


def json_text(report):
  """report.json: the report dict as JSON. Raises ValueError on NaN or infinity (a metric that
  divided by zero): JSON has no such number, and writing it would make a file others cannot read."""
  try:
    return json.dumps(report, indent=1, default=_plain, allow_nan=False)
  except ValueError as e:
    raise ValueError(f"the report holds a NaN or infinite number, which JSON cannot carry ({e})"
                     ) from None
