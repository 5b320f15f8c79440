"""The address ledger: every address creation recorded before its POST (`address_events`).

A place whose latest event is `recorded` is an open intent: the creation may have happened,
so the next run lists the account's addresses and matches by fields before creating
(addressing/creation.py).
"""

from __future__ import annotations

import json
from typing import Any


class AddressIntents:
    """The address_events of a safety store; part of the Ledger (`self.backend`)."""

    backend: Any

    def record_address(self, key: str, run_id: str, event: str, fields: dict,
                       address_id: str | None = None, detail: str | None = None, *,
                       account: str) -> None:
        with self.backend.transaction() as con:
            con.execute("INSERT INTO address_events (account, address_key, run_id, event, "
                        f"address_id, fields, detail, at) VALUES (?,?,?,?,?,?,?,"
                        f"{self.backend.now_sql})",
                        (account, key, run_id, event, address_id,
                         json.dumps(fields, sort_keys=True), detail))

    def open_address_intents(self, account: str) -> set[str]:
        """This account's place keys whose latest event is `recorded` (a creation that may
        have happened)."""
        with self.backend.transaction(write=False) as con:
            rows = con.execute(
                "SELECT address_key, event FROM address_events AS e WHERE account = ? AND "
                "seq = (SELECT max(seq) FROM address_events WHERE account = e.account AND "
                "address_key = e.address_key)", (account,)).fetchall()
        return {k for k, event in rows if event == "recorded"}
