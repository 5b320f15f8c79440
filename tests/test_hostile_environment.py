"""A hostile environment (issue 14): keys with stray characters, names that only look like
loopback, symlinked or oddly named inbox files, a key on the emulator's command line, and runs
left STARTED by a killed process. Real emulator over HTTP, real files, a real Dagster instance."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import httpx
import pytest

from emergency_pipeline.client import ClientConfig, InsecureTransportError, TelnyxAPIError
from emergency_pipeline.client import TelnyxClient
from emergency_pipeline.client.config import loopback_address
from emergency_pipeline.client.errors import redact
from emergency_pipeline.client.transport import Transport

from _client_support import KEY, fast_config, running_emulator

LOG = logging.getLogger("emergency_pipeline.test")


def _texts(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


# -- the key ---------------------------------------------------------------------------------

@pytest.mark.parametrize("padded", [KEY + "\n", KEY + "\r\n", f"  {KEY}\t", f"\n{KEY} "])
def test_surrounding_whitespace_is_stripped_and_the_key_works(padded: str) -> None:
    with running_emulator(numbers=50, seed=3) as emu:
        cfg = fast_config(emu, api_key=padded)
        assert cfg.api_key == KEY
        with TelnyxClient(cfg, log=LOG) as client:
            assert len(client.list_phone_numbers()) == 50


@pytest.mark.parametrize("bad", [KEY[:8] + "\n" + KEY[8:], KEY + "\x00", KEY[:5] + "\r" + KEY[5:],
                                 KEY[:5] + "\t" + KEY[5:], KEY + "\x7f", KEY + "é", KEY[:5] + "\u2028" + KEY[5:],
                                 KEY[:4] + " " + KEY[4:]])
def test_a_key_a_header_cannot_carry_is_refused_before_any_request(bad: str) -> None:
    with running_emulator(numbers=10, seed=3) as emu:
        with pytest.raises(ValueError, match="TELNYX_API_KEY") as info:
            fast_config(emu, api_key=bad)
        assert emu.stats()["requests"] == 0
    text = _texts(info.value)
    for part in (bad, KEY, KEY[:8], KEY[8:], repr(bad)):
        assert part not in text


def test_a_local_protocol_error_is_not_retried_and_shows_no_key(caplog) -> None:
    # A key that got past validation (as if set after it): httpcore's own error prints the
    # header as bytes, b'Bearer <key>\n'; that form must be redacted, and not sent 6 times.
    caplog.set_level(logging.DEBUG)
    bad = KEY + "\n"
    with running_emulator(numbers=10, seed=3) as emu:
        cfg = fast_config(emu)
        object.__setattr__(cfg, "api_key", bad)
        transport = Transport(cfg, LOG)
        try:
            with pytest.raises(TelnyxAPIError) as info:
                transport.get("phone_numbers")
        finally:
            transport.close()
        assert emu.stats()["requests"] == 0
    assert transport.requests_sent == 1 and transport.retries == 0
    assert info.value.attempts == 1 and "LocalProtocolError" in str(info.value)
    assert "[redacted]" in str(info.value)
    for text in (_texts(info.value), caplog.text):
        assert KEY not in text


@pytest.mark.parametrize("form", [
    "{k}", "{r}", "b'Bearer {b}'", '"{j}"', "Bearer {k}",
])
def test_redaction_covers_the_forms_libraries_print(form: str) -> None:
    import json

    secret = KEY + "\n\t\x00é"
    text = form.format(k=secret, r=repr(secret)[1:-1],
                       b=repr(("Bearer " + secret).encode("utf-8", "backslashreplace"))[2:-1]
                       .removeprefix("Bearer "), j=json.dumps(secret)[1:-1])
    assert KEY not in redact(text, secret)


# -- plain http only to loopback -------------------------------------------------------------

@pytest.mark.parametrize("host", ["evil.localhost", "localhost.evil.com", "LOCALHOST.attacker",
                                  "127.0.0.1.nip.io", "0x7f000001", "2130706433"])
def test_names_that_look_like_loopback_are_not(host: str) -> None:
    assert loopback_address(host) is None
    with pytest.raises(InsecureTransportError):
        ClientConfig(api_key=KEY, base_url=f"http://{host}:8000/v2")


def test_localhost_is_what_the_hosts_file_says(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# comment\n127.0.0.1 localhost  # the usual\n::1 localhost ip6-localhost\n")
    assert loopback_address("localhost", str(hosts)) == "127.0.0.1"
    hosts.write_text("10.0.0.7 localhost\n127.0.0.1 localhost\n")    # one non-loopback entry
    assert loopback_address("localhost", str(hosts)) is None
    hosts.write_text("127.0.0.1 myhost\n")                           # not listed at all
    assert loopback_address("localhost", str(hosts)) is None
    assert loopback_address("localhost", str(tmp_path / "missing")) is None


def test_localhost_is_dialled_by_its_loopback_address() -> None:
    with running_emulator(numbers=20, seed=3) as emu:
        url = emu.base_url.replace("127.0.0.1", "localhost")
        cfg = fast_config(emu, base_url=url)
        assert cfg.connect_url == emu.base_url      # no name lookup on the wire
        with TelnyxClient(cfg, log=LOG) as client:
            assert len(client.list_phone_numbers()) == 20


# -- the inbox -------------------------------------------------------------------------------

def _aged(path: Path) -> Path:
    past = time.time() - 60
    os.utime(path, (past, past), follow_symlinks=False)
    return path


def test_inbox_takes_regular_files_inside_it_only(tmp_path: Path) -> None:
    from emergency_pipeline.defs.sensors import scan

    inbox, outside = tmp_path / "inbox", tmp_path / "elsewhere"
    inbox.mkdir()
    outside.mkdir()
    good = inbox / "site.csv"
    good.write_text("phone_number,enabled\n+13162429136,no\n")
    _aged(good)
    secret = outside / "other.csv"
    secret.write_text("phone_number,enabled\n+13162429136,no\n")
    (inbox / "link-out.csv").symlink_to(secret)
    (inbox / "passwd.csv").symlink_to("/etc/passwd")
    (inbox / "dangling.csv").symlink_to(tmp_path / "nothing.csv")
    (inbox / "inside.csv").symlink_to(good)
    (inbox / "folder.csv").mkdir()
    for name in ["new\nline.csv", "a,b.csv", "x...y.csv", "tab\there.csv", "bidi\u202e.csv",
                 " lead.csv"]:
        (inbox / name).write_text("phone_number,enabled\n+13162429136,no\n")
        _aged(inbox / name)
    for link in ("link-out.csv", "passwd.csv", "dangling.csv", "inside.csv"):
        _aged(inbox / link)
    skipped: list[str] = []
    found, cursor = scan(inbox, {}, log=skipped.append)
    assert sorted(k for k, _ in found) == [str(inbox / "inside.csv"), str(good)]
    text = "\n".join(skipped)
    assert f"a link to {secret}, outside the inbox" in text
    assert "a link to /etc/passwd, outside the inbox" in text
    assert "dangling.csv" in text and "not a regular file" in text
    assert "U+000A" in text and "','" in text and "'...'" in text and "U+0009" in text
    assert "U+202E" in text and "starts or ends with a space" in text
    assert len(skipped) == 10 and set(cursor) == {k for k, _ in found}


def test_the_sensor_logs_what_it_skips(tmp_path: Path, monkeypatch, capfd) -> None:
    from dagster import DagsterInstance, SkipReason, build_sensor_context

    from emergency_pipeline.defs.sensors import desired_state_inbox

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "passwd.csv").symlink_to("/etc/passwd")
    _aged(inbox / "passwd.csv")
    monkeypatch.setenv("EMERGENCY_PIPELINE_INBOX", str(inbox))
    result = desired_state_inbox(build_sensor_context(instance=DagsterInstance.ephemeral()))
    assert isinstance(result, SkipReason)
    # The sensor's context.log (Dagster's console logger, on stderr here).
    assert "passwd.csv': it is a link to /etc/passwd, outside the inbox" in capfd.readouterr().err


# -- the emulator's key ----------------------------------------------------------------------

def _emulator(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "emergency_pipeline.cli", "emulator",
                             "--port", "0", "--numbers", "20", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**{k: v for k, v in os.environ.items()
                                    if k not in ("TELNYX_API_KEY", "EMULATOR_API_KEY")},
                                 **(env or {})})


def test_emulator_refuses_a_key_on_its_command_line() -> None:
    proc = _emulator("--api-key", "cmdline-secret-123")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--api-key-file" in err and "cmdline-secret-123" not in out + err


@pytest.mark.parametrize("how", ["file", "env"])
def test_emulator_takes_its_key_from_a_file_or_the_environment(tmp_path: Path, how: str) -> None:
    secret = "file-or-env-secret-456"
    key_file = tmp_path / "key"
    key_file.write_text(secret + "\n")               # as `echo` writes it
    proc = (_emulator("--api-key-file", str(key_file)) if how == "file"
            else _emulator(env={"EMULATOR_API_KEY": secret}))
    try:
        line = proc.stdout.readline()
        base = line.strip().rsplit(" ", 1)[-1]
        auth = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(base + "/phone_numbers", headers=auth).status_code == 200
        assert httpx.get(base + "/phone_numbers",
                         headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert secret not in line + out + err
