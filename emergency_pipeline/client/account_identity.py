"""Which Telnyx account a run works on: the key of its lease and its ledger (design rule 3).

Not the API key: one account can hold several keys, and two runs holding different keys of
one account must still meet on one lease. Telnyx's spec has no "who am I" route; what tells
a key's account is `GET /v2/organizations/users`, where every key of an organization sees the
same `organization_owner`. Where a key may not list the users (403), the operator names the
account (`TELNYX_ACCOUNT`, or the resource's `account_name`); with neither, an apply run
stops before it takes anything, with that fix in one line. A run that knows both the name and
the organization writes the pair down in the safety store (`AccountNames`), so that a run
whose key is refused the list, under the same name, meets it on the organization's lease.

The base URL is part of the key, normalised the way a request reaches the server: scheme and
host in lower case, the default port dropped, percent-encoded unreserved characters decoded,
dot segments removed, no trailing slash, and every loopback spelling (localhost, 127.0.0.1,
::1, ::ffff:127.0.0.1) one host.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from emergency_pipeline.client import TelnyxClient
from emergency_pipeline.client.config import loopback_address
from emergency_pipeline.safety_store.account_names import AccountNames

ACCOUNT_NAME_ENV = "TELNYX_ACCOUNT"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")


class AccountUnknown(RuntimeError):
    """Nothing tells which account this key belongs to, and no name was configured."""


@dataclass(frozen=True)
class AccountIdentity:
    key: str      # what the lease and the ledger are keyed by: never the API key
    label: str    # for people (logs, history): the configured name, else the organization
    how: str      # how it was told, for the log


def normalise_base_url(base_url: str) -> str:
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if loopback_address(host) is not None or _mapped_loopback(host):
        host = "loopback"
    elif ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    path = _UNRESERVED.sub(_decode_unreserved, parts.path or "/")
    path = posixpath.normpath(path) if path not in ("", "/") else "/"
    path = "" if path in ("/", ".") else path.rstrip("/")
    if path.startswith("//"):   # normpath keeps a leading double slash
        path = "/" + path.lstrip("/")
    return urlunsplit((scheme, netloc, path, "", ""))


def _mapped_loopback(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool(addr.is_loopback or (mapped is not None and mapped.is_loopback))


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if (char.isascii() and (char.isalnum() or char in "-._~")) else \
        "%" + match.group(1).upper()


def identify_account(client: TelnyxClient, base_url: str, configured_name: str | None,
                     names: AccountNames | None = None) -> AccountIdentity:
    """The account behind the client's key: the organization's owner when the key may list
    the users, else what the configured name stands for (`names`: the pairs other runs wrote
    down), else the name itself; AccountUnknown with the fix when there is no name."""
    url = normalise_base_url(base_url)
    name = (configured_name or "").strip() or None
    owner = client.organization_owner_id()
    if owner is not None:
        key = f"{url}#org:{owner}"
        if name is not None and names is not None:
            names.remember(url, name, key)
        return AccountIdentity(key, name or f"org {owner[:8]}",
                               "its organization's owner (GET /v2/organizations/users)")
    if name is not None:
        known = names.lookup(url, name) if names is not None else None
        if known is not None:
            return AccountIdentity(known, name, f"the configured name {name!r}, which a run "
                                   "that could list the organization's users tied to it")
        return AccountIdentity(f"{url}#name:{name}", name, f"the configured name {name!r}")
    raise AccountUnknown(
        "cannot tell which Telnyx account this API key belongs to (it may not list "
        f"GET /v2/organizations/users): set {ACCOUNT_NAME_ENV}=<account name>, the same for "
        "every key and machine of this account")
