/*
 * The time series: the dead of the live incidents under the filters per ISO week (or per
 * day when the range spans at most DAY_SPAN days), on a real time axis where a period
 * with no incident is an empty stretch; dragging across the chart (the brush) sets the
 * from/to filters of every panel.
 */
"use strict";

(() => {
  const L = window.ledger;
  const { el, fmt, $ } = L;
  const DAY = 86400000;
  const WEEK = 7 * DAY;
  const DAY_SPAN = 92; // days: a shorter range is drawn per day
  const MAX_FILLED = 3000; // periods: up to this many, every empty one is drawn as such

  const utcDay = (text) => {
    const [y, m, d] = String(text).slice(0, 10).split("-").map(Number);
    return Date.UTC(y, m - 1, d);
  };
  const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
  const mondayOf = (ms) => ms - ((new Date(ms).getUTCDay() + 6) % 7) * DAY;

  L.isoWeek = (ms) => {
    const date = new Date(mondayOf(ms) + 3 * DAY); // the Thursday of the same ISO week
    const year = date.getUTCFullYear();
    const week = Math.floor((date - Date.UTC(year, 0, 1)) / WEEK) + 1;
    return `${year}-W${String(week).padStart(2, "0")}`;
  };

  // Periods of the incidents (by their start), oldest first, with the empty periods
  // between them: {start, end, label, empty, low, best, high, at_least, incidents}.
  function periodsOf(incidents) {
    const live = incidents.filter((i) => i.status === "live" && i.occurred_start);
    const days = live.map((i) => utcDay(i.occurred_start));
    const from = L.state.filters.from ? utcDay(L.state.filters.from) : Math.min(...days);
    const to = L.state.filters.to ? utcDay(L.state.filters.to) : Math.max(...days);
    const byDay = live.length > 0 && (to - from) / DAY <= DAY_SPAN;
    const step = byDay ? DAY : WEEK;
    const startOf = byDay ? (ms) => ms : mondayOf;
    const bins = new Map();
    live.forEach((incident, i) => {
      const start = startOf(days[i]);
      const bin = bins.get(start) || { start, low: 0, best: 0, high: 0, at_least: false, incidents: 0 };
      const f = incident.fatalities || {};
      bin.low += f.low || 0;
      bin.best += f.best || 0;
      bin.high += f.high || 0;
      bin.at_least ||= f.qualifier === "at_least";
      bin.incidents += 1;
      bins.set(start, bin);
    });
    const starts = [...bins.keys()].sort((a, b) => a - b);
    const periods = [];
    const fill = starts.length && (starts.at(-1) - starts[0]) / step <= MAX_FILLED;
    starts.forEach((start, i) => {
      const previous = i ? starts[i - 1] : null;
      if (previous !== null && start - previous > step) {
        const gap = { start: previous + step, end: start - DAY, empty: true, incidents: 0 };
        if (fill) {
          for (let at = gap.start; at < start; at += step) periods.push({ start: at, end: at + step - DAY, empty: true, incidents: 0 });
        } else {
          periods.push(gap);
        }
      }
      periods.push({ ...bins.get(start), end: start + step - DAY });
    });
    const label = (ms) => (byDay ? isoDay(ms) : L.isoWeek(ms));
    for (const p of periods) p.label = label(p.start) === label(p.end) ? label(p.start) : `${label(p.start)} – ${label(p.end)}`;
    return { periods, unit: byDay ? "day" : "ISO week", step, label };
  }

  L.drawSeries = (answers, incidents) => {
    const { periods, unit, step, label } = periodsOf(incidents);
    L.state.series = { periods, unit };
    $("series-unit").textContent = unit === "day" ? "per day" : "per ISO week";
    drawChart(periods, step);
    const shown = [];
    for (const p of periods) {
      const last = shown.at(-1);
      if (p.empty && last && last.empty) last.end = p.end; // one row per stretch of empty periods
      else shown.push({ ...p });
    }
    const rows = shown.map((p) => {
      const first = label(p.start);
      const final = label(p.end);
      const text = first === final ? first : `${first} – ${final}`;
      return p.empty
        ? el("tr", { class: "gap", "data-gap": `${first}/${final}` },
            el("th", { scope: "row", text }),
            el("td", { colspan: 4, class: "gap-cell", text: "no incident" }))
        : el("tr", { "data-period": first },
            el("th", { scope: "row", text: first }),
            L.numCell(p.low, p.at_least), L.numCell(p.best, p.at_least), L.numCell(p.high, p.at_least),
            el("td", { class: "num", text: fmt(p.incidents) }));
    });
    L.fillBody($("series-table"), rows, "No incidents under these filters.", 5);
    L.setFreshness("panel-series", answers);
  };

  function drawChart(periods, step) {
    if (typeof window.Chart !== "function") return;
    const points = periods.filter((p) => !p.empty);
    const empties = periods.filter((p) => p.empty && p.end - p.start < step);
    const best = [...points.map((p) => ({ x: p.start + step / 2, y: p.best })), ...empties.map((p) => ({ x: p.start + step / 2, y: null }))]
      .sort((a, b) => a.x - b.x);
    const whiskers = points.map((p) => ({ x: p.start + step / 2, y: [p.low, p.high] }));
    const xmin = periods.length ? periods[0].start : 0;
    const xmax = periods.length ? periods.at(-1).end + DAY : 1;
    const existing = L.state.charts.series;
    if (existing) existing.destroy();
    L.state.charts.series = new window.Chart($("series-chart"), {
      type: "bar",
      data: {
        datasets: [
          { label: "best estimate", data: best, backgroundColor: "rgba(29, 78, 216, 0.8)", grouped: false, order: 2, barPercentage: 0.9, categoryPercentage: 1 },
          { label: "low – high", data: whiskers, backgroundColor: "rgba(16, 42, 67, 0.9)", grouped: false, order: 1, barPercentage: 0.15, categoryPercentage: 1, minBarLength: 2 },
        ],
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        parsing: { xAxisKey: "x", yAxisKey: "y" },
        scales: {
          x: { type: "linear", min: xmin, max: xmax, offset: false, grid: { display: false },
               ticks: { maxTicksLimit: 8, callback: (v) => isoDay(v) } },
          y: { beginAtZero: true, ticks: { callback: (v) => fmt(v) }, grid: { color: "#e4e7eb" } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 14 } },
          tooltip: { callbacks: { title: (items) => (items[0] ? isoDay(items[0].parsed.x) : "") } },
        },
      },
    });
  }

  // --- the brush ------------------------------------------------------------------------

  function brush() {
    const canvas = $("series-chart");
    const box = $("series-brush");
    let startX = null;
    const valueAt = (x) => {
      const scale = L.state.charts.series.scales.x;
      return scale.getValueForPixel(Math.min(scale.right, Math.max(scale.left, x)));
    };
    canvas.addEventListener("pointerdown", (event) => {
      if (!L.state.charts.series) return;
      startX = event.offsetX;
      canvas.setPointerCapture(event.pointerId); // a drag past the edge still ends here
      box.hidden = false;
      box.style.left = `${startX}px`;
      box.style.width = "0px";
    });
    canvas.addEventListener("pointermove", (event) => {
      if (startX === null) return;
      box.style.left = `${Math.min(startX, event.offsetX)}px`;
      box.style.width = `${Math.abs(event.offsetX - startX)}px`;
    });
    canvas.addEventListener("pointerup", (event) => {
      if (startX === null) return;
      const [a, b] = [startX, event.offsetX].sort((x, y) => x - y);
      startX = null;
      box.hidden = true;
      if (b - a < 4) return; // a click, not a drag
      L.setRange(isoDay(valueAt(a)), isoDay(valueAt(b)));
    });
    $("series-reset").addEventListener("click", () => L.setRange("", ""));
  }

  function seriesCsv() {
    const { periods = [] } = L.state.series || {};
    const rows = periods.map((p) => [p.label, isoDay(p.start), isoDay(p.end), p.empty ? "" : p.low, p.empty ? "" : p.best, p.empty ? "" : p.high, p.empty ? "" : p.at_least, p.incidents]);
    L.saveFile("series.csv", L.csvText([["period", "start", "end", "low", "best", "high", "at_least", "incidents"], ...rows]));
  }

  L.panels.series = { csv: seriesCsv, init: brush };
})();
