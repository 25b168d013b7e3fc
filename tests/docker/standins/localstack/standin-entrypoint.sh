#!/bin/bash
# Stand-in only, then the real entrypoint. LocalStack starts its DNS server (which it also gives every Lambda
# container as DNS, so that *.localhost.localstack.cloud resolves to LocalStack) only if some nameserver of
# /etc/resolv.conf other than 127.0.0.1 resolves "localstack.cloud" (localstack/dns/server.py,
# get_available_dns_server). Online the real image picks the first one (Docker's 127.0.0.11 on a user-defined
# network); offline none resolves it and the DNS server is skipped. Name that nameserver as DNS_SERVER, as the
# real image would have chosen it, unless DNS_SERVER is set (a set DNS_ADDRESS=0 still disables the server).
if [ -z "${DNS_SERVER:-}" ] && [ -z "${LOCALSTACK_DNS_SERVER:-}" ]; then
    ns="$(awk '$1 == "nameserver" && $2 != "127.0.0.1" { print $2; exit }' /etc/resolv.conf 2>/dev/null)"
    if [ -n "$ns" ]; then
        export DNS_SERVER="$ns"
    fi
fi
exec docker-entrypoint.sh "$@"
