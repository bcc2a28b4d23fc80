#!/usr/bin/env bash
# Installs the programs the tests run for real: redis-server for the shared
# rate limiter, dnsmasq as the DNS server of upstream discovery's tests
# (server/dnsmasq_test.go), headless Chromium for the admin dashboard's browser test
# (admin/browser_test.go), and Debian's prometheus package (a few
# seconds): promtool for the Prometheus configs and alert rules in
# deploy/, and the prometheus server that deploy/prometheus_test.go runs
# against a proxy to evaluate the rules and the Grafana dashboard.
# systemd-analyze (deploy/systemd) comes with Debian's systemd; docker or
# podman for the image test is left to the developer. Uses Debian's
# packages; needs root or sudo.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
{ command -v dnsmasq || [ -x /usr/sbin/dnsmasq ]; } >/dev/null 2>&1 || need+=(dnsmasq)
# Chromium's recommended packages (cups, avahi, ...) are not needed
# headless; fonts-liberation is, so the screenshot has readable text.
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-liberation)
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${need[*]}"
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# The package may start a system service; the tests start their own.
$SUDO service redis-server stop >/dev/null 2>&1 || true
$SUDO service dnsmasq stop >/dev/null 2>&1 || true
$SUDO service prometheus stop >/dev/null 2>&1 || true
