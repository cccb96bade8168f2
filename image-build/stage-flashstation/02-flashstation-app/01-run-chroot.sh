#!/bin/bash -e
# The service's venv: /opt/flashstation/venv, the ExecStart path of
# flashstation.service. --system-site-packages lets it use the Debian and
# Raspberry Pi builds of python3-systemd, gpiozero's lgpio back-end and the
# compiled libraries installed in 00-install-packages; pip installs the rest
# (luma.oled, blake3, ...) from the package indexes pip is configured with in
# the image (/etc/pip.conf), so the build needs network access.
VENV=/opt/flashstation/venv
rm -rf "$VENV"
python3 -m venv --system-site-packages "$VENV"
"$VENV/bin/pip" install --no-cache-dir --disable-pip-version-check /tmp/flashstation-wheels/flashstation-*.whl
rm -rf /tmp/flashstation-wheels
# Fail the build now, not on the shelf, if the entry point cannot start.
"$VENV/bin/flashstation" --version
