"""The operator's interface: screens, fonts, buttons, the OLED, and the simulator.

Screens are pure functions from a :class:`~appliance.station.Snapshot` to
drawing on a 128×64 canvas (:mod:`.screens`); words come from one en/ko
catalogue (:mod:`.messages`). Buttons only post events (:mod:`.buttons`);
:mod:`.display` puts frames on the OLED from its own thread.
"""
