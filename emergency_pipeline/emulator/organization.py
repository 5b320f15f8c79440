"""The emulated account's organization: its users, and the API keys that reach the account.

Telnyx's spec has no "who am I" route. What tells a key's account is
`GET /v2/organizations/users` ("Returns a list of the users in your organization"): every
key of one organization sees the same users, among them exactly one `organization_owner`,
whose id names the organization. A key may also be refused there (403 in the spec), which
`Organization(users_listable=False)` emulates.

One account, several keys: the first key is the owner's, each further key a sub-user's.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, field

from emergency_pipeline import telnyx_contract as contract
from emergency_pipeline.emulator.errors import ErrorReply, error

_NAMESPACE = uuid.UUID("5f1d7c8e-4b1a-4f35-9d0b-2d9e3a6c1e70")
USER_STATUSES = ("enabled", "disabled", "blocked")


@dataclass
class Organization:
    seed: int
    keys: list[bytes] = field(default_factory=list)
    users_listable: bool = True

    @property
    def owner_id(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"owner-{self.seed}"))

    def add_key(self, key: str) -> None:
        if key.strip().encode() not in self.keys:
            self.keys.append(key.strip().encode())

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        given = header[7:].strip().encode()
        # compare_digest with every key, not stopping at a match: no timing hint of which.
        return sum(hmac.compare_digest(given, k) for k in self.keys) > 0

    def key_number(self, header: str | None) -> int | None:
        """Which of the account's keys a request's Authorization header carries (0: the first
        key given), None for none of them: who sent what, for a soak's checks."""
        given = header[7:].strip().encode() if header and header.startswith("Bearer ") else b""
        found = [i for i, k in enumerate(self.keys) if hmac.compare_digest(given, k)]
        return found[0] if found else None

    def users(self) -> list[dict]:
        created = "2024-01-02T03:04:05.000Z"
        out = [{"id": self.owner_id, "email": "owner@emulated.example",
                "record_type": "organization_owner", "user_status": "enabled",
                "created_at": created, "last_sign_in_at": None,
                "organization_user_bypasses_sso": False}]
        for n in range(1, len(self.keys)):
            out.append({"id": str(uuid.uuid5(_NAMESPACE, f"user-{self.seed}-{n}")),
                        "email": f"operator{n}@emulated.example",
                        "record_type": "organization_sub_user", "user_status": "enabled",
                        "created_at": created, "last_sign_in_at": None,
                        "organization_user_bypasses_sso": False})
        return out

    def list_users(self, query: dict[str, str]) -> list[dict]:
        if not self.users_listable:
            raise ErrorReply(403, [error(contract.CODE_FORBIDDEN, "Forbidden",
                                       "You are not allowed to list this organization's "
                                       "users.")])
        users = self.users()
        status, email = query.get("filter[user_status]"), query.get("filter[email]")
        if status is not None:
            users = [u for u in users if u["user_status"] == status]
        if email is not None:
            users = [u for u in users if email.lower() in u["email"]]
        if query.get("include_groups") == "true":
            users = [{**u, "groups": []} for u in users]
        return users
