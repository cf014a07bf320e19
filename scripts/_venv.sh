# Sourced by the scripts in this folder, from the repository root: make sure
# .venv exists and has the project installed (again whenever pyproject.toml
# changed), then put .venv/bin first on PATH. Safe to source repeatedly.

if [[ ! -x .venv/bin/python ]]; then
    echo "setting up .venv (first run: torch is large, this takes a few minutes)" >&2
    python3 -m venv .venv
fi

# Reinstall only when the dependencies may have changed: pip takes a while even
# when everything is already there.
_streamae_stamp=.venv/.streamae-installed
_streamae_want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ "$(cat "$_streamae_stamp" 2>/dev/null)" != "$_streamae_want" ]]; then
    echo "installing streamae and its dependencies into .venv" >&2
    if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'; then
        # PyPI's torch for Linux brings its CUDA libraries: a first install here took
        # 9 GB of disk at its peak (downloads beside the unpacked files), 6 GB after.
        _streamae_free_kb=$(df --output=avail -k . "${TMPDIR:-/tmp}" 2>/dev/null | awk 'NR > 1 { print $1 }' | sort -n | head -1 || true)
        echo "error: installing into .venv failed (pip's message is above)." >&2
        if [[ ! -e $_streamae_stamp && $_streamae_free_kb =~ ^[0-9]+$ && $_streamae_free_kb -lt $((9 * 1048576)) ]]; then
            _streamae_free_gb=$(awk -v kb="$_streamae_free_kb" 'BEGIN { printf "%.1f", kb / 1048576 }')
            echo "error: the disk holding $PWD or ${TMPDIR:-/tmp} has only ${_streamae_free_gb} GB free;" \
                "a first install needs about 9 GB. Free some space, then run this again." >&2
        fi
        exit 1
    fi
    echo "$_streamae_want" > "$_streamae_stamp"
fi
unset _streamae_stamp _streamae_want

export VIRTUAL_ENV="$PWD/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"

# The local Kafka broker needs a JVM, and Maven once to fetch its jars.
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "installing Java and Maven for the local Kafka broker" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            openjdk-17-jre-headless maven >/dev/null
    else
        echo "warning: java and mvn are needed for the local Kafka broker; install them" >&2
    fi
fi
