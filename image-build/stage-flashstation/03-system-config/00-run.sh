#!/bin/bash -e
# Everything the image configures around the application (why: image-build/README.md).
# pi-gen runs this on the build host from this directory; the image's root is
# ${ROOTFS_DIR}. files/ holds this stage's own files plus the ones
# image-build/build.sh copies in (flashstation.service, usbguard-rules.conf,
# 99-flashstation-no-automount.rules).

# --- the service and its writable state partition --------------------------------
install -m 0644 files/flashstation.service "${ROOTFS_DIR}/etc/systemd/system/flashstation.service"
install -d -m 0755 "${ROOTFS_DIR}/etc/systemd/system/flashstation.service.d"
install -m 0644 files/flashstation-state.conf \
	"${ROOTFS_DIR}/etc/systemd/system/flashstation.service.d/10-state.conf"
install -m 0644 files/flashstation-state.service \
	"${ROOTFS_DIR}/etc/systemd/system/flashstation-state.service"
install -m 0755 files/flashstation-statefs "${ROOTFS_DIR}/usr/local/sbin/flashstation-statefs"
install -d -m 0700 "${ROOTFS_DIR}/var/lib/flashstation"
install -d -m 0755 "${ROOTFS_DIR}/etc/flashstation"

# --- USB: nothing automounts; only hubs and plain storage get a driver -------------
install -m 0644 files/99-flashstation-no-automount.rules \
	"${ROOTFS_DIR}/etc/udev/rules.d/99-flashstation-no-automount.rules"
install -d -m 0755 "${ROOTFS_DIR}/etc/usbguard"
# Written after the usbguard package is installed: it replaces any policy the
# package generated from the build host's own devices.
install -m 0600 files/usbguard-rules.conf "${ROOTFS_DIR}/etc/usbguard/rules.conf"
install -m 0600 files/usbguard-daemon.conf "${ROOTFS_DIR}/etc/usbguard/usbguard-daemon.conf"

# --- logs in RAM only; no radio or Ethernet drivers; the OLED's I2C device ---------
install -d -m 0755 "${ROOTFS_DIR}/etc/systemd/journald.conf.d"
install -m 0644 files/journald-flashstation.conf \
	"${ROOTFS_DIR}/etc/systemd/journald.conf.d/flashstation.conf"
install -m 0644 files/modprobe-flashstation.conf "${ROOTFS_DIR}/etc/modprobe.d/flashstation.conf"
install -m 0644 files/modules-i2c.conf "${ROOTFS_DIR}/etc/modules-load.d/flashstation-i2c.conf"

# --- the boot partition: settings an operator may edit from any laptop -------------
install -m 0644 files/flashstation.yaml "${ROOTFS_DIR}/boot/firmware/flashstation.yaml"
install -d -m 0755 "${ROOTFS_DIR}/boot/firmware/flashstation-keys"

# config.txt (Bookworm and later: /boot/firmware/config.txt). Appended as an
# [all] section at the end, so it wins over anything above it.
CONFIG_TXT="${ROOTFS_DIR}/boot/firmware/config.txt"
if ! grep -q '^# --- Flash Station' "${CONFIG_TXT}"; then
	cat >>"${CONFIG_TXT}" <<-'EOF'

		# --- Flash Station (image-build/README.md) ---
		[all]
		# The OLED on I2C bus 1 (GPIO2 SDA, GPIO3 SCL).
		dtparam=i2c_arm=on
		# No network: the on-board Wi-Fi and Bluetooth are switched off.
		dtoverlay=disable-wifi
		dtoverlay=disable-bt
		# No sound needed.
		dtparam=audio=off
	EOF
fi

# cmdline.txt is one line. Drop "resize" (and the older firstboot init) so the
# root partition keeps its size and partition 3 (the ledger) fits after it; add
# the read-only root and the USB default.
CMDLINE_TXT="${ROOTFS_DIR}/boot/firmware/cmdline.txt"
read -r -a words <"${CMDLINE_TXT}"
kept=()
for word in "${words[@]}"; do
	case "$word" in
	resize | init=/usr/lib/raspberrypi-sys-mods/firstboot | init=/usr/lib/raspi-config/init_resize.sh) ;;
	overlayroot=* | usbcore.authorized_default=*) ;;
	*) kept+=("$word") ;;
	esac
done
# overlayroot=tmpfs:recurse=0: / is a tmpfs overlay over the read-only root
# partition; the other fstab mounts (boot, read-only) are left alone.
# usbcore.authorized_default=0: from the first moment of boot no USB device
# gets a driver until USBGuard (and then the station) has judged it.
kept+=("overlayroot=tmpfs:recurse=0" "usbcore.authorized_default=0")
printf '%s\n' "${kept[*]}" >"${CMDLINE_TXT}"

# The boot partition (FAT, fragile on power cuts) is mounted read-only.
sed -i -E 's#^(\S+\s+/boot/firmware\s+vfat\s+)defaults(\s)#\1defaults,ro\2#' "${ROOTFS_DIR}/etc/fstab"

# --- units and accounts ----------------------------------------------------------
on_chroot <<-EOF
	systemctl enable flashstation.service flashstation-state.service usbguard.service
	# The root partition must not grow into the space kept for partition 3
	# (rpi-resize: trixie; resize2fs_once: bookworm branches of pi-gen).
	systemctl mask rpi-resize.service resize2fs_once.service
	# No password login for anyone: pi-gen needs a first user and (to skip the
	# first-boot rename wizard) a password; build.sh gives a random one that is
	# replaced here by "no password matches".
	usermod --password '*' root
	usermod --password '*' "${FIRST_USER_NAME}"
EOF
