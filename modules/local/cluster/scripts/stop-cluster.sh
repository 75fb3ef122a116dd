#!/bin/sh
# Stops the cluster started by start-cluster.sh and removes its files (destroy-time provisioner).
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
    # Only signal the process if it is still this cluster's kube-cluster process: the pid may have been reused.
    if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--port-file $STATE_DIR/url"; then
        kill -TERM "$pid" 2>/dev/null || true
        i=0
        while alive "$pid" && [ "$i" -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if alive "$pid"; then
            say "cluster pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped cluster pid $pid"
    else
        say "cluster pid $pid was not running any more"
    fi
else
    say "no cluster pid recorded in $STATE_DIR/pid; nothing to stop"
fi

rm -rf "$STATE_DIR/url" "$STATE_DIR/url.partial" "$STATE_DIR/kubeconfig" "$STATE_DIR/pid" "$STATE_DIR/cluster.log" "$STATE_DIR/cluster"
rmdir "$STATE_DIR" 2>/dev/null || true
