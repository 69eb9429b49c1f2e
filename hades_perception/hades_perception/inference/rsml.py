"""RSML (Root System Markup Language, the root phenotyping format RootNav and other
tools read): each plant's primary root and its laterals as polylines, base to tip,
in image px. Written from the plant structure (inference/plants/) by `predict --rsml`.

One <plant> per plant found (with its index as ID), one <root> for its primary root
holding one child <root> per lateral. Plants with no root found are left out; the
JSON says why. Metadata: unit pixel, resolution 1; with a scale, a <property> on
each plant gives px_per_mm so a reader can convert.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from hades_perception.inference.plants import Plant, Point


def rsml_tree(plants: Iterable[Plant], file_key: str, software: str = "hades-perception") -> ET.ElementTree:
    root = ET.Element("rsml")
    meta = ET.SubElement(root, "metadata")
    ET.SubElement(meta, "version").text = "1"
    ET.SubElement(meta, "unit").text = "pixel"
    ET.SubElement(meta, "resolution").text = "1"
    ET.SubElement(meta, "last-modified").text = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    ET.SubElement(meta, "software").text = software
    ET.SubElement(meta, "file-key").text = file_key
    scene = ET.SubElement(root, "scene")
    for p in plants:
        if len(p.primary_path) < 2:
            continue
        plant = ET.SubElement(scene, "plant", ID=str(p.plant + 1), label=f"plant {p.plant}")
        primary = _root(plant, f"{p.plant + 1}.1", "primary", p.primary_path)
        for j, lateral in enumerate(p.lateral_paths, start=1):
            if len(lateral) >= 2:
                _root(primary, f"{p.plant + 1}.1.{j}", "lateral", lateral)
    ET.indent(root)
    return ET.ElementTree(root)


def _root(parent: ET.Element, ident: str, label: str, points: list[Point]) -> ET.Element:
    el = ET.SubElement(parent, "root", ID=ident, label=label)
    poly = ET.SubElement(ET.SubElement(el, "geometry"), "polyline")
    for x, y in _thin(points):
        ET.SubElement(poly, "point", x=f"{x:.2f}", y=f"{y:.2f}")
    return el


def _thin(points: list[Point], step: int = 4) -> list[Point]:
    """Every few skeleton pixels, ends kept: a polyline, not a pixel chain."""
    return [*points[:-1:step], points[-1]] if len(points) > 2 else list(points)


def write_rsml(path: Path, plants: Iterable[Plant], file_key: str) -> Path:
    rsml_tree(plants, file_key).write(path, encoding="utf-8", xml_declaration=True)
    return path
