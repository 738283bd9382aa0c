// Draws the charts of templates/partials/chart.html with uPlot (static/vendor/uplot, docs/decisions/0024).
// Each chart's figures are also a table beside it, open until the drawing is made: a page works without this file.
"use strict";

const Charts = (() => {
  // Okabe and Ito's colour-blind-safe hues, darkened where needed to a 3:1 contrast on white.
  const COLOURS = ["#0072B2", "#B45F00", "#C2185B", "#009E73", "#6B21A8", "#475467", "#CC79A7", "#5D6B00"];
  // Lines differ by dash too, so they are told apart without colour.
  const DASHES = [[], [8, 4], [2, 3], [12, 3, 3, 3]];
  const HEIGHT = 240;
  const AXIS = { stroke: "#475467", grid: { stroke: "#e3e6ee", width: 1 }, ticks: { stroke: "#e3e6ee", width: 1 } };

  function format(value, unit) {
    if (value === null || value === undefined) return "–";
    if (unit === "usd") return `$${value.toFixed(6)}`;
    if (unit === "ms") return `${value.toLocaleString("en-US", { maximumFractionDigits: 1 })} ms`;
    if (unit === "share") return `${Math.round(value * 100)}%`;
    return Math.round(value).toLocaleString("en-US");
  }

  // Axis ticks: short forms of `format`.
  function tick(value, unit) {
    if (unit === "usd") return value === 0 ? "$0" : `$${Number(value.toPrecision(2))}`;
    if (unit === "ms") return value >= 1000 ? `${value / 1000} s` : `${value} ms`;
    if (unit === "share") return `${Math.round(value * 100)}%`;
    return value >= 1000 ? `${value / 1000}k` : String(value);
  }

  // Stacked layers: each value is its own plus those below it; a missing value counts as none.
  function cumulative(series) {
    let below = series[0].values.map(() => 0);
    return series.map((layer) => {
      below = layer.values.map((value, index) => below[index] + (value || 0));
      return below;
    });
  }

  function timeAxis(data) {
    const day = data.step >= 86400;
    return {
      ...AXIS,
      values: day ? "{MMM} {D}" : [[86400, "{MMM} {D}"], [3600, "{HH}:{mm}", "\n{MMM} {D}"], [1, "{HH}:{mm}"]],
    };
  }

  function legendValue(data, layer) {
    return (plot, _value, _seriesIndex, index) => (index === null ? "–" : format(data.series[layer].values[index], data.unit));
  }

  function lineSeries(data) {
    return data.series.map((series, index) => ({
      label: series.label,
      stroke: COLOURS[index % COLOURS.length],
      dash: DASHES[index % DASHES.length],
      width: 2,
      spanGaps: false,
      value: legendValue(data, index),
    }));
  }

  function barSeries(data) {
    const bars = uPlot.paths.bars({ size: [0.7, 48], gap: 1 });
    return data.series.map((series, index) => ({
      label: series.label,
      stroke: COLOURS[index % COLOURS.length],
      fill: COLOURS[index % COLOURS.length],
      width: 0,
      paths: bars,
      points: { show: false },
      value: legendValue(data, index),
    }));
  }

  // uPlot draws series in order, each over the last: the top layer goes first so the lower ones show.
  function plotData(data) {
    if (data.kind !== "stacked-bars") return [data.x, ...data.series.map((series) => series.values)];
    return [data.x, ...cumulative(data.series).reverse()];
  }

  function options(data, width) {
    const stacked = data.kind === "stacked-bars";
    const series = stacked ? barSeries(data).reverse() : lineSeries(data);
    const half = stacked ? data.step / 2 : 0;
    return {
      width,
      height: HEIGHT,
      tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"),
      series: [{ label: "Time (UTC)" }, ...series],
      scales: {
        x: { time: true, range: (plot, min, max) => [min - half, max + half] },
        y: { range: (plot, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        timeAxis(data),
        { ...AXIS, size: 64, values: (plot, splits) => splits.map((value) => tick(value, data.unit)) },
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
  }

  function draw(figure) {
    const source = document.getElementById(figure.dataset.chart);
    const container = figure.querySelector(".chart-plot");
    if (!source || !container || typeof uPlot === "undefined") return;
    const data = JSON.parse(source.textContent);
    container.hidden = false;
    const plot = new uPlot(options(data, container.clientWidth), plotData(data), container);
    new ResizeObserver(() => plot.setSize({ width: container.clientWidth, height: HEIGHT })).observe(container);
    const table = figure.querySelector("details.chart-table");
    if (table) table.open = false;
    return plot;
  }

  return { draw, format };
})();

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("figure[data-chart]").forEach((figure) => Charts.draw(figure));
});
