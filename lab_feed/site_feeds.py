"""Each site's lab feed, as data: `pathways/lab_feeds/<site>/feed.yaml`.

```yaml
site: north
sending_facilities: [NORTHLAB]   # MSH-4 values that mean this site's laboratory
timezone: Europe/London          # for HL7 times sent without an offset (default UTC)
senders: [10.20.0.0/24]          # addresses the laboratory sends from (default: this machine only)
local_codes:                     # the laboratory's own OBX-3 codes -> the LOINC code they mean
  ALTL: 1742-6
```

A message's site is the site whose `sending_facilities` lists its MSH-4; a listener started for
one site (`--site`) takes only that site's facilities (any facility when the list is empty).
Every local code must name a LOINC code of a pathway lab: a file that does not is refused when
the listener starts, never when a result arrives.

MLLP carries no credentials, so `senders` is what keeps a machine that can reach the port from
recording results in a site's name: a message whose MSH-4 is a site's laboratory is taken only
from an address (or network) its file lists; a file without `senders` takes the loopback
addresses only (a local sender, or a TLS tunnel ending on this machine).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from engine.adapters.pathway_files import PATHWAY_DIR
from engine.config import get_settings
from engine.domain.errors import DomainError
from engine.services.care_pathways import care_pathway

LOINC_CODE = re.compile(r"^\d{1,7}-\d$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Where a laboratory may send from when its feed file lists no `senders`: this machine.
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


class InvalidSiteFeed(DomainError):
    """A site's feed file is missing, unreadable or names something that does not exist."""

    code = "invalid-site-feed"


@dataclass(frozen=True)
class SiteFeed:
    site: str
    sending_facilities: frozenset[str] = frozenset()
    timezone: tzinfo = UTC
    local_codes: dict[str, str] = field(default_factory=dict)
    senders: tuple[Network, ...] = LOOPBACK

    def sends_from(self, address: str) -> bool:
        """Whether `address` (the peer of an MLLP connection) is one of the laboratory's."""
        try:
            peer = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
            peer = peer.ipv4_mapped
        return any(peer in network for network in self.senders)


@dataclass(frozen=True)
class SiteFeeds:
    """The feeds a listener serves; `only` is the site it was started for, if any."""

    feeds: dict[str, SiteFeed]
    only: str | None = None

    def for_facility(self, facility: str) -> SiteFeed | None:
        """The site whose laboratory `facility` is, or None."""
        if self.only is not None:
            feed = self.feeds[self.only]
            if not feed.sending_facilities or facility in feed.sending_facilities:
                return feed
            return None
        return next((f for f in self.feeds.values() if facility in f.sending_facilities), None)


def feeds_dir() -> Path:
    return (get_settings().pathway_dir or PATHWAY_DIR) / "lab_feeds"


def load_site_feeds(site: str | None = None, directory: Path | None = None) -> SiteFeeds:
    """Every site's feed (or one site's: a site without a file gets LOINC codes only, in UTC)."""
    directory = directory or feeds_dir()
    feeds = {}
    for path in sorted(directory.glob("*/feed.yaml")):
        feed = _feed(path)
        feeds[feed.site] = feed
    if site is not None:
        feeds = {site: feeds.get(site, SiteFeed(site))}
    return SiteFeeds(feeds, site)


def _feed(path: Path) -> SiteFeed:
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as problem:
        raise InvalidSiteFeed(f"{path}: cannot be read ({problem})") from None
    if not isinstance(data, dict) or not isinstance(data.get("site"), str) or not data["site"]:
        raise InvalidSiteFeed(f"{path}: needs `site:`, the site this laboratory serves")
    facilities = data.get("sending_facilities") or []
    codes = data.get("local_codes") or {}
    if not isinstance(facilities, list) or not all(isinstance(f, str) for f in facilities):
        raise InvalidSiteFeed(f"{path}: sending_facilities must be a list of MSH-4 names")
    if not isinstance(codes, dict):
        raise InvalidSiteFeed(f"{path}: local_codes must map a local code to a LOINC code")
    labs = care_pathway().pathway
    for local, loinc in codes.items():
        if not LOINC_CODE.match(str(loinc)):
            raise InvalidSiteFeed(f"{path}: local code {local!r} maps to {loinc!r}, not LOINC")
        try:
            labs.lab(str(loinc))
        except DomainError:
            raise InvalidSiteFeed(
                f"{path}: local code {local!r} maps to LOINC {loinc}, which no pathway lab has"
            ) from None
    return SiteFeed(
        data["site"],
        frozenset(facilities),
        _zone(path, data.get("timezone") or "UTC"),
        {str(local): str(loinc) for local, loinc in codes.items()},
        _senders(path, data.get("senders")),
    )


def _senders(path: Path, given: Any) -> tuple[Network, ...]:
    if given is None:
        return LOOPBACK
    if not isinstance(given, list) or not given:
        raise InvalidSiteFeed(f"{path}: senders must list the laboratory's addresses or networks")
    try:
        return tuple(ipaddress.ip_network(str(entry), strict=False) for entry in given)
    except ValueError as problem:
        raise InvalidSiteFeed(f"{path}: senders: {problem}") from None


def _zone(path: Path, name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSiteFeed(f"{path}: unknown time zone {name!r}") from None
