"""Every word the operator reads, in English and Korean.

One table, keyed by a dotted name; :func:`catalogue` returns a
:class:`Messages` for a language whose ``__call__`` formats a message. A
test checks that both languages have the same keys and placeholders, and
that every failure reason and slot state has plain words.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

LANGUAGES = ("en", "ko")

MESSAGES: dict[str, tuple[str, str]] = {
    # key: (English, Korean)
    "app.name": ("Flash Station", "플래시 스테이션"),
    "app.starting": ("Starting…", "시작하는 중…"),
    "content.insert": ("Insert content SSD", "콘텐츠 SSD를 꽂으세요"),
    "content.insert_hint": ("It is checked before loading.", "싣기 전에 먼저 검사합니다."),
    "content.checking": ("Checking content", "콘텐츠 검사 중"),
    "content.files": ("{done} of {total} files", "파일 {done}/{total}개"),
    "content.none": ("no content", "콘텐츠 없음"),
    "ready.insert": ("Insert sticks", "USB를 꽂으세요"),
    "ready.auto": ("Loading starts by itself.", "꽂으면 자동으로 시작합니다."),
    "ready.button": ("Then press START.", "그다음 START를 누르세요."),
    "grid.busy": ("Loading", "작업 중"),
    "grid.ready": ("Ready", "준비됨"),
    "grid.paused": ("Paused", "일시 중지"),
    "grid.no_content": ("No content", "콘텐츠 없음"),
    "grid.checking": ("Checking", "검사 중"),
    "grid.error": ("Stopped", "중지됨"),
    "grid.done": ("done {n}", "완료 {n}"),
    "grid.press_start": ("START: {n}", "START: {n}"),
    "detail.title": ("Slot {n}", "{n}번 칸"),
    "detail.size": ("Size", "용량"),
    "detail.real": ("real {size}", "실제 {size}"),
    "detail.tier": ("Tier", "묶음"),
    "detail.speed": ("Speed", "속도"),
    "detail.left": ("Left", "남음"),
    "detail.progress": ("{percent}% in all", "전체 {percent}%"),
    "state.empty": ("empty", "비어 있음"),
    "state.detected": ("stick found", "USB 찾음"),
    "state.waiting": ("waiting", "대기 중"),
    "state.probing": ("testing stick", "USB 시험 중"),
    "state.wiping": ("wiping", "지우는 중"),
    "state.loading": ("loading", "복사 중"),
    "state.verifying": ("verifying", "확인 중"),
    "state.done": ("done", "완료"),
    "detail.take_out": ("Verified. Take it out.", "확인 끝. 빼세요."),
    "state.failed": ("failed", "실패"),
    "state.removed": ("pulled out", "뽑힘"),
    "state.rejected": ("refused", "거부됨"),
    "reason.fake_capacity": (
        "Fake stick: only about {real} of {claimed} are real. Do not use it.",
        "가짜 용량: {claimed} 중 약 {real}만 진짜. 쓰지 마세요.",
    ),
    "reason.removed": (
        "Pulled out while working. Not ready: plug it in again.",
        "작업 중에 뽑혔습니다. 준비되지 않았으니 다시 꽂으세요.",
    ),
    "reason.read_only": (
        "Write-protected stick: check its lock switch.",
        "쓰기 금지된 USB입니다. 잠금 스위치를 보세요.",
    ),
    "reason.too_small": (
        "Too small for the content. Put it aside.",
        "용량이 너무 작습니다. 따로 두세요.",
    ),
    "reason.write_error": (
        "The stick broke while writing. Do not use it.",
        "쓰는 중에 고장 났습니다. 쓰지 마세요.",
    ),
    "reason.verify_failed": (
        "Check failed: the stick is unreliable. Do not use it.",
        "검사 실패: 믿을 수 없는 USB. 쓰지 마세요.",
    ),
    "reason.cancelled": (
        "Cancelled. Not ready: plug it in again to load it.",
        "취소됨. 준비되지 않았으니 다시 꽂아 주세요.",
    ),
    "reason.content_damaged": (
        "Stopped: the content SSD is damaged.",
        "중지: 콘텐츠 SSD가 손상되었습니다.",
    ),
    "reason.content_removed": (
        "Stopped: the content SSD was removed.",
        "중지: 콘텐츠 SSD가 빠졌습니다.",
    ),
    "reason.unknown": ("Unexpected error. Do not use it.", "알 수 없는 오류. 쓰지 마세요."),
    "short.fake_capacity": ("fake size", "가짜 용량"),
    "short.removed": ("pulled out", "뽑힘"),
    "short.read_only": ("write-protected", "쓰기 금지"),
    "short.too_small": ("too small", "너무 작음"),
    "short.write_error": ("write error", "쓰기 오류"),
    "short.verify_failed": ("check failed", "검사 실패"),
    "short.cancelled": ("cancelled", "취소"),
    "short.content_damaged": ("SSD damaged", "SSD 손상"),
    "short.content_removed": ("SSD removed", "SSD 빠짐"),
    "short.unknown": ("other", "기타"),
    "totals.title": ("Since start", "시작한 뒤로"),
    "totals.title_all": ("All time", "지금까지 전체"),
    "report.hint": ("START: save report", "START: 보고서 저장"),
    "report.exporting": ("Saving report...", "보고서 저장 중..."),
    "report.saved": ("Report saved on SSD", "SSD에 보고서 저장함"),
    "report.no_content": ("Insert content SSD", "콘텐츠 SSD를 넣으세요"),
    "report.failed": ("Report not saved", "보고서 저장 실패"),
    "report.busy": ("Finish loading first", "작업을 먼저 끝내세요"),
    "report.checking": ("Wait: checking content", "콘텐츠 검사 중: 기다리세요"),
    "totals.done": ("Done", "완료"),
    "totals.failed": ("Failed", "실패"),
    "totals.none": ("No failures", "실패 없음"),
    "error.config": ("Settings error", "설정 오류"),
    "error.config_fix": ("Fix it, then restart.", "고친 뒤 다시 켜세요."),
    "error.power": ("Power too weak", "전원이 약합니다"),
    "error.power_hint": (
        "Use a stronger supply. New sticks wait.",
        "더 센 전원을 쓰세요. 새 USB는 기다립니다.",
    ),
    "error.damaged": ("Content SSD damaged", "콘텐츠 SSD 손상"),
    "error.damaged_hint": (
        "Nothing more is loaded. Swap the SSD.",
        "더 싣지 않습니다. SSD를 바꾸세요.",
    ),
    "error.rejected": ("Slot {slot}", "{slot}번 칸"),
    "reject.not_storage": (
        "Not a plain storage device. Remove it.",
        "저장 장치가 아닙니다. 빼세요.",
    ),
    "reject.too_small": ("Too small to load. Remove it.", "너무 작습니다. 빼세요."),
    "reject.too_large": (
        "A disk, not a stick. Remove it.",
        "USB가 아닌 디스크입니다. 빼세요.",
    ),
    "reject.other": ("Not loadable. Remove it.", "쓸 수 없는 장치입니다. 빼세요."),
    "reject.content_port": (
        "Content SSD goes in the content port.",
        "콘텐츠 SSD는 콘텐츠 포트에 꽂으세요.",
    ),
    "reject.beyond": (
        "Not on the screen: this port is not used. MENU: number the ports.",
        "화면에 없는 포트라 쓰지 않습니다. MENU에서 포트 번호를 정하세요.",
    ),
    "state.numbered": ("numbered", "번호 정함"),
    "detail.numbered": (
        "Port numbered. Take the stick out.",
        "포트 번호를 정했습니다. USB를 빼세요.",
    ),
    "ports.title": ("Number the ports", "포트 번호 정하기"),
    "ports.hint": (
        "Numbers follow the order sticks go in.",
        "USB를 꽂는 순서대로 번호를 정합니다.",
    ),
    "ports.start": ("START: begin", "START: 시작"),
    "ports.busy": ("Finish loading first.", "작업을 먼저 끝내세요."),
    "ports.sticks": ("Take out all sticks first.", "USB를 모두 먼저 빼세요."),
    "ports.fixed": ("All slots are set in the settings.", "모든 칸이 설정에 정해져 있습니다."),
    "ports.done": ("Ports numbered: {n}", "번호 정한 포트: {n}개"),
    "ports.plug": ("Plug a stick into port {n}", "{n}번 포트에 USB를 꽂으세요"),
    "ports.saved": ("Port {n} saved.", "{n}번 포트 저장함."),
    "ports.already": ("That is port {n} already.", "이미 {n}번 포트입니다."),
    "ports.fixed_port": ("Port {n} is set in settings.", "{n}번 포트는 설정에 있음."),
    "ports.finish": ("START: finish", "START: 끝내기"),
    "confirm.slot": ("Cancel slot {slot}?", "{slot}번 칸을 취소할까요?"),
    "confirm.all": ("Cancel all?", "모두 취소할까요?"),
    "confirm.yes": ("CANCEL again: yes", "CANCEL 다시: 예"),
    "confirm.no": ("MENU: no", "MENU: 아니요"),
    "shutdown.title": ("Shutting down…", "끄는 중…"),
    "shutdown.hint": (
        "Stopping jobs, saving records. Do not unplug the power yet.",
        "작업을 멈추고 기록을 저장합니다. 아직 전원을 빼지 마세요.",
    ),
    "shutdown.safe": ("Safe to unplug", "전원을 빼도 됩니다"),
    "shutdown.safe_hint": (
        "Records saved. You can unplug the power now.",
        "기록을 저장했습니다. 이제 전원을 빼세요.",
    ),
    "shutdown.failed": ("Power-off failed", "끄기 실패"),
    "shutdown.failed_hint": (
        "Records are saved. Unplug the power now.",
        "기록은 저장했습니다. 이제 전원을 빼세요.",
    ),
    "unit.seconds": ("{n} s", "{n}초"),
    "unit.minutes": ("{n} min", "{n}분"),
    "unit.hours": ("{h} h {m:02d}", "{h}시간 {m}분"),
    "unit.speed": ("{mb} MB/s", "{mb} MB/s"),
    "unit.speed_gb": ("{gb} GB/s", "{gb} GB/s"),
}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@dataclass(frozen=True)
class Messages:
    language: str

    def __call__(self, key: str, **values: object) -> str:
        try:
            pair = MESSAGES[key]
        except KeyError:
            raise KeyError(f"no message {key!r} in the catalogue") from None
        text = pair[LANGUAGES.index(self.language)]
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in MESSAGES


def catalogue(language: str) -> Messages:
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    return Messages(language)
