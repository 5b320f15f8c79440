"""A batch Telnyx refused (422): which numbers end `failed`, which are sent again (pure).

Telnyx refuses a whole job for a few bad numbers (not owned, say). It may point at them
(`/phone_numbers/<index>`: those fail, the rest is sent again at once), or, as the spec's
example shows, answer one error at `/phone_numbers` without saying which. Then the batch is
split in two halves and each is sent again: a half that goes through is a job, a refused
half is split again, and a single refused number ends `failed` with Telnyx's error. A batch
with k bad numbers of n costs at most about 2·k·log2(n) extra requests; `splits_left` (the
run's budget, in requests) bounds that: when it is spent, a refused batch fails whole.
Errors elsewhere (`/emergency_address_id`, `/base`: the in-flight cap) concern every number
alike, so splitting would not help: the batch fails whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from emergency_pipeline.client.errors import ApiError
from emergency_pipeline.planning.batching import Batch

# Extra job POSTs one run may spend narrowing down refused batches.
MAX_SPLIT_REQUESTS = 200
_ABOUT_THE_LIST = "/phone_numbers"


@dataclass(frozen=True)
class Narrowed:
    refused: dict[str, ApiError | None]   # identifier -> the error it ends `failed` with
    resend: tuple[Batch, ...]        # to submit again, first, in this order

    @property
    def requests(self) -> int:
        return len(self.resend)


def narrow_refusal(batch: Batch, errors: Sequence[ApiError],
                   by_number: Mapping[str, Sequence[ApiError]], splits_left: int) -> Narrowed:
    """`errors`: every error of the 422; `by_number`: those that point at one number, by
    identifier (client.errors.errors_by_number). A refused number's error is None when the
    answer had no error body."""
    ids, part = batch.identifiers, batch.narrowed
    if by_number:
        rest = [i for i in ids if i not in by_number]
        return Narrowed({i: errs[0] for i, errs in by_number.items()},
                        (part(rest),) if rest else ())
    first = errors[0] if errors else None
    about_the_list = bool(errors) and all(
        getattr(e, "pointer", None) == _ABOUT_THE_LIST for e in errors)
    if about_the_list and len(ids) > 1 and splits_left >= 2:
        half = len(ids) // 2
        return Narrowed({}, (part(ids[:half]), part(ids[half:])))
    return Narrowed({i: first for i in ids}, ())
