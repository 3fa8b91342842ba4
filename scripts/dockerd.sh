#!/usr/bin/env bash
# A private Docker engine for larder's Docker tests and benchmarks, with base images made
# without any registry.
#
#   scripts/dockerd.sh start    # install docker.io + debootstrap if missing, start dockerd,
#                               # wait until it answers, build the base images if missing,
#                               # write the env file
#   scripts/dockerd.sh stop     # stop dockerd by its recorded PID
#   scripts/dockerd.sh fresh    # a fresh runner's engine: delete the whole build cache
#                               # (cache mounts included) and restart dockerd; images stay
#   scripts/dockerd.sh env      # print the env file path
#
# Then `source "$(scripts/dockerd.sh env)"` exports DOCKER_HOST (this engine's socket),
# DOCKER_BUILDKIT=1, LARDER_DOCKER (Debian's docker client, which has BuildKit built in; a
# newer client without the buildx plugin cannot build with BuildKit) and the image names:
#   LARDER_DOCKER_BASE     Debian bookworm (debootstrap --variant=minbase, plus gcc, g++,
#                          libc6-dev, ca-certificates) with the host's CA bundle: the
#                          runtime image, and what the builder image starts from
#   LARDER_DOCKER_BUILDER  that plus the host's Rust toolchain (rustc, cargo, the host
#                          target's standard library; no docs, sources or other targets) in
#                          /opt/rust, cargo on PATH: the `--base` of generated Dockerfiles
# The builder image is tagged with the toolchain's version, so a toolchain update makes a
# new one; both are kept in the engine's data root between runs on one machine and made
# again (about two minutes) on a fresh one. No registry is contacted: Debian's packages
# come from the host's apt mirror.
#
# dockerd runs as its own session (setsid) with everything under the state directory
# ${LARDER_DOCKER_DIR:-/tmp/larder-docker}: data/ (images, build cache), exec/, docker.sock,
# dockerd.pid, dockerd.log, rootfs/ (debootstrap, removed once imported), env. It does not
# touch the machine's own Docker service (if any) or /var/run/docker.sock.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR="$(state_dir dockerd "${LARDER_DOCKER_DIR:-/tmp/larder-docker}")"

SOCK="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"
ENV_FILE="$DIR/env"
# Debian's client (20.10): BuildKit built in. /usr/local/bin/docker may be a newer client
# that needs the buildx plugin for BuildKit builds.
DOCKER=/usr/bin/docker
SUITE=bookworm
MIRROR="${LARDER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# The packages beyond minbase: C and C++ compilers as on the host (build-script runs are
# keyed by both, so an image without g++ misses every run that the host stored).
PACKAGES=gcc,g++,libc6-dev,ca-certificates
# The tag names the recipe, so a changed package list makes a new image.
RECIPE="$(echo "$SUITE $PACKAGES" | sha256sum | cut -c1-8)"
BASE_IMAGE=larder-ci/debian:$SUITE-$RECIPE
WAIT_SECS=60

log() { echo "dockerd: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}


docker_() { DOCKER_HOST="unix://$SOCK" "$DOCKER" "$@"; }

install_packages() {
    local need=()
    [ -x /usr/sbin/dockerd ] && [ -x "$DOCKER" ] || need+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
    [ "${#need[@]}" -gt 0 ] || return 0
    log "apt-get install ${need[*]}"
    # The package's own docker service is kept from starting (lib.sh).
    apt_install "${need[@]}"
}

live_pid() {
    local pid
    [ -r "$PIDFILE" ] || return 1
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 1
    echo "$pid"
}

stop() {
    local pid i
    if pid="$(live_pid)"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            live_pid >/dev/null || break
            sleep 0.1
        done
        if live_pid >/dev/null; then
            log "dockerd (pid $pid) still running after 15s: kill -9"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped dockerd (pid $pid)"
    fi
    rm -f "$PIDFILE"
}

start_daemon() {
    live_pid >/dev/null && docker_ info >/dev/null 2>&1 && return 0
    stop
    mkdir -p "$DIR/data" "$DIR/exec"
    rm -f "$SOCK"
    log "starting dockerd (data root $DIR/data)"
    # The default bridge is kept (docker run works), but builds in the tests use the
    # host's network to reach the servers on 127.0.0.1.
    setsid /usr/sbin/dockerd --data-root "$DIR/data" --exec-root "$DIR/exec" \
        -H "unix://$SOCK" --pidfile "$PIDFILE" >"$DIR/dockerd.log" 2>&1 </dev/null &
    local i
    for ((i = 0; i < WAIT_SECS * 10; i++)); do
        if docker_ info >/dev/null 2>&1; then
            log "dockerd up (pid $(cat "$PIDFILE")), $("$DOCKER" --version)"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$DIR/dockerd.log" >&2 || true
    die "dockerd did not answer within ${WAIT_SECS}s (log: $DIR/dockerd.log)"
}

# Unmounts what debootstrap may have left mounted under the rootfs, then removes it.
remove_rootfs() {
    local root="$DIR/rootfs" m
    [ -e "$root" ] || return 0
    for m in proc sys dev/pts dev; do
        mountpoint -q "$root/$m" 2>/dev/null && as_root umount -l "$root/$m" || true
    done
    as_root rm -rf --one-file-system "$root"
}

base_image() {
    docker_ image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
    local root="$DIR/rootfs" t0=$SECONDS
    remove_rootfs
    log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
    as_root debootstrap --variant=minbase --include="$PACKAGES" \
        "$SUITE" "$root" "$MIRROR" >"$DIR/debootstrap.log" 2>&1 ||
        { tail -n 20 "$DIR/debootstrap.log" >&2; die "debootstrap failed (log: $DIR/debootstrap.log)"; }
    # The host's CA bundle: the machine may reach crates.io through a proxy with its own CA.
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        as_root cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    fi
    as_root rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
    log "docker import $BASE_IMAGE"
    as_root tar -C "$root" --one-file-system -c . | docker_ import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    remove_rootfs
    log "$BASE_IMAGE made in $((SECONDS - t0))s"
}

# The builder image's tag: the host toolchain's rustc version and the base recipe.
builder_image() {
    local version
    version="$(rustc --version | awk '{ print $2 }')"
    echo "larder-ci/rust:$version-$RECIPE"
}

make_builder() {
    local image ctx sysroot host t0=$SECONDS
    image="$(builder_image)"
    docker_ image inspect "$image" >/dev/null 2>&1 && return 0
    sysroot="$(rustc --print sysroot)"
    host="$(rustc -vV | sed -n 's/^host: //p')"
    ctx="$DIR/builder-context"
    rm -rf "$ctx"
    mkdir -p "$ctx/rust/bin" "$ctx/rust/lib/rustlib"
    # rustc, cargo, rustdoc and their libraries; the host target's standard library only.
    cp -a "$sysroot/bin/rustc" "$sysroot/bin/rustdoc" "$ctx/rust/bin/"
    # cargo beside rustc (a rustup toolchain), else the one on PATH if it is not rustup's proxy.
    if [ -x "$sysroot/bin/cargo" ]; then
        cp -a "$sysroot/bin/cargo" "$ctx/rust/bin/"
    else
        cp -aL "$(command -v cargo)" "$ctx/rust/bin/"
    fi
    cp -a "$sysroot/lib/"*.so* "$ctx/rust/lib/"
    cp -a "$sysroot/lib/rustlib/$host" "$ctx/rust/lib/rustlib/"
    [ -d "$sysroot/lib/rustlib/etc" ] && cp -a "$sysroot/lib/rustlib/etc" "$ctx/rust/lib/rustlib/"
    [ -d "$sysroot/libexec" ] && cp -a "$sysroot/libexec" "$ctx/rust/"
    cat >"$ctx/Dockerfile" <<EOF
FROM $BASE_IMAGE
COPY rust /opt/rust
ENV PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN rustc --version && cargo --version
EOF
    log "building $image from $sysroot"
    DOCKER_BUILDKIT=1 docker_ build -q -t "$image" "$ctx" >/dev/null ||
        die "building $image failed"
    rm -rf "$ctx"
    log "$image made in $((SECONDS - t0))s"
}

start() {
    mkdir -p "$DIR"
    install_packages
    start_daemon
    base_image
    make_builder
    local qdir
    qdir="$(printf '%q' "$DIR")"
    cat >"$ENV_FILE.tmp" <<EOF
# Written by scripts/dockerd.sh start; source it.
export DOCKER_HOST=unix://$qdir/docker.sock
export DOCKER_BUILDKIT=1
export LARDER_DOCKER=$DOCKER
export LARDER_DOCKER_BASE=$BASE_IMAGE
export LARDER_DOCKER_BUILDER=$(builder_image)
export LARDER_DOCKER_DIR=$qdir
EOF
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "ready; env file: $ENV_FILE"
}

# `docker builder prune -af`, then a new dockerd: Debian's dockerd 20.10 (BuildKit 0.8) was
# seen to hang its next build forever after a prune, in a scheduler wait; a fresh runner
# has a fresh daemon anyway.
fresh() {
    start_daemon
    docker_ builder prune -af >/dev/null
    stop
    start_daemon
}

case "${1:-}" in
start) start ;;
stop) stop ;;
fresh) fresh ;;
env) echo "$ENV_FILE" ;;
*)
    echo "usage: $0 start|stop|fresh|env" >&2
    exit 2
    ;;
esac
