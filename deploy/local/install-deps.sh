#!/usr/bin/env bash
# Installs what building and testing saga-orchestrator needs from Debian's packages, when missing:
# librdkafka-dev (the Kafka client library) and pkg-config. Safe to run again.
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists rdkafka 2>/dev/null || missing+=(librdkafka-dev)

if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "librdkafka $(pkg-config --modversion rdkafka)"
