/*
 * incident-ledger dashboard.
 *
 * Reads the JSON query API with the reader token the analyst entered (kept in this tab's
 * sessionStorage), draws one panel per read model, and listens to the live notices of each
 * projection (GET /v1/live/{projection}, Server-Sent Events) to re-fetch exactly the panels
 * that projection feeds. Nothing is requested from any other host.
 */
"use strict";

(() => {
  const TOKEN_KEY = "incident-ledger.reader-token";
  const PROJECTIONS = ["community-victims", "country-stance", "alignment", "incidents"];
  const MAX_WEEKS = 26; // the weekly series shows at most this many recent weeks
  const MAX_REGIONS = 30; // the region table queries at most this many regions
  const INCIDENT_LIMIT = 200; // incidents fetched to list and to find weeks and regions
  const RETRY_MS = 3000; // before a live stream that failed is opened again

  const numberFormat = new Intl.NumberFormat("en-US");
  const fmt = (n) => (n === null || n === undefined ? "–" : numberFormat.format(n));
  // A figure that includes a lower bound ("at least") is shown with ≥.
  const atLeast = (n, bound) => (bound && n !== null && n !== undefined ? `≥ ${fmt(n)}` : fmt(n));
  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    filters: { country: "", week: "", min_grading: "contested", subject: "" },
    weeks: [], // ISO weeks of the live incidents, oldest first
    regions: [], // [country, adm1] of the live incidents
    weekCounts: new Map(), // live incidents listed per ISO week
    regionCounts: new Map(), // live incidents listed per "country\0adm1"
    selectedCountry: null,
    expanded: new Set(),
    streams: new Map(),
    retries: new Map(),
    charts: {},
    generation: 0, // bumped when the token changes, so stale answers are dropped
  };

  // --- HTTP -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, params = {}) {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(params)) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
    }
    const generation = state.generation;
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
      cache: "no-store",
    });
    if (generation !== state.generation) throw new ApiError(0, "the token changed");
    if (response.status === 401) {
      forgetToken("The token was not accepted. Enter a valid reader token.");
      throw new ApiError(401, "unauthorised");
    }
    if (response.status === 403) {
      forgetToken("This token may not read. Enter a reader (or operator) token.");
      throw new ApiError(403, "forbidden");
    }
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try {
        const body = await response.json();
        const first = body.errors && body.errors[0];
        message = first ? `${first.field}: ${first.message}` : body.message || body.error || message;
      } catch (_) {
        // not JSON: keep the status
      }
      throw new ApiError(response.status, message);
    }
    return response.json();
  }

  // --- small DOM helpers ------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "scope" || key === "id" || key === "title" || key === "type" || key === "colspan") node.setAttribute(key, value === true ? "" : String(value));
      else node[key] = value;
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fillBody(table, rows, emptyText, columns) {
    const body = table.tBodies[0];
    body.replaceChildren();
    if (!rows.length) {
      body.append(el("tr", { class: "empty" }, el("td", { colspan: columns, text: emptyText })));
      return;
    }
    body.append(...rows);
  }

  function numCell(value, bound = false) {
    return el("td", { class: "num", text: atLeast(value, bound) });
  }

  function clockTime(date = new Date()) {
    return date.toLocaleTimeString("en-GB", { hour12: false });
  }

  function utcStamp(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  }

  function words(slug) {
    return String(slug || "").replaceAll("_", " ");
  }

  function isoWeek(dateText) {
    const [y, m, d] = String(dateText).slice(0, 10).split("-").map(Number);
    const date = new Date(Date.UTC(y, m - 1, d));
    const day = date.getUTCDay() || 7;
    date.setUTCDate(date.getUTCDate() + 4 - day); // the Thursday of the same ISO week
    const year = date.getUTCFullYear();
    const week = Math.ceil(((date - Date.UTC(year, 0, 1)) / 86400000 + 1) / 7);
    return `${year}-W${String(week).padStart(2, "0")}`;
  }

  function range(figures) {
    if (!figures) return "";
    return `low ${fmt(figures.low)} · high ${fmt(figures.high)}`;
  }

  // --- freshness and messages -------------------------------------------------------------

  function setFreshness(panelId, answers) {
    const node = $(panelId).querySelector("[data-freshness]");
    const list = Array.isArray(answers) ? answers : [answers];
    const positions = list.map((a) => a && a.position).filter(Boolean);
    const position = positions.sort(comparePositions).at(-1) || null;
    const lag = Math.max(0, ...list.map((a) => (a && Number.isFinite(a.lag) ? a.lag : 0)));
    node.textContent = `position ${position || "–"} · lag ${fmt(lag)} · updated ${clockTime()}`;
    node.dataset.position = position || "";
    node.dataset.lag = String(lag);
    node.dataset.stale = String(lag > 0);
    delete node.dataset.error;
    const panel = $(panelId);
    panel.classList.remove("updated");
    void panel.offsetWidth; // restart the highlight
    panel.classList.add("updated");
  }

  function setPanelError(panelId, error) {
    if (error instanceof ApiError && (error.status === 0 || error.status === 401 || error.status === 403)) return;
    const node = $(panelId).querySelector("[data-freshness]");
    node.textContent = `could not load: ${error.message} (at ${clockTime()})`;
    node.dataset.error = "true";
  }

  function comparePositions(a, b) {
    const [am, as] = a.split("-").map(Number);
    const [bm, bs] = b.split("-").map(Number);
    return am - bm || as - bs;
  }

  function showMessage(text) {
    const node = $("message");
    node.textContent = text || "";
    node.hidden = !text;
  }

  function setLiveStatus() {
    const node = $("live-status");
    if (!state.token) {
      node.dataset.state = "off";
      node.textContent = "Not connected";
      return;
    }
    const open = [...state.streams.values()].filter((s) => s.readyState === EventSource.OPEN).length;
    if (open === PROJECTIONS.length) {
      node.dataset.state = "live";
      node.textContent = "Live: updates arrive as the views move";
    } else {
      node.dataset.state = open ? "connecting" : "error";
      node.textContent = `Live updates: ${open} of ${PROJECTIONS.length} streams connected`;
    }
  }

  // --- refreshers: one fetch in flight per panel, one more queued at most -----------------

  function refresher(name, load) {
    let running = null;
    let again = false;
    const run = async () => {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        do {
          again = false;
          if (!state.token) break;
          try {
            await load();
          } catch (error) {
            if (!(error instanceof ApiError)) console.error(name, error);
            setPanelError(panelOf[name], error);
          }
        } while (again && state.token);
      })();
      try {
        await running;
      } finally {
        running = null;
      }
      return undefined;
    };
    return run;
  }

  const panelOf = {
    victims: "panel-victims",
    weeks: "panel-weeks",
    regions: "panel-regions",
    stance: "panel-stance",
    alignment: "panel-alignment",
    incidents: "panel-incidents",
  };

  function victimFilters(extra = {}) {
    return {
      country: state.filters.country,
      week: state.filters.week,
      min_grading: state.filters.min_grading,
      ...extra,
    };
  }

  // --- victims per community --------------------------------------------------------------

  async function loadVictims() {
    const answer = await api("/v1/projections/community-victims", victimFilters());
    const total = answer.total || { low: 0, best: 0, high: 0 };
    const withheldRest = Boolean(answer.unattributed_suppressed);
    const unattributed = answer.unattributed || { low: 0, best: 0, high: 0 };
    const communities = answer.communities || [];
    const k = answer.suppression_k;
    // withheld with any line for a reader (it would bound the line): shown as withheld
    const withheldTotal = Boolean(answer.total_suppressed);
    $("victims-total").textContent = withheldTotal ? SUPPRESSED : atLeast(total.best, total.at_least);
    $("victims-total-range").textContent = withheldTotal ? "" : range(total);
    $("victims-unattributed").textContent = withheldRest
      ? SUPPRESSED
      : atLeast(unattributed.best, unattributed.at_least);
    $("victims-unattributed-range").textContent = withheldRest ? "" : range(unattributed);
    $("victims-communities").textContent = fmt(communities.length);

    const rows = communities.map((c) => ({ label: words(c.community), ...c }));
    if (withheldRest) {
      rows.push({ label: "not attributed", suppressed: true, unattributed: true });
    } else if (unattributed.best || unattributed.high || unattributed.low) {
      rows.push({ label: "not attributed", ...unattributed, incidents: null, unattributed: true });
    }
    // Withheld lines have no numbers to draw: the chart shows the exact ones, the table all.
    drawRangeChart("victims", "victims-chart", rows.filter((r) => !r.suppressed), { horizontal: true });
    const why = suppressedWhy(k);
    fillBody(
      $("victims-table"),
      rows.map((r) =>
        el(
          "tr",
          {
            "data-community": r.unattributed ? "" : r.community,
            ...(r.suppressed ? { "data-suppressed": "true", class: "suppressed" } : {}),
          },
          el("th", { scope: "row", text: r.label }),
          ...(r.suppressed
            ? [el("td", { class: "num suppressed-cell", colspan: 4, title: why, text: `${SUPPRESSED} (< ${fmt(k)})` })]
            : [
                numCell(r.low, r.at_least),
                numCell(r.best, r.at_least),
                numCell(r.high),
                el("td", { class: "num", text: r.incidents === null ? "–" : fmt(r.incidents) }),
              ]),
        ),
      ),
      "No victims under these filters.",
      5,
    );
    setSuppressionNote(rows.some((r) => r.suppressed) ? why : "");
    setFreshness("panel-victims", answer);
  }

  const SUPPRESSED = "suppressed";

  // Why a line is withheld from this token (readers get small counts suppressed).
  function suppressedWhy(k) {
    return (
      `Withheld to protect small groups: the line includes a count below ${fmt(k)} ` +
      "(one community and status, in one place, day and grading), or would let one be " +
      "recomputed. An analyst token shows exact figures."
    );
  }

  function setSuppressionNote(text) {
    let note = $("victims-suppression-note");
    if (!note) {
      note = el("p", { id: "victims-suppression-note", class: "meta suppression-note", role: "note" });
      $("victims-table").after(note);
    }
    note.textContent = text;
    note.hidden = !text;
  }

  // --- weekly series ----------------------------------------------------------------------

  async function loadWeeks() {
    const weeks = state.weeks.slice(-MAX_WEEKS);
    const answers = await Promise.all(
      weeks.map((week) => api("/v1/projections/community-victims", victimFilters({ week }))),
    );
    const rows = weeks.map((week, i) => ({
      label: week,
      incidents: answers[i].incidents ?? null,
      ...(answers[i].total || { low: 0, best: 0, high: 0 }),
    }));
    drawRangeChart("weeks", "weeks-chart", rows, { horizontal: false });
    fillBody(
      $("weeks-table"),
      rows.map((r, i) =>
        el(
          "tr",
          { "data-week": r.label },
          el("th", { scope: "row", text: r.label }),
          numCell(r.low, r.at_least),
          numCell(r.best, r.at_least),
          numCell(r.high),
          el("td", { class: "num", text: incidentCount(answers[i], state.weekCounts.get(r.label)) }),
        ),
      ),
      "No incidents yet.",
      5,
    );
    if (answers.length) setFreshness("panel-weeks", answers);
    else setFreshness("panel-weeks", await api("/v1/projections/community-victims", victimFilters()));
  }

  // The answer's own incident count when it has one, else the live incidents listed here.
  function incidentCount(answer, listed) {
    if (Number.isFinite(answer.incidents)) return fmt(answer.incidents);
    return listed === undefined ? "–" : fmt(listed);
  }

  // --- per region -------------------------------------------------------------------------

  async function loadRegions() {
    const regions = state.regions.slice(0, MAX_REGIONS);
    const answers = await Promise.all(
      regions.map(([country, adm1]) =>
        api("/v1/projections/community-victims", victimFilters({ country, adm1 })),
      ),
    );
    const rows = regions
      .map(([country, adm1], i) => ({ country, adm1, answer: answers[i] }))
      .filter((r) => !state.filters.country || r.country === state.filters.country)
      .sort((a, b) => (b.answer.total?.best || 0) - (a.answer.total?.best || 0));
    fillBody(
      $("regions-table"),
      rows.map(({ country, adm1, answer }) =>
        el(
          "tr",
          { "data-region": `${country}/${adm1}` },
          el("td", { text: country }),
          el("th", { scope: "row", text: adm1 }),
          numCell(answer.total?.low, answer.total?.at_least),
          numCell(answer.total?.best, answer.total?.at_least),
          numCell(answer.total?.high),
          el("td", {
            class: "num",
            text: incidentCount(answer, state.regionCounts.get(`${country}\u0000${adm1}`)),
          }),
        ),
      ),
      "No regions yet.",
      6,
    );
    if (answers.length) setFreshness("panel-regions", answers);
    else setFreshness("panel-regions", await api("/v1/projections/community-victims", victimFilters()));
  }

  // --- charts -----------------------------------------------------------------------------

  function drawRangeChart(key, canvasId, rows, { horizontal }) {
    if (typeof window.Chart !== "function") return; // the tables carry the same figures
    const labels = rows.map((r) => r.label);
    const best = rows.map((r) => r.best);
    const whiskers = rows.map((r) => [r.low, r.high]);
    const chart = state.charts[key];
    if (chart) {
      chart.data.labels = labels;
      chart.data.datasets[0].data = best;
      chart.data.datasets[1].data = whiskers;
      chart.update();
      return;
    }
    const valueAxis = horizontal ? "x" : "y";
    state.charts[key] = new window.Chart($(canvasId), {
      type: "bar",
      data: {
        labels,
        datasets: [
          {
            label: "best estimate",
            data: best,
            backgroundColor: "rgba(29, 78, 216, 0.78)",
            borderRadius: 4,
            grouped: false,
            order: 2,
            barPercentage: 0.8,
            categoryPercentage: 0.8,
            maxBarThickness: horizontal ? 34 : 56,
          },
          {
            label: "low – high",
            data: whiskers,
            backgroundColor: "rgba(16, 42, 67, 0.9)",
            grouped: false,
            order: 1,
            barPercentage: 0.12,
            categoryPercentage: 0.8,
            maxBarThickness: 5,
            minBarLength: 2,
          },
        ],
      },
      options: {
        indexAxis: horizontal ? "y" : "x",
        maintainAspectRatio: false,
        animation: { duration: 350 },
        scales: {
          [valueAxis]: {
            beginAtZero: true,
            ticks: { callback: (value) => fmt(value) },
            grid: { color: "#e4e7eb" },
          },
          [horizontal ? "y" : "x"]: { grid: { display: false } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 14 } },
          tooltip: {
            callbacks: {
              label: (ctx) => {
                const row = rows[ctx.dataIndex] || {};
                const current = state.charts[key];
                const raw = current ? current.data.datasets[1].data[ctx.dataIndex] : null;
                return ctx.datasetIndex === 0
                  ? `best ${fmt(ctx.parsed[valueAxis])}`
                  : `low ${fmt(raw ? raw[0] : row.low)} – high ${fmt(raw ? raw[1] : row.high)}`;
              },
            },
          },
        },
      },
    });
  }

  // --- stance per country and timelines ---------------------------------------------------

  async function loadStance() {
    const answer = await api("/v1/projections/country-stance", { subject: state.filters.subject });
    const countries = answer.countries || [];
    fillBody(
      $("stance-table"),
      countries.map((row) => {
        const goldstein = row.goldstein_mean ?? row.mean_goldstein;
        const latency = row.reaction_latency_hours ?? row.latency_hours;
        return el(
          "tr",
          { "data-country": row.country },
          el(
            "th",
            { scope: "row" },
            el("button", {
              type: "button",
              class: "link",
              text: row.country,
              "aria-label": `Timeline of ${row.country}`,
              "aria-pressed": String(state.selectedCountry === row.country),
              onclick: () => selectCountry(row.country),
            }),
          ),
          el("td", { class: "subject", text: row.subject }),
          el(
            "td",
            {},
            el("span", {
              class: "stance",
              text: words(row.stance),
              title: stanceWhy(row),
              "data-family": row.family || "",
            }),
          ),
          numCell(row.statements),
          el("td", { class: "num", text: goldstein === null || goldstein === undefined ? "–" : goldstein.toFixed(1) }),
          el("td", { class: "num", text: latency === null || latency === undefined ? "–" : latency.toFixed(1) }),
        );
      }),
      "No statements yet.",
      6,
    );
    setFreshness("panel-stance", answer);
    if (state.selectedCountry) await loadTimeline(state.selectedCountry);
  }

  // What a stance rests on: the rank it speaks at and its statements.
  function stanceWhy(row) {
    const basis = (row.basis || []).map(
      (b) => `${b.statement_id}: ${words(b.stance)} (${words(b.role)}${b.title ? `, ${b.title}` : ""}, CAMEO ${b.cameo_code})`,
    );
    const by = row.role ? `by the ${words(row.role)}` : "";
    return [`${words(row.stance)} ${by}`.trim(), ...basis].join("\n");
  }

  function selectCountry(country) {
    state.selectedCountry = country;
    for (const button of $("stance-table").querySelectorAll("button[aria-pressed]")) {
      button.setAttribute("aria-pressed", String(button.textContent === country));
    }
    loadTimeline(country).catch((error) => setPanelError("panel-stance", error));
  }

  async function loadTimeline(country) {
    const answer = await api(
      `/v1/projections/country-stance/${encodeURIComponent(country)}/timeline`,
      { subject: state.filters.subject },
    );
    const entries = Array.isArray(answer)
      ? answer
      : answer.entries || answer.statements || answer.timeline || [];
    const list = el(
      "ol",
      {},
      entries.map((s) =>
        el(
          "li",
          { "data-statement": s.statement_id },
          el("div", { class: "when", text: utcStamp(s.issued_at) }),
          el(
            "div",
            {},
            el("span", { class: "who", text: s.speaker || country }),
            " ",
            el("span", { class: "stance", text: words(s.stance) }),
          ),
          el(
            "div",
            { class: "meta" },
            [
              `CAMEO ${s.cameo_code}`,
              s.goldstein === null || s.goldstein === undefined ? null : `Goldstein ${Number(s.goldstein).toFixed(1)}`,
              s.co_speakers && s.co_speakers.length ? `with ${s.co_speakers.join(", ")}` : null,
              targetText(s.target),
              s.subject ? words(s.subject) : null,
            ]
              .filter(Boolean)
              .join(" · "),
          ),
        ),
      ),
    );
    $("timeline").replaceChildren(
      el("h3", { text: `Timeline of ${country}` }),
      entries.length ? list : el("p", { class: "hint", text: "No live statements." }),
    );
  }

  function targetText(target) {
    if (!target) return null;
    const parts = [target.actor, target.country].filter(Boolean);
    return parts.length ? `to ${parts.join(", ")}` : null;
  }

  // --- alignment heat map -----------------------------------------------------------------

  const HEAT_STOPS = [
    [0, [253, 236, 234]],
    [0.33, [245, 185, 113]],
    [0.66, [111, 177, 160]],
    [1, [27, 110, 90]],
  ];

  function heatColour(score) {
    const s = Math.min(1, Math.max(0, score));
    for (let i = 1; i < HEAT_STOPS.length; i += 1) {
      const [x1, c1] = HEAT_STOPS[i];
      const [x0, c0] = HEAT_STOPS[i - 1];
      if (s <= x1) {
        const t = (s - x0) / (x1 - x0);
        const mix = c0.map((v, k) => Math.round(v + (c1[k] - v) * t));
        return `rgb(${mix.join(", ")})`;
      }
    }
    return "rgb(27, 110, 90)";
  }

  async function loadAlignment() {
    const answer = await api("/v1/projections/alignment", { subject: state.filters.subject });
    const pairs = answer.pairs || [];
    const byPair = new Map(pairs.map((p) => [[p.a, p.b].sort().join("|"), p]));
    const countries = [...new Set(pairs.flatMap((p) => [p.a, p.b]))].sort();
    const box = $("heatmap");
    if (!countries.length) {
      box.replaceChildren(el("p", { class: "hint", text: "No pair of countries has spoken on a shared subject yet." }));
      setFreshness("panel-alignment", answer);
      return;
    }
    const head = el(
      "tr",
      {},
      el("td", { class: "corner" }),
      countries.map((c) => el("th", { scope: "col", text: c })),
    );
    const rows = countries.map((rowCountry) =>
      el(
        "tr",
        {},
        el("th", { scope: "row", text: rowCountry }),
        countries.map((colCountry) => {
          if (rowCountry === colCountry) {
            return el("td", { class: "self", "aria-label": `${rowCountry} with itself` }, "");
          }
          const key = [rowCountry, colCountry].sort().join("|");
          const pair = byPair.get(key);
          if (!pair) {
            return el("td", { "aria-label": `${rowCountry} and ${colCountry}: no shared subject` }, "–");
          }
          const subjects = pair.shared_subjects;
          const cell = el(
            "td",
            {
              "data-pair": key.replace("|", "-"),
              title: `${pair.a}–${pair.b}: ${pair.score.toFixed(2)} over ${subjects} shared subject${subjects === 1 ? "" : "s"}${pair.thin ? " (thin: fewer than 3)" : ""}`,
              class: [pair.score > 0.55 ? "dark" : "", pair.thin ? "thin" : ""].join(" ").trim(),
            },
            pair.thin ? `${pair.score.toFixed(2)}*` : pair.score.toFixed(2),
          );
          cell.style.setProperty("background-color", heatColour(pair.score));
          return cell;
        }),
      ),
    );
    box.replaceChildren(
      el(
        "table",
        { class: "heatmap" },
        el("caption", { class: "sr-only", text: "Alignment score of each pair of countries, from 0 to 1" }),
        el("thead", {}, head),
        el("tbody", {}, rows),
      ),
    );
    setFreshness("panel-alignment", answer);
  }

  // --- incidents --------------------------------------------------------------------------

  async function loadIncidents() {
    const answer = await api("/v1/incidents", {
      country: state.filters.country,
      status: "all", // merged and retracted ones are listed too, marked by their status
      limit: INCIDENT_LIMIT,
      page: 1,
    });
    const incidents = answer.data || answer.incidents || [];
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.incident
      : undefined;
    const list = $("incident-list");
    list.replaceChildren(...incidents.map(incidentItem));
    if (!incidents.length) list.append(el("li", { class: "hint", text: "No incidents yet." }));
    if (focused) {
      const again = list.querySelector(`button[data-incident="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
    await Promise.all(
      [...state.expanded]
        .filter((id) => incidents.some((i) => i.incident_id === id))
        .map((id) => loadIncidentDetail(id)),
    );
    setFreshness("panel-incidents", answer);
    discover(incidents);
  }

  function placeOf(incident) {
    const adm1 = incident.adm1 ?? (incident.place && incident.place.adm1);
    return [incident.country, adm1].filter(Boolean).join(" · ");
  }

  function incidentItem(incident) {
    const id = incident.incident_id;
    const detailId = `incident-detail-${id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const expanded = state.expanded.has(id);
    const f = incident.fatalities || {};
    const button = el(
      "button",
      {
        type: "button",
        class: "incident-toggle",
        "aria-expanded": String(expanded),
        "aria-controls": detailId,
        "data-incident": id,
        onclick: () => toggleIncident(id, button, detailId),
      },
      el("span", { class: "chev", "aria-hidden": "true" }, "▸"),
      el("span", { class: "id", text: id }),
      el("span", {}, el("span", { class: `status status-${incident.status}`, text: incident.status })),
      el("span", { class: "opt", text: placeOf(incident) }),
      el("span", { class: "opt", text: incident.occurred_start || "" }),
      el("span", { class: "num", title: range(f) }, `${atLeast(f.best, f.qualifier === "at_least")} killed`),
      incident.disputed ? el("span", { class: "status status-disputed", text: "disputed" }) : null,
      el("span", { class: "opt", text: `version ${incident.version ?? "–"}` }),
    );
    const detail = el("div", { class: "incident-detail", id: detailId, hidden: !expanded });
    return el("li", { "data-incident-row": id }, button, detail);
  }

  async function toggleIncident(id, button, detailId) {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    $(detailId).hidden = !open;
    if (open) {
      state.expanded.add(id);
      try {
        await loadIncidentDetail(id);
      } catch (error) {
        $(detailId).replaceChildren(el("p", { class: "hint", text: `could not load: ${error.message}` }));
      }
    } else {
      state.expanded.delete(id);
    }
  }

  async function loadIncidentDetail(id) {
    const answer = await api(`/v1/incidents/${encodeURIComponent(id)}`);
    const incident = answer.incident || answer;
    const item = document.querySelector(`li[data-incident-row="${CSS.escape(id)}"] .incident-detail`);
    if (!item) return;
    const history = incident.history || [];
    const facts = [
      incident.event_type,
      incident.violence_type ? words(incident.violence_type) : null,
      incident.grading ? `grading ${incident.grading}` : null,
      incident.occurred_end && incident.occurred_end !== incident.occurred_start
        ? `${incident.occurred_start} to ${incident.occurred_end}`
        : null,
      incident.merged_into ? `merged into ${incident.merged_into}` : null,
      incident.duplicates && incident.duplicates.length ? `duplicates: ${incident.duplicates.join(", ")}` : null,
    ].filter(Boolean);
    const table = el(
      "table",
      { class: "data-table compact history" },
      el("caption", { class: "sr-only", text: `History of ${id}` }),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ["Recorded", "Event", "Feed", "Killed (low–best–high)", "Reason", "Sources"].map((h) =>
            el("th", { scope: "col", text: h }),
          ),
        ),
      ),
      el(
        "tbody",
        {},
        history.map((h) =>
          el(
            "tr",
            { "data-position": h.position },
            el("td", { text: utcStamp(h.recorded_at) }),
            el("td", { text: h.type }),
            el("td", { text: h.source }),
            el(
              "td",
              { class: "num" },
              h.fatalities ? `${fmt(h.fatalities.low)} – ${fmt(h.fatalities.best)} – ${fmt(h.fatalities.high)}` : "",
            ),
            el("td", { text: h.reason || (h.into ? `into ${h.into}` : h.duplicate ? `absorbed ${h.duplicate}` : "") }),
            el("td", { class: "sources" }, (h.sources || []).map(sourceLink)),
          ),
        ),
      ),
    );
    const disputes = (incident.disputes || []).map((d) =>
      el("p", { class: "dispute", text: `Disputed by ${d.feed}: ${d.reason || ""}` }),
    );
    item.replaceChildren(
      facts.length ? el("p", { class: "meta", text: facts.join(" · ") }) : null,
      ...disputes,
      incident.notes ? el("p", { class: "notes", text: incident.notes }) : null,
      table,
    );
  }

  // A cited source: its publisher, linked to its url when there is one to follow.
  function sourceLink(source) {
    const name = source.published_at ? `${source.publisher} (${source.published_at.slice(0, 10)})` : source.publisher;
    const url = source.url && /^https?:\/\//.test(source.url) ? source.url : null;
    return el("span", { class: "source" }, url ? el("a", { href: url, rel: "noreferrer noopener", target: "_blank", text: name }) : name, " ");
  }

  // Weeks and regions come from the live incidents; when they change, so do their panels.
  function discover(incidents) {
    const live = incidents.filter((i) => i.status === "live" && i.occurred_start);
    const count = (keys) => keys.reduce((m, k) => m.set(k, (m.get(k) || 0) + 1), new Map());
    const sorted = (counts) => JSON.stringify([...counts].sort());
    const weekCounts = count(live.map((i) => isoWeek(i.occurred_start)));
    const regionCounts = count(
      live.map((i) => `${i.country}\u0000${i.adm1 ?? (i.place && i.place.adm1) ?? ""}`),
    );
    const weeksChanged = sorted(weekCounts) !== sorted(state.weekCounts);
    const regionsChanged = sorted(regionCounts) !== sorted(state.regionCounts);
    state.weekCounts = weekCounts;
    state.regionCounts = regionCounts;
    state.weeks = [...weekCounts.keys()].sort();
    state.regions = [...regionCounts.keys()].sort().map((k) => k.split("\u0000"));
    if (weeksChanged) {
      fillWeekFilter();
      refresh.weeks();
    }
    if (regionsChanged) refresh.regions();
  }


  function fillWeekFilter() {
    const select = $("f-week");
    const chosen = select.value;
    select.replaceChildren(
      el("option", { value: "", text: "all weeks" }),
      ...state.weeks.map((w) => el("option", { value: w, text: w })),
    );
    if (chosen && !state.weeks.includes(chosen)) select.append(el("option", { value: chosen, text: chosen }));
    select.value = chosen;
  }

  // --- wiring -----------------------------------------------------------------------------

  const refresh = {
    victims: refresher("victims", loadVictims),
    weeks: refresher("weeks", loadWeeks),
    regions: refresher("regions", loadRegions),
    stance: refresher("stance", loadStance),
    alignment: refresher("alignment", loadAlignment),
    incidents: refresher("incidents", loadIncidents),
  };

  const PANELS_OF = {
    "community-victims": ["victims", "weeks", "regions"],
    "country-stance": ["stance"],
    alignment: ["alignment"],
    incidents: ["incidents"],
  };

  function refreshProjection(projection) {
    for (const name of PANELS_OF[projection] || []) refresh[name]();
  }

  function refreshAll() {
    for (const name of Object.keys(refresh)) refresh[name]();
  }

  function openStream(projection) {
    closeStream(projection);
    const url = `/v1/live/${encodeURIComponent(projection)}?access_token=${encodeURIComponent(state.token)}`;
    const source = new EventSource(url);
    source.addEventListener("open", () => {
      // The stream notifies moves after it opened: fetch once more to cover the time before
      // (the first fetch, or the gap of a reconnection).
      refreshProjection(projection);
      setLiveStatus();
    });
    source.addEventListener("view", () => refreshProjection(projection));
    source.addEventListener("error", () => {
      setLiveStatus();
      if (source.readyState === EventSource.CLOSED && state.token) {
        // refused (e.g. 401) or ended for good: try again later
        const timer = window.setTimeout(() => {
          if (state.token && state.streams.get(projection) === source) openStream(projection);
        }, RETRY_MS);
        state.retries.set(projection, timer);
      }
    });
    state.streams.set(projection, source);
    setLiveStatus();
  }

  function closeStream(projection) {
    const source = state.streams.get(projection);
    if (source) source.close();
    state.streams.delete(projection);
    window.clearTimeout(state.retries.get(projection));
    state.retries.delete(projection);
  }

  function connect(token) {
    state.token = token;
    state.generation += 1;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-form").hidden = true;
    $("signed-in").hidden = false;
    showMessage("");
    for (const projection of PROJECTIONS) openStream(projection);
    refreshAll();
  }

  function forgetToken(reason) {
    state.token = null;
    state.generation += 1;
    sessionStorage.removeItem(TOKEN_KEY);
    for (const projection of [...state.streams.keys()]) closeStream(projection);
    $("token-input").value = "";
    $("token-form").hidden = false;
    $("signed-in").hidden = true;
    showMessage(reason || "");
    setLiveStatus();
    $("token-input").focus();
  }

  function readFilters() {
    const form = $("filters");
    state.filters = {
      country: form.country.value.trim().toUpperCase(),
      week: form.week.value,
      min_grading: form.min_grading.value,
      subject: form.subject.value.trim(),
    };
  }

  function init() {
    if (window.Chart) {
      window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
      window.Chart.defaults.color = "#334e68";
    }
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (token) connect(token);
    });
    $("forget-token").addEventListener("click", () => forgetToken(""));
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      readFilters();
      if (state.token) refreshAll();
    });
    window.addEventListener("pagehide", () => {
      for (const projection of [...state.streams.keys()]) closeStream(projection);
    });
    readFilters();
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) connect(saved);
    else setLiveStatus();
    window.incidentLedgerDashboard = { state, refresh };
  }

  init();
})();
