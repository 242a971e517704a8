/*
 * incident-ledger dashboard: the wiring (loaded last).
 *
 * Reads the JSON query API with the token the analyst entered (kept in this tab's
 * sessionStorage), keeps the filters in the URL (so a link reproduces the view), loads each
 * panel of ledger.panels, and listens to the live notices of each projection
 * (GET /v1/live/{projection}, Server-Sent Events) to re-fetch exactly the panels that
 * projection feeds. Nothing is requested from any other host.
 */
"use strict";

(() => {
  const L = window.ledger;
  const { $ } = L;
  const TOKEN_KEY = "incident-ledger.reader-token";
  const PROJECTIONS = ["community-victims", "country-stance", "alignment", "incidents"];
  const RETRY_MS = 3000; // before a live stream that failed is opened again
  const streams = new Map();
  const retries = new Map();

  // --- refreshers: one fetch in flight per panel, one more queued at most -----------------

  function refresher(name) {
    const panel = L.panels[name];
    const panelId = panel.panel || `panel-${name}`;
    let running = null;
    let again = false;
    return async () => {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        do {
          again = false;
          if (!L.state.token) break;
          try {
            await panel.load();
          } catch (error) {
            if (!(error instanceof L.ApiError)) console.error(name, error);
            L.setPanelError(panelId, error);
          }
        } while (again && L.state.token);
      })();
      try {
        await running;
      } finally {
        running = null;
      }
      return undefined;
    };
  }

  const loaders = Object.keys(L.panels).filter((name) => L.panels[name].load);
  L.refresh = Object.fromEntries(loaders.map((name) => [name, refresher(name)]));
  const refreshProjection = (projection) => {
    for (const name of loaders) if (L.panels[name].projection === projection) L.refresh[name]();
  };
  const refreshAll = () => loaders.forEach((name) => L.refresh[name]());

  // --- the filters and the URL ------------------------------------------------------------

  function filtersFromUrl() {
    const query = new URLSearchParams(window.location.search);
    for (const key of L.FILTERS) L.state.filters[key] = query.get(key) || L.DEFAULTS[key] || "";
    writeForm();
  }

  function writeForm() {
    const form = $("filters");
    for (const key of L.FILTERS) if (form.elements[key] && key !== "by") form.elements[key].value = L.state.filters[key];
    for (const radio of document.querySelectorAll("input[name='by']")) radio.checked = radio.value === L.state.filters.by;
  }

  function readForm() {
    const form = $("filters");
    for (const key of L.FILTERS) {
      if (!form.elements[key] || key === "by") continue;
      const value = form.elements[key].value.trim();
      L.state.filters[key] = key === "country" ? value.toUpperCase() : value;
    }
  }

  // The view in the URL: every filter that is not its default (the token never).
  function filtersToUrl() {
    const query = new URLSearchParams();
    for (const key of L.FILTERS) {
      const value = L.state.filters[key];
      if (value && value !== L.DEFAULTS[key]) query.set(key, value);
    }
    const search = query.toString();
    window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
  }

  function apply() {
    filtersToUrl();
    if (L.state.token) refreshAll();
  }

  L.setRange = (from, to) => {
    L.state.filters.from = from;
    L.state.filters.to = to;
    writeForm();
    apply();
  };

  // --- live streams -----------------------------------------------------------------------

  function setLiveStatus() {
    const node = $("live-status");
    if (!L.state.token) {
      node.dataset.state = "off";
      node.textContent = "Not connected";
      return;
    }
    const open = [...streams.values()].filter((s) => s.readyState === EventSource.OPEN).length;
    node.dataset.state = open === PROJECTIONS.length ? "live" : open ? "connecting" : "error";
    node.textContent = open === PROJECTIONS.length
      ? "Live: updates arrive as the views move"
      : `Live updates: ${open} of ${PROJECTIONS.length} streams connected`;
  }

  function openStream(projection) {
    closeStream(projection);
    const url = `/v1/live/${encodeURIComponent(projection)}?access_token=${encodeURIComponent(L.state.token)}`;
    const source = new EventSource(url);
    source.addEventListener("open", () => {
      // notices start when the stream opens: fetch once more to cover the time before
      refreshProjection(projection);
      setLiveStatus();
    });
    source.addEventListener("view", () => refreshProjection(projection));
    source.addEventListener("error", () => {
      setLiveStatus();
      if (source.readyState === EventSource.CLOSED && L.state.token) {
        retries.set(projection, window.setTimeout(() => {
          if (L.state.token && streams.get(projection) === source) openStream(projection);
        }, RETRY_MS));
      }
    });
    streams.set(projection, source);
    setLiveStatus();
  }

  function closeStream(projection) {
    streams.get(projection)?.close();
    streams.delete(projection);
    window.clearTimeout(retries.get(projection));
    retries.delete(projection);
  }

  // --- the token --------------------------------------------------------------------------

  async function connect(token) {
    L.state.token = token;
    L.state.generation += 1;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-form").hidden = true;
    $("signed-in").hidden = false;
    showMessage("");
    try {
      await L.probeParties();
    } catch (_) {
      // the switch stays hidden; a refused token was forgotten by L.api
    }
    if (L.state.token !== token) return; // refused (or replaced) meanwhile
    writeForm();
    for (const projection of PROJECTIONS) openStream(projection);
    refreshAll();
  }

  L.forgetToken = (reason) => {
    L.state.token = null;
    L.state.generation += 1;
    sessionStorage.removeItem(TOKEN_KEY);
    for (const projection of [...streams.keys()]) closeStream(projection);
    $("token-input").value = "";
    $("token-form").hidden = false;
    $("signed-in").hidden = true;
    showMessage(reason || "");
    setLiveStatus();
    $("token-input").focus();
  };

  function showMessage(text) {
    $("message").textContent = text || "";
    $("message").hidden = !text;
  }

  function init() {
    if (window.Chart) {
      window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
      window.Chart.defaults.color = "#334e68";
    }
    filtersFromUrl();
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (token) connect(token);
    });
    $("forget-token").addEventListener("click", () => L.forgetToken(""));
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      readForm();
      apply();
    });
    $("filters").addEventListener("reset", (event) => {
      event.preventDefault();
      for (const key of L.FILTERS) if (key !== "by") L.state.filters[key] = L.DEFAULTS[key] || "";
      writeForm();
      apply();
    });
    for (const radio of document.querySelectorAll("input[name='by']")) {
      radio.addEventListener("change", () => {
        L.state.filters.by = radio.value;
        apply();
      });
    }
    for (const button of document.querySelectorAll("button[data-csv]")) {
      button.addEventListener("click", () => {
        if (!L.state.token) return;
        Promise.resolve(L.panels[button.dataset.csv].csv()).catch((error) => showMessage(`CSV download failed: ${error.message}`));
      });
    }
    for (const panel of Object.values(L.panels)) if (panel.init) panel.init();
    window.addEventListener("pagehide", () => [...streams.keys()].forEach(closeStream));
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) connect(saved);
    else setLiveStatus();
    window.incidentLedgerDashboard = { state: L.state, refresh: L.refresh };
  }

  init();
})();
