"""The GraphiQL page of ``serve --dev``: GraphiQL, React and their CSS from the files the package ships
(``inventory.console.assets``), each with its integrity hash; nothing from a CDN."""

from __future__ import annotations

from inventory.console.assets import ASSETS, local_name
from inventory.console.render import TEMPLATES

STATIC = "/console/static/graphiql/"
_ORDER = ("react", "react-dom", "graphiql", "@graphiql/plugin-explorer")
"""The order the scripts load in (each needs the ones before)."""


def page() -> str:
    """The page's HTML."""
    scripts: list[tuple[str, str]] = []
    stylesheets: list[tuple[str, str]] = []
    for asset in sorted(ASSETS, key=lambda a: _ORDER.index(a.package)):
        for path, integrity in asset.files.items():
            (stylesheets if path.endswith(".css") else scripts).append((STATIC + local_name(asset, path), integrity))
    return TEMPLATES.get_template("graphiql.html").render(scripts=scripts, stylesheets=stylesheets)
