/*
 * The map: country and first-level boundaries (Natural Earth, shipped in vendor/) drawn as
 * SVG in an equirectangular projection, and the incidents under the filters on it, sized by
 * their best estimate and coloured by UCDP type of violence. Place precision is shown: an
 * exact point is a filled dot; an incident known only to its first-level division (or
 * country) is a hollow dashed ring at that area's centre, and the area is shaded.
 */
"use strict";

(() => {
  const L = window.ledger;
  const { fmt, $ } = L;
  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 800;
  const VIOLENCE = { state_based: "state-based", non_state: "non-state", one_sided: "one-sided" };

  let geo = null; // {window, countries, adm1, index}
  let project = null;

  const svg = (tag, attrs = {}) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    return node;
  };

  // Names compared loosely: case, accents, punctuation and an Arabic article do not matter.
  const key = (name) =>
    String(name || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/\(.*?\)/g, "").replace(/^(al|ar|as|ad|ash|an|at|az|el)[\s-]+/, "").replace(/[^a-z]/g, "");

  function centroid(rings) {
    // the centre of the bounding box of the largest ring: good enough at this scale
    const ring = rings.reduce((a, b) => (b.length > a.length ? b : a), rings[0]);
    const xs = ring.map((p) => p[0]);
    const ys = ring.map((p) => p[1]);
    return [(Math.min(...xs) + Math.max(...xs)) / 2, (Math.min(...ys) + Math.max(...ys)) / 2];
  }

  async function boundaries() {
    if (geo) return geo;
    const response = await fetch("/static/vendor/boundaries.json");
    const body = await response.json();
    const [west, south, east, north] = body.window;
    const kx = Math.cos((((south + north) / 2) * Math.PI) / 180);
    const scale = WIDTH / ((east - west) * kx);
    const height = Math.round((north - south) * scale);
    project = ([lon, lat]) => [((lon - west) * kx * scale).toFixed(1), ((north - lat) * scale).toFixed(1)];
    const index = new Map();
    for (const area of body.adm1) {
      area.centre = centroid(area.rings);
      for (const name of [area.name, ...area.aliases]) index.set(`${area.country}:${key(name)}`, area);
    }
    const countries = new Map(body.countries.map((c) => [c.id, { ...c, centre: centroid(c.rings) }]));
    geo = { ...body, height, index, countries };
    return geo;
  }

  const pathOf = (rings) => rings.map((r) => `M${r.map(project).join("L")}Z`).join("");

  // Where an incident goes and how precisely: exact coordinates, its division, its country.
  function placeOf(incident) {
    const place = incident.place || {};
    const precision = incident.geo_precision ?? 4;
    if (Number.isFinite(place.lat) && Number.isFinite(place.lon) && precision <= 3) {
      return { at: [place.lon, place.lat], precision: precision <= 2 ? "exact" : "near" };
    }
    const area = geo.index.get(`${incident.country}:${key(incident.adm1 || place.adm1)}`);
    if (area && precision <= 5) return { at: area.centre, precision: "adm1", area };
    const country = geo.countries.get(incident.country);
    return country ? { at: country.centre, precision: "country" } : null;
  }

  // The part of the map the incidents are in (padded, 16:10, at least MIN_SPAN wide).
  function frame(points) {
    const MIN_SPAN = 160;
    if (!points.length) return [0, 0, WIDTH, geo.height];
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const cx = (Math.min(...xs) + Math.max(...xs)) / 2;
    const cy = (Math.min(...ys) + Math.max(...ys)) / 2;
    let w = Math.max(MIN_SPAN, (Math.max(...xs) - Math.min(...xs)) * 1.3, (Math.max(...ys) - Math.min(...ys)) * 1.3 * 1.6);
    w = Math.min(w, WIDTH, geo.height * 1.6);
    const h = w / 1.6;
    const x = Math.min(Math.max(0, cx - w / 2), WIDTH - w);
    const y = Math.min(Math.max(0, cy - h / 2), geo.height - h);
    return [x, y, w, h];
  }

  L.drawMap = async (answers, incidents) => {
    await boundaries();
    const marks = [];
    let unplaced = 0;
    const sorted = [...incidents].sort((a, b) => (b.fatalities?.best || 0) - (a.fatalities?.best || 0));
    for (const incident of sorted) {
      const where = placeOf(incident);
      if (where) marks.push({ incident, where, xy: project(where.at).map(Number) });
      else unplaced += 1;
    }
    const [vx, vy, vw, vh] = frame(marks.map((m) => m.xy));
    const zoom = vw / WIDTH; // map units per pixel of the full-width map
    const root = svg("svg", { viewBox: `${vx} ${vy} ${vw} ${vh}`, role: "img", "aria-labelledby": "map-summary", id: "map-svg" });
    const land = svg("g", { class: "land" });
    for (const c of geo.countries.values()) land.append(svg("path", { d: pathOf(c.rings), "data-country": c.id }));
    const divisions = svg("g", { class: "adm1" });
    const shaded = new Set();
    const dots = svg("g", { class: "incidents" });
    const near = (incident, precision) => ({
      exact: "exact place", near: "within about 25 km",
      adm1: `somewhere in ${incident.adm1}`, country: `somewhere in ${incident.country}`,
    })[precision];
    for (const { incident, where, xy } of marks) {
      if (where.area) shaded.add(where.area.id);
      const best = incident.fatalities?.best || 0;
      const dot = svg("circle", {
        cx: xy[0], cy: xy[1], r: ((2.5 + Math.sqrt(best) * 0.9) * zoom).toFixed(2),
        class: `dot v-${incident.violence_type || "unknown"} p-${where.precision} s-${incident.status}`,
        "data-incident": incident.incident_id,
        "data-precision": where.precision,
      });
      const title = svg("title");
      title.textContent = `${incident.incident_id}: ${L.atLeast(best, incident.fatalities?.qualifier === "at_least")} killed, ${VIOLENCE[incident.violence_type] || "type unknown"}, ${near(incident, where.precision)}${incident.status === "live" ? "" : ` (${incident.status})`}`;
      dot.append(title);
      dots.append(dot);
    }
    const placed = marks.length;
    for (const area of geo.adm1) {
      divisions.append(svg("path", { d: pathOf(area.rings), class: shaded.has(area.id) ? "shaded" : null, "data-adm1": area.id }));
    }
    root.append(land, divisions, dots);
    $("map-box").replaceChildren(root);
    $("map-summary").textContent =
      `${fmt(placed)} incident${placed === 1 ? "" : "s"} on the map` +
      (unplaced ? `, ${fmt(unplaced)} without a place the map knows` : "") +
      ". Filled dots are exact places; dashed rings stand for a whole first-level division (shaded) or country.";
    $("map-box").dataset.placed = String(placed);
    L.setFreshness("panel-map", answers);
  };
})();
