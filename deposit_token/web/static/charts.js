// Bar charts with uPlot (vendored): every element with data-chart="<id>" is drawn from the JSON in the
// <script type="application/json" id="<id>"> block the server rendered ({labels, values, title, unit, lang}).
// No inline script: the page's Content-Security-Policy forbids it.
(function () {
  "use strict";

  function compact(lang) {
    const format = new Intl.NumberFormat(lang === "ko" ? "ko-KR" : "en-US", { notation: "compact", maximumFractionDigits: 1 });
    return (value) => format.format(value);
  }

  function draw(element) {
    const source = document.getElementById(element.dataset.chart);
    if (!source || typeof uPlot === "undefined") return;
    const data = JSON.parse(source.textContent);
    const xs = data.labels.map((_, i) => i);
    const short = compact(data.lang);
    const full = new Intl.NumberFormat(data.lang === "ko" ? "ko-KR" : "en-US");
    const width = Math.max(320, element.clientWidth || 800);
    const options = {
      width: width,
      height: 340,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false, range: [-0.6, xs.length - 0.4] }, y: { range: (u, min, max) => [0, max * 1.1 || 1] } },
      axes: [
        {
          splits: () => xs,
          values: (u, splits) => splits.map((i) => data.labels[i] ?? ""),
          rotate: xs.length > 6 ? -30 : 0,
          size: xs.length > 6 ? 90 : 40,
          grid: { show: false },
        },
        { values: (u, splits) => splits.map(short), size: 70, label: data.unit },
      ],
      series: [
        {},
        {
          label: data.unit,
          fill: "rgba(31, 94, 165, 0.75)",
          stroke: "#1f5ea5",
          width: 1,
          paths: uPlot.paths.bars({ size: [0.6, 90] }),
          points: { show: false },
          value: (u, v) => (v == null ? "-" : full.format(v)),
        },
      ],
    };
    const plot = new uPlot(options, [xs, data.values], element);
    element.dataset.rendered = "true";
    window.addEventListener("resize", () => plot.setSize({ width: Math.max(320, element.clientWidth), height: 340 }));
  }

  function start() {
    document.querySelectorAll("[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
