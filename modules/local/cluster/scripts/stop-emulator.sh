#!/bin/sh
# Stops the emulator started by start-emulator.sh and removes its files (destroy-time provisioner).
#
# Environment: STATE_DIR, CLUSTER_NAME. Succeeds when there is nothing to stop (already stopped, never
# started, state directory gone), so a destroy can always complete.
set -u

say() { echo "local/cluster[$CLUSTER_NAME]: $*" >&2; }

# Running, and not a zombie waiting for its parent to reap it.
alive() {
    [ -r "/proc/$1/stat" ] && [ "$(sed -e 's/^.*) //' "/proc/$1/stat" | cut -c1)" != "Z" ]
}

if [ -s "$STATE_DIR/pid" ]; then
    pid=$(cat "$STATE_DIR/pid")
    # Only signal the process if it is still this cluster's emulator: the pid may have been reused.
    if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--port-file $STATE_DIR/url"; then
        kill -TERM "$pid" 2>/dev/null || true
        i=0
        while alive "$pid" && [ "$i" -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if alive "$pid"; then
            say "emulator pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped emulator pid $pid"
    else
        say "emulator pid $pid was not running any more"
    fi
else
    say "no emulator pid recorded in $STATE_DIR/pid; nothing to stop"
fi

rm -f "$STATE_DIR/url" "$STATE_DIR/url.partial" "$STATE_DIR/kubeconfig" "$STATE_DIR/pid" "$STATE_DIR/emulator.log"
rmdir "$STATE_DIR" 2>/dev/null || true
