"""Where a webhook may point. A member who maintains a project chooses its webhooks' URLs, and
the server then calls them: without a check, that is a way to make the server reach its own
network (``127.0.0.1``, a database port, ``169.254.169.254`` the cloud metadata service). So a
URL is resolved, and refused when any of its addresses is not a public one, both when the
webhook is saved and at every delivery, and the delivery connects to the address checked (a
name that resolves to a public address at the check and a private one a moment later, DNS
rebinding, gains nothing). ``FITBOARD_WEBHOOK_ALLOW_PRIVATE`` lifts the refusal for receivers
on the server's own network."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 prefixes whose last 32 bits are an IPv4 address that a translator or the host itself
# may reach: NAT64's well-known and local-use prefixes, IPv4-translated (SIIT) and the
# deprecated IPv4-compatible addresses (Python's is_global takes the last three for public).
EMBEDDING = tuple(ipaddress.ip_network(prefix) for prefix in (
    "64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96"))


class RefusedAddress(ValueError):
    """A URL a webhook may not call: the message says why, for the form and the delivery log."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to ask for there."""

    scheme: str
    host: str  # the name in the URL, for the Host header and TLS
    port: int
    path: str  # with its query
    address: str  # the resolved IP address that passed the check

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is a public unicast address, looking inside the IPv6 forms that carry an
    IPv4 address (mapped, 6to4, Teredo, NAT64, SIIT, IPv4-compatible)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:  # fec0::/10, deprecated but still private where it is used
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and any(ip in prefix for prefix in EMBEDDING):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return ip.is_global and not ip.is_multicast


def check(url: str, allow_private: bool) -> Target:
    """Parse and resolve ``url``; RefusedAddress when it is not http(s), does not resolve, or
    (unless ``allow_private``) any of its addresses is not public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedAddress("the URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise RefusedAddress("the URL must not carry a user name or password")
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedAddress("the URL's port is not a number from 1 to 65535") from None
    if not host:
        raise RefusedAddress("the URL has no host")
    addresses = resolve(host, port)
    if not allow_private:
        if not all(is_public(ip) for ip in addresses):
            # The addresses are not named: any user may maintain a project of their own, and
            # its webhook form told them what the server's own network names resolve to
            # ("db.internal resolves to 10.0.3.7").
            raise RefusedAddress(f"{host} resolves to what is not a public address: webhooks "
                                 "may not call private, loopback or link-local addresses")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, str(addresses[0]))


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal, in any form the resolver reads, to
    itself); RefusedAddress when it resolves to none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedAddress(f"{host} does not resolve ({exc})") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not found:
        raise RefusedAddress(f"{host} does not resolve")
    return list(dict.fromkeys(found))
