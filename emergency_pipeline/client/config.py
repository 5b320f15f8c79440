"""Client configuration, and the rule that the key never travels in clear text off this host."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

import httpx

from emergency_pipeline.telnyx_contract import DEFAULT_BASE_URL, DEFAULT_MAX_CONCURRENCY

API_KEY_ENV = "TELNYX_API_KEY"


class InsecureTransportError(ValueError):
    """The configuration would send the API key where it could be read on the wire."""


HOSTS_FILE = "/etc/hosts"


def hosts_file_addresses(name: str, hosts_file: str = HOSTS_FILE) -> list[str]:
    """The addresses the hosts file gives `name` (no DNS, no nsswitch)."""
    try:
        with open(hosts_file, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and name in (f.lower().rstrip(".") for f in fields[1:]):
            found.append(fields[0])
    return found


def loopback_address(host: str, hosts_file: str = HOSTS_FILE) -> str | None:
    """The loopback IP literal that `host` stands for, or None if it is not loopback.

    A loopback IP literal is itself; `localhost` is what the hosts file alone says, and only
    if every address it lists there is loopback. Nothing else (not `evil.localhost`, not a
    name some DNS server answers with 127.0.0.1) may see the key over plain http."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        return host if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        pass
    if host != "localhost":
        return None
    addresses = hosts_file_addresses(host, hosts_file)
    try:
        if addresses and all(ipaddress.ip_address(a.split("%")[0]).is_loopback
                             for a in addresses):
            return addresses[0]
    except ValueError:
        pass
    return None


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1, and `localhost` when the hosts file maps it to loopback."""
    return loopback_address(host) is not None


def clean_api_key(key: object) -> str:
    """The key without surrounding whitespace (a secret made from a file often ends in a
    newline). Refuses a key that an HTTP header cannot carry, before any request: httpcore's
    error would print it. The message never contains the key."""
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"api_key is empty: set {API_KEY_ENV} or pass the key")
    key = key.strip()
    bad = next((i for i, ch in enumerate(key) if not 0x21 <= ord(ch) <= 0x7E), None)
    if bad is not None:
        raise ValueError(
            f"api_key has a control, space or non-ASCII character at position {bad + 1}: "
            f"check how {API_KEY_ENV} is set (a secret file with stray characters?)")
    return key


@dataclass(frozen=True)
class ClientConfig:
    """Everything the client needs. `api_key` is kept out of repr (and so out of logs)."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_rate: float | None = None          # requests per second, across all threads
    max_attempts: int = 6                  # per request (GET) or per job submission (POST)
    max_throttled_attempts: int = 30       # 429s, waited out, counted apart from failures
    max_retry_seconds: float = 120.0       # total time one request may spend retrying
    # Tuning with sensible defaults; tests shrink them to stay fast.
    backoff_base: float = 0.5              # first retry waits about this long
    backoff_max: float = 30.0              # one wait never exceeds this
    adopt_wait_seconds: float = 1.0        # after an ambiguous POST, let the job appear
    adopt_checks: int = 2                  # listings of recent jobs before submitting again
    # After a job POST that got no answer at all (timeout, dropped connection) the server may
    # still be working on it: its job may appear up to this long after the POST was sent.
    # None: twice the read timeout, at least 60 s. Never less than the read timeout.
    late_job_window_seconds: float | None = None
    clock_skew_seconds: float = 300.0      # tolerance for created_at if the server's clock is unknown
    clock_margin_seconds: float = 5.0      # tolerance once known (from the Date header)
    poll_interval: float = 1.0             # follow_jobs: first wait between rounds
    poll_interval_max: float = 30.0
    page_size: int = 250
    user_agent: str = "emergency-pipeline/0.1 (httpx)"

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_key", clean_api_key(self.api_key))
        url = httpx.URL(self.base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if url.scheme == "http" and not is_loopback_host(url.host):
            raise InsecureTransportError(
                f"refusing to send the API key over plain http to {url.host!r}: http:// is "
                "allowed only for loopback addresses (127.0.0.0/8, ::1, and localhost as "
                f"{HOSTS_FILE} maps it); "
                "use https://"
            )
        if url.userinfo:
            raise ValueError("base_url must not contain credentials")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.max_rate is not None and self.max_rate <= 0:
            raise ValueError("max_rate must be positive or None")
        if self.max_attempts < 1 or self.max_throttled_attempts < 1:
            raise ValueError("max_attempts and max_throttled_attempts must be at least 1")
        if min(self.connect_timeout, self.read_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if self.late_job_window_seconds is not None \
                and self.late_job_window_seconds < self.read_timeout:
            raise ValueError("late_job_window_seconds must cover at least the read timeout")
        if not 1 <= self.page_size <= 250:
            raise ValueError("page_size must be between 1 and 250")

    @property
    def late_job_window(self) -> float:
        if self.late_job_window_seconds is not None:
            return self.late_job_window_seconds
        return max(2 * self.read_timeout, 60.0)

    @property
    def connect_url(self) -> str:
        """base_url as the transport dials it: over plain http the host is the loopback IP
        literal checked above, so no name lookup can send the key elsewhere."""
        url = httpx.URL(self.base_url)
        if url.scheme != "http":
            return self.base_url
        return str(url.copy_with(host=loopback_address(url.host)))

    @classmethod
    def from_env(cls, env_var: str = API_KEY_ENV, **kwargs) -> ClientConfig:
        return cls(api_key=os.environ.get(env_var, ""), **kwargs)
