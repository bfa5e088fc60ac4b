#!/usr/bin/env bash
# Builds a Crowsnest container image WITHOUT a registry or base image: a root filesystem holding
# our compiled binaries, exactly the shared libraries `ldd` lists for them (plus the dynamic
# loader), CA certificates and a passwd entry, turned into an image with `docker import`. The
# image metadata the Dockerfile would set (entrypoint, env, user, volume, HEALTHCHECK using
# `crowsnest healthcheck`) is applied with `docker import --change`.
#
# Usage:
#   cargo build --release -p crowsnest -p crowsnest-collector
#   deploy/build-offline-image.sh [--tag crowsnest:offline] [--bin PATH]... [--no-strip] [--test]
#
#   --bin PATH   binary to include (repeatable). Default: crowsnest and crowsnest-collector from
#                $CARGO_TARGET_DIR (or ./target), release if built, else debug.
#   --tag TAG    image tag (default crowsnest:offline).
#   --no-strip   keep debug info (default: strip copies of the binaries when `strip` exists).
#   --test       afterwards run the image as a store and wait until Docker reports it healthy.
#
# The image runs as uid 10001 like the Dockerfile's; give the collector `--user root` (or
# `--group-add <docker gid>`) to read /var/run/docker.sock. Libraries come from this host, so
# the image runs on any Linux/amd64 Docker Engine regardless of the host's distribution.
set -euo pipefail

tag=crowsnest:offline
strip_bins=1
run_test=0
bins=()
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) tag=$2; shift 2 ;;
        --bin) bins+=("$2"); shift 2 ;;
        --no-strip) strip_bins=0; shift ;;
        --test) run_test=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
if [ ${#bins[@]} -eq 0 ]; then
    target=${CARGO_TARGET_DIR:-$repo/target}
    for name in crowsnest crowsnest-collector; do
        for profile in release debug; do
            if [ -x "$target/$profile/$name" ]; then bins+=("$target/$profile/$name"); break; fi
        done
    done
fi
[ ${#bins[@]} -gt 0 ] || { echo "no binaries found; run cargo build first or pass --bin" >&2; exit 1; }
for b in "${bins[@]}"; do
    [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 1; }
done
if ! printf '%s\n' "${bins[@]}" | grep -q '/crowsnest$'; then
    echo "the crowsnest binary is required (it provides the HEALTHCHECK command)" >&2
    exit 1
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{usr/local/bin,etc/ssl/certs,etc/crowsnest,tmp,var/lib/crowsnest}
# Tar entries are root-owned (the script need not run as root), so the data folder is made
# writable for the image's uid 10001 the way /tmp is.
chmod 1777 "$rootfs/tmp" "$rootfs/var/lib/crowsnest"

# Copies a file (following symlinks) to the same path inside the root filesystem, and keeps the
# symlink name as well, so the loader finds libraries by either name.
copy_path() {
    local src=$1 real
    real=$(readlink -f "$src")
    mkdir -p "$rootfs$(dirname "$real")" "$rootfs$(dirname "$src")"
    [ -e "$rootfs$real" ] || cp -a "$real" "$rootfs$real"
    if [ "$src" != "$real" ] && [ ! -e "$rootfs$src" ]; then
        ln -s "$real" "$rootfs$src"
    fi
}

for b in "${bins[@]}"; do
    dest="$rootfs/usr/local/bin/$(basename "$b")"
    cp "$b" "$dest"
    if [ "$strip_bins" = 1 ] && command -v strip >/dev/null; then strip --strip-debug "$dest"; fi
    # `ldd` prints "name => /path (addr)" for libraries and "/path (addr)" for the loader.
    while read -r lib; do
        copy_path "$lib"
    done < <(ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
done

# glibc >= 2.34 has the files/dns NSS modules built in; keep the host's nsswitch.conf if any.
[ -f /etc/nsswitch.conf ] && cp /etc/nsswitch.conf "$rootfs/etc/"
# CA certificates for https probes, Slack and SMTP over TLS.
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
else
    echo "warning: /etc/ssl/certs/ca-certificates.crt missing; TLS verification will fail" >&2
fi
cp "$repo/crowsnest.example.yml" "$rootfs/etc/crowsnest/crowsnest.yml"
printf 'root:x:0:0:root:/root:/sbin/nologin\ncrowsnest:x:10001:10001:crowsnest:/var/lib/crowsnest:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\ncrowsnest:x:10001:\n' >"$rootfs/etc/group"

tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -c . |
    docker import \
        --change 'ENV CROWSNEST_LISTEN=0.0.0.0:9300 CROWSNEST_DATA_DIR=/var/lib/crowsnest CROWSNEST_CONFIG=/etc/crowsnest/crowsnest.yml SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'WORKDIR /var/lib/crowsnest' \
        --change 'USER 10001:10001' \
        --change 'VOLUME ["/var/lib/crowsnest"]' \
        --change 'EXPOSE 9300' \
        --change 'HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/crowsnest", "healthcheck", "http://127.0.0.1:9300/ready"]' \
        --change 'ENTRYPOINT ["/usr/local/bin/crowsnest"]' \
        --change 'CMD ["up"]' \
        --message "crowsnest offline image from $(printf '%s ' "${bins[@]}")" \
        - "$tag" >/dev/null
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"

if [ "$run_test" = 1 ]; then
    name=crowsnest-offline-selftest-$$
    cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$rootfs"; }
    trap cleanup EXIT
    docker run -d --name "$name" "$tag" store >/dev/null
    status=starting
    for _ in $(seq 1 60); do
        status=$(docker inspect -f '{{.State.Health.Status}}' "$name")
        [ "$status" = healthy ] && break
        [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] || break
        sleep 1
    done
    if [ "$status" != healthy ]; then
        echo "self-test FAILED: health is '$status'" >&2
        docker logs "$name" >&2 || true
        docker inspect -f '{{json .State.Health}}' "$name" >&2 || true
        exit 1
    fi
    echo "self-test: $tag runs and reports healthy"
fi
