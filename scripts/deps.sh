#!/usr/bin/env bash
# Installs, once, the system libraries Osprey uses on the CPU side: libturbojpeg (JPEG decoding).
# Sourced by ./osprey and scripts/test.sh. Needs root (or sudo) on Debian/Ubuntu; elsewhere it only warns.
osprey_deps() {
    # grep without -q reads all of ldconfig's output: under pipefail, -q's early exit can SIGPIPE ldconfig and read as 'missing'
    if ldconfig -p 2>/dev/null | grep 'libturbojpeg\.so\.0' >/dev/null; then return 0; fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then sudo="sudo"; else
            echo "osprey: libturbojpeg0 is missing and cannot be installed without root; JPEG decoding will fail" >&2
            return 0
        fi
    fi
    if command -v apt-get >/dev/null; then
        echo "osprey: installing libturbojpeg0 (first run)..." >&2
        $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libturbojpeg0 >&2 \
            || echo "osprey: could not install libturbojpeg0; JPEG decoding will fail" >&2
    else
        echo "osprey: please install libjpeg-turbo (libturbojpeg.so.0); JPEG decoding will fail without it" >&2
    fi
}
