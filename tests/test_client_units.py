"""Pure parts of the client: config rules, error parsing, backoff, pacing, job matching."""

from __future__ import annotations

import random

import httpx
import pytest

from emergency_pipeline.client import (
    ClientConfig, InsecureTransportError, JobRejected, TelnyxAPIError, is_loopback_host,
    job_matches,
)
from emergency_pipeline.client.errors import ApiError, parse_errors
from emergency_pipeline.client.pacing import Pacer
from emergency_pipeline.client.retry import (
    backoff_delay, classify_exception, classify_response, parse_retry_after, wait_hint,
)

KEY = "KEY-unit-0123456789abcdef"


@pytest.mark.parametrize("host,ok", [
    ("127.0.0.1", True), ("127.9.8.7", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("10.0.0.1", False), ("example.com", False),
    ("128.0.0.1", False), ("localhost.example.com", False),
])
def test_loopback_hosts(host, ok):
    assert is_loopback_host(host) is ok


@pytest.mark.parametrize("url", ["http://api.telnyx.com/v2", "http://10.1.2.3:8080/v2",
                                 "http://localhost.evil.com/v2"])
def test_http_to_non_loopback_is_refused_with_reason(url):
    with pytest.raises(InsecureTransportError) as info:
        ClientConfig(api_key=KEY, base_url=url)
    assert "plain http" in str(info.value) and "loopback" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("url", ["https://api.telnyx.com/v2", "http://127.0.0.1:9/v2",
                                 "http://[::1]:9/v2", "http://localhost:9/v2"])
def test_allowed_urls(url):
    assert ClientConfig(api_key=KEY, base_url=url).base_url == url


def test_config_repr_hides_key():
    cfg = ClientConfig(api_key=KEY)
    assert KEY not in repr(cfg) and KEY not in str(cfg)
    with pytest.raises(ValueError):
        ClientConfig(api_key="  ")


def test_parse_errors_and_message():
    body = {"errors": [
        {"code": "10015", "title": "Bad Request", "detail": "must be present",
         "source": {"pointer": "/phone_numbers"}},
        {"code": "10015", "title": "Bad", "detail": f"echo {KEY}",
         "source": {"pointer": "/phone_numbers/1"}},
        "junk",
    ]}
    errors = parse_errors(body, secret=KEY)
    assert [e.pointer for e in errors] == ["/phone_numbers", "/phone_numbers/1"]
    assert KEY not in errors[1].detail
    err = TelnyxAPIError(422, errors, method="POST", path="/x")
    assert "HTTP 422" in str(err) and "10015" in str(err) and "must be present" in str(err)
    assert err.codes == ("10015", "10015")
    assert parse_errors("not json") == () and parse_errors({"errors": None}) == ()


def test_job_rejected_maps_pointers_to_numbers():
    errors = (ApiError("10015", "Bad", "not owned", "/phone_numbers/2"),
              ApiError("10015", "Bad", "bad", "phone_numbers/0"),
              ApiError("10015", "Bad", "too many", "/phone_numbers"),
              ApiError("10015", "Bad", "out of range", "/phone_numbers/9"))
    rej = JobRejected(422, errors, method="POST", path="/j",
                      phone_numbers=["+15550000001", "+15550000002", "+15550000003"])
    assert set(rej.by_number) == {"+15550000003", "+15550000001"}
    assert [e.detail for e in rej.general_errors] == ["too many", "out of range"]
    assert "+15550000003" in str(rej)
    assert isinstance(rej, TelnyxAPIError)


def test_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0   # in the past
    assert wait_hint({"x-ratelimit-reset": "2"}) == 2.0
    assert wait_hint({"retry-after": "1", "x-ratelimit-reset": "5"}) == 1.0


def test_backoff_grows_with_jitter_and_caps():
    rng = random.Random(1)
    for attempt in range(1, 12):
        exp = min(4.0, 0.1 * 2 ** (attempt - 1))
        for _ in range(20):
            d = backoff_delay(attempt, base=0.1, cap=4.0, rng=rng)
            assert exp / 2 <= d <= exp
    delays = {backoff_delay(3, base=0.1, cap=4.0, rng=rng) for _ in range(20)}
    assert len(delays) > 10                                   # jittered
    # A server hint is a floor: never come back before the server said.
    for _ in range(20):
        assert backoff_delay(1, base=0.1, cap=4.0, hint=2.5, rng=rng) >= 2.5
    assert backoff_delay(1, base=0.1, cap=1.0, hint=7.0, rng=rng) <= 7.0 + 1.0


def test_classification():
    req = httpx.Request("GET", "http://127.0.0.1/")
    assert classify_response(httpx.Response(200, request=req)) is None
    f = classify_response(httpx.Response(429, headers={"retry-after": "2"}, request=req))
    assert f.retryable and not f.ambiguous and f.hint == 2.0
    f = classify_response(httpx.Response(503, request=req))
    assert f.retryable and f.ambiguous
    f = classify_response(httpx.Response(422, request=req))
    assert not f.retryable
    assert not classify_exception(httpx.ConnectError("x")).ambiguous
    assert classify_exception(httpx.ReadTimeout("x")).ambiguous
    assert classify_exception(httpx.RemoteProtocolError("x")).retryable


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_pacer_holds_when_budget_spent_until_reset():
    clock = FakeClock()
    p = Pacer(clock=clock, sleep=clock.sleep)
    p.acquire()
    p.release({"x-ratelimit-remaining": "2", "x-ratelimit-reset": "1"})
    assert p.acquire() == 0 and p.acquire() == 0
    waited = p.acquire()                     # budget of 2 spent: wait for the window
    assert 0.9 <= waited <= 1.1
    assert clock.now >= 1.0


def test_pacer_counts_in_flight_and_stops_on_429():
    clock = FakeClock()
    p = Pacer(clock=clock, sleep=clock.sleep)
    for _ in range(3):
        p.acquire()
    # 3 in flight; the first answer says 3 left: the 2 others will use 2 of them.
    p.release({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "2"})
    assert p.acquire() == 0
    assert p.acquire() > 0                   # budget 1 used; held until the reset
    p = Pacer(clock=clock, sleep=clock.sleep)
    p.acquire()
    p.release(None, throttled=True, retry_after=0.7)
    assert 0.69 <= p.acquire() <= 0.8


def test_pacer_max_rate_spaces_requests():
    clock = FakeClock()
    p = Pacer(max_rate=10, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        p.acquire()
        p.release(None)
    assert clock.now == pytest.approx(1.0, abs=0.01)


def test_job_matches_identifier_sets():
    ours = frozenset({"+15550000001", "+15550000002"})
    job = {"type": "update_emergency_settings",
           "phone_numbers": [{"phone_number": "+15550000002"}, {"phone_number": "+15550000001"}]}
    assert job_matches(job, ours)
    both = {"phone_numbers": [{"id": "1", "phone_number": "+15550000001"},
                              {"id": "2", "phone_number": "+15550000002"}]}
    assert job_matches(both, ours) and job_matches(both, frozenset({"1", "2"}))
    assert not job_matches({"phone_numbers": [{"phone_number": "+15550000001"}]}, ours)
    extra = {"phone_numbers": [{"phone_number": "+15550000001"},
                               {"phone_number": "+15550000009"}]}
    assert not job_matches(extra, ours)
    assert not job_matches({**job, "type": "delete_phone_numbers"}, ours)


# -- properties -------------------------------------------------------------------------------

from hypothesis import given, strategies as st  # noqa: E402

_numbers = st.lists(st.integers(2_000_000_000, 9_999_999_999).map(lambda n: f"+1{n}"),
                    min_size=1, max_size=30, unique=True)


@given(_numbers, st.randoms(use_true_random=False), st.booleans())
def test_job_matches_any_order_and_shape(numbers, rnd, as_id_key):
    shuffled = list(numbers)
    rnd.shuffle(shuffled)
    job = {"phone_numbers": [{"phone_number": n} if not as_id_key else {"id": n}
                             for n in shuffled]}
    assert job_matches(job, frozenset(numbers))
    if len(numbers) > 1:
        assert not job_matches(job, frozenset(numbers[1:]))
        assert not job_matches({"phone_numbers": job["phone_numbers"][1:]}, frozenset(numbers))


@given(st.integers(1, 40), st.floats(0.001, 5), st.floats(0.01, 60),
       st.one_of(st.none(), st.floats(0, 100)))
def test_backoff_is_bounded_and_honours_hints(attempt, base, cap, hint):
    d = backoff_delay(attempt, base=base, cap=cap, hint=hint, rng=random.Random(attempt))
    assert 0 <= d <= max(cap, hint or 0)
    if hint is not None and hint <= cap:
        assert d >= hint


@given(st.lists(st.integers(0, 40), max_size=10), _numbers)
def test_pointer_mapping_never_loses_an_error(indexes, numbers):
    errors = [ApiError("10015", "Bad", None, f"/phone_numbers/{i}") for i in indexes]
    rej = JobRejected(422, errors, method="POST", path="/j", phone_numbers=numbers)
    mapped = sum(len(v) for v in rej.by_number.values())
    assert mapped + len(rej.general_errors) == len(errors)
    assert set(rej.by_number) <= set(numbers)
