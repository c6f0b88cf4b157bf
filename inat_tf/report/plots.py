"""Draws a Plot block (inat_tf/report/blocks.py) as a PNG with matplotlib (Agg, no display).

Every plot of every report goes through png(): points, lines and bars, horizontal reference
lines, a diagonal, log x axes. The numbers drawn are the block's, which sections.py takes from the
report dict, so the picture and report.json cannot disagree.
"""

import io

from inat_tf.report import blocks

WIDTH_INCHES, HEIGHT_INCHES, DPI = 8.0, 4.5, 100  # 800 x 450 px
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
REFERENCE_STYLES = (("#444444", "--"), ("#999999", ":"), ("#2ca02c", "-."))


def png(plot):
  """PNG bytes of `plot` (800 x 450 px)."""
  import matplotlib  # pylint: disable=g-import-not-at-top  (only the report draws)
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top

  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  # Constrained layout keeps the legend, below the axes, inside the fixed-size picture.
  figure, axes = pyplot.subplots(figsize=(WIDTH_INCHES, HEIGHT_INCHES), layout="constrained")
  try:
    for n, series in enumerate(plot.series):
      color = COLORS[n % len(COLORS)]
      if series.style == "points":
        # Many points (one per species, up to 10,000): small and translucent, so density shows.
        size = 6 if len(series.x) > 2000 else 14
        axes.scatter(series.x, series.y, s=size, alpha=0.35 if len(series.x) > 200 else 0.8,
                     color=color, label=series.label, linewidths=0, zorder=2)
      elif series.style == "bars":
        axes.bar(series.x, series.y, width=series.width or 0.8, color=color, alpha=0.75,
                 edgecolor="white", label=series.label, zorder=1)
      elif series.style == "line":
        axes.plot(series.x, series.y, "-o", color=color, label=series.label, markersize=4,
                  zorder=3)
      else:
        raise ValueError(f"series {series.label!r}: style {series.style!r}, expected points, "
                         f"line or bars")
      for x, y, text in zip(series.x, series.y, series.labels):
        axes.annotate(text, (x, y), textcoords="offset points", xytext=(0, 4), ha="center",
                      fontsize=7, color="#333333", zorder=5)
    for n, line in enumerate(plot.reference_lines):
      color, style = REFERENCE_STYLES[n % len(REFERENCE_STYLES)]
      axes.axhline(line.y, color=color, linestyle=style, linewidth=1.2, label=line.label,
                   zorder=4)
    if plot.diagonal:
      low, high = plot.x_range or (0, 1)
      axes.plot([low, high], [low, high], color="#444444", linestyle="--", linewidth=1,
                label="perfect calibration", zorder=4)
    if plot.x_log:
      has_zero = any(x <= 0 for s in plot.series for x in s.x)
      if has_zero:  # a species without training images: symmetric log keeps 0 on the axis
        axes.set_xscale("symlog", linthresh=1)
      else:
        axes.set_xscale("log")
      # Plain numbers (1, 2, 5, 10, 20, ...), not 2 x 10^1.
      axes.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
      axes.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
      axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    if plot.x_range:
      axes.set_xlim(*plot.x_range)
    if plot.y_range:
      axes.set_ylim(*plot.y_range)
    axes.set_xlabel(plot.x_label)
    axes.set_ylabel(plot.y_label)
    axes.set_title(plot.title, fontsize=11)
    axes.grid(True, alpha=0.3, zorder=0)
    labels = axes.get_legend_handles_labels()[1]
    # One row when the labels fit the width (~110 characters at this size), else two columns.
    columns = len(labels) if sum(len(label) + 6 for label in labels) < 110 else 2
    figure.legend(loc="outside lower center", ncols=max(1, columns), fontsize=8, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
  finally:
    pyplot.close(figure)


def every_plot(sections):
  """The Plot blocks of `sections`, in order."""
  return [b for s in sections for b in s.blocks if isinstance(b, blocks.Plot)]


def render_all(sections):
  """{id(plot): PNG bytes} for every Plot of `sections` (each drawn once, for page and files)."""
  return {id(plot): png(plot) for plot in every_plot(sections)}
