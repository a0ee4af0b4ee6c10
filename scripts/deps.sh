#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages livegate needs, only those missing.
#   scripts/deps.sh run    what `make run` needs: ffmpeg
#   scripts/deps.sh test   what `make test` needs: ffmpeg, nginx with the RTMP module, chromium, firefox-esr
set -euo pipefail

case "${1:-run}" in
run)  pkgs=(ffmpeg ca-certificates) ;;
test) pkgs=(ffmpeg ca-certificates nginx libnginx-mod-rtmp chromium firefox-esr fonts-dejavu-core) ;;
*)    echo "usage: $0 run|test" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

if ! command -v apt-get >/dev/null; then
	echo "livegate needs: ${missing[*]} — install them with your package manager" >&2
	exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "run as root or install sudo to install: ${missing[*]}" >&2; exit 1; }
	sudo="sudo"
fi
echo "installing: ${missing[*]}"
# Debian calls it chromium; Ubuntu ships it as a snap behind chromium-browser,
# and firefox-esr is Debian's name (Ubuntu users: the mozillateam PPA has it).
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
