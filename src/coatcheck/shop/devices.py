"""A device's name from its User-Agent header, for the "your sessions" page.

>>> describe("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
...          "Chrome/124.0 Safari/537.36")
'Chrome on Linux'
>>> describe("python-httpx/0.27.0")
'python-httpx'
>>> describe(None)
'Unknown device'
"""

from __future__ import annotations

import re

# The first match wins, so the more specific names come first (Edge says "Chrome" too).
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("HeadlessChrome/", "Headless Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Firefox/", "Firefox"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)
_PRODUCT = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,39}")


def describe(user_agent: str | None) -> str:
    """A short, human name for the device and browser a User-Agent names."""
    if not user_agent:
        return "Unknown device"
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system or ""
    product = _PRODUCT.match(user_agent)  # a tool: curl/8.5, python-httpx/0.27, ...
    return product.group(0) if product else "Unknown device"
