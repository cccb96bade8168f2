"""The appliance service: systemd integration, the ledger, recovery, reports and power.

The top of the stack (only ``commands`` and ``cli`` sit above it). It hosts the
station through the small interface in :mod:`appliance.service.interface`, so
everything here is tested against :class:`appliance.service.fake.FakeStation`
and works with the real station unchanged.
"""
