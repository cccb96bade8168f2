#!/bin/bash -e
# Copy the Flash Station wheel that image-build/build.sh put into files/ into
# the image, for 01-run-chroot.sh to install. Exactly one wheel is expected:
# a stale second one would make "which version is on the card" a guess.
shopt -s nullglob
wheels=(files/flashstation-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
	echo "stage-flashstation: expected one files/flashstation-*.whl, found ${#wheels[@]};" \
		"run image-build/build.sh, which builds it" >&2
	exit 1
fi
install -d -m 0755 "${ROOTFS_DIR}/tmp/flashstation-wheels"
install -m 0644 "${wheels[0]}" "${ROOTFS_DIR}/tmp/flashstation-wheels/"
