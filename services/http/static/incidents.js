/*
 * The incidents under the filters: fetched whole (pages of 5,000) for the map and the time
 * series, listed page by page in the incidents panel. Live incidents by default; retracted
 * and merged ones only when the status filter asks, and styled as such. The drill-down
 * shows the owning feed, every revision with its sources (name, link, date), disputes and
 * merges, paging the history when the answer says there is more (history_total).
 */
"use strict";

(() => {
  const L = window.ledger;
  const { el, fmt, $ } = L;
  const PATH = "/v1/incidents";
  const PAGE = 5000; // the API's largest page
  const SHOWN = 50; // incidents listed at first, and more per "show more"
  const HISTORY_PAGE = 100;

  L.state.expanded = new Set();
  L.state.listed = SHOWN;

  const setParams = (extra = {}) => L.incidentParams({ status: L.state.filters.status || "live", ...extra });

  // Every incident under the filters, and the answers that brought them.
  async function loadSet() {
    const answers = [await L.api(PATH, setParams({ limit: PAGE, page: 1 }))];
    const pages = Math.ceil(answers[0].total_count / PAGE);
    for (let page = 2; page <= pages; page += 1) answers.push(await L.api(PATH, setParams({ limit: PAGE, page })));
    const incidents = answers.flatMap((a) => a.data);
    L.state.incidents = incidents;
    await L.drawMap(answers, incidents);
    L.drawSeries(answers, incidents);
    discoverRegions(incidents);
  }

  // The regions of the live incidents; when they change, so does the region table.
  function discoverRegions(incidents) {
    const keys = [...new Set(incidents.filter((i) => i.status === "live").map((i) => `${i.country}\u0000${i.adm1}`))].sort();
    const text = JSON.stringify(keys);
    if (text === L.state.regionKeys) return;
    L.state.regionKeys = text;
    L.state.regions = keys.map((k) => k.split("\u0000"));
    L.refresh.regions();
  }

  // The API's CSV of every incident the map shows: its pages' rows under one header.
  async function setCsv() {
    const pages = Math.max(1, Math.ceil((L.state.incidents || []).length / PAGE));
    const texts = [];
    for (let page = 1; page <= pages; page += 1) {
      texts.push(await L.api(PATH, setParams({ limit: PAGE, page, format: "csv" }), { accept: "text/csv" }));
    }
    const rest = texts.slice(1).map((t) => t.split("\r\n").slice(2).join("\r\n"));
    L.saveFile("incidents-map.csv", [texts[0], ...rest].join(""));
  }

  // --- the list ---------------------------------------------------------------------------

  async function loadList() {
    const answer = await L.api(PATH, setParams({ limit: L.state.listed, page: 1 }));
    const focused = document.activeElement?.dataset?.incident;
    const list = $("incident-list");
    list.replaceChildren(...answer.data.map(incidentItem));
    if (!answer.data.length) list.append(el("li", { class: "hint", text: "No incidents under these filters." }));
    if (focused) list.querySelector(`button[data-incident="${CSS.escape(focused)}"]`)?.focus();
    $("incidents-count").textContent = `${fmt(answer.count)} of ${fmt(answer.total_count)} ${L.state.filters.status === "all" ? "" : `${L.state.filters.status || "live"} `}incidents`;
    $("incidents-more").hidden = answer.count >= answer.total_count;
    await Promise.all(
      [...L.state.expanded].filter((id) => answer.data.some((i) => i.incident_id === id)).map(loadDetail),
    );
    L.setFreshness("panel-incidents", answer);
  }

  const placeText = (i) => [i.country, i.adm1, i.place?.name].filter(Boolean).join(" · ");

  function incidentItem(incident) {
    const id = incident.incident_id;
    const detailId = `incident-detail-${id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const expanded = L.state.expanded.has(id);
    const f = incident.fatalities || {};
    const gone = incident.status !== "live";
    const button = el(
      "button",
      { type: "button", class: `incident-toggle${gone ? " gone" : ""}`, "aria-expanded": String(expanded), "aria-controls": detailId, "data-incident": id, "data-status": incident.status },
      el("span", { class: "chev", "aria-hidden": "true" }, "▸"),
      el("span", { class: "id", text: id }),
      el("span", {}, el("span", { class: `status status-${incident.status}`, text: incident.status })),
      el("span", { class: "opt", text: placeText(incident) }),
      el("span", { class: "opt", text: incident.occurred_start || "" }),
      el("span", { class: "num killed", title: L.range(f) },
        gone ? `was ${L.atLeast(f.best, f.qualifier === "at_least")} killed` : `${L.atLeast(f.best, f.qualifier === "at_least")} killed`),
      incident.disputed ? el("span", { class: "status status-disputed", text: "disputed" }) : el("span"),
    );
    button.addEventListener("click", () => toggle(id, button, detailId));
    const detail = el("div", { class: "incident-detail", id: detailId, hidden: !expanded });
    return el("li", { "data-incident-row": id, "data-status": incident.status }, button, detail);
  }

  async function toggle(id, button, detailId) {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    $(detailId).hidden = !open;
    if (!open) {
      L.state.expanded.delete(id);
      return;
    }
    L.state.expanded.add(id);
    try {
      await loadDetail(id);
    } catch (error) {
      $(detailId).replaceChildren(el("p", { class: "hint", text: `could not load: ${error.message}` }));
    }
  }

  // The whole history: the answer's own, then further pages when history_total says so.
  async function historyOf(id, incident) {
    const history = [...(incident.history || [])];
    const total = incident.history_total;
    while (Number.isFinite(total) && history.length < total) {
      const page = await L.api(`${PATH}/${encodeURIComponent(id)}/history`, { offset: history.length, limit: HISTORY_PAGE });
      const more = page.history || page.entries || page.data || [];
      if (!more.length) break;
      history.push(...more);
    }
    return history.sort((a, b) => a.position.localeCompare(b.position, "en", { numeric: true }));
  }

  async function loadDetail(id) {
    const answer = await L.api(`${PATH}/${encodeURIComponent(id)}`);
    const incident = answer.incident || answer;
    const item = document.querySelector(`li[data-incident-row="${CSS.escape(id)}"] .incident-detail`);
    if (!item) return;
    const history = await historyOf(id, incident);
    const facts = [
      incident.feed ? `reported by feed ${incident.feed}` : null,
      incident.event_type,
      incident.violence_type ? L.words(incident.violence_type) : null,
      incident.grading ? `grading ${incident.grading}` : null,
      incident.occurred_end && incident.occurred_end !== incident.occurred_start ? `${incident.occurred_start} to ${incident.occurred_end}` : incident.occurred_start,
      incident.geo_precision ? `place precision ${incident.geo_precision} (UCDP)` : null,
    ].filter(Boolean);
    const merges = [
      incident.merged_into ? el("p", { class: "merge", text: `Merged into ${incident.merged_into}: its dead are counted there.` }) : null,
      incident.duplicates?.length ? el("p", { class: "merge", text: `Duplicates merged into it: ${incident.duplicates.join(", ")}` }) : null,
      incident.status === "retracted" ? el("p", { class: "merge", text: "Retracted: counted nowhere." }) : null,
    ];
    const disputes = (incident.disputes || []).map((d) =>
      el("p", { class: "dispute" }, `Disputed by feed ${d.feed} (${L.utcStamp(d.recorded_at)}): ${d.reason || ""} `, ...(d.sources || []).map(sourceLink)),
    );
    const table = el(
      "table",
      { class: "data-table compact history" },
      el("caption", { class: "sr-only", text: `History of ${id}` }),
      el("thead", {}, el("tr", {}, ["Recorded", "Event", "Feed", "Killed (low–best–high)", "Reason", "Sources"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, history.map((h) =>
        el("tr", { "data-position": h.position },
          el("td", { "data-label": "Recorded", text: L.utcStamp(h.recorded_at) }),
          el("td", { "data-label": "Event", text: h.type }),
          el("td", { "data-label": "Feed", text: h.source }),
          el("td", { class: "num", "data-label": "Killed" }, h.fatalities ? `${fmt(h.fatalities.low)} – ${L.atLeast(h.fatalities.best, h.fatalities.qualifier === "at_least")} – ${fmt(h.fatalities.high)}` : ""),
          el("td", { "data-label": "Reason", text: h.reason || (h.into ? `into ${h.into}` : h.duplicate ? `absorbed ${h.duplicate}` : "") }),
          el("td", { class: "sources", "data-label": "Sources" }, (h.sources || []).map(sourceLink)),
        ),
      )),
    );
    item.replaceChildren(
      ...[
        el("p", { class: "meta", text: facts.join(" · ") }),
        ...merges,
        ...disputes,
        incident.notes ? el("p", { class: "notes", text: incident.notes }) : null,
        table,
      ].filter(Boolean),
    );
  }

  // A cited source: its publisher linked to its url (when there is one), its date, its feed.
  function sourceLink(source) {
    const url = source.url && /^https?:\/\//.test(source.url) ? source.url : null;
    const name = url ? el("a", { href: url, rel: "noreferrer noopener", target: "_blank", text: source.publisher }) : source.publisher;
    const when = source.published_at ? ` ${source.published_at.slice(0, 10)}` : "";
    return el("span", { class: "source" }, name, when, source.feed ? ` (via ${source.feed})` : "", " ");
  }

  function listCsv() {
    return L.downloadApiCsv("incidents.csv", PATH, setParams({ limit: L.state.listed, page: 1 }));
  }

  function init() {
    $("incidents-more").addEventListener("click", () => {
      L.state.listed += SHOWN;
      L.refresh.incidents();
    });
  }

  L.panels.set = { projection: "incidents", load: loadSet, csv: setCsv, panel: "panel-map" };
  L.panels.incidents = { projection: "incidents", load: loadList, csv: listCsv, init };
})();
