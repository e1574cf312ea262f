#!/usr/bin/env bash
# System packages the build needs: libmariadb (diesel's mysql backend links it, found through
# pkg-config) and libpq (diesel's postgres backend, the same way). SQLite is compiled in. Quick
# when everything is present.
set -euo pipefail
missing=()
for pkg in libmariadb-dev libpq-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
