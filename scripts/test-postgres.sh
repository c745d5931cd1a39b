#!/usr/bin/env bash
# The PostgreSQL that tests/fleet.rs needs: the one at BANYAN_TEST_POSTGRES, or one on
# 127.0.0.1:5432 that lets `postgres` in without a password. When nothing answers there,
# install Debian's postgresql, start its cluster, and let local TCP connections in as
# they are on a developer's machine (trust, loopback only). Run by `make test-deps`.
set -euo pipefail

answers() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if [ -n "${BANYAN_TEST_POSTGRES:-}" ] || answers; then
    exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing and starting PostgreSQL on 127.0.0.1:5432 (fleet tests)"
command -v pg_ctlcluster >/dev/null 2>&1 || {
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}
version=$(ls /etc/postgresql | sort -n | tail -1)
hba=/etc/postgresql/$version/main/pg_hba.conf
# Loopback TCP as trust, first, so it wins over the packaged password rules.
if ! $SUDO grep -q "banyan tests" "$hba"; then
    {
        echo "host all all 127.0.0.1/32 trust # banyan tests"
        echo "host all all ::1/128 trust # banyan tests"
        $SUDO cat "$hba"
    } > /tmp/banyan-pg_hba.conf
    $SUDO cp /tmp/banyan-pg_hba.conf "$hba"
    rm -f /tmp/banyan-pg_hba.conf
fi
$SUDO pg_ctlcluster "$version" main start 2>/dev/null || $SUDO pg_ctlcluster "$version" main reload
for _ in $(seq 1 50); do
    answers && exit 0
    sleep 0.2
done
echo "PostgreSQL did not start on 127.0.0.1:5432" >&2
exit 1
