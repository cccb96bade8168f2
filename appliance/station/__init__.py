"""The station: the one place where state changes.

:class:`~.machine.Station` holds the station state and one state per slot.
Threads (buttons, hotplug, engine, content verifier) only :meth:`post`
events; the station thread applies them one at a time through
:meth:`~.machine.Station.apply`, which checks every change against the
transition tables in :mod:`.states`, logs it, and returns *effects*
(start a batch, cancel, beep, shut down) for the runner to carry out. The
state machine itself never does I/O, so it is tested without threads.

What the station needs from the engine, hotplug and content areas is
written down as small ports in :mod:`.ports`, with in-memory fakes in
:mod:`.fakes` and adapters to the real packages in :mod:`.adapters`.
"""

from appliance.station.events import Event
from appliance.station.machine import SlotView, Snapshot, Station
from appliance.station.states import FailReason, SlotState, StationState

__all__ = ["Event", "FailReason", "SlotState", "SlotView", "Snapshot", "Station", "StationState"]
