"""LayoutOptions from the filesystem section of the configuration."""

from __future__ import annotations

from datetime import datetime

import pytest

from appliance.config.schema import FilesystemConfig, StationConfig
from appliance.fat32 import LayoutError, LayoutOptions
from appliance.fat32.options import options_from_config


def test_defaults_match_layout_options() -> None:
    options = options_from_config(StationConfig().filesystem)
    assert options.label is None
    assert options.timestamp == LayoutOptions().timestamp == datetime(2020, 1, 1)


def test_label_and_timestamp() -> None:
    options = options_from_config(FilesystemConfig(label="FILMS", timestamp="2019-05-06T07:08:10"))
    assert options.label == "FILMS"
    assert options.timestamp == datetime(2019, 5, 6, 7, 8, 10)


@pytest.mark.parametrize(
    ("label", "timestamp", "fragment"),
    [
        ("", "yesterday", "not a date"),
        ("", "2020-01-01T00:00:00+09:00", "time zone"),
        ("", "1970-01-01T00:00:00", "1980-2107"),
        ("영화", "2020-01-01T00:00:00", "volume label"),
    ],
)
def test_bad_values_refused(label: str, timestamp: str, fragment: str) -> None:
    with pytest.raises(LayoutError, match=fragment):
        options_from_config(FilesystemConfig(label=label, timestamp=timestamp))
