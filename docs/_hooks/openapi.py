"""MkDocs hook: the HTTP API's OpenAPI reference, generated from the code at each build.

The schema comes from `create_app` itself (no server, no model: only the routes are
read), so the reference can never drift from what `hades-perception serve` answers.
It adds two generated files to the site: reference/openapi.json (the schema) and
reference/openapi.md (a page per route: method, path, what it does, its parameters and
the answers it can give).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from mkdocs.structure.files import File, Files


def schema() -> dict[str, Any]:
    from hades_perception.api.app import create_app
    from hades_perception.api.settings import ServeSettings

    app = create_app(SimpleNamespace(settings=ServeSettings()))  # type: ignore[arg-type]
    doc: dict[str, Any] = app.openapi()
    return doc


def _ref(s: dict[str, Any]) -> str:
    if "$ref" in s:
        return s["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in s:
        return " or ".join(_ref(x) for x in s["anyOf"])
    if s.get("type") == "array":
        return f"list of {_ref(s.get('items', {}))}"
    return str(s.get("type", "object"))


def page(doc: dict[str, Any]) -> str:
    lines = [
        "# HTTP API reference",
        "",
        f"{doc['info']['title']} {doc['info']['version']}, generated from the code at this build. "
        "The schema itself: [openapi.json](openapi.json); a running server shows the same at `/docs`. "
        "How to use it: [the API guide](../api.md).",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((method.upper(), path, op))
    for tag, ops in by_tag.items():
        lines += [f"## {tag}", ""]
        for method, path, op in ops:
            lines += [f"### `{method} {path}`", "", op.get("summary", ""), ""]
            desc = (op.get("description") or "").strip()
            if desc:
                lines += [desc.split("\n\n")[0], ""]
            params = op.get("parameters", [])
            if params:
                lines += ["| parameter | in | type | required | description |", "| --- | --- | --- | --- | --- |"]
                for p in params:
                    text = (p.get("description") or p.get("schema", {}).get("description") or "").replace("|", "\\|")
                    kind = _ref(p.get("schema", {}))
                    lines.append(
                        f"| `{p['name']}` | {p['in']} | {kind} | {'yes' if p.get('required') else 'no'} | {text} |"
                    )
                lines.append("")
            body = op.get("requestBody", {}).get("content", {})
            if body:
                media = ", ".join(f"`{m}` ({_ref(c.get('schema', {}))})" for m, c in body.items())
                lines += [f"Body: {media}", ""]
            answers = ", ".join(
                f"{code} {r.get('description', '')}".strip() for code, r in op.get("responses", {}).items()
            )
            lines += [f"Answers: {answers}", ""]
    return "\n".join(lines)


def on_files(files: Files, config: Any) -> Files:
    doc = schema()
    files.append(File.generated(config, "reference/openapi.json", content=json.dumps(doc, indent=1)))
    files.append(File.generated(config, "reference/openapi.md", content=page(doc)))
    return files
