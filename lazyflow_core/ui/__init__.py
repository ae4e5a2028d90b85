"""``lazyflow ui``: a read-only provenance browser (web pages and a JSON API) over a store.

Modules: `readonly` (opening a store that refuses writes), `views` (the data of each
page as JSON-ready dicts, also used by ``lazyflow viz``), `app` (the FastAPI app and
`serve`), `api` (``/api/`` routes) and `pages` (server-rendered HTML). The front end is
package data: ``templates/`` (Jinja2) and ``static/`` (``graph.js`` draws the grouped
call graph with the vendored cytoscape.js and dagre, ``live.js`` follows a running
execution). The web framework (the ``ui`` extra) is imported only by `app`, `api` and
`pages`; the rest of lazyflow imports this package only from ``cli/ui.py`` and
``cli/viz.py``.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"

__all__ = ["STATIC"]
