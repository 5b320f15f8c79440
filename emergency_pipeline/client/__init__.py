"""The Telnyx client: configuration, errors, pacing, retries, listing and jobs."""

from __future__ import annotations

from .address_calls import AddressCreation, AddressRejected
from .client import TelnyxClient
from .config import API_KEY_ENV, ClientConfig, InsecureTransportError, is_loopback_host
from .errors import ApiError, JobRejected, JobUnanswered, TelnyxAPIError
from .job_ops import JobSubmission, job_matches, job_numbers

__all__ = [
    "API_KEY_ENV", "AddressCreation", "AddressRejected", "ApiError", "ClientConfig", "InsecureTransportError", "JobRejected",
    "JobUnanswered",
    "JobSubmission", "TelnyxAPIError", "TelnyxClient", "is_loopback_host", "job_matches",
    "job_numbers",
]
