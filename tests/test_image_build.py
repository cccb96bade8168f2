"""The pi-gen stage and build wrapper in image-build/ (image-build/README.md).

pi-gen itself cannot run here (hours, qemu, binfmt), so these tests check what
can be checked without it: every script parses and passes shellcheck; the
stage has the layout pi-gen's build.sh walks; the wrapper refuses without
pi-gen and, with a stand-in pi-gen, assembles the stage and writes a config
that bash can source; the host-side stage scripts, run against a fake root
with a recording ``on_chroot``, produce the boot files, units and accounts the
station needs; the units pass ``systemd-analyze verify``; the wheel installs
into a fresh venv and its entry point runs; and the state-partition tool
works on loop devices made from image files (root only).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from appliance.config import StationConfig, load_layers

REPO = Path(__file__).resolve().parent.parent
IMAGE_BUILD = REPO / "image-build"
BUILD_SH = IMAGE_BUILD / "build.sh"
STAGE = IMAGE_BUILD / "stage-flashstation"
STATEFS = STAGE / "03-system-config" / "files" / "flashstation-statefs"
UNIT = IMAGE_BUILD / "flashstation.service"
MiB = 1024 * 1024
SECTOR = 512

# pi-gen's sub-stage files (pi-gen README, "How the build process works").
SUBSTAGE_FILE = re.compile(r"^\d\d-(run\.sh|run-chroot\.sh|packages|packages-nr|debconf|patches)$")
DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")

# Units that would give the station a network, a remote way in or a radio.
NETWORK_UNITS = {
    "ssh.service",
    "ssh.socket",
    "NetworkManager.service",
    "wpa_supplicant.service",
    "bluetooth.service",
    "hciuart.service",
    "avahi-daemon.service",
    "systemd-networkd.service",
    "systemd-resolved.service",
    "ModemManager.service",
    "cloud-init.service",
}
NETWORK_PACKAGES = {
    "openssh-server",
    "network-manager",
    "wpasupplicant",
    "bluez",
    "avahi-daemon",
    "rpi-connect-lite",
    "cloud-init",
    "rpi-usb-gadget",
}

# Programs appliance/ runs, and the Debian package that brings each to the image.
PROGRAM_PACKAGES = {
    "blkid": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "uhubctl": "uhubctl",
    # raspi-utils, installed by pi-gen's stage2 (stage2/01-sys-tweaks/00-packages)
    "vcgencmd": None,
}


def all_scripts() -> list[Path]:
    """Every shell script under image-build/ (by extension or shebang)."""
    found = []
    for path in sorted(IMAGE_BUILD.rglob("*")):
        if not path.is_file() or "out" in path.relative_to(IMAGE_BUILD).parts[:1]:
            continue
        head = path.read_bytes()[:40]
        if path.suffix == ".sh" or head.startswith(b"#!/bin/bash") or path.name == "EXPORT_IMAGE":
            found.append(path)
    return found


def package_list(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0]
        names += line.split()
    return names


# -- scripts --------------------------------------------------------------------------


def test_the_scripts_are_found() -> None:
    names = {p.relative_to(IMAGE_BUILD).as_posix() for p in all_scripts()}
    assert {
        "build.sh",
        "stage-flashstation/prerun.sh",
        "stage-flashstation/EXPORT_IMAGE",
        "stage-flashstation/03-system-config/00-run.sh",
        "stage-flashstation/03-system-config/files/flashstation-statefs",
    } <= names


@pytest.mark.parametrize(
    "script", all_scripts(), ids=lambda p: p.relative_to(IMAGE_BUILD).as_posix()
)
def test_script_parses_and_passes_shellcheck(script: Path) -> None:
    parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is missing (Makefile APT_PACKAGES installs it)")
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    checked = subprocess.run(
        ["shellcheck", "--shell=bash", "--severity=style", str(script)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- the stage's layout -----------------------------------------------------------------


def test_stage_has_the_layout_pi_gen_walks() -> None:
    prerun = STAGE / "prerun.sh"
    assert prerun.stat().st_mode & stat.S_IXUSR, "pi-gen only runs an executable prerun.sh"
    assert "copy_previous" in prerun.read_text()
    assert (STAGE / "EXPORT_IMAGE").is_file()
    substages = sorted(p for p in STAGE.iterdir() if p.is_dir())
    assert [p.name[:2] for p in substages] == [f"{i:02d}" for i in range(len(substages))]
    assert len(substages) >= 3
    for sub in substages:
        assert re.fullmatch(r"\d\d-[a-z0-9-]+", sub.name), sub.name
        entries = [p for p in sub.iterdir() if p.name != "files"]
        assert entries, f"{sub.name} does nothing"
        for entry in entries:
            assert SUBSTAGE_FILE.match(entry.name), f"pi-gen ignores {sub.name}/{entry.name}"
            if entry.name.endswith(".sh"):
                assert entry.stat().st_mode & stat.S_IXUSR, f"{entry} is not executable"
                assert entry.read_text().startswith("#!/bin/bash"), entry


def test_package_lists_hold_what_the_station_runs() -> None:
    lists = sorted(STAGE.glob("*/[0-9][0-9]-packages*"))
    assert lists
    packages = [name for path in lists for name in package_list(path)]
    assert all(DEB_NAME.match(name) for name in packages), packages
    assert len(packages) == len(set(packages)), "a package is listed twice"
    for needed in ("python3", "python3-venv", "usbguard", "overlayroot", "fdisk", "e2fsprogs"):
        assert needed in packages
    assert not NETWORK_PACKAGES & set(packages)
    for program in programs_run_by_appliance():
        assert program in PROGRAM_PACKAGES, f"appliance/ runs {program}: add its package"
        package = PROGRAM_PACKAGES[program]
        assert package is None or package in packages, f"{program} needs {package}"


def programs_run_by_appliance() -> set[str]:
    """Programs in command lists given to a runner or bound to ``cmd``; ``program=`` defaults."""
    runners = {"run", "_run", "Popen", "check_output", "check_call", "call", "runner"}
    programs: set[str] = set()

    def first_word(node: ast.expr) -> None:
        if isinstance(node, ast.List) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                programs.add(first.value)

    for path in (REPO / "appliance").rglob("*.py"):
        text = path.read_text()
        if "subprocess" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in runners:
                    first_word(node.args[0])
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in ("cmd", "command") for t in node.targets
            ):
                first_word(node.value)
            elif isinstance(node, ast.FunctionDef):
                args = node.args.args + node.args.kwonlyargs
                defaults = [*node.args.defaults, *node.args.kw_defaults]
                for arg, default in zip(args[len(args) - len(defaults) :], defaults, strict=False):
                    if (
                        arg.arg in ("program", "vcgencmd")
                        and isinstance(default, ast.Constant)
                        and isinstance(default.value, str)
                    ):
                        programs.add(default.value)
    return programs


def test_the_program_scan_sees_the_known_calls() -> None:
    # the scan above is only worth something if it finds what we know is there
    assert {"blkid", "mount", "umount", "uhubctl", "vcgencmd"} <= programs_run_by_appliance()


# -- the unit ---------------------------------------------------------------------------


def unit_values(text: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", text, flags=re.M)


def test_unit_runs_the_venv_the_stage_builds() -> None:
    chroot = (STAGE / "02-flashstation-app" / "01-run-chroot.sh").read_text()
    (venv,) = re.findall(r"^VENV=(\S+)$", chroot, flags=re.M)
    assert re.search(r'python3 -m venv --system-site-packages "\$VENV"', chroot)
    (exec_start,) = unit_values(UNIT.read_text(), "ExecStart")
    assert exec_start == f"{venv}/bin/flashstation run"


def test_unit_and_state_partition_agree_on_the_state_dir() -> None:
    text = UNIT.read_text()
    state_dir = StationConfig().service.state_dir
    assert unit_values(text, "ReadWritePaths") == [state_dir]
    assert unit_values(text, "StateDirectory") == [Path(state_dir).name]
    (mountpoint,) = re.findall(r"^MOUNTPOINT=(\S+)$", STATEFS.read_text(), flags=re.M)
    assert mountpoint == state_dir
    # the content SSD's mount points (appliance/content/mount.py) must be writable
    from appliance.content.mount import CommandMounter

    assert CommandMounter().base.parent == Path("/run") / unit_values(text, "RuntimeDirectory")[0]


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    files = STAGE / "03-system-config" / "files"
    # ExecStart binaries exist only in the image: point them at /bin/true.
    (tmp_path / "flashstation.service").write_text(
        UNIT.read_text().replace("/opt/flashstation/venv/bin/flashstation", "/bin/true")
    )
    (tmp_path / "flashstation-state.service").write_text(
        (files / "flashstation-state.service")
        .read_text()
        .replace("/usr/local/sbin/flashstation-statefs", "/bin/true")
    )
    dropin = tmp_path / "flashstation.service.d"
    dropin.mkdir()
    shutil.copy(files / "flashstation-state.conf", dropin / "10-state.conf")
    units = [str(tmp_path / "flashstation.service"), str(tmp_path / "flashstation-state.service")]
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stderr
    # the check is real: a bad key in the drop-in is reported
    (dropin / "10-state.conf").write_text("[Unit]\nAfter=flashstation-state.service\nBogus=1\n")
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, env=env)
    assert "Bogus" in result.stderr


# Settings of usbguard-daemon.conf(5) in USBGuard 1.1 (Debian's default file has each one).
USBGUARD_KEYS = {
    "RuleFile", "RuleFolder", "ImplicitPolicyTarget", "PresentDevicePolicy",
    "PresentControllerPolicy", "InsertedDevicePolicy", "AuthorizedDefault",
    "RestoreControllerDeviceState", "DeviceManagerBackend", "IPCAllowedUsers",
    "IPCAllowedGroups", "IPCAccessControlFiles", "DeviceRulesWithPort", "AuditBackend",
    "AuditFilePath", "HidePII",
}  # fmt: skip


def test_usbguard_daemon_settings_are_known_and_strict() -> None:
    """The daemon refuses to start on an unknown setting: no typos, and the policy is strict."""
    text = (STAGE / "03-system-config" / "files" / "usbguard-daemon.conf").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert set(settings) <= USBGUARD_KEYS
    assert settings["ImplicitPolicyTarget"] == "block"
    assert settings["PresentDevicePolicy"] == settings["InsertedDevicePolicy"] == "apply-policy"
    assert settings["AuthorizedDefault"] == "none"
    assert settings["HidePII"] == "true"
    assert "RuleFolder" not in settings, "only our rules file is read"


# -- the boot partition's settings file --------------------------------------------------


def test_boot_settings_file_validates_as_shipped_and_uncommented(tmp_path: Path) -> None:
    shipped = STAGE / "03-system-config" / "files" / "flashstation.yaml"
    assert load_layers([shipped]) == StationConfig()  # everything commented out
    # "#key:" and "#  nested:" are settings; "# text" is prose
    uncommented = "\n".join(
        re.sub(r"^#(?=[^ #]|  )", "", line)
        for line in shipped.read_text().splitlines()
        if not re.match(r"^#( [^ ]|$)", line)
    )
    edited = tmp_path / "flashstation.yaml"
    edited.write_text(uncommented + "\n")
    assert set(yaml.safe_load(uncommented)) == {"content", "ui", "station", "engine"}
    config = load_layers([edited])
    assert config.ui.language == "ko" and config.station.slots == 16
    assert config.content.trusted_keys == ["/boot/firmware/flashstation-keys/signing.pub"]
    assert config.content.ports == ["platform-fd500000.pcie-pci-0000:01:00.0-usb-0:2"]


# -- the wrapper --------------------------------------------------------------------------


def fake_pigen(root: Path) -> Path:
    """A stand-in pi-gen checkout whose build.sh only records how it was called."""
    for part in ("scripts", "stage0", "stage1", "stage2", "export-image"):
        (root / part).mkdir(parents=True)
    (root / "scripts" / "common").write_text("# stand-in\n")
    build = root / "build.sh"
    build.write_text(
        "#!/bin/bash\n"
        "export ARCH=arm64\n"
        'printf "%s\\n" "$PWD" "$@" > "$(dirname "$0")/called"\n'
        'source "$2"\n'
        'mkdir -p "$DEPLOY_DIR" && touch "$DEPLOY_DIR/$IMG_NAME.img.xz"\n'
    )
    build.chmod(0o755)
    return root


def run_build(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PIGEN", "OUT")}
    return subprocess.run(
        [str(BUILD_SH), *args], capture_output=True, text=True, env={**base, **env}, timeout=300
    )


def test_build_refuses_clearly_without_pi_gen(tmp_path: Path) -> None:
    result = run_build(OUT=str(tmp_path / "out"))
    assert result.returncode == 1
    assert "PIGEN is not set" in result.stderr and "pi-gen" in result.stderr
    result = run_build(PIGEN=str(tmp_path / "nowhere"), OUT=str(tmp_path / "out"))
    assert result.returncode == 1 and "is not a folder" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run_build("--dry-run", PIGEN=str(tmp_path / "empty"), OUT=str(tmp_path / "out"))
    assert result.returncode == 1 and "not a pi-gen checkout (no build.sh)" in result.stderr
    assert not (tmp_path / "out").exists(), "nothing is built before the checks pass"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(pi-gen stand-in, OUT) after a real ``build.sh`` run against the stand-in."""
    root = tmp_path_factory.mktemp("imagebuild")
    pigen = fake_pigen(root / "pi-gen")
    out = root / "out"
    if os.geteuid() == 0:
        result = run_build("image", PIGEN=str(pigen), OUT=str(out), PYTHON=sys.executable)
    else:
        result = run_build("--dry-run", PIGEN=str(pigen), OUT=str(out), PYTHON=sys.executable)
    assert result.returncode == 0, result.stdout + result.stderr
    return pigen, out


def source_config(config: Path) -> dict[str, str]:
    script = f"set -e; source {shlex.quote(str(config))}; env -0"
    out = subprocess.run(
        ["bash", "-c", f"set -a; {script}"], capture_output=True, check=True, env={}
    ).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def test_dry_run_writes_a_config_pi_gen_can_source(tmp_path: Path) -> None:
    pigen = fake_pigen(tmp_path / "pi-gen")
    out = tmp_path / "out"
    result = run_build("--dry-run", PIGEN=str(pigen), OUT=str(out), PYTHON=sys.executable)
    assert result.returncode == 0, result.stderr
    assert not (pigen / "called").exists(), "--dry-run must not run pi-gen"
    assert not (pigen / "stage2" / "SKIP_IMAGES").exists(), "nor change the checkout"
    config = out / "config"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # it holds the build password
    values = source_config(config)
    stages = values["STAGE_LIST"].split()
    assert stages == [str(pigen / f"stage{i}") for i in range(3)] + [
        str(out / "stage-flashstation")
    ]
    assert all(Path(s).is_dir() for s in stages)
    assert values["ENABLE_SSH"] == "0" and values["ENABLE_CLOUD_INIT"] == "0"
    assert values["PUBKEY_SSH_FIRST_USER"] == "" and values["PASSWORDLESS_SUDO"] == "0"
    assert values["DISABLE_FIRST_BOOT_USER_RENAME"] == "1"
    assert len(values["FIRST_USER_PASS"]) >= 20
    assert values["TARGET_HOSTNAME"] == "raspberrypi"
    assert values["TIMEZONE_DEFAULT"] == "Etc/UTC"
    assert values["DEPLOY_DIR"] == str(out / "deploy")
    assert values["DEPLOY_COMPRESSION"] in ("none", "zip", "gz", "xz")
    # two builds never share a password
    run_build("--dry-run", PIGEN=str(pigen), OUT=str(out), PYTHON=sys.executable)
    assert source_config(config)["FIRST_USER_PASS"] != values["FIRST_USER_PASS"]


def test_image_build_runs_pi_gen_with_the_config(built: tuple[Path, Path]) -> None:
    pigen, out = built
    if os.geteuid() != 0:
        pytest.skip("the full wrapper runs only as root")
    cwd, flag, config = (pigen / "called").read_text().splitlines()
    assert cwd == str(pigen) and flag == "-c" and config == str(out / "config")
    assert (pigen / "stage2" / "SKIP_IMAGES").exists(), "only our stage is exported"
    assert not (out / "config").exists(), "the config with the build password is removed"
    assert (out / "deploy" / "flashstation.img.xz").exists()


def test_assembled_stage_has_every_file_its_scripts_install(built: tuple[Path, Path]) -> None:
    _, out = built
    stage = out / "stage-flashstation"
    wheels = list((stage / "02-flashstation-app" / "files").glob("flashstation-*.whl"))
    assert len(wheels) == 1
    for sub in sorted(p for p in stage.iterdir() if p.is_dir()):
        referenced = set()
        for script in sub.glob("*.sh"):
            referenced |= set(re.findall(r"\bfiles/([A-Za-z0-9_.*-]+)", script.read_text()))
        present = {p.name for p in (sub / "files").iterdir()} if (sub / "files").is_dir() else set()
        for name in referenced:
            assert any(Path(p).match(name) for p in present), f"{sub.name}: files/{name} missing"
        source_files = STAGE / sub.name / "files"
        for path in source_files.iterdir() if source_files.is_dir() else []:
            assert path.name in referenced, f"{sub.name}/files/{path.name} is never installed"
    for shared in ("flashstation.service", "usbguard-rules.conf"):
        copied = stage / "03-system-config" / "files" / shared
        assert copied.read_bytes() == (IMAGE_BUILD / shared).read_bytes()
    rule = IMAGE_BUILD / "udev" / "99-flashstation-no-automount.rules"
    assert (stage / "03-system-config" / "files" / rule.name).read_bytes() == rule.read_bytes()


def test_wheel_installs_into_a_fresh_venv_and_runs(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    """The wheel's files and entry point; its dependencies come from outside the venv.

    The image's venv uses --system-site-packages for the same reason: here a .pth
    line stands in for the system's packages, so no package index is needed.
    """
    _, out = built
    (wheel,) = (out / "wheel").glob("flashstation-*.whl")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert wheel.name.startswith(f"flashstation-{version}-")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "outside.pth").write_text("\n".join(deps) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(venv / "bin" / "flashstation"), "--version"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == f"flashstation {version}", done.stderr
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import appliance; print(appliance.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(site)), where  # the wheel's copy, not the source tree
    boot_yaml = STAGE / "03-system-config" / "files" / "flashstation.yaml"
    checked = subprocess.run(
        [str(venv / "bin" / "flashstation"), "config", "check", str(boot_yaml)],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert (site / "appliance" / "data").is_dir(), "package data is in the wheel"


@pytest.mark.slow
def test_wheel_installs_with_its_dependencies(built: tuple[Path, Path], tmp_path: Path) -> None:
    """What the stage's chroot step does, on this machine: pip resolves every dependency."""
    _, out = built
    (wheel,) = (out / "wheel").glob("flashstation-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], check=True, timeout=900
    )
    done = subprocess.run(
        [str(venv / "bin" / "flashstation"), "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.startswith("flashstation "), done.stderr


# -- the stage's scripts on a fake root ------------------------------------------------------

CMDLINE = (
    "console=serial0,115200 console=tty1 root=ROOTDEV rootfstype=ext4 fsck.repair=yes rootwait "
    "resize\n"
)
CONFIG_TXT = """\
# stand-in for pi-gen's stage1 config.txt
#dtparam=i2c_arm=on
dtparam=audio=on
auto_initramfs=1
dtoverlay=vc4-kms-v3d

[cm4]
otg_mode=1

[pi5]
dtoverlay=nospi10
"""
FSTAB = """\
proc            /proc           proc    defaults          0       0
BOOTDEV  /boot/firmware  vfat    defaults          0       2
ROOTDEV  /               ext4    defaults,noatime  0       1
"""


def fake_root(root: Path) -> Path:
    for part in (
        "boot/firmware",
        "etc/systemd/system",
        "etc/udev/rules.d",
        "etc/modprobe.d",
        "etc/modules-load.d",
        "usr/local/sbin",
        "var/lib",
        "tmp",
    ):
        (root / part).mkdir(parents=True, exist_ok=True)
    (root / "boot/firmware/cmdline.txt").write_text(CMDLINE)
    (root / "boot/firmware/config.txt").write_text(CONFIG_TXT)
    (root / "etc/fstab").write_text(FSTAB)
    return root


def run_host_script(script: Path, rootfs: Path, log: Path) -> subprocess.CompletedProcess[str]:
    """Run a pi-gen ``NN-run.sh`` as pi-gen does, with ``on_chroot`` recording its input."""
    wrapper = (
        'on_chroot() { cat >> "$CHROOT_LOG"; }\n'
        "export -f on_chroot\n"
        f"cd {shlex.quote(str(script.parent))}\n"
        f"./{script.name}\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "ROOTFS_DIR": str(rootfs),
        "FIRST_USER_NAME": "station",
        "CHROOT_LOG": str(log),
    }
    return subprocess.run(["bash", "-e", "-c", wrapper], capture_output=True, text=True, env=env)


def effective_config(text: str) -> dict[str, list[str]]:
    """config.txt settings that apply to every board: [all] sections (and before any filter)."""
    applies = True
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            applies = line == "[all]"
            continue
        if applies:
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_system_config_edits_boot_files_and_installs_units(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = built
    sub = out / "stage-flashstation" / "03-system-config"
    rootfs = fake_root(tmp_path / "rootfs")
    log = tmp_path / "chroot.log"
    result = run_host_script(sub / "00-run.sh", rootfs, log)
    assert result.returncode == 0, result.stderr

    config = effective_config((rootfs / "boot/firmware/config.txt").read_text())
    assert "i2c_arm=on" in config["dtparam"]
    assert {"disable-wifi", "disable-bt"} <= set(config["dtoverlay"])
    assert config["auto_initramfs"] == ["1"], "overlayroot lives in the initramfs"

    cmdline = (rootfs / "boot/firmware/cmdline.txt").read_text()
    assert cmdline.count("\n") == 1 and cmdline.endswith("\n")
    words = cmdline.split()
    assert "resize" not in words, "the root partition must not grow over partition 3's space"
    assert "overlayroot=tmpfs:recurse=0" in words
    assert "usbcore.authorized_default=0" in words
    assert words[:4] == CMDLINE.split()[:4]

    fstab = {
        line.split()[1]: line.split() for line in (rootfs / "etc/fstab").read_text().splitlines()
    }
    assert "ro" in fstab["/boot/firmware"][3].split(",")
    assert fstab["/"][3] == "defaults,noatime"

    etc = rootfs / "etc"
    assert (etc / "systemd/system/flashstation.service").read_bytes() == UNIT.read_bytes()
    assert (etc / "systemd/system/flashstation.service.d/10-state.conf").is_file()
    statefs = rootfs / "usr/local/sbin/flashstation-statefs"
    assert statefs.stat().st_mode & stat.S_IXUSR
    rules = etc / "usbguard/rules.conf"
    assert rules.read_bytes() == (IMAGE_BUILD / "usbguard-rules.conf").read_bytes()
    assert stat.S_IMODE(rules.stat().st_mode) == 0o600
    daemon = (etc / "usbguard/usbguard-daemon.conf").read_text()
    assert re.search(r"^RuleFile=/etc/usbguard/rules.conf$", daemon, flags=re.M)
    assert re.search(r"^ImplicitPolicyTarget=block$", daemon, flags=re.M)
    assert re.search(r"^HidePII=true$", daemon, flags=re.M)
    assert (etc / "udev/rules.d/99-flashstation-no-automount.rules").is_file()
    journald = (etc / "systemd/journald.conf.d/flashstation.conf").read_text()
    assert re.search(r"^Storage=volatile$", journald, flags=re.M)
    assert "i2c-dev" in (etc / "modules-load.d/flashstation-i2c.conf").read_text().split()
    assert "install brcmfmac /bin/false" in (etc / "modprobe.d/flashstation.conf").read_text()
    assert (rootfs / "boot/firmware/flashstation.yaml").is_file()

    chroot = log.read_text()
    enabled = set()
    for line in chroot.splitlines():
        parts = line.split()
        if parts[:2] == ["systemctl", "enable"]:
            enabled |= set(parts[2:])
    assert enabled == {"flashstation.service", "flashstation-state.service", "usbguard.service"}
    masked = {
        w for line in chroot.splitlines() if "systemctl mask" in line for w in line.split()[2:]
    }
    assert {"rpi-resize.service", "resize2fs_once.service"} <= masked
    assert re.search(r"^\s*usermod --password '\*' \"?station\"?$", chroot, flags=re.M)
    assert re.search(r"^\s*usermod --password '\*' root$", chroot, flags=re.M)

    # running the stage again (pi-gen re-runs after a failure) changes nothing
    before = {p: p.read_bytes() for p in (rootfs / "boot/firmware").iterdir() if p.is_file()}
    assert run_host_script(sub / "00-run.sh", rootfs, log).returncode == 0
    assert {p: p.read_bytes() for p in before} == before


def test_app_stage_copies_exactly_one_wheel(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = built
    sub = out / "stage-flashstation" / "02-flashstation-app"
    rootfs = fake_root(tmp_path / "rootfs")
    result = run_host_script(sub / "00-run.sh", rootfs, tmp_path / "log")
    assert result.returncode == 0, result.stderr
    assert len(list((rootfs / "tmp/flashstation-wheels").glob("flashstation-*.whl"))) == 1
    # a stale second wheel is refused rather than guessed between
    copy = tmp_path / "stage"
    shutil.copytree(sub, copy)
    shutil.copy(
        next((copy / "files").glob("*.whl")), copy / "files" / "flashstation-0.0.1-py3-none-any.whl"
    )
    result = run_host_script(copy / "00-run.sh", fake_root(tmp_path / "r2"), tmp_path / "log")
    assert result.returncode == 1 and "expected one" in result.stderr


def test_network_is_purged_and_masked(tmp_path: Path) -> None:
    """The chroot script with stand-ins for dpkg-query, apt-get and systemctl."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for tool, body in {
        "dpkg-query": "echo 'install ok installed'",
        "apt-get": 'echo "apt-get $*" >> "$CALLS"',
        "systemctl": 'echo "systemctl $*" >> "$CALLS"',
    }.items():
        (bin_dir / tool).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    script = STAGE / "01-remove-network" / "00-run-chroot.sh"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls)}
    result = subprocess.run(["bash", "-e", str(script)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    purged = {w for line in lines if line.startswith("apt-get purge") for w in line.split()[3:]}
    assert purged >= NETWORK_PACKAGES
    masked = {line.split()[2] for line in lines if line.startswith("systemctl mask")}
    assert masked >= NETWORK_UNITS
    assert not any(line.startswith("systemctl enable") for line in lines)


def test_no_stage_script_enables_a_network_unit() -> None:
    for script in STAGE.rglob("*.sh"):
        for line in script.read_text().splitlines():
            words = line.split()
            if words[:2] == ["systemctl", "enable"] or words[:2] == ["systemctl", "unmask"]:
                assert not NETWORK_UNITS & set(words[2:]), f"{script}: {line}"


# -- the state partition on loop devices -------------------------------------------------------


@contextlib.contextmanager
def loop_device(image: Path) -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("sfdisk") is None:
        pytest.skip("loop devices need root, losetup and sfdisk")
    try:
        dev = subprocess.run(
            ["losetup", "-f", "--show", "-P", str(image)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"losetup failed: {exc}")
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def pi_gen_like_image(path: Path, size: int, root_end: int | None = None) -> Path:
    """Boot FAT at 8 MiB, root ext4 after it: the layout of pi-gen's export (scaled down)."""
    with path.open("wb") as f:
        f.truncate(size)
    root_start = 16 * MiB
    root_size = (root_end or 40 * MiB) - root_start
    table = (
        f"start={8 * MiB // SECTOR}, size={8 * MiB // SECTOR}, type=c\n"
        f"start={root_start // SECTOR}, size={root_size // SECTOR}, type=83\n"
    )
    subprocess.run(["sfdisk", "--quiet", str(path)], input=table, text=True, check=True)
    # recognisable bytes in both system partitions, to prove they are left alone
    with path.open("r+b") as f:
        for start in (8 * MiB, root_start):
            f.seek(start)
            f.write(os.urandom(MiB))
    return path


def table(image: Path) -> list[tuple[int, int]]:
    dump = subprocess.run(
        ["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True
    ).stdout
    return [(p["start"], p["size"]) for p in json.loads(dump)["partitiontable"]["partitions"]]


def digest(image: Path, start: int, length: int) -> str:
    with image.open("rb") as f:
        f.seek(start)
        return hashlib.sha256(f.read(length)).hexdigest()


def statefs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(STATEFS), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.root
def test_statefs_adds_formats_and_mounts_partition_3(tmp_path: Path) -> None:
    image = pi_gen_like_image(tmp_path / "card.img", 96 * MiB)
    system = [digest(image, start * SECTOR, size * SECTOR) for start, size in table(image)]
    mnt = tmp_path / "state"
    with loop_device(image) as dev:
        try:
            result = statefs("--disk", dev, "--mountpoint", str(mnt), "--size", "16", "mount")
            assert result.returncode == 0, result.stderr
            mounts = Path("/proc/self/mounts").read_text().splitlines()
            (line,) = [m for m in mounts if m.split()[1] == str(mnt)]
            source, _, fstype, options = line.split()[:4]
            assert source == f"{dev}p3" and fstype == "ext4"
            assert {"nodev", "nosuid", "noexec", "noatime"} <= set(options.split(","))
            assert stat.S_IMODE(mnt.stat().st_mode) == 0o700
            (mnt / "ledger.sqlite3").write_bytes(b"kept")
            assert statefs("--mountpoint", str(mnt), "unmount").returncode == 0
            assert not any(
                m.split()[1] == str(mnt) for m in Path("/proc/self/mounts").read_text().splitlines()
            )
            # the next boot: same partition, same data, nothing added
            result = statefs("--disk", dev, "--mountpoint", str(mnt), "--size", "16", "mount")
            assert result.returncode == 0 and "adding" not in result.stdout, result.stdout
            assert (mnt / "ledger.sqlite3").read_bytes() == b"kept"
            assert statefs("--mountpoint", str(mnt), "status").returncode == 0
        finally:
            statefs("--mountpoint", str(mnt), "unmount")
    parts = table(image)
    assert len(parts) == 3
    _, (s2, n2), (s3, n3) = parts
    assert s3 >= s2 + n2 and s3 % (8 * MiB // SECTOR) == 0 and n3 == 16 * MiB // SECTOR
    assert [digest(image, s * SECTOR, n * SECTOR) for s, n in parts[:2]] == system
    fstype = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "TYPE", "--offset", str(s3 * SECTOR), str(image)],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert fstype == "ext4"


@pytest.mark.root
def test_statefs_refuses_without_room(tmp_path: Path) -> None:
    image = pi_gen_like_image(tmp_path / "full.img", 64 * MiB, root_end=64 * MiB - MiB)
    before = table(image)
    with loop_device(image) as dev:
        result = statefs("--disk", dev, "--mountpoint", str(tmp_path / "m"), "mount")
    assert result.returncode == 1 and "no room" in result.stderr
    assert table(image) == before


@pytest.mark.root
def test_statefs_never_formats_a_foreign_partition_3(tmp_path: Path) -> None:
    image = pi_gen_like_image(tmp_path / "card.img", 96 * MiB)
    with loop_device(image) as dev:
        subprocess.run(
            ["sfdisk", "--quiet", "--append", "--no-reread", "--no-tell-kernel", dev],
            input=f"start={48 * MiB // SECTOR}, size={16 * MiB // SECTOR}, type=c\n",
            text=True, check=True,
        )  # fmt: skip
        subprocess.run(["partx", "-a", "--nr", "3", dev], check=False)
        subprocess.run(["mkfs.vfat", "-n", "DONOR", f"{dev}p3"], check=True, capture_output=True)
        result = statefs("--disk", dev, "--mountpoint", str(tmp_path / "m"), "mount")
        assert result.returncode == 1 and "vfat" in result.stderr
        label = subprocess.run(
            ["blkid", "-p", "-o", "value", "-s", "LABEL", f"{dev}p3"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert label == "DONOR"
    # and a disk that is not the image's two-partition layout gets nothing added
    single = tmp_path / "single.img"
    with single.open("wb") as f:
        f.truncate(64 * MiB)
    subprocess.run(
        ["sfdisk", "--quiet", str(single)], input="start=2048, type=83\n", text=True, check=True
    )
    with loop_device(single) as dev:
        result = statefs("--disk", dev, "--mountpoint", str(tmp_path / "m"), "mount")
    assert result.returncode == 1 and "not the image's two" in result.stderr
    assert len(table(single)) == 1


def test_statefs_rejects_bad_arguments() -> None:
    assert statefs("--size", "big", "mount").returncode == 1
    assert statefs("frobnicate").returncode == 2
    assert statefs("mount", "unmount").returncode == 2


def test_system_config_drops_bookworms_firstboot_resize(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = built
    rootfs = fake_root(tmp_path / "rootfs")
    bookworm = CMDLINE.replace(" resize\n", " quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n")
    (rootfs / "boot/firmware/cmdline.txt").write_text(bookworm)
    script = out / "stage-flashstation" / "03-system-config" / "00-run.sh"
    assert run_host_script(script, rootfs, tmp_path / "log").returncode == 0
    words = (rootfs / "boot/firmware/cmdline.txt").read_text().split()
    assert not any(w.startswith("init=") for w in words)
    assert "quiet" in words and "overlayroot=tmpfs:recurse=0" in words
