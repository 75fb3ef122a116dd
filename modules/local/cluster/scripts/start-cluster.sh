#!/bin/sh
# Starts a local cluster (`kube-cluster`) in the background for modules/local/cluster (create-time provisioner).
#
# Environment: CLUSTER_BIN, STATE_DIR, LISTEN, DETACH (true|false), START_TIMEOUT (seconds), CLUSTER_NAME,
# CLUSTER_ARGS (extra arguments, already quoted for sh).
# Writes to STATE_DIR: kubeconfig and url (by the cluster), pid (the cluster's process id), cluster.log.
# Exits non-zero, with the end of the cluster's log, if the cluster does not come up within START_TIMEOUT;
# a process it started is then stopped again.
set -eu

say() { echo "local/cluster[$CLUSTER_NAME]: $*" >&2; }

mkdir -p "$STATE_DIR"
cd "$STATE_DIR"

if [ -s pid ] && kill -0 "$(cat pid)" 2>/dev/null; then
    say "process $(cat pid) recorded in $STATE_DIR/pid is still running; refusing to start a second cluster there"
    exit 1
fi
rm -rf url url.partial kubeconfig pid cluster.log cluster

if [ ! -x "$CLUSTER_BIN" ]; then
    say "cluster binary $CLUSTER_BIN is missing or not executable (build it with: cargo build -p kube-cluster)"
    exit 1
fi

eval "set -- $CLUSTER_ARGS"

# The cluster must outlive this shell and Terraform: it gets a session of its own (setsid, unless
# DETACH=false), ignores SIGHUP (nohup), and holds none of Terraform's pipes (all three standard streams are
# redirected), so Terraform neither waits for it nor takes it down when it exits. The inner shell records its
# own pid and then execs the cluster, so the recorded pid is the cluster's whether or not setsid forks.
launch=""
if [ "$DETACH" = "true" ]; then
    launch="setsid"
fi
$launch nohup /bin/sh -c 'echo $$ >pid; exec "$@"' kube-cluster \
    "$CLUSTER_BIN" --listen "$LISTEN" \
    --kubeconfig "$STATE_DIR/kubeconfig" --port-file "$STATE_DIR/url" --state-dir "$STATE_DIR/cluster" "$@" \
    </dev/null >cluster.log 2>&1 &

deadline=$(($(date +%s) + START_TIMEOUT))
while :; do
    # The cluster writes the kubeconfig before it listens and the url file (atomically) once it listens.
    if [ -s url ] && [ -s kubeconfig ] && [ -s pid ]; then
        break
    fi
    if [ -s pid ] && ! kill -0 "$(cat pid)" 2>/dev/null; then
        say "the cluster exited during start-up; the end of its log ($STATE_DIR/cluster.log):"
        tail -n 40 cluster.log >&2 || true
        rm -f pid
        exit 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        say "the cluster did not write $STATE_DIR/url within $START_TIMEOUT s; stopping it. The end of its log:"
        tail -n 40 cluster.log >&2 || true
        if [ -s pid ]; then
            kill -KILL "$(cat pid)" 2>/dev/null || true
        fi
        rm -f pid
        exit 1
    fi
    sleep 0.1
done

say "cluster pid $(cat pid) listening on $(cat url); kubeconfig $STATE_DIR/kubeconfig"
