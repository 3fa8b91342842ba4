# Shell helpers shared by the scripts that install and run the test servers
# (scripts/remote-servers.sh, scripts/dockerd.sh). Source it; it defines functions only.

# as_root CMD...: runs CMD as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# state_dir NAME PATH: PATH made absolute, without a trailing slash; exits 2 (naming the
# script NAME) if that leaves `/`.
state_dir() {
    local name="$1" dir="$2"
    case "$dir" in
    /*) ;;
    *) dir="$PWD/$dir" ;;
    esac
    dir="${dir%/}"
    [ -n "$dir" ] || { echo "$name: refusing to use / as the state directory" >&2; exit 2; }
    echo "$dir"
}

# apt_install PKG...: apt-get update and install, keeping the packages' own system
# services (memcached :11211, redis :6379, nginx :80, docker) from being started by their
# postinst: a policy-rc.d for the duration of the install, unless one exists already.
apt_install() {
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        made_policy=1
        trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null
    if [ -n "$made_policy" ]; then
        as_root rm -f "$policy"
        trap - EXIT
    fi
}
