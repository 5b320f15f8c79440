"""The emulated account: phone numbers and addresses, generated from a seed or loaded.

Numbers live in parallel typed arrays (about 40 bytes a number) so that a million of them
fit comfortably: ids and E.164 numbers are int64, statuses are one-byte codes. Record order
is id order; lookups by id bisect `ids`, lookups by E.164 bisect a sorted copy of the
phone numbers. Every method here expects the caller to hold the emulator's state lock.
"""

from __future__ import annotations

import bisect
import json
import random
import time
from array import array
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from emergency_pipeline import telnyx_contract as contract

# Area codes for which `phonenumbers` accepts every exchange 200-999 (except N11 and 555)
# as a valid US geographic number; hard-coded so generation does not need the library.
US_AREA_CODES = (
    201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 220,
    223, 224, 225, 227, 228, 229, 231, 234, 235, 239, 240, 248, 251, 252, 253, 254, 256, 260,
    262, 267, 269, 270, 272, 274, 276, 279, 281, 283, 301, 302, 303, 304, 305, 307, 308, 309,
    310, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 323, 324, 325, 326, 327, 329, 330,
    331, 332, 334, 336, 337, 339, 341, 346, 347, 350, 351, 352, 353, 360, 361, 363, 364, 369,
    380, 385, 386, 401, 402, 404, 405, 406, 407, 408, 409, 410, 412, 413, 414, 415, 417, 419,
    423, 424, 425, 430, 432, 434, 435, 440, 442, 443, 445, 447, 448, 458, 463, 464, 469, 470,
    472, 475, 478, 479, 480, 484, 501, 502, 503, 504, 505, 507, 508, 509, 510, 512, 513, 515,
    516, 517, 518, 520, 530, 531, 534, 539, 540, 541, 551, 557, 559, 561, 562, 563, 564, 567,
    570, 571, 572, 573, 574, 575, 580, 582, 585, 586, 601, 602, 603, 605, 606, 607, 608, 609,
    610, 612, 614, 615, 616, 617, 618, 619, 620, 623, 626, 628, 629, 630, 631, 636, 640, 641,
    645, 646, 650, 651, 656, 657, 659, 660, 661, 662, 667, 669, 678, 680, 681, 682, 686, 689,
    701, 702, 703, 704, 706, 707, 708, 712, 713, 714, 715, 716, 717, 718, 719, 720, 724, 725,
    726, 727, 728, 730, 731, 732, 734, 737, 738, 740, 743, 747, 748, 754, 757, 760, 762, 763,
    765, 769, 770, 771, 772, 773, 774, 775, 779, 781, 785, 786, 801, 802, 803, 804, 805, 806,
    808, 810, 812, 813, 814, 815, 816, 817, 818, 820, 821, 826, 828, 830, 831, 832, 835, 838,
    839, 840, 843, 845, 847, 848, 850, 854, 856, 857, 858, 859, 860, 862, 863, 864, 865, 870,
    872, 878, 901, 903, 904, 906, 907, 908, 909, 910, 912, 913, 914, 915, 916, 917, 918, 919,
    920, 925, 928, 929, 930, 931, 934, 936, 937, 938, 940, 941, 943, 945, 947, 948, 949, 951,
    952, 954, 956, 959, 970, 971, 972, 973, 975, 978, 979, 980, 984, 985, 986, 989,
)
EXCHANGES = tuple(x for x in range(200, 1000) if x % 100 != 11 and x != 555)

# One-byte codes; order is part of nothing outside this module.
STATUSES = tuple(sorted(contract.NUMBER_STATUSES))
EMERGENCY_STATUSES = tuple(sorted(contract.EMERGENCY_STATUSES))
_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}
_EMERGENCY_CODE = {s: i for i, s in enumerate(EMERGENCY_STATUSES)}
NO_ADDRESS = 0xFFFF

# Number status mix: (status, share). The rest is active.
_STATUS_MIX = (
    ("port-pending", 0.03), ("purchase-pending", 0.015), ("emergency-only", 0.01),
    ("port-out-pending", 0.01), ("requirement-info-pending", 0.005),
    ("provision-pending", 0.005), ("port-failed", 0.003), ("purchase-failed", 0.002),
)
# Emergency mix for numbers whose status allows emergency service. The rest is enabled.
_EMERGENCY_MIX = (
    ("disabled", 0.15), ("provisioning", 0.02), ("deprovisioning", 0.015),
    ("provisioning-failed", 0.01),
)
_STREETS = (
    "Congress Avenue", "Main Street", "Market Street", "Broadway", "Elm Street",
    "Peachtree Road", "Michigan Avenue", "Pine Street", "Lake Shore Drive", "Ocean Boulevard",
    "Harbor Way", "Sunset Boulevard", "Mission Street", "Commerce Street", "Canal Street",
)
_CITIES = (
    ("Austin", "TX", "78701"), ("Chicago", "IL", "60601"), ("Denver", "CO", "80202"),
    ("Seattle", "WA", "98101"), ("Atlanta", "GA", "30303"), ("Boston", "MA", "02108"),
    ("Phoenix", "AZ", "85004"), ("Portland", "OR", "97204"), ("Miami", "FL", "33130"),
    ("New York", "NY", "10001"), ("San Francisco", "CA", "94103"), ("Dallas", "TX", "75201"),
)
_BASE_TIME = 1_600_000_000  # 2020-09-13; created_at values fall after it


_DAYS: dict[int, str] = {}
_HMS = [f"{h:02d}:{m:02d}:{sec:02d}" for h in range(24) for m in range(60) for sec in range(60)]


def iso(ts: float) -> str:
    """Epoch seconds -> Telnyx-style ISO 8601 with milliseconds and Z (fast: pages of
    250 numbers format two of these per number)."""
    total_ms = round(ts * 1000)  # rounded, so that iso(parse_iso(iso(x))) == iso(x)
    secs, ms = divmod(total_ms, 1000)
    day, sec = divmod(secs, 86_400)
    text = _DAYS.get(day)
    if text is None:
        t = time.gmtime(day * 86_400)
        text = _DAYS[day] = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    return f"{text}T{_HMS[sec]}.{ms:03d}Z"


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Account:
    """Numbers (parallel arrays) and addresses (a short list of dicts)."""

    def __init__(self) -> None:
        self.ids = array("q")
        self.phones = array("q")            # E.164 digits as an int: 1NPANXXXXXX
        self.status = bytearray()
        self.enabled = bytearray()
        self.address = array("H")           # index into self.addresses, NO_ADDRESS if none
        self.emergency = bytearray()
        self.created = array("l")           # epoch seconds
        self.updated = array("d")           # epoch seconds
        self.addresses: list[dict[str, Any]] = []
        self._address_index: dict[str, int] = {}
        self.address_use: list[int] = []    # numbers with emergency enabled, per address
        self._phone_sorted = array("q")
        self._phone_pos = array("l")
        self.version = 0                     # bumped by every change; keys filter caches

    # ---- building -------------------------------------------------------------------

    @classmethod
    def generate(cls, numbers: int, seed: int = 0, addresses: int | None = None) -> Account:
        """A deterministic, realistic account of `numbers` numbers."""
        rng = random.Random(seed)
        acc = cls()
        n_addr = addresses if addresses is not None else max(4, min(24, 6 + numbers // 50_000))
        for a in range(n_addr):
            city, state, postal = _CITIES[a % len(_CITIES)]
            ts = _BASE_TIME + a * 86_400
            acc.addresses.append({
                "id": str(1_315_261_609_962_000_000 + rng.randrange(10**12)),
                "record_type": "address",
                "customer_reference": f"site-{a + 1:03d}",
                "first_name": "", "last_name": "",
                "business_name": f"Acme Site {a + 1}",
                "phone_number": "",
                "street_address": f"{100 + rng.randrange(9900)} {_STREETS[a % len(_STREETS)]}",
                "extended_address": f"Floor {1 + rng.randrange(30)}",
                "locality": city, "administrative_area": state, "neighborhood": "",
                "borough": "", "postal_code": postal, "country_code": "US",
                "address_book": True, "validate_address": True,
                "created_at": iso(ts), "updated_at": iso(ts),
            })
        # About a quarter of the addresses are never used for emergency (spares).
        n_used = max(1, n_addr - max(1, n_addr // 4)) if n_addr else 0

        space = len(US_AREA_CODES) * len(EXCHANGES) * 10_000
        keys = _unique_sorted(rng, space, numbers)
        n_exch = len(EXCHANGES)
        id_ = 1_293_384_261_075_000_000 + rng.randrange(10**12)
        status_thresholds = _cumulative(_STATUS_MIX, _STATUS_CODE)
        emergency_thresholds = _cumulative(_EMERGENCY_MIX, _EMERGENCY_CODE)
        active, allowing = _STATUS_CODE["active"], {
            _STATUS_CODE[s] for s in contract.NUMBER_STATUSES_ALLOWING_EMERGENCY}
        e_active, e_disabled = _EMERGENCY_CODE["active"], _EMERGENCY_CODE["disabled"]
        # Enabled: active and provisioning. Keeping an address: those and provisioning-failed
        # (the enable was tried and failed). Deprovisioning has dropped its address already.
        e_enabled = {e_active, _EMERGENCY_CODE["provisioning"]}
        e_keep_address = e_enabled | {_EMERGENCY_CODE["provisioning-failed"]}
        rand = rng.random
        ids, phones, status, enabled = acc.ids, acc.phones, acc.status, acc.enabled
        address, emergency, created = acc.address, acc.emergency, acc.created
        # Skewed address choice: a few big sites and a long tail, like a real company.
        weights = [1.0 / (k + 1) for k in range(n_used)]
        choices = rng.choices(range(n_used), weights, k=numbers) if n_used else []
        for i, key in enumerate(keys):
            line = key % 10_000
            rest = key // 10_000
            phones.append(
                10_000_000_000 + US_AREA_CODES[rest // n_exch] * 10_000_000
                + EXCHANGES[rest % n_exch] * 10_000 + line)
            r = rand()
            id_ += 1 + int(r * 1_000_000)
            ids.append(id_)
            created.append(_BASE_TIME + 5 * 365 * 86_400 - i * 97)
            r = rand()
            st = _pick(r, status_thresholds, active)
            status.append(st)
            if st in allowing and n_used:
                em = _pick(rand(), emergency_thresholds, e_active)
                enabled.append(1 if em in e_enabled else 0)
                address.append(choices[i] if em in e_keep_address else NO_ADDRESS)
                emergency.append(em)
            else:
                enabled.append(0)
                address.append(NO_ADDRESS)
                emergency.append(e_disabled)
        acc.updated = array("d", acc.created)
        acc._finish()
        return acc

    @classmethod
    def load(cls, path: str) -> Account:
        """Read a state file written by `save` (or by hand: see `save` for the shape)."""
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        acc = cls()
        acc.addresses = [dict(a) for a in doc.get("addresses", [])]
        index = {str(a["id"]): k for k, a in enumerate(acc.addresses)}
        rows = sorted(doc.get("numbers", []), key=lambda r: int(r["id"]))
        now = _BASE_TIME
        for r in rows:
            acc.ids.append(int(r["id"]))
            acc.phones.append(int(str(r["phone_number"]).lstrip("+")))
            acc.status.append(_STATUS_CODE[r.get("status", "active")])
            acc.enabled.append(1 if r.get("emergency_enabled") else 0)
            addr = r.get("emergency_address_id")
            acc.address.append(NO_ADDRESS if addr in (None, "") else index[str(addr)])
            default_em = "active" if r.get("emergency_enabled") else "disabled"
            acc.emergency.append(_EMERGENCY_CODE[r.get("emergency_status", default_em)])
            created = parse_iso(r["created_at"]) if r.get("created_at") else now
            acc.created.append(int(created))
            acc.updated.append(parse_iso(r["updated_at"]) if r.get("updated_at") else created)
        acc._finish()
        return acc

    def save(self, path: str) -> None:
        """Write the account as JSON: {"addresses": [...], "numbers": [{id, phone_number,
        status, emergency_enabled, emergency_address_id, emergency_status, created_at,
        updated_at}, ...]}."""
        with open(path, "w", encoding="utf-8") as f:
            f.write('{"addresses": ')
            json.dump(self.addresses, f, indent=1)
            f.write(',\n"numbers": [\n')
            for i in range(len(self.ids)):
                if i:
                    f.write(",\n")
                f.write(json.dumps(self.state_row(i)))
            f.write("\n]}\n")

    def _finish(self) -> None:
        self._address_index = {str(a["id"]): k for k, a in enumerate(self.addresses)}
        self.address_use = [0] * len(self.addresses)
        for en, a in zip(self.enabled, self.address):
            if en and a != NO_ADDRESS:
                self.address_use[a] += 1
        phones = self.phones
        if all(a < b for a, b in zip(phones, phones[1:])):  # generated accounts are
            self._phone_sorted, self._phone_pos = phones, array("l", range(len(phones)))
        else:
            order = sorted(range(len(phones)), key=phones.__getitem__)
            self._phone_sorted = array("q", (phones[i] for i in order))
            self._phone_pos = array("l", order)
        ps, ids = self._phone_sorted, self.ids  # both sorted: distinct iff strictly rising
        if any(a >= b for a, b in zip(ps, ps[1:])) or any(a >= b for a, b in zip(ids, ids[1:])):
            raise ValueError("duplicate number ids or phone numbers in the account")

    # ---- lookups --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def index_of_id(self, text: str) -> int | None:
        if not text.isdigit() or not text.isascii():
            return None
        value = int(text)
        i = bisect.bisect_left(self.ids, value)
        return i if i < len(self.ids) and self.ids[i] == value else None

    def index_of_e164(self, text: str) -> int | None:
        if not text.startswith("+") or not text[1:].isdigit() or not text.isascii():
            return None
        value = int(text[1:])
        k = bisect.bisect_left(self._phone_sorted, value)
        if k < len(self._phone_sorted) and self._phone_sorted[k] == value:
            return self._phone_pos[k]
        return None

    def index_of(self, key: str) -> int | None:
        return self.index_of_e164(key) if key.startswith("+") else self.index_of_id(key)

    def by_phone(self, rows: Any) -> Any:
        """rows (indexes) ordered by phone number."""
        if isinstance(rows, range) and len(rows) == len(self.ids):
            return self._phone_pos
        return sorted(rows, key=self.phones.__getitem__)

    def address_index(self, address_id: str) -> int | None:
        return self._address_index.get(address_id)

    def e164(self, i: int) -> str:
        return f"+{self.phones[i]}"

    def status_of(self, i: int) -> str:
        return STATUSES[self.status[i]]

    def emergency_allowed(self, i: int) -> bool:
        return STATUSES[self.status[i]] in contract.NUMBER_STATUSES_ALLOWING_EMERGENCY

    def emergency_status(self, i: int) -> str:
        return EMERGENCY_STATUSES[self.emergency[i]]

    def address_id(self, i: int) -> str | None:
        a = self.address[i]
        return None if a == NO_ADDRESS else self.addresses[a]["id"]

    # ---- changes --------------------------------------------------------------------

    def add_address(self, record: dict[str, Any]) -> int:
        """A new address (POST /addresses); returns its index."""
        if len(self.addresses) >= NO_ADDRESS:
            raise ValueError("too many addresses")
        self.addresses.append(record)
        self._address_index[str(record["id"])] = len(self.addresses) - 1
        self.address_use.append(0)
        self.version += 1
        return len(self.addresses) - 1

    def set_emergency(self, i: int, enabled: bool, address: int | None, status: str,
                      now: float) -> None:
        old_a = self.address[i]
        if self.enabled[i] and old_a != NO_ADDRESS:
            self.address_use[old_a] -= 1
        new_a = NO_ADDRESS if address is None else address
        self.enabled[i] = 1 if enabled else 0
        self.address[i] = new_a
        self.emergency[i] = _EMERGENCY_CODE[status]
        if enabled and new_a != NO_ADDRESS:
            self.address_use[new_a] += 1
        self.updated[i] = now
        self.version += 1

    def set_emergency_status(self, i: int, status: str, now: float) -> None:
        self.emergency[i] = _EMERGENCY_CODE[status]
        self.updated[i] = now
        self.version += 1

    # ---- views ----------------------------------------------------------------------

    def number_json(self, i: int) -> str:
        """The PhoneNumberDetailed JSON text of number i, built without json.dumps (fast)."""
        a = self.address[i]
        addr = "null" if a == NO_ADDRESS else f'"{self.addresses[a]["id"]}"'
        created = iso(self.created[i])
        updated = created if self.updated[i] == self.created[i] else iso(self.updated[i])
        status = STATUSES[self.status[i]]
        activated = "null" if status in ("purchase-pending", "port-pending", "purchase-failed",
                                         "port-failed") else f'"{created}"'
        return (
            f'{{"id":"{self.ids[i]}","record_type":"phone_number",'
            f'"phone_number":"+{self.phones[i]}","status":"{status}",'
            f'"country_iso_alpha2":"US","phone_number_type":"local","tags":[],'
            f'"external_pin":null,"connection_id":null,"connection_name":null,'
            f'"customer_reference":null,"messaging_profile_id":null,'
            f'"messaging_profile_name":null,"billing_group_id":null,'
            f'"emergency_enabled":{"true" if self.enabled[i] else "false"},'
            f'"emergency_address_id":{addr},'
            f'"emergency_status":"{EMERGENCY_STATUSES[self.emergency[i]]}",'
            f'"call_forwarding_enabled":true,"call_recording_enabled":false,'
            f'"caller_id_name_enabled":false,"cnam_listing_enabled":false,'
            f'"t38_fax_gateway_enabled":false,"hd_voice_enabled":false,'
            f'"inbound_call_screening":"disabled","deletion_lock_enabled":false,'
            f'"source_type":"number_order","activated_at":{activated},'
            f'"created_at":"{created}","purchased_at":"{created}",'
            f'"updated_at":"{updated}"}}'
        )

    def number_dict(self, i: int) -> dict[str, Any]:
        return json.loads(self.number_json(i))

    def voice_dict(self, i: int) -> dict[str, Any]:
        """PhoneNumberWithVoiceSettings of number i."""
        emergency: dict[str, Any] = {
            "emergency_enabled": bool(self.enabled[i]),
            "emergency_status": EMERGENCY_STATUSES[self.emergency[i]],
        }
        addr = self.address_id(i)
        if addr is not None:  # the schema types it as a plain string
            emergency["emergency_address_id"] = addr
        return {
            "id": str(self.ids[i]), "record_type": "voice_settings",
            "phone_number": self.e164(i), "connection_id": "", "customer_reference": "",
            "tech_prefix_enabled": False, "translated_number": "",
            "usage_payment_method": "pay-per-minute", "inbound_call_screening": "disabled",
            "call_forwarding": {"call_forwarding_enabled": True, "forwarding_type": "always"},
            "call_recording": {"inbound_call_recording_enabled": False},
            "cnam_listing": {"cnam_listing_enabled": False},
            "media_features": {"rtp_auto_adjust_enabled": True},
            "emergency": emergency,
        }

    def state_row(self, i: int) -> dict[str, Any]:
        return {
            "id": str(self.ids[i]), "phone_number": self.e164(i), "status": self.status_of(i),
            "emergency_enabled": bool(self.enabled[i]),
            "emergency_address_id": self.address_id(i),
            "emergency_status": EMERGENCY_STATUSES[self.emergency[i]],
            "created_at": iso(self.created[i]), "updated_at": iso(self.updated[i]),
        }

    def iter_numbers(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self.ids)):
            yield self.number_dict(i)

    # ---- filters (full scans; the server caches them per account version) ---------------

    def matching(self, phone_number: str | None = None, status: str | None = None,
                 emergency_address_id: str | None = None) -> list[int] | range:
        """Indexes of the numbers that pass every given filter, in record order."""
        candidates: list[int] | range = range(len(self.ids))
        if phone_number is not None:
            # The spec: "Non-numerical characters will result in no values being returned"
            # (so "+1..." finds nothing).
            digits = phone_number
            if not digits.isdigit() or not digits.isascii():
                return []
            if len(digits) == 11:
                i = self.index_of_e164("+" + digits)
                candidates = [] if i is None else [i]
            else:
                phones = self.phones
                candidates = [i for i in candidates if digits in str(phones[i])]
        if status is not None:
            code = _STATUS_CODE.get(status)
            if code is None:
                return []
            st = self.status
            candidates = [i for i in candidates if st[i] == code]
        if emergency_address_id is not None:
            if emergency_address_id == "null":
                want = NO_ADDRESS
            else:
                a = self._address_index.get(emergency_address_id)
                if a is None:
                    return []
                want = a
            ad = self.address
            candidates = [i for i in candidates if ad[i] == want]
        return candidates


def _unique_sorted(rng: random.Random, space: int, n: int) -> list[int]:
    """n distinct sorted ints below space, uniformly spread."""
    if n <= 200_000:
        return sorted(rng.sample(range(space), n))
    # Large accounts: random gaps averaging 0.9 * space / n; far cheaper than sample+sort,
    # and the total stays below space by dozens of standard deviations.
    top = int(1.8 * space / n)
    out, key, rand = [], -1, rng.random
    for _ in range(n):
        key += 1 + int(rand() * top)
        out.append(key)
    if key >= space:  # not in this universe, but never emit an invalid number
        return sorted(rng.sample(range(space), n))
    return out


def _cumulative(mix: tuple[tuple[str, float], ...],
                codes: dict[str, int]) -> tuple[list[float], list[int]]:
    limits, values, total = [], [], 0.0
    for name, share in mix:
        total += share
        limits.append(total)
        values.append(codes[name])
    return limits, values


def _pick(r: float, thresholds: tuple[list[float], list[int]], default: int) -> int:
    limits, values = thresholds
    k = bisect.bisect_right(limits, r)
    return values[k] if k < len(values) else default
