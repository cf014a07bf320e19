#!/usr/bin/env bash
# Install Debian's headless-capable Chromium, its matching chromedriver and a colour
# emoji font (the dashboard marks states with emoji) for the dashboard's real-browser
# test. selenium-manager cannot download browsers here, so the distribution packages
# are the only source. Idempotent: does nothing when all three are already present.
set -euo pipefail

EMOJI_FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver && -f $EMOJI_FONT ]]; then
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "setup-browser: need root (or sudo) to apt-get install chromium chromium-driver" >&2
        exit 1
    fi
else
    SUDO=()
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core fonts-noto-color-emoji >/dev/null
/usr/bin/chromium --version
