"""The names operators give accounts, and the account each stands for (client/account_identity.py).

A key that may list its organization's users tells its account; a key refused that list
(403) can only go by the name the operator configured. So that both meet on one lease, a run
that knows both the name and the organization writes the pair down here, and a run that
knows only the name looks it up.
"""

from __future__ import annotations

from typing import Any


class AccountNames:
    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def remember(self, base_url: str, name: str, account: str) -> None:
        with self.backend.transaction() as con:
            con.execute("INSERT INTO account_names (base_url, name, account, at) VALUES "
                        f"(?, ?, ?, {self.backend.now_sql}) ON CONFLICT (base_url, name) DO "
                        "UPDATE SET account = excluded.account, at = excluded.at",
                        (base_url, name, account))

    def lookup(self, base_url: str, name: str) -> str | None:
        with self.backend.transaction(write=False) as con:
            row = con.execute("SELECT account FROM account_names WHERE base_url = ? AND "
                              "name = ?", (base_url, name)).fetchone()
        return None if row is None else row[0]
