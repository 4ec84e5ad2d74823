#!/bin/sh
# azd prepackage hook: checks the profiles file before azd builds the package. Without a valid file the
# deployment would succeed and every trigger would fail (the webhook answers 503), so a problem stops
# `azd deploy` / `azd up` here, with every problem in the file listed. azd runs hooks in the project
# directory; GALSYNC_CONFIG_PATH (an azd variable, default galsync.toml) is relative to it, as it is to the
# app root in Azure. Needs galsync installed: on PATH, or in .venv (see the README, "Prerequisites").
set -eu

config="${GALSYNC_CONFIG_PATH:-galsync.toml}"
case "$config" in
    /*) echo "galsync: GALSYNC_CONFIG_PATH is $config; it must be relative to the project folder, which" \
            "is what ships as the app" >&2
        exit 1 ;;
esac
if [ ! -f "$config" ]; then
    echo "galsync: no profiles file $config in $(pwd): copy galsync.example.toml to $config and edit it" \
        "(docs/config.md)" >&2
    exit 1
fi

if command -v galsync >/dev/null 2>&1; then
    galsync=galsync
elif [ -x .venv/bin/galsync ]; then
    galsync=.venv/bin/galsync
else
    echo "galsync: the galsync command is needed to check $config before deploying:" \
        "python3 -m venv .venv && .venv/bin/pip install -e ." >&2
    exit 1
fi

if ! "$galsync" config validate "$config"; then
    echo "galsync: $config has the problems above; fix them, then run azd deploy again" >&2
    exit 1
fi
