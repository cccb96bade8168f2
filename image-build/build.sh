#!/bin/bash
# Build the Flash Station SD-card image with pi-gen (image-build/README.md).
#
#   sudo PIGEN=/path/to/pi-gen image-build/build.sh            # the image (hours)
#   PIGEN=/path/to/pi-gen image-build/build.sh --dry-run       # everything but pi-gen
#   image-build/build.sh stage OUTDIR                          # only the assembled stage
#
# Steps: check prerequisites; build a wheel of this repository; assemble the
# pi-gen stage (image-build/stage-flashstation plus the wheel, the systemd
# unit, the udev rule and the USBGuard rules) in OUT; write a pi-gen config
# there; run pi-gen's build.sh with stages 0-2 (Raspberry Pi OS Lite) and the
# Flash Station stage. The image lands in OUT/deploy.
#
# Environment:
#   PIGEN               pi-gen checkout (required for the image and --dry-run)
#   OUT                 work folder (default: image-build/out)
#   PYTHON              Python used to build the wheel (default: python3)
#   WHEEL_BUILD_ISOLATION=0   build the wheel with the given Python's own
#                       setuptools instead of an isolated build environment
#   IMG_NAME, DEPLOY_COMPRESSION (none, zip, gz, xz), COMPRESSION_LEVEL,
#   TARGET_HOSTNAME, APT_PROXY  passed on to pi-gen's config

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "${HERE}/.." && pwd)
OUT=${OUT:-${HERE}/out}
PYTHON=${PYTHON:-python3}
STAGE_NAME="stage-flashstation"
# Installed by the stage from files/ (03-system-config/00-run.sh); one copy in the repository.
SHARED_FILES=(flashstation.service usbguard-rules.conf udev/99-flashstation-no-automount.rules)

die() {
	echo "image-build/build.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || die "'$tool' is missing: install it (Debian: apt-get install $tool)"
	done
}

check_pigen() {
	[ -n "${PIGEN:-}" ] || die "PIGEN is not set: give the path of a pi-gen checkout," \
		"e.g. PIGEN=\$HOME/pi-gen (git clone -b arm64 https://github.com/RPi-Distro/pi-gen)"
	[ -d "$PIGEN" ] || die "PIGEN=$PIGEN is not a folder"
	PIGEN=$(cd "$PIGEN" && pwd)
	local part
	for part in build.sh scripts/common stage0 stage1 stage2 export-image; do
		[ -e "$PIGEN/$part" ] || die "PIGEN=$PIGEN is not a pi-gen checkout (no $part)"
	done
	case "$PIGEN$OUT" in *" "*) die "pi-gen cannot build in a path with spaces ($PIGEN, $OUT)" ;; esac
	local arch
	arch=$(sed -n 's/^export ARCH=\(.*\)$/\1/p' "$PIGEN/build.sh" | head -n 1)
	echo "pi-gen: $PIGEN (ARCH=${arch:-unknown}, $(git -C "$PIGEN" rev-parse --abbrev-ref HEAD 2>/dev/null || echo 'not a git checkout'))"
	if [ "$arch" = armhf ]; then
		echo "note: this pi-gen builds 32-bit (armhf); for a Pi 4/5 the arm64 branch is recommended" \
			"(the venv's compiled wheels then come straight from the package index)" >&2
	fi
}

build_wheel() {
	local dest=$1
	need "$PYTHON"
	"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip (Debian: apt-get install python3-pip)"
	rm -rf "$dest"
	mkdir -p "$dest"
	local args=(wheel --no-deps --quiet --wheel-dir "$dest")
	if [ "${WHEEL_BUILD_ISOLATION:-1}" = 0 ]; then
		args+=(--no-build-isolation)
	fi
	# The wheel's file times are the last commit's, not the build machine's clock.
	local epoch src
	epoch=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 315532800)
	# Built from a copy of what the wheel is made of: no build/ or egg-info left in
	# the repository, and two builds at once do not share a build folder.
	src=$(mktemp -d)
	cp -a "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/appliance" "$src/"
	find "$src" -name __pycache__ -type d -prune -exec rm -rf {} +
	if ! SOURCE_DATE_EPOCH=$epoch "$PYTHON" -m pip "${args[@]}" "$src"; then
		rm -rf "$src"
		die "building the wheel failed"
	fi
	rm -rf "$src"
	local wheels=("$dest"/flashstation-*.whl)
	[ -f "${wheels[0]}" ] || die "no flashstation wheel was built in $dest"
	echo "wheel: ${wheels[0]}"
}

assemble_stage() {
	local out=$1 stage="$1/$STAGE_NAME" file
	mkdir -p "$out"
	rm -rf "$stage"
	cp -a "$HERE/$STAGE_NAME" "$stage"
	build_wheel "$out/wheel"
	# files/ holds only build products here, and git keeps no empty folders.
	mkdir -p "$stage/02-flashstation-app/files" "$stage/03-system-config/files"
	cp "$out"/wheel/flashstation-*.whl "$stage/02-flashstation-app/files/"
	for file in "${SHARED_FILES[@]}"; do
		[ -f "$HERE/$file" ] || die "image-build/$file is missing"
		cp "$HERE/$file" "$stage/03-system-config/files/"
	done
	echo "stage: $stage"
}

write_config() {
	local config=$1 password
	# pi-gen needs a password to skip its first-boot user wizard (which would
	# wait for a keyboard the station refuses); the stage replaces it with "*",
	# so this random one is never a way in.
	password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
	(
		umask 077
		{
			echo "# pi-gen config written by image-build/build.sh; see image-build/README.md"
			printf 'IMG_NAME=%q\n' "${IMG_NAME:-flashstation}"
			printf 'PI_GEN_RELEASE=%q\n' "Flash Station"
			printf 'DEPLOY_DIR=%q\n' "$OUT/deploy"
			printf 'DEPLOY_COMPRESSION=%q\n' "${DEPLOY_COMPRESSION:-xz}"
			printf 'COMPRESSION_LEVEL=%q\n' "${COMPRESSION_LEVEL:-6}"
			[ -z "${APT_PROXY:-}" ] || printf 'APT_PROXY=%q\n' "$APT_PROXY"
			echo "# Neutral locale, keyboard and time zone: nothing on the card points to a country."
			echo "LOCALE_DEFAULT=en_US.UTF-8"
			echo "KEYBOARD_KEYMAP=us"
			printf 'KEYBOARD_LAYOUT=%q\n' "English (US)"
			echo "TIMEZONE_DEFAULT=Etc/UTC"
			echo "# The hostname every Raspberry Pi has: it names no organisation."
			printf 'TARGET_HOSTNAME=%q\n' "${TARGET_HOSTNAME:-raspberrypi}"
			echo "FIRST_USER_NAME=station"
			printf 'FIRST_USER_PASS=%q\n' "$password"
			echo "DISABLE_FIRST_BOOT_USER_RENAME=1"
			echo "PASSWORDLESS_SUDO=0"
			echo "ENABLE_SSH=0"
			echo "PUBKEY_SSH_FIRST_USER="
			echo "ENABLE_CLOUD_INIT=0"
			printf 'STAGE_LIST=%q\n' "$PIGEN/stage0 $PIGEN/stage1 $PIGEN/stage2 $OUT/$STAGE_NAME"
		} >"$config"
	)
	echo "pi-gen config: $config"
}

cmd_stage() {
	[ $# -eq 1 ] || usage
	OUT=$1
	assemble_stage "$OUT"
}

cmd_image() {
	local dry_run=$1
	check_pigen
	if [ "$dry_run" = 0 ]; then
		[ "$(id -u)" = 0 ] || die "pi-gen must run as root (sudo -E, keeping PIGEN)"
	fi
	assemble_stage "$OUT"
	write_config "$OUT/config"
	if [ "$dry_run" = 1 ]; then
		echo "dry run: not running pi-gen; it would run: (cd $PIGEN && ./build.sh -c $OUT/config)"
		return 0
	fi
	# Only our stage is exported, not stage2's Lite image as well.
	touch "$PIGEN/stage2/SKIP_IMAGES"
	echo "running pi-gen (this takes a long time) ..."
	local rc=0
	(cd "$PIGEN" && ./build.sh -c "$OUT/config") || rc=$?
	# The config holds the build-time password: not kept after the build.
	rm -f "$OUT/config"
	[ "$rc" = 0 ] || die "pi-gen failed (exit $rc); its log is in $PIGEN/work/*/build.log"
	echo "image in $OUT/deploy:"
	find "$OUT/deploy" -maxdepth 1 -type f -printf '  %f\n'

}

case "${1:-image}" in
image) cmd_image 0 ;;
--dry-run) cmd_image 1 ;;
stage)
	shift
	cmd_stage "$@"
	;;
-h | --help) usage ;;
*) usage ;;
esac
