#!/usr/bin/env bash
# Start the real services the test suite talks to, installing them if this machine
# lacks them. Idempotent: a running service is left alone.
set -euo pipefail

need_apt_update=1
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "services: $* missing and not root; install it or start it yourself" >&2
        exit 1
    fi
    if [ "$need_apt_update" = 1 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        need_apt_update=0
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL on 127.0.0.1:5432 with trust auth for the postgres user.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        apt_install postgresql
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        # A fresh Debian cluster asks for passwords on TCP; tests connect as postgres locally.
        sed -i '1i host all all 127.0.0.1/32 trust' "/etc/postgresql/$version/main/pg_hba.conf"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
    pg_isready -h 127.0.0.1 -p 5432
fi
if ! psql -h 127.0.0.1 -U postgres -Atqc "select 1" postgres >/dev/null 2>&1; then
    echo "services: PostgreSQL on 127.0.0.1 does not accept user postgres without a password" >&2
    exit 1
fi

# Redis on 127.0.0.1:6379, nothing kept on disk.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    command -v redis-server >/dev/null || apt_install redis-server
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 30); do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
        sleep 0.5
    done
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
fi
# Dovecot 2.3 (Debian 12's) serves the mailbox tests from a private config; the system one is never used.
if ! command -v dovecot >/dev/null || ! command -v openssl >/dev/null; then
    apt_install dovecot-imapd openssl
fi
# dnsmasq answers bulk reverse lookups in the enrichment tests and benchmark.
if ! [ -x /usr/sbin/dnsmasq ]; then
    apt_install dnsmasq-base
fi

# Debian's Chromium is the browser the Playwright tests drive (through executable_path), so
# nothing downloads a browser build of its own.
if ! [ -x /usr/bin/chromium ]; then
    apt_install chromium
fi

# docker-compose (v1, from Debian) only validates docker-compose.yml in the tests; no engine runs here.
if ! command -v docker-compose >/dev/null && [ "$(id -u)" = 0 ]; then
    apt_install docker-compose || echo "services: docker-compose not installed; its test will skip" >&2
fi
echo "services: postgres and redis are up"
