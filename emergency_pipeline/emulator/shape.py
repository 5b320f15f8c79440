"""Which answer the emulator gives where the spec's examples and other evidence disagree.

The spec subset shows one shape for each of these, but Telnyx may answer the other way (the
examples are examples, not a contract), so the pipeline must handle both and the emulator
can give either:

- `unowned_numbers`: a job naming numbers the account does not own is refused (422) with
  `one_error` at `/phone_numbers` (the spec's "Phone number ownership" example; the
  default), or `per_number`: one error per such number at `/phone_numbers/<index>`.
- `unknown_address`: a job enabling E911 with an `emergency_address_id` the account does not
  have is accepted and each number fails in `failed_operations` with "The field is invalid."
  at `/emergency_address_id` (`failed_operations`, the spec's PhoneNumbersJob example; the
  default), or `refuse_job`: the job is refused (422 at `/emergency_address_id`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

CHOICES = {"unowned_numbers": ("one_error", "per_number"),
           "unknown_address": ("failed_operations", "refuse_job")}
# Named sets: `spec` is what the spec's examples show; `pointers` is the other answer of each.
PRESETS = {"spec": {}, "pointers": {"unowned_numbers": "per_number",
                                    "unknown_address": "refuse_job"}}


@dataclass(frozen=True)
class Shape:
    unowned_numbers: str = "one_error"
    unknown_address: str = "failed_operations"

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, "
                                 f"not {getattr(self, name)!r}")

    @classmethod
    def parse(cls, text: str | None) -> Shape:
        """`spec`, `pointers`, or `unowned_numbers=per_number,...` (the CLI's --telnyx-shape)."""
        text = (text or "").strip()
        if text in PRESETS:
            return cls(**PRESETS[text])
        values: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"expected a preset ({', '.join(PRESETS)}) or name=value, "
                                 f"got {part!r}")
            values[name.strip()] = value.strip()
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Shape:
        unknown = set(values) - set(CHOICES)
        if unknown:
            raise ValueError(f"unknown shape setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def as_shape(value: Shape | str | dict | None) -> Shape:
    if isinstance(value, Shape):
        return value
    if isinstance(value, dict):
        return Shape.from_dict(value)
    return Shape.parse(value)
