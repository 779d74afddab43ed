#!/usr/bin/env bash
# Smoke test in a real Blender GUI, as a new user on Debian 13 would run it (not part of CI):
# Debian 13's own blender 4.3.2 (system Python 3.13, no NumPy, no pip) under Xvfb, inside a
# debootstrap'ed Debian 13 system. Needs root, debootstrap and network access to Debian and PyPI.
#
#   sudo scripts/gui_smoke.sh            # results: out/gui_smoke/{gui.json,cli.json,gui.log,*.png,install.log}
#
# Steps: build the extension zip; install it into a fresh Blender user profile with
# `blender --command extension install-file`; in the GUI (scripts/gui_smoke_drive.py) screenshot the
# panel, press Install Dependencies (torch from PyPI where the PyTorch index cannot be reached: about
# 5 GB), reconstruct the example photo at N=STEPS three times, each followed by the same core.reconstruct
# call with Blender's Python outside Blender (same machine, same moment), cancel another run, undo.
# Environment: GUI_SMOKE_ROOT (default /srv/trixie), DEBIAN_MIRROR, PHOTO, STEPS (default 10),
# KEEP_PROFILE=1 (reuse the installed dependencies of an earlier run: skips the 5 GB download),
# SMOKE_RUNS (timed rounds, default 3), SMOKE_WORKERS (where each round's GUI runs go, in order:
# "process", the extension's worker process and default, and/or "thread", a thread of Blender's process;
# e.g. SMOKE_WORKERS=process,thread), BLENDER_ENV (e.g. OMP_WAIT_POLICY=PASSIVE).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
R=${GUI_SMOKE_ROOT:-/srv/trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PHOTO=${PHOTO:-examples/chair_dining.png}
STEPS=${STEPS:-10}
OUT=$REPO/out/gui_smoke
W=/work                            # the repository inside the chroot
PROFILE=/var/tmp/sfi_gui_profile   # a fresh Blender user profile inside the chroot

[ "$(id -u)" = 0 ] || { echo "error: run as root (debootstrap, mount, chroot)"; exit 1; }
command -v debootstrap >/dev/null || apt-get install -y debootstrap
if [ ! -x "$R/usr/bin/apt-get" ]; then
    echo "== debootstrap Debian 13 into $R (a few minutes)"
    mkdir -p "$R" && debootstrap trixie "$R" "$MIRROR"
fi

mounts=()
bind() {  # bind <what> <where inside $R> [rbind]
    mkdir -p "$R$2"
    if ! mountpoint -q "$R$2"; then
        if [ "${3:-}" = rbind ]; then mount --rbind "$1" "$R$2" && mount --make-rslave "$R$2"
        else mount --bind "$1" "$R$2"; fi
        mounts=("$R$2" "${mounts[@]}")
    fi
}
cleanup() { for m in "${mounts[@]}"; do umount -R "$m" || umount -lR "$m" || true; done; }
trap cleanup EXIT
mountpoint -q "$R/proc" || { mount -t proc proc "$R/proc"; mounts=("$R/proc" "${mounts[@]}"); }
bind /sys /sys rbind
bind /dev /dev rbind
bind "$REPO" "$W"
cp /etc/resolv.conf "$R/etc/"
# the host's own certificate authorities and pip settings (a proxy that inspects HTTPS needs its CA)
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    mkdir -p "$R/usr/local/share/ca-certificates" && cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/"
    chroot "$R" sh -c 'command -v update-ca-certificates >/dev/null && update-ca-certificates >/dev/null || true'
fi
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$R/etc/pip.conf"

echo "== Debian packages: blender, xvfb, imagemagick (screenshots) and pip's wheel (Debian's Python has no pip)"
chroot "$R" sh -c 'dpkg -s blender xvfb xauth python3-pip-whl imagemagick >/dev/null 2>&1 ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      blender xvfb xauth python3-pip-whl imagemagick ca-certificates; }'
chroot "$R" blender --version | head -1

echo "== build the zip"
rm -rf "$OUT" && mkdir -p "$OUT"
# the extension builder ships in the bpy module of the development environment (make env)
PY=python3; [ -x "$REPO/.venv/bin/python" ] && PY=$REPO/.venv/bin/python
"$PY" "$REPO/scripts/package_extension.py" --out-dir "$OUT/dist"
ZIP=$(cd "$OUT/dist" && ls shape_from_image-*.zip)

run() {  # run a command in the chroot with the fresh profile
    chroot "$R" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        BLENDER_USER_RESOURCES=$PROFILE BLENDER_USER_CONFIG=$PROFILE/config \
        BLENDER_USER_SCRIPTS=$PROFILE/scripts BLENDER_USER_EXTENSIONS=$PROFILE/extensions \
        SMOKE_RUNS=${SMOKE_RUNS:-3} SMOKE_WORKERS=${SMOKE_WORKERS:-process} ${BLENDER_ENV:-} "$@"
}
if [ "${KEEP_PROFILE:-0}" != 1 ]; then rm -rf "$R$PROFILE"; fi
echo "== install the zip into a fresh profile ($PROFILE)"
run blender --background --factory-startup --command extension install-file -r user_default -e "$W/out/gui_smoke/dist/$ZIP"

run blender --background --python-expr \
    "import bpy; bpy.context.preferences.view.show_splash = False; bpy.ops.wm.save_userpref()" > /dev/null
echo "== the GUI: install dependencies, reconstruct, cancel, undo (log: $OUT/gui.log)"
run xvfb-run -a -s "-screen 0 1600x1000x24" blender --online-mode \
    --python "$W/scripts/gui_smoke_drive.py" -- "$W/out/gui_smoke" "$W/$PHOTO" "$STEPS" > "$OUT/blender.log" 2>&1 || true
cp "$R$PROFILE/extensions/.user/user_default/shape_from_image/install.log" "$OUT/" 2>/dev/null || true

python3 - "$OUT" <<'EOF'
import json, sys
gui = json.load(open(f"{sys.argv[1]}/gui.json"))
pairs = sorted(g / c for g, c in zip(gui.get("runs_s", []), gui.get("cli_runs_s", [])))
ratio = pairs[len(pairs) // 2] if pairs else float("nan")  # the median of the rounds' GUI/CLI ratios
for i, (cli_s, cli_cpu) in enumerate(zip(gui.get("cli_runs_s", []), gui.get("cli_process_cpu_s", []))):
    runs = "  ".join(f"{where} {r[i]['wall_s']:.1f} s / {r[i]['cpu_s']:.1f} CPU s ({r[i]['wall_s'] / cli_s:.2f})"
                     for where, r in gui.get("gui_runs", {}).items())
    print(f"round {i + 1}: GUI {runs}; CLI {cli_s:.1f} s / {cli_cpu:.1f} CPU s (load {gui['cli_load'][i]:.1f})")
print(f"GUI {gui.get('runs_s')} s, CLI {gui.get('cli_runs_s')} s (median GUI/CLI ratio of the rounds {ratio:.2f}); "
      f"install {gui.get('install_s')} s: {gui.get('install_result')}; cancel and undo ok: {gui.get('ok')}")
sys.exit(0 if gui.get("ok") and "error" not in gui and ratio <= 1.15 else 1)
EOF
