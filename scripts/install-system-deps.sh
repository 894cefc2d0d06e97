#!/usr/bin/env bash
# System packages the project needs: unixODBC for pyodbc (the production ODBC backend), and Chromium
# for the browser test (driven by Playwright, which downloads no browser of its own).
# Idempotent; does nothing when they are already present.
set -euo pipefail
need=()
dpkg -s unixodbc >/dev/null 2>&1 || need+=(unixodbc)
dpkg -s unixodbc-dev >/dev/null 2>&1 || need+=(unixodbc-dev)
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: need root to install: ${need[*]} (run: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
