"""The station reads engine results by cause code and tells a pulled SSD from a damaged one."""

from __future__ import annotations

from appliance.content.background import VerifyResult
from appliance.content.errors import ContentRemoved
from appliance.engine import TargetResult
from appliance.station import events as ev
from appliance.station.adapters import content_callbacks, result_reason
from appliance.station.states import FailReason


def _failed(reason: str, cause: str, detail: dict[str, float] | None = None) -> TargetResult:
    return TargetResult(
        target="slot 3",
        status="failed",
        reason=reason,
        capacity=64 * 10**9,
        bytes_written=0,
        bytes_verified=0,
        seconds={},
        bus_bytes=0,
        content_bytes=0,
        source_extra_reads=0,
        wipe="full",
        cause=cause,
        detail=detail or {},
    )


def test_cause_code_wins_over_wording() -> None:
    # The text mentions "removed", but the engine says the sector differed on read-back.
    result = _failed("/dev/sdb: data removed? sector 9 differs", "verify_failed")
    assert result_reason(result) == (FailReason.VERIFY_FAILED, {})


def test_fake_capacity_carries_real_and_claimed_sizes() -> None:
    result = _failed("fake capacity", "fake_capacity", {"real": 8e9, "claimed": 64e9})
    assert result_reason(result) == (FailReason.FAKE_CAPACITY, {"real": 8e9, "claimed": 64e9})


def test_codes_without_plain_words_fall_back_to_the_text() -> None:
    assert result_reason(_failed("write-protected switch", "refused"))[0] is FailReason.READ_ONLY
    assert result_reason(_failed("something odd", ""))[0] is FailReason.UNKNOWN


def test_content_pulled_while_checked_is_not_reported_damaged() -> None:
    posted: list[ev.Event] = []
    on_done = content_callbacks(posted.append)["on_done"]
    on_done(VerifyResult(ok=False, error=ContentRemoved("content SSD removed")))
    on_done(VerifyResult(ok=False, problems=["film.mp4: changed"]))
    assert [type(e) for e in posted] == [ev.ContentRemoved, ev.ContentDamaged]
