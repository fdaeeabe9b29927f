"""The page shell (assets/page.html) and what every page shares: header, navigation, footer."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from string import Template

from fhirpkg.publish.site.html import attrs, esc

NAV = (("index.html", "Home"), ("index.html#pathway", "Pathway"), ("artifacts.html", "Artifacts"),
       ("citations.html", "Citations"), ("coverage.html", "Coverage"), ("qa.html", "QA"))


@lru_cache(maxsize=None)
def asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("assets", name).read_bytes()


@dataclass(frozen=True)
class Shell:
    """What the header and footer say on every page."""

    site_title: str
    package: str  # name#version
    version: str
    banner: str  # the content-status banner (HTML)
    footer: str  # HTML
    nav: tuple[tuple[str, str], ...] = field(default=NAV)


def render(shell: Shell, path: str, title: str, main: str) -> bytes:
    nav = "".join(
        f"<li><a{attrs(href=href, aria_current='page' if href == path else None)}>{esc(label)}</a></li>"
        for href, label in shell.nav)
    html = Template(asset("page.html").decode("utf-8")).substitute(
        title=esc(title), site_title=esc(shell.site_title), package=esc(shell.package), version=esc(shell.version),
        nav=f"<ul>{nav}</ul>", banner=shell.banner, main=main, footer=shell.footer)
    return html.encode("utf-8")
