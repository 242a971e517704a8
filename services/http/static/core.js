/*
 * incident-ledger dashboard: what every panel shares (loaded first).
 *
 * window.ledger holds the state (token, filters), the HTTP helpers for the JSON query API
 * and its CSV, small DOM helpers, number formats, per-panel freshness and CSV downloads.
 * Each panel file (victims.js, series.js, map.js, incidents.js, stance.js) adds its loader
 * to ledger.panels; app.js wires them to the filters, the URL and the live streams.
 */
"use strict";

(() => {
  const L = (window.ledger = window.ledger || {});
  L.panels = {};

  // The filters a view is made of, as the URL and the API name them (defaults left out).
  L.FILTERS = ["country", "adm1", "from", "to", "event_type", "violence_type", "min_grading", "status", "subject", "by"];
  L.DEFAULTS = { min_grading: "contested", status: "live", by: "community" };
  // The incident filters the API takes on every route that selects incidents.
  L.INCIDENT_FILTERS = ["country", "adm1", "from", "to", "event_type", "violence_type", "min_grading"];

  L.state = {
    token: null,
    filters: Object.fromEntries(L.FILTERS.map((k) => [k, L.DEFAULTS[k] || ""])),
    generation: 0, // bumped when the token changes, so stale answers are dropped
    charts: {},
    partiesAvailable: false,
  };

  const numberFormat = new Intl.NumberFormat("en-US");
  L.fmt = (n) => (n === null || n === undefined ? "–" : numberFormat.format(n));
  // A figure that includes a lower bound ("at least") is shown with ≥.
  L.atLeast = (n, bound) => (bound && n !== null && n !== undefined ? `≥ ${L.fmt(n)}` : L.fmt(n));
  L.$ = (id) => document.getElementById(id);
  L.words = (slug) => String(slug || "").replaceAll("_", " ");

  // The incident filters of the current view, plus any extra parameters.
  L.incidentParams = (extra = {}) => {
    const params = {};
    for (const key of L.INCIDENT_FILTERS) params[key] = L.state.filters[key];
    return { ...params, ...extra };
  };

  // --- HTTP -------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }
  L.ApiError = ApiError;

  L.url = (path, params = {}) => {
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(params)) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
    }
    return url;
  };

  // GET path with params; JSON (default) or the text of another format. `quiet` statuses
  // are returned as {status} instead of raising (a feature probe).
  L.api = async (path, params = {}, { accept = "application/json", quiet = [] } = {}) => {
    const generation = L.state.generation;
    const response = await fetch(L.url(path, params), {
      headers: { Authorization: `Bearer ${L.state.token}`, Accept: accept },
      cache: "no-store",
    });
    if (generation !== L.state.generation) throw new ApiError(0, "the token changed");
    if (quiet.includes(response.status)) return { status: response.status };
    if (response.status === 401) {
      L.forgetToken("The token was not accepted. Enter a valid reader token.");
      throw new ApiError(401, "unauthorised");
    }
    if (response.status === 403) {
      L.forgetToken("This token may not read. Enter a reader, analyst or operator token.");
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
    return accept === "application/json" ? response.json() : response.text();
  };

  // --- DOM --------------------------------------------------------------------------------

  const ATTRS = new Set(["role", "scope", "id", "title", "type", "colspan", "href", "rel", "target", "download", "tabindex"]);
  L.el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || ATTRS.has(key)) node.setAttribute(key, value === true ? "" : String(value));
      else node[key] = value;
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };

  L.fillBody = (table, rows, emptyText, columns) => {
    const body = table.tBodies[0];
    body.replaceChildren();
    if (!rows.length) {
      body.append(L.el("tr", { class: "empty" }, L.el("td", { colspan: columns, text: emptyText })));
      return;
    }
    body.append(...rows);
  };

  L.numCell = (value, bound = false) => L.el("td", { class: "num", text: L.atLeast(value, bound) });
  L.range = (f) => (f ? `low ${L.fmt(f.low)} · high ${L.fmt(f.high)}` : "");

  L.utcStamp = (iso) => {
    if (!iso) return "–";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  };

  const clockTime = () => new Date().toLocaleTimeString("en-GB", { hour12: false });

  // --- freshness --------------------------------------------------------------------------

  const comparePositions = (a, b) => {
    const [am, as] = a.split("-").map(Number);
    const [bm, bs] = b.split("-").map(Number);
    return am - bm || as - bs;
  };

  // The panel's freshness from the answers it shows: the newest position, the largest lag
  // in entries and in seconds.
  L.setFreshness = (panelId, answers) => {
    const panel = L.$(panelId);
    const node = panel.querySelector("[data-freshness]");
    const list = (Array.isArray(answers) ? answers : [answers]).filter(Boolean);
    const position = list.map((a) => a.position).filter(Boolean).sort(comparePositions).at(-1) || null;
    const lag = Math.max(0, ...list.map((a) => (Number.isFinite(a.lag) ? a.lag : 0)));
    const seconds = Math.max(0, ...list.map((a) => (Number.isFinite(a.lag_seconds) ? a.lag_seconds : 0)));
    node.textContent = `position ${position || "–"} · lag ${L.fmt(lag)} entries, ${seconds.toFixed(1)} s · read ${clockTime()}`;
    node.dataset.position = position || "";
    node.dataset.lag = String(lag);
    node.dataset.lagSeconds = String(seconds);
    node.dataset.stale = String(lag > 0);
    delete node.dataset.error;
    panel.classList.remove("updated");
    void panel.offsetWidth; // restart the highlight
    panel.classList.add("updated");
  };

  L.setPanelError = (panelId, error) => {
    if (error instanceof ApiError && [0, 401, 403].includes(error.status)) return;
    const node = L.$(panelId).querySelector("[data-freshness]");
    node.textContent = `could not load: ${error.message} (at ${clockTime()})`;
    node.dataset.error = "true";
  };

  // --- CSV downloads ----------------------------------------------------------------------

  // Save text as a file (a same-origin blob: nothing leaves the page).
  L.saveFile = (name, text) => {
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
    const link = L.el("a", { href: url, download: name, class: "sr-only" });
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10000);
  };

  // The API's own CSV of the answer a panel shows (same route, same parameters).
  L.downloadApiCsv = async (name, path, params) => {
    L.saveFile(name, await L.api(path, { ...params, format: "csv" }, { accept: "text/csv" }));
  };

  const cell = (value) => {
    const text = value === null || value === undefined ? "" : String(value);
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  // RFC 4180 text of rows (the first is the header), CRLF line ends like the API's.
  L.csvText = (rows) => rows.map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
})();
