"""The account key (the lease's and the ledger's key for an account). The lease itself is
tested on both stores in tests/test_safety_lease.py."""

from __future__ import annotations

import pytest

from emergency_pipeline.state.lease import account_key


def test_account_key_hides_the_key_and_strips_whitespace():
    url = "https://api.telnyx.com/v2"
    key = account_key(url, "KEYsecret123")
    assert "KEYsecret123" not in key and "secret" not in key
    assert key.startswith(url + "#") and len(key.split("#")[1]) == 16
    assert account_key(url, "  KEYsecret123\n") == key
    assert account_key(" HTTPS://user:pw@API.Telnyx.com:443/v2/ ", "KEYsecret123") == key
    assert account_key(url, "KEYother") != key
    assert account_key("http://127.0.0.1:8080/v2", "KEYsecret123") != key
    with pytest.raises(ValueError):
        account_key(url, " \n")
