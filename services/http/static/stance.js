/*
 * Stance per country (with the statements each stance rests on: role, title, CAMEO code,
 * time and its precision; `mixed` said plainly), a country's timeline, and the alignment
 * heat map (thin pairs marked in words).
 */
"use strict";

(() => {
  const L = window.ledger;
  const { el, fmt, $, words } = L;

  const when = (s) => {
    const at = L.utcStamp(s.issued_at);
    if (s.issued_precision === "range") return `${at} to ${L.utcStamp(s.issued_end)} (a range)`;
    if (s.issued_precision === "day") return `${at.slice(0, 10)} (that day)`;
    return at;
  };

  const basisItem = (b) =>
    el("li", { "data-statement": b.statement_id },
      el("span", { class: "chip", text: words(b.stance) }), " ",
      `${words(b.role)}${b.title ? ` (${b.title})` : ""} · CAMEO ${b.cameo_code}`,
      b.goldstein === null || b.goldstein === undefined ? "" : ` · Goldstein ${Number(b.goldstein).toFixed(1)}`,
      ` · ${when(b)}`);

  function stanceText(row) {
    if (row.stance === "mixed") return `mixed: ${(row.stances || []).map(words).join(" / ")}`;
    return words(row.stance);
  }

  async function loadStance() {
    const answer = await L.api("/v1/projections/country-stance", { subject: L.state.filters.subject });
    L.state.stanceRows = answer.countries;
    L.fillBody(
      $("stance-table"),
      answer.countries.map((row) =>
        el("tr", { "data-country": row.country },
          el("th", { scope: "row" },
            el("button", { type: "button", class: "link", text: row.country, "aria-label": `Timeline of ${row.country}`,
              "aria-pressed": String(L.state.selectedCountry === row.country), onclick: () => selectCountry(row.country) })),
          el("td", { class: "subject", text: row.subject }),
          el("td", {},
            el("span", { class: `stance${row.stance === "mixed" ? " mixed" : ""}`, text: stanceText(row), "data-family": row.family || "" }),
            el("div", { class: "speaks", text: `speaks at ${words(row.role)}` }),
            el("ul", { class: "basis", "aria-label": "the statements this stance rests on" }, (row.basis || []).map(basisItem))),
          L.numCell(row.statements),
          el("td", { class: "num", text: row.goldstein_mean === null ? "–" : row.goldstein_mean.toFixed(1) }),
          el("td", { class: "num", text: row.reaction_latency_hours === null ? "–" : row.reaction_latency_hours.toFixed(1) }),
        ),
      ),
      "No statements under these filters.",
      6,
    );
    L.setFreshness("panel-stance", answer);
    if (L.state.selectedCountry) await loadTimeline(L.state.selectedCountry);
  }

  function selectCountry(country) {
    L.state.selectedCountry = country;
    for (const button of $("stance-table").querySelectorAll("button[aria-pressed]")) {
      button.setAttribute("aria-pressed", String(button.textContent === country));
    }
    loadTimeline(country).catch((error) => L.setPanelError("panel-stance", error));
  }

  async function loadTimeline(country) {
    const answer = await L.api(`/v1/projections/country-stance/${encodeURIComponent(country)}/timeline`, { subject: L.state.filters.subject });
    const entries = answer.entries || [];
    const list = el("ol", {}, entries.map((s) =>
      el("li", { "data-statement": s.statement_id },
        el("div", { class: "when", text: when(s) }),
        el("div", {}, el("span", { class: "who", text: `${s.speaker || country}${s.title ? `, ${s.title}` : ""}` }), " ",
          el("span", { class: "stance", text: words(s.stance) })),
        el("div", { class: "meta", text: [
          `${words(s.role)}`, `CAMEO ${s.cameo_code}`,
          s.goldstein === null || s.goldstein === undefined ? null : `Goldstein ${Number(s.goldstein).toFixed(1)}`,
          s.co_speakers?.length ? `with ${s.co_speakers.join(", ")}` : null,
          s.subject ? words(s.subject) : null, s.feed ? `feed ${s.feed}` : null,
        ].filter(Boolean).join(" · ") }),
      )));
    $("timeline").replaceChildren(
      el("h3", { text: `Timeline of ${country}` }),
      entries.length ? list : el("p", { class: "hint", text: "No live statements." }),
    );
  }

  // --- alignment heat map -----------------------------------------------------------------

  // light tints only, so the dark ink on every cell keeps AA contrast
  const HEAT = [[0, [253, 236, 234]], [0.33, [253, 228, 184]], [0.66, [191, 227, 214]], [1, [124, 196, 168]]];
  function heatColour(score) {
    const s = Math.min(1, Math.max(0, score));
    for (let i = 1; i < HEAT.length; i += 1) {
      const [x1, c1] = HEAT[i];
      const [x0, c0] = HEAT[i - 1];
      if (s <= x1) return `rgb(${c0.map((v, k) => Math.round(v + (c1[k] - v) * ((s - x0) / (x1 - x0)))).join(", ")})`;
    }
    return "rgb(124, 196, 168)";
  }

  async function loadAlignment() {
    const answer = await L.api("/v1/projections/alignment", { subject: L.state.filters.subject });
    const pairs = answer.pairs || [];
    const byPair = new Map(pairs.map((p) => [[p.a, p.b].sort().join("|"), p]));
    const countries = [...new Set(pairs.flatMap((p) => [p.a, p.b]))].sort();
    const box = $("heatmap");
    if (!countries.length) {
      box.replaceChildren(el("p", { class: "hint", text: "No pair of countries has spoken on a shared subject yet." }));
      L.setFreshness("panel-alignment", answer);
      return;
    }
    const cell = (row, col) => {
      if (row === col) return el("td", { class: "self", "aria-label": `${row} with itself` }, "");
      const k = [row, col].sort().join("|");
      const pair = byPair.get(k);
      if (!pair) return el("td", { "aria-label": `${row} and ${col}: no shared subject` }, "–");
      const n = pair.shared_subjects;
      const td = el("td",
        { "data-pair": k.replace("|", "-"), class: pair.thin ? "thin" : null,
          title: `${pair.a}–${pair.b}: ${pair.score.toFixed(2)} over ${n} shared subject${n === 1 ? "" : "s"}${pair.thin ? " (thin: fewer than 3)" : ""}` },
        pair.score.toFixed(2), pair.thin ? el("span", { class: "thin-word", text: " thin" }) : null);
      td.style.setProperty("background-color", heatColour(pair.score));
      return td;
    };
    box.replaceChildren(el("table", { class: "heatmap" },
      el("caption", { class: "sr-only", text: "Alignment score of each pair of countries, from 0 to 1" }),
      el("thead", {}, el("tr", {}, el("td", { class: "corner" }), countries.map((c) => el("th", { scope: "col", text: c })))),
      el("tbody", {}, countries.map((r) => el("tr", {}, el("th", { scope: "row", text: r }), countries.map((c) => cell(r, c)))))));
    L.setFreshness("panel-alignment", answer);
  }

  L.panels.stance = {
    projection: "country-stance",
    load: loadStance,
    csv: () => L.downloadApiCsv("country-stance.csv", "/v1/projections/country-stance", { subject: L.state.filters.subject }),
  };
  L.panels.alignment = {
    projection: "alignment",
    load: loadAlignment,
    csv: () => L.downloadApiCsv("alignment.csv", "/v1/projections/alignment", { subject: L.state.filters.subject }),
  };
})();
