#!/bin/sh
# Starts the Kubernetes API emulator in the background for modules/local/cluster (create-time provisioner).
#
# Environment: EMULATOR_BIN, STATE_DIR, LISTEN, DETACH (true|false), START_TIMEOUT (seconds), CLUSTER_NAME,
# EMULATOR_ARGS (extra arguments, already quoted for sh).
# Writes to STATE_DIR: kubeconfig and url (by the emulator), pid (the emulator's process id), emulator.log.
# Exits non-zero, with the end of the emulator's log, if the emulator does not come up within START_TIMEOUT;
# a process it started is then stopped again.
set -eu

say() { echo "local/cluster[$CLUSTER_NAME]: $*" >&2; }

mkdir -p "$STATE_DIR"
cd "$STATE_DIR"

if [ -s pid ] && kill -0 "$(cat pid)" 2>/dev/null; then
    say "process $(cat pid) recorded in $STATE_DIR/pid is still running; refusing to start a second emulator there"
    exit 1
fi
rm -f url url.partial kubeconfig pid emulator.log

if [ ! -x "$EMULATOR_BIN" ]; then
    say "emulator binary $EMULATOR_BIN is missing or not executable (build it with: cargo build -p kube-emulator)"
    exit 1
fi

eval "set -- $EMULATOR_ARGS"

# The emulator must outlive this shell and Terraform: it gets a session of its own (setsid, unless
# DETACH=false), ignores SIGHUP (nohup), and holds none of Terraform's pipes (all three standard streams are
# redirected), so Terraform neither waits for it nor takes it down when it exits. The inner shell records its
# own pid and then execs the emulator, so the recorded pid is the emulator's whether or not setsid forks.
launch=""
if [ "$DETACH" = "true" ]; then
    launch="setsid"
fi
$launch nohup /bin/sh -c 'echo $$ >pid; exec "$@"' kube-emulator \
    "$EMULATOR_BIN" --tls --listen "$LISTEN" \
    --kubeconfig "$STATE_DIR/kubeconfig" --port-file "$STATE_DIR/url" "$@" \
    </dev/null >emulator.log 2>&1 &

deadline=$(($(date +%s) + START_TIMEOUT))
while :; do
    # The emulator writes the kubeconfig before it listens and the url file (atomically) once it listens.
    if [ -s url ] && [ -s kubeconfig ] && [ -s pid ]; then
        break
    fi
    if [ -s pid ] && ! kill -0 "$(cat pid)" 2>/dev/null; then
        say "the emulator exited during start-up; the end of its log ($STATE_DIR/emulator.log):"
        tail -n 40 emulator.log >&2 || true
        rm -f pid
        exit 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        say "the emulator did not write $STATE_DIR/url within $START_TIMEOUT s; stopping it. The end of its log:"
        tail -n 40 emulator.log >&2 || true
        if [ -s pid ]; then
            kill -KILL "$(cat pid)" 2>/dev/null || true
        fi
        rm -f pid
        exit 1
    fi
    sleep 0.1
done

say "emulator pid $(cat pid) listening on $(cat url); kubeconfig $STATE_DIR/kubeconfig"
