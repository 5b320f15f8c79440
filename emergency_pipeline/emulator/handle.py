"""`Emulator`: the Python handle that builds, serves and inspects an emulated account."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator.account import Account
from emergency_pipeline.emulator.clock import EmulatorClock
from emergency_pipeline.emulator.conformance import SpecCheck
from emergency_pipeline.emulator.faults import FaultInjector, Faults
from emergency_pipeline.emulator.organization import Organization
from emergency_pipeline.emulator.http_server import Server
from emergency_pipeline.emulator.shape import Shape, as_shape
from emergency_pipeline.emulator.telnyx_routes import App, JobPost
from emergency_pipeline.emulator.engine import RateLimiter, Engine

# Accepted when neither api_key nor TELNYX_API_KEY is given; it opens nothing but the emulator.
DEV_API_KEY = "emulator-development-key"


def default_api_key() -> str:
    return os.environ.get("TELNYX_API_KEY") or DEV_API_KEY


class Emulator:
    def __init__(self, numbers: int = 1000, seed: int = 0, api_key: str | None = None,
                 job_seconds: float = 2.0, rate_limit: int = 1000, rate_window: float = 1.0,
                 max_jobs_in_flight: int = contract.DEFAULT_MAX_JOBS_IN_FLIGHT,
                 faults: Faults | None = None, state_file: str | None = None,
                 host: str = "127.0.0.1", port: int = 0,
                 settle_seconds: float | None = None, addresses: int | None = None,
                 telnyx_shape: Shape | str | dict | None = None,
                 spec: str | None = None, clock_offset_seconds: float = 0.0,
                 extra_api_keys: Sequence[str] = (), users_listable: bool = True) -> None:
        """`telnyx_shape`: the answers the spec leaves open (emulator/shape.py; default the
        spec's examples). `spec`: an OpenAPI file every request is checked against (strict
        mode, emulator/conformance.py); default $TELNYX_EMULATOR_SPEC, else no check.
        `clock_offset_seconds`: Telnyx's clock relative to the host (emulator/clock.py).
        `extra_api_keys`: more keys of the same account (a Telnyx account can hold several);
        `users_listable=False`: GET /organizations/users answers 403 (emulator/organization.py)."""
        self.clock = EmulatorClock(clock_offset_seconds)
        account = (Account.load(state_file) if state_file
                   else Account.generate(numbers, seed=seed, addresses=addresses))
        self._faults = FaultInjector(faults or Faults())
        self.engine = Engine(
            account, job_seconds=job_seconds,
            settle_seconds=job_seconds / 2 if settle_seconds is None else settle_seconds,
            max_jobs_in_flight=max_jobs_in_flight, faults=self._faults, seed=seed,
            shape=as_shape(telnyx_shape), clock=self.clock)
        self.organization = Organization(seed, users_listable=users_listable)
        for key in (api_key or default_api_key(), *extra_api_keys):
            self.organization.add_key(key)
        self._app = App(self.engine, self.organization,
                        RateLimiter(rate_limit, rate_window, self.clock), self._faults,
                        SpecCheck.from_file(spec) if spec else SpecCheck.from_env())
        self._address = (host, port)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Emulator(numbers={len(self.engine.account)}, url={self.root_url!r})"

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._server is None:
            self._server = Server(self._address, self._app)
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": 0.1},
                                            name="telnyx-emulator", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread (the CLI)."""
        self._server = Server(self._address, self._app)
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._server.server_close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            return self._address[1]
        return self._server.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v2"

    # ---- faults and counters --------------------------------------------------------

    def set_faults(self, faults: Faults) -> None:
        self._faults.set(faults)

    @property
    def faults(self) -> Faults:
        return self._faults.faults

    def set_shape(self, shape: Shape | str | dict) -> None:
        self.engine.shape = as_shape(shape)

    @property
    def shape(self) -> Shape:
        return self.engine.shape

    def spec_violations(self) -> list[dict[str, str]]:
        """What strict mode found: {method, path, problem} per violation ([] when off)."""
        spec = self._app.spec
        return list(spec.violations) if spec is not None else []

    @property
    def strict(self) -> bool:
        return self._app.spec is not None

    def stats(self) -> dict[str, Any]:
        return self._app.stats.snapshot()

    def reset_stats(self) -> None:
        self._app.stats.reset()

    def job_posts(self) -> list[JobPost]:
        """Every job POST that arrived so far (host clock, key number), in arrival order."""
        with self._app._posts_lock:
            return list(self._app.job_posts)

    # ---- the clock ------------------------------------------------------------------

    def set_clock_offset(self, seconds: float) -> None:
        """Skew: reported timestamps (created_at, updated_at, Date) are host + seconds."""
        self.clock.set_offset(seconds)

    def advance(self, seconds: float) -> None:
        """Move the emulator's time forward: jobs, settling numbers and rate-limit windows
        get `seconds` further along at once (a test need not sleep through a job)."""
        self.engine.move_clock(seconds)

    # ---- state ----------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        with self.engine.lock:
            self.engine.advance()
            return [j.to_dict(self.engine.account) for j in self.engine.job_order]

    def job(self, job_id: str) -> dict[str, Any]:
        with self.engine.lock:
            self.engine.advance()
            return self.engine.job(job_id).to_dict(self.engine.account)

    def number(self, key: str) -> dict[str, Any]:
        """A number as GET /phone_numbers/{id} gives it; key is its id or E.164."""
        with self.engine.lock:
            self.engine.advance()
            i = self.engine.account.index_of(str(key))
            if i is None:
                raise KeyError(key)
            return self.engine.account.number_dict(i)

    def numbers(self) -> Iterator[dict[str, Any]]:
        """Every number's dict, in listing order (a snapshot taken in chunks)."""
        n = len(self.engine.account)
        for start in range(0, n, 10_000):
            with self.engine.lock:
                self.engine.advance()
                chunk = [self.engine.account.number_dict(i)
                         for i in range(start, min(n, start + 10_000))]
            yield from chunk

    def addresses(self) -> list[dict[str, Any]]:
        with self.engine.lock:
            return [dict(a) for a in self.engine.account.addresses]

    def finish_jobs(self, settle: bool = True) -> None:
        """Every in-flight job to its end now; settle=True also ends provisioning and
        deprovisioning (to active / disabled) of the numbers jobs changed."""
        self.engine.finish_jobs(settle=settle)

    def save_state(self, path: str) -> None:
        """Write the account (numbers and addresses) as a state file."""
        with self.engine.lock:
            self.engine.advance()
            self.engine.account.save(path)
