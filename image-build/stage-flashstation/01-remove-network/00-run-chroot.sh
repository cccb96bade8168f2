#!/bin/bash -e
# A station has no network: no Wi-Fi, Bluetooth, SSH, mDNS, remote access,
# USB gadget networking or cloud-init. Packages are purged where they exist,
# and every unit that could bring a network up is masked, so neither an
# update nor a stray dependency can switch one on again.

purge=""
for pkg in openssh-server ssh avahi-daemon network-manager wpasupplicant bluez \
	bluez-firmware rpi-connect-lite rpi-connect cloud-init modemmanager \
	rpi-usb-gadget udisks2 dhcpcd dhcpcd5 nfs-common rpcbind triggerhappy; do
	if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		purge="$purge $pkg"
	fi
done
if [ -n "$purge" ]; then
	# shellcheck disable=SC2086 # word splitting of the package list is intended
	DEBIAN_FRONTEND=noninteractive apt-get purge -y $purge
fi
DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y

# Masking works whether or not the unit exists (a link to /dev/null).
for unit in ssh.service ssh.socket sshd.service avahi-daemon.service avahi-daemon.socket \
	NetworkManager.service NetworkManager-wait-online.service wpa_supplicant.service \
	bluetooth.service hciuart.service bthelper@.service ModemManager.service \
	systemd-networkd.service systemd-networkd.socket systemd-networkd-wait-online.service \
	systemd-resolved.service systemd-timesyncd.service dhcpcd.service networking.service \
	rpi-connect.service rpi-connect-wayvnc.service cloud-init.service cloud-init-local.service \
	cloud-config.service cloud-final.service udisks2.service; do
	systemctl mask "$unit"
done
