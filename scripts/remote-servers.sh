#!/usr/bin/env bash
# The real servers larder's remote-backend tests run against, on 127.0.0.1.
#
#   scripts/remote-servers.sh start   # install what is missing, (re)start everything, wait
#                                     # until each answers, write the env file
#   scripts/remote-servers.sh stop    # stop every server it started, by recorded PID
#   scripts/remote-servers.sh env     # print the env file path
#
# Then: `source "$(scripts/remote-servers.sh env)"` exports the LARDER_TEST_* URLs (and the
# AWS_* settings for the S3 server) the tests read.
#
# Servers (all bound to 127.0.0.1; each its own session via setsid, PID in $DIR/pids/):
#   memcached      21211  -m 1024, default 1 MiB item limit
#   redis          26379  no persistence
#   redis-full     26380  --maxmemory 1mb --maxmemory-policy noeviction: writes fail with OOM
#   redis-readonly 26381  replica of 26379: writes fail with READONLY, reads see 26379's keys
#   redis-tls      26382  TLS only (rediss://), a certificate for 127.0.0.1 signed by a CA made
#                         at start (tls/ca.crt; clients trust it through SSL_CERT_FILE)
#   moto (S3)      29000  bucket larder-test; path-style addressing only
#   nginx          28080  /dav/ (WebDAV rw), /bazel/ (HTTP cache rw), /ro/ (read-only)
#   buildgrid      28980  REAPI v2 cache (AC, CAS, ByteStream, Capabilities), instance ""
#   registry       25000  OCI registry (CNCF distribution 2.8, Debian's docker-registry):
#                         no auth, deletes enabled, storage in data/registry
#
# State directory: ${LARDER_SERVERS_DIR:-/tmp/larder-servers}: venv/ (moto, buildgrid),
# pids/, logs/, data/ (redis dirs, registry storage), www/ (nginx trees: www/dav, www/bazel,
# www/ro), nginx/ (nginx pid and temp files), nginx.conf, registry.yml, env. `start` wipes data/, www/ and nginx/
# (every server starts empty) but keeps venv/.
#
# Installs, when missing: Debian packages memcached redis-server redis-tools nginx
# libnginx-mod-http-dav-ext docker-registry curl python3 python3-venv (apt-get, as root or through sudo;
# the packages' own system services are kept from starting by a temporary policy-rc.d),
# and moto[server] + buildgrid from PyPI into $DIR/venv.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVERS="$HERE/servers"

DIR="$(state_dir remote-servers "${LARDER_SERVERS_DIR:-/tmp/larder-servers}")"

PIDS="$DIR/pids"
LOGS="$DIR/logs"
VENV="$DIR/venv"
ENV_FILE="$DIR/env"

# The Python the venv is made from (Debian's, so CI and developers get the same one).
PY="${LARDER_SERVERS_PYTHON:-/usr/bin/python3}"
# PyPI packages for the venv. Pinned: moto 5.2.5 and buildgrid 0.4.4 work on Python 3.11.
PIP_REQS=("moto[server]==5.2.5" "buildgrid==0.4.4")

MEMCACHED_BIN=/usr/bin/memcached
NGINX_BIN=/usr/sbin/nginx
REGISTRY_BIN=/usr/bin/docker-registry

MEMCACHED_PORT=21211
REDIS_PORT=26379
REDIS_FULL_PORT=26380
REDIS_RO_PORT=26381
REDIS_TLS_PORT=26382
S3_PORT=29000
NGINX_PORT=28080
GRPC_PORT=28980
REGISTRY_PORT=25000
OCI_REPO=larder-test
S3_BUCKET=larder-test

WAIT_SECS=30 # readiness timeout per server
STOP_SECS=5  # grace period before kill -9

# Server name -> the process name (/proc/PID/comm) its recorded PID must have; a PID whose
# process has another name (reused PID) is never signalled.
declare -A COMM=(
    [memcached]=memcached
    [redis]=redis-server
    [redis-full]=redis-server
    [redis-readonly]=redis-server
    [redis-tls]=redis-server
    [moto]=moto_server
    [nginx]=nginx
    [buildgrid]=bgd
    [registry]=docker-registry
)

log() { echo "remote-servers: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}


# ---------------------------------------------------------------------------------------
# Installation

dav_ext_module() {
    local so
    so="$(dpkg -L libnginx-mod-http-dav-ext 2>/dev/null | grep '/ngx_http_dav_ext_module\.so$' | head -n 1)" || return 1
    [ -n "$so" ] && [ -f "$so" ] && echo "$so"
}

venv_ok() {
    [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/bgd" ] && [ -x "$VENV/bin/moto_server" ] &&
        [ "$(cat "$VENV/.larder-requirements" 2>/dev/null)" = "${PIP_REQS[*]}" ] &&
        "$VENV/bin/python" -c '' 2>/dev/null
}

install_packages() {
    local need=()
    [ -x "$MEMCACHED_BIN" ] || need+=(memcached)
    command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
    [ -x "$NGINX_BIN" ] || need+=(nginx)
    dav_ext_module >/dev/null || need+=(libnginx-mod-http-dav-ext)
    [ -x "$REGISTRY_BIN" ] || need+=(docker-registry)
    command -v curl >/dev/null 2>&1 || need+=(curl)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    if ! venv_ok; then
        [ -x "$PY" ] || need+=(python3)
        # Debian's python3 has venv but no ensurepip without python3-venv.
        "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
    fi
    [ "${#need[@]}" -gt 0 ] || return 0

    log "apt-get install ${need[*]}"
    # The packages' own services (memcached :11211, redis :6379, nginx :80,
    # docker-registry :5000) are kept from starting (lib.sh).
    apt_install "${need[@]}"
    dav_ext_module >/dev/null || die "ngx_http_dav_ext_module.so not found after installing libnginx-mod-http-dav-ext"
}

install_venv() {
    venv_ok && return 0
    log "creating $VENV and installing ${PIP_REQS[*]} (about a minute)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-input --progress-bar off "${PIP_REQS[@]}" ||
        die "pip install ${PIP_REQS[*]} failed"
    echo "${PIP_REQS[*]}" >"$VENV/.larder-requirements"
}

# ---------------------------------------------------------------------------------------
# Processes

# Whether process $1 exists and is not a zombie (PID 1 may reap exited servers late).
proc_running() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    # /proc/PID/stat: "pid (comm) S ..."; comm may contain spaces or parentheses.
    stat="${stat##*) }"
    [ "${stat%% *}" != Z ]
}

# The recorded PID of $1 if that process is alive (not a zombie) and has the expected name.
live_pid() {
    local name="$1" f="$PIDS/$1.pid" pid comm
    [ -r "$f" ] || return 1
    pid="$(cat "$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    proc_running "$pid" || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
    [ "$comm" = "${COMM[$name]:-}" ] || return 1
    echo "$pid"
}

stop_one() {
    local name="$1" pid i
    if pid="$(live_pid "$name")"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_SECS * 10; i++)); do
            live_pid "$name" >/dev/null || break
            sleep 0.1
        done
        if live_pid "$name" >/dev/null; then
            log "$name (pid $pid) still running after ${STOP_SECS}s: kill -9"
            # setsid made it a process group leader: take its children (nginx workers) too.
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$PIDS/$name.pid"
}

stop_all() {
    local f
    [ -d "$PIDS" ] || return 0
    for f in "$PIDS"/*.pid; do
        [ -e "$f" ] || continue
        stop_one "$(basename "$f" .pid)"
    done
}

# launch NAME CMD...: start CMD in its own session, output to $LOGS/NAME.log.
launch() {
    local name="$1"
    shift
    setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
    local pid=$! i
    echo "$pid" >"$PIDS/$name.pid"
    # The PID is the forked shell until it has exec'd setsid and setsid the server: wait
    # for the server's process name, so live_pid (which checks it) can be trusted.
    for ((i = 0; i < 100; i++)); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "${COMM[$name]}" ] || return 0
        proc_running "$pid" || fail_server "$name" "exited at once"
        sleep 0.05
    done
    fail_server "$name" "pid $pid did not become ${COMM[$name]} within 5s"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fail_server() {
    local name="$1" msg="$2" f
    log "error: $name: $msg"
    for f in "$LOGS/$name.log" "$LOGS/$name-error.log"; do
        [ -s "$f" ] || continue
        log "last lines of $f:"
        tail -n 40 "$f" >&2
    done
    log "(the other servers are left running; scripts/remote-servers.sh stop stops them)"
    exit 1
}

# wait_until NAME CMD...: poll CMD until it succeeds; fail (with NAME's log) if NAME exits
# or WAIT_SECS pass.
wait_until() {
    local name="$1" deadline=$((SECONDS + WAIT_SECS))
    shift
    until "$@" >/dev/null 2>&1; do
        live_pid "$name" >/dev/null || fail_server "$name" "exited during start-up"
        [ "$SECONDS" -lt "$deadline" ] || fail_server "$name" "did not answer within ${WAIT_SECS}s ($*)"
        sleep 0.2
    done
}

# check NAME DESCRIPTION CMD...: a one-shot functional check.
check() {
    local name="$1" what="$2"
    shift 2
    "$@" || fail_server "$name" "check failed: $what"
}

# ---------------------------------------------------------------------------------------
# Checks

memcached_roundtrip() {
    local out
    out="$(
        exec 3<>"/dev/tcp/127.0.0.1/$MEMCACHED_PORT"
        printf 'set larder-check 0 60 2\r\nok\r\nget larder-check\r\nquit\r\n' >&3
        timeout 5 cat <&3
    )" || return 1
    [[ "$out" == *STORED*"VALUE larder-check 0 2"*ok*END* ]]
}

rcli() {
    local port="$1"
    shift
    redis-cli -h 127.0.0.1 -p "$port" "$@"
}

redis_ping() { [ "$(rcli "$1" ping 2>/dev/null)" = PONG ]; }

redis_tls_ping() {
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_TLS_PORT" --tls --cacert "$DIR/tls/ca.crt" ping 2>/dev/null)" = PONG ]
}

# A CA and a server certificate for 127.0.0.1 it signs, in $DIR/tls (made at each start).
make_tls() {
    local t="$DIR/tls"
    mkdir -p "$t"
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=larder test CA" \
        -keyout "$t/ca.key" -out "$t/ca.crt" 2>/dev/null &&
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$t/san.ext" &&
        openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial \
            -days 7 -extfile "$t/san.ext" -out "$t/server.crt" 2>/dev/null ||
        die "openssl could not make the TLS certificates in $t"
}

redis_roundtrip() {
    [ "$(rcli "$REDIS_PORT" set larder-check ok)" = OK ] && [ "$(rcli "$REDIS_PORT" get larder-check)" = ok ]
}

redis_full_rejects() {
    local out
    out="$(head -c 2000000 /dev/zero | tr '\0' x | rcli "$REDIS_FULL_PORT" -x set larder-check-big 2>&1)" || true
    [[ "$out" == *OOM* ]] || { log "redis-full: SET of 2 MB answered: ${out:0:200}"; return 1; }
}

redis_ro_rejects() {
    local out
    out="$(rcli "$REDIS_RO_PORT" set larder-check-ro x 2>&1)" || true
    [[ "$out" == *READONLY* ]] || { log "redis-readonly: SET answered: ${out:0:200}"; return 1; }
}

REPL_TOKEN=""
redis_ro_replicated() { [ "$(rcli "$REDIS_RO_PORT" get larder-check-repl 2>/dev/null)" = "$REPL_TOKEN" ]; }

http_code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

s3_ready() { [ "$(http_code "http://127.0.0.1:$S3_PORT/")" = 200 ]; }

# curl against moto: SigV4-signed (moto answers 403 to anonymous GETs of private objects)
# and never with curl's default form Content-Type (moto's Flask would swallow the body as
# form fields and store an empty object).
s3curl() {
    curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user larder-test:larder-test-secret \
        -H 'Content-Type: application/octet-stream' "$@"
}

s3_setup() {
    local base="http://127.0.0.1:$S3_PORT/$S3_BUCKET"
    s3curl -o /dev/null -X PUT "$base" || { log "moto: create bucket $S3_BUCKET failed"; return 1; }
    if ! { s3curl -o /dev/null -X PUT --data-binary 'larder s3 check' "$base/ci/larder-check" &&
        [ "$(s3curl "$base/ci/larder-check")" = 'larder s3 check' ] &&
        s3curl -o /dev/null -X DELETE "$base/ci/larder-check" &&
        [ "$(http_code --aws-sigv4 "aws:amz:us-east-1:s3" --user larder-test:larder-test-secret \
            "$base/ci/larder-check")" = 404 ]; }; then
        log "moto: object PUT/GET/DELETE in $S3_BUCKET failed"
        return 1
    fi
}

registry_ready() { [ "$(http_code "http://127.0.0.1:$REGISTRY_PORT/v2/")" = 200 ]; }

# A blob upload, a manifest by tag, and its deletion by digest: what the OCI remote does.
registry_checks() {
    local u="http://127.0.0.1:$REGISTRY_PORT/v2/larder-check" loc digest manifest c
    local cfg='{}' cfg_digest=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a
    loc="$(curl -fsS -o /dev/null -D - -X POST "$u/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')" ||
        { log "registry: POST blobs/uploads/ failed"; return 1; }
    [ -n "$loc" ] || { log "registry: no upload location"; return 1; }
    case "$loc" in http*) ;; *) loc="http://127.0.0.1:$REGISTRY_PORT$loc" ;; esac
    case "$loc" in *\?*) loc="$loc&digest=$cfg_digest" ;; *) loc="$loc?digest=$cfg_digest" ;; esac
    c="$(http_code -X PUT -H 'Content-Type: application/octet-stream' --data-binary "$cfg" "$loc")"
    [ "$c" = 201 ] || { log "registry: PUT of the blob: HTTP $c"; return 1; }
    manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"$cfg_digest\",\"size\":2},\"layers\":[{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"$cfg_digest\",\"size\":2}]}"
    c="$(http_code -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$manifest" "$u/manifests/check")"
    [ "$c" = 201 ] || { log "registry: PUT manifests/check: HTTP $c"; return 1; }
    digest="$(curl -fsS -o /dev/null -D - -I -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$u/manifests/check" |
        tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')"
    [ -n "$digest" ] || { log "registry: HEAD manifests/check: no digest"; return 1; }
    c="$(http_code -X DELETE "$u/manifests/$digest")"
    [ "$c" = 202 ] || { log "registry: DELETE manifests/<digest>: HTTP $c (deletes not enabled?)"; return 1; }
    c="$(http_code -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$u/manifests/check")"
    [ "$c" = 404 ] || { log "registry: GET of a deleted manifest: HTTP $c"; return 1; }
}

nginx_ready() { [ "$(http_code "http://127.0.0.1:$NGINX_PORT/ro/larder-ro-check")" = 200 ]; }

nginx_checks() {
    local u="http://127.0.0.1:$NGINX_PORT" c ok=0
    expect() { # expect CODE DESCRIPTION CURL-ARGS...
        local want="$1" what="$2"
        shift 2
        c="$(http_code "$@")"
        [ "$c" = "$want" ] || { log "nginx: $what: HTTP $c, expected $want"; ok=1; }
    }
    expect 201 "PUT /dav/a/b/c" -X PUT --data-binary 'larder dav check' "$u/dav/a/b/c"
    [ "$(curl -fsS "$u/dav/a/b/c")" = 'larder dav check' ] || { log "nginx: GET /dav/a/b/c: wrong body"; ok=1; }
    expect 200 "HEAD /dav/a/b/c" -I "$u/dav/a/b/c"
    expect 204 "PUT /dav/a/b/c again (overwrite)" -X PUT --data-binary 'larder dav check 2' "$u/dav/a/b/c"
    expect 207 "PROPFIND /dav/ Depth 0" -X PROPFIND -H 'Depth: 0' "$u/dav/"
    expect 207 "PROPFIND /dav/a/b/ Depth 1" -X PROPFIND -H 'Depth: 1' "$u/dav/a/b/"
    expect 200 "OPTIONS /dav/" -X OPTIONS "$u/dav/"
    expect 204 "DELETE /dav/a/b/c" -X DELETE "$u/dav/a/b/c"
    expect 404 "GET of a missing /dav/ file" "$u/dav/a/b/c"
    expect 201 "MKCOL /dav/m/" -X MKCOL "$u/dav/m/"
    expect 204 "DELETE /dav/a/" -X DELETE -H 'Depth: infinity' "$u/dav/a/"
    expect 204 "DELETE /dav/m/" -X DELETE "$u/dav/m/"
    expect 201 "PUT /bazel/cas/<hash>" -X PUT --data-binary 'larder bazel check' "$u/bazel/cas/larder-check"
    expect 200 "HEAD /bazel/cas/<hash>" -I "$u/bazel/cas/larder-check"
    expect 404 "GET of a missing /bazel/ac/<hash>" "$u/bazel/ac/larder-check"
    expect 204 "DELETE /bazel/cas/<hash>" -X DELETE "$u/bazel/cas/larder-check"
    expect 200 "GET /ro/larder-ro-check" "$u/ro/larder-ro-check"
    expect 200 "HEAD /ro/larder-ro-check" -I "$u/ro/larder-ro-check"
    expect 207 "PROPFIND /ro/ Depth 1" -X PROPFIND -H 'Depth: 1' "$u/ro/"
    expect 403 "PUT /ro/x" -X PUT --data-binary x "$u/ro/x"
    expect 403 "DELETE /ro/larder-ro-check" -X DELETE "$u/ro/larder-ro-check"
    expect 403 "MKCOL /ro/d/" -X MKCOL "$u/ro/d/"
    expect 404 "GET of a missing /ro/ file" "$u/ro/missing"
    [ "$ok" = 0 ]
}

# ---------------------------------------------------------------------------------------
# start / stop

start() {
    local t0=$SECONDS
    install_packages
    mkdir -p "$DIR" "$PIDS" "$LOGS"
    install_venv

    stop_all

    local port
    for port in $MEMCACHED_PORT $REDIS_PORT $REDIS_FULL_PORT $REDIS_RO_PORT $REDIS_TLS_PORT $S3_PORT $NGINX_PORT $GRPC_PORT $REGISTRY_PORT; do
        port_open "$port" && die "127.0.0.1:$port is in use by a process this state directory ($DIR) did not start"
    done

    # Fresh state.
    rm -rf "$DIR/data" "$DIR/www" "$DIR/nginx" "$DIR/tls" "$ENV_FILE"
    rm -f "$LOGS"/*.log
    mkdir -p "$DIR/data/redis" "$DIR/data/redis-full" "$DIR/data/redis-readonly" "$DIR/data/redis-tls" \
        "$DIR/data/registry" \
        "$DIR/www/dav" "$DIR/www/bazel/ac" "$DIR/www/bazel/cas" "$DIR/www/ro" \
        "$DIR/nginx/tmp/body" "$DIR/nginx/tmp/proxy" "$DIR/nginx/tmp/fastcgi" \
        "$DIR/nginx/tmp/uwsgi" "$DIR/nginx/tmp/scgi"
    printf 'larder read-only check\n' >"$DIR/www/ro/larder-ro-check"

    local redis_bin dav_so
    redis_bin="$(command -v redis-server)"
    dav_so="$(dav_ext_module)"
    sed -e "s|@DIR@|$DIR|g" -e "s|@DAV_EXT_MODULE@|$dav_so|g" "$SERVERS/nginx.conf" >"$DIR/nginx.conf"
    sed -e "s|@DIR@|$DIR|g" "$SERVERS/registry.yml" >"$DIR/registry.yml"

    # memcached refuses to run as root without -u.
    local mc_user=()
    [ "$(id -u)" -ne 0 ] || mc_user=(-u nobody)
    launch memcached "$MEMCACHED_BIN" -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 1024 "${mc_user[@]}"

    local redis_common=(--bind 127.0.0.1 --daemonize no --save '' --appendonly no --logfile '')
    launch redis "$redis_bin" --port "$REDIS_PORT" "${redis_common[@]}" --dir "$DIR/data/redis"
    launch redis-full "$redis_bin" --port "$REDIS_FULL_PORT" "${redis_common[@]}" --dir "$DIR/data/redis-full" \
        --maxmemory 1mb --maxmemory-policy noeviction
    launch redis-readonly "$redis_bin" --port "$REDIS_RO_PORT" "${redis_common[@]}" --dir "$DIR/data/redis-readonly" \
        --replicaof 127.0.0.1 "$REDIS_PORT" --replica-read-only yes
    make_tls
    launch redis-tls "$redis_bin" --port 0 --tls-port "$REDIS_TLS_PORT" "${redis_common[@]}" \
        --dir "$DIR/data/redis-tls" --tls-cert-file "$DIR/tls/server.crt" \
        --tls-key-file "$DIR/tls/server.key" --tls-ca-cert-file "$DIR/tls/ca.crt" --tls-auth-clients no

    launch moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT"

    "$NGINX_BIN" -t -q -p "$DIR/nginx/" -e "$LOGS/nginx-error.log" -c "$DIR/nginx.conf" 2>"$LOGS/nginx.log" ||
        fail_server nginx "nginx -t rejected $DIR/nginx.conf"
    launch nginx "$NGINX_BIN" -p "$DIR/nginx/" -e "$LOGS/nginx-error.log" -c "$DIR/nginx.conf" -g 'daemon off;'

    launch buildgrid "$VENV/bin/bgd" server start "$SERVERS/buildgrid.yml"

    launch registry "$REGISTRY_BIN" serve "$DIR/registry.yml"

    # Readiness and checks.
    wait_until memcached memcached_roundtrip

    wait_until redis redis_ping "$REDIS_PORT"
    check redis "SET/GET" redis_roundtrip
    wait_until redis-full redis_ping "$REDIS_FULL_PORT"
    check redis-full "a 2 MB SET fails with OOM" redis_full_rejects
    wait_until redis-readonly redis_ping "$REDIS_RO_PORT"
    check redis-readonly "SET fails with READONLY" redis_ro_rejects
    REPL_TOKEN="$$-$RANDOM"
    rcli "$REDIS_PORT" set larder-check-repl "$REPL_TOKEN" >/dev/null
    wait_until redis-readonly redis_ro_replicated
    wait_until redis-tls redis_tls_ping

    wait_until moto s3_ready
    check moto "bucket $S3_BUCKET and an object round trip" s3_setup

    wait_until nginx nginx_ready
    check nginx "WebDAV / HTTP behaviour" nginx_checks

    wait_until buildgrid port_open "$GRPC_PORT"
    check buildgrid "REAPI round trips (scripts/servers/check_reapi.py)" \
        "$VENV/bin/python" "$SERVERS/check_reapi.py" --target "127.0.0.1:$GRPC_PORT" --instance "" --wait 20

    wait_until registry registry_ready
    check registry "blob upload, manifest by tag, delete by digest" registry_checks

    # Leave the stores empty (the check keys replicate to 26381 too).
    rcli "$REDIS_PORT" del larder-check larder-check-repl >/dev/null
    rm -rf "$DIR/data/registry/docker/registry/v2/repositories/larder-check"
    (
        exec 3<>"/dev/tcp/127.0.0.1/$MEMCACHED_PORT"
        printf 'delete larder-check\r\nquit\r\n' >&3
        timeout 5 cat <&3 >/dev/null
    ) || true

    local qdir
    qdir="$(printf '%q' "$DIR")"
    cat >"$ENV_FILE.tmp" <<EOF
# Written by scripts/remote-servers.sh start; source it.
export LARDER_TEST_MEMCACHED=memcached://127.0.0.1:$MEMCACHED_PORT
export LARDER_TEST_REDIS=redis://127.0.0.1:$REDIS_PORT/0
export LARDER_TEST_REDIS_FULL=redis://127.0.0.1:$REDIS_FULL_PORT/0
export LARDER_TEST_REDIS_READONLY=redis://127.0.0.1:$REDIS_RO_PORT/0
export LARDER_TEST_REDIS_TLS=rediss://127.0.0.1:$REDIS_TLS_PORT/0
export LARDER_TEST_REDIS_TLS_CA=$qdir/tls/ca.crt
export LARDER_TEST_S3=s3://$S3_BUCKET/ci
export LARDER_TEST_WEBDAV=webdav://127.0.0.1:$NGINX_PORT/dav
export LARDER_TEST_HTTP=http://127.0.0.1:$NGINX_PORT/bazel
export LARDER_TEST_HTTP_READONLY=http://127.0.0.1:$NGINX_PORT/ro
export LARDER_TEST_GRPC=grpc://127.0.0.1:$GRPC_PORT
export LARDER_TEST_OCI=oci://127.0.0.1:$REGISTRY_PORT/$OCI_REPO
export LARDER_TEST_MEMCACHED_BIN=$MEMCACHED_BIN
export LARDER_TEST_REDIS_BIN=$redis_bin
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ACCESS_KEY_ID=larder-test
export AWS_SECRET_ACCESS_KEY=larder-test-secret
export AWS_REGION=us-east-1
export LARDER_SERVERS_DIR=$qdir
EOF
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "all servers up in $((SECONDS - t0))s; env file: $ENV_FILE"
}

case "${1:-}" in
start) start ;;
stop) stop_all ;;
env) echo "$ENV_FILE" ;;
*)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
