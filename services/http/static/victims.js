/*
 * The victims panel (every community or party line, suppressed ones shown as such, the part
 * not attributed as its own bar) and the per-region table.
 */
"use strict";

(() => {
  const L = window.ledger;
  const { el, fmt, atLeast, $ } = L;
  const PATH = "/v1/projections/community-victims";
  const MAX_REGIONS = 30; // the region table queries at most this many regions

  const params = () => L.incidentParams(L.state.filters.by === "party" ? { by: "party" } : {});

  // Whether the API splits the dead by party (by=party): a 422 says it does not.
  L.probeParties = async () => {
    const answer = await L.api(PATH, { by: "party" }, { quiet: [400, 422] });
    L.state.partiesAvailable = !("status" in answer && !("total" in answer));
    $("victims-by").hidden = !L.state.partiesAvailable;
    if (!L.state.partiesAvailable && L.state.filters.by === "party") L.state.filters.by = "community";
  };

  const lineName = (line) => line.community ?? line.party ?? line.line ?? "";
  // A lone withheld line may come without its name (the API says "[withheld]").
  const lineLabel = (name) => (name === "[withheld]" ? "one line, name withheld" : L.words(name));
  const linesOf = (answer) => answer.communities || answer.parties || answer.lines || [];

  // Why a line is withheld from this token (readers get small counts suppressed).
  const why = (k) =>
    `Withheld to protect small groups: the line includes a count below ${fmt(k)} ` +
    "(one community and status, in one place, day and grading), or would let one be " +
    "recomputed. An analyst token shows exact figures.";

  // The rows the panel shows: every line, the part not attributed, and (for a reader) what
  // the withheld lines and that part hold together, so the bars add up to the total.
  function rowsOf(answer) {
    const total = answer.total || { low: 0, best: 0, high: 0 };
    const k = answer.suppression_k;
    const rows = linesOf(answer).map((line) => ({
      key: lineName(line),
      label: lineLabel(lineName(line)),
      ...line,
      text: line.suppressed ? `fewer than ${fmt(k)}` : null,
    }));
    const unattributed = answer.unattributed;
    if (answer.unattributed_suppressed) {
      rows.push({ key: "", label: "not attributed", suppressed: true, text: "withheld" });
    } else if (unattributed) {
      rows.push({ key: "", label: "not attributed", ...unattributed, incidents: null });
    }
    if (rows.some((r) => r.suppressed) && !answer.total_suppressed) {
      const shown = rows.filter((r) => !r.suppressed);
      const sum = (f) => shown.reduce((s, r) => s + (r[f] || 0), 0);
      rows.push({
        key: "withheld",
        label: "withheld lines together",
        withheld: true,
        low: Math.max(0, total.low - shown.reduce((s, r) => s + (r.high || 0), 0)),
        best: Math.max(0, total.best - sum("best")),
        high: Math.max(0, total.high - sum("low")),
        at_least: total.at_least,
        incidents: null,
      });
    }
    return rows;
  }

  async function loadVictims() {
    const answer = await L.api(PATH, params());
    const total = answer.total;
    const k = answer.suppression_k;
    $("victims-total").textContent = answer.total_suppressed ? "withheld" : atLeast(total.best, total.at_least);
    $("victims-total-range").textContent = L.range(total);
    const unattributed = answer.unattributed;
    $("victims-unattributed").textContent = answer.unattributed_suppressed
      ? "withheld"
      : atLeast(unattributed?.best, unattributed?.at_least);
    $("victims-unattributed-range").textContent = answer.unattributed_suppressed ? "" : L.range(unattributed);
    $("victims-communities").textContent = fmt(linesOf(answer).length);
    const rows = rowsOf(answer);
    L.drawRangeChart("victims", "victims-chart", rows, { horizontal: true });
    L.fillBody(
      $("victims-table"),
      rows.map((r) =>
        el(
          "tr",
          {
            "data-community": r.key,
            ...(r.suppressed ? { "data-suppressed": "true", class: "suppressed" } : {}),
            ...(r.withheld ? { "data-withheld": "true", class: "withheld" } : {}),
          },
          el("th", { scope: "row", text: r.label }),
          ...(r.suppressed
            ? [el("td", { class: "num suppressed-cell", colspan: 4, title: why(k), text: r.text })]
            : [
                L.numCell(r.low, r.at_least),
                L.numCell(r.best, r.at_least),
                L.numCell(r.high, r.at_least),
                el("td", { class: "num", text: r.incidents === null || r.incidents === undefined ? "–" : fmt(r.incidents) }),
              ]),
        ),
      ),
      "No victims under these filters.",
      5,
    );
    const note = $("victims-suppression-note");
    note.textContent = rows.some((r) => r.suppressed) ? why(k) : "";
    note.hidden = !note.textContent;
    L.setFreshness("panel-victims", answer);
  }

  // --- per region -------------------------------------------------------------------------

  async function loadRegions() {
    const regions = (L.state.regions || []).slice(0, MAX_REGIONS);
    const answers = await Promise.all(
      regions.map(([country, adm1]) => L.api(PATH, L.incidentParams({ country, adm1 }))),
    );
    const rows = regions
      .map(([country, adm1], i) => ({ country, adm1, answer: answers[i] }))
      .sort((a, b) => (b.answer.total?.best || 0) - (a.answer.total?.best || 0));
    L.state.regionRows = rows;
    L.fillBody(
      $("regions-table"),
      rows.map(({ country, adm1, answer }) =>
        el(
          "tr",
          { "data-region": `${country}/${adm1}` },
          el("td", { text: country }),
          el("th", { scope: "row", text: adm1 }),
          L.numCell(answer.total?.low, answer.total?.at_least),
          L.numCell(answer.total?.best, answer.total?.at_least),
          L.numCell(answer.total?.high, answer.total?.at_least),
          el("td", { class: "num", text: fmt(answer.incidents) }),
        ),
      ),
      "No regions under these filters.",
      6,
    );
    L.setFreshness("panel-regions", answers.length ? answers : await L.api(PATH, L.incidentParams()));
  }

  // The region table's CSV: its rows as shown (one answer per region).
  function regionsCsv() {
    const rows = (L.state.regionRows || []).map(({ country, adm1, answer: a }) => [
      country, adm1, a.total?.low, a.total?.best, a.total?.high, a.total?.at_least, a.incidents,
    ]);
    L.saveFile("regions.csv", L.csvText([["country", "adm1", "low", "best", "high", "at_least", "incidents"], ...rows]));
  }

  L.panels.victims = {
    projection: "community-victims",
    load: loadVictims,
    csv: () => L.downloadApiCsv("community-victims.csv", PATH, params()),
  };
  L.panels.regions = { projection: "community-victims", load: loadRegions, csv: regionsCsv };
})();

(() => {
  const L = window.ledger;
  const COLOURS = { line: "rgba(29, 78, 216, 0.8)", rest: "rgba(82, 96, 109, 0.75)", withheld: "rgba(154, 165, 177, 0.6)" };

  // A horizontal bar per row: the best estimate, with the low–high range as a whisker. A
  // suppressed row keeps its label ("fewer than K") and has no bar and no number.
  L.drawRangeChart = (key, canvasId, rows) => {
    if (typeof window.Chart !== "function") return; // the table carries the same figures
    const labels = rows.map((r) => (r.suppressed ? `${r.label} (${r.text})` : r.at_least ? `${r.label} (at least)` : r.label));
    const best = rows.map((r) => (r.suppressed ? null : r.best));
    const whiskers = rows.map((r) => (r.suppressed ? null : [r.low, r.high]));
    const colours = rows.map((r) => (r.withheld ? COLOURS.withheld : r.key === "" ? COLOURS.rest : COLOURS.line));
    const tooltip = (ctx) => {
      const r = rows[ctx.dataIndex] || {};
      if (r.suppressed) return r.text;
      const bound = r.at_least ? "≥ " : "";
      return ctx.datasetIndex === 0 ? `best ${bound}${L.fmt(r.best)}` : `low ${L.fmt(r.low)} – high ${L.fmt(r.high)}`;
    };
    const existing = L.state.charts[key];
    if (existing) {
      existing.data.labels = labels;
      existing.data.datasets[0].data = best;
      existing.data.datasets[0].backgroundColor = colours;
      existing.data.datasets[1].data = whiskers;
      existing.options.plugins.tooltip.callbacks.label = tooltip;
      existing.update();
      return;
    }
    L.state.charts[key] = new window.Chart(L.$(canvasId), {
      type: "bar",
      data: {
        labels,
        datasets: [
          { label: "best estimate", data: best, backgroundColor: colours, borderRadius: 4, grouped: false, order: 2, barPercentage: 0.8, categoryPercentage: 0.8, maxBarThickness: 34 },
          { label: "low – high", data: whiskers, backgroundColor: "rgba(16, 42, 67, 0.9)", grouped: false, order: 1, barPercentage: 0.12, categoryPercentage: 0.8, maxBarThickness: 5, minBarLength: 2 },
        ],
      },
      options: {
        indexAxis: "y",
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { beginAtZero: true, ticks: { callback: (value) => L.fmt(value) }, grid: { color: "#e4e7eb" } },
          y: { grid: { display: false } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 14 } },
          tooltip: { callbacks: { label: tooltip } },
        },
      },
    });
  };
})();
