"""Client configuration, and the rule that the key never travels in clear text off this host."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

import httpx

from emergency_pipeline.contract import DEFAULT_BASE_URL

API_KEY_ENV = "TELNYX_API_KEY"


class InsecureTransportError(ValueError):
    """The configuration would send the API key where it could be read on the wire."""


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (the only hosts that may see the key over http)."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ClientConfig:
    """Everything the client needs. `api_key` is kept out of repr (and so out of logs)."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_concurrency: int = 8
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
        if not isinstance(self.api_key, str) or not self.api_key.strip():
            raise ValueError(f"api_key is empty: set {API_KEY_ENV} or pass the key")
        url = httpx.URL(self.base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if url.scheme == "http" and not is_loopback_host(url.host):
            raise InsecureTransportError(
                f"refusing to send the API key over plain http to {url.host!r}: http:// is "
                "allowed only for loopback addresses (127.0.0.0/8, ::1, localhost); "
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

    @classmethod
    def from_env(cls, env_var: str = API_KEY_ENV, **kwargs) -> ClientConfig:
        return cls(api_key=os.environ.get(env_var, ""), **kwargs)
