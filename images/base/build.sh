#!/bin/sh
# Build the offline Debian base image (default tag orch/debian:bookworm) with no
# container registry: debootstrap a minimal bookworm root from the Debian mirror that
# apt already uses, slim it like debian:bookworm-slim, and `docker import` it.
#
# Why: `docker pull debian:bookworm-slim` fails on machines that reach only package
# registries. Debian's mirror is reachable, so we make the same thing from it.
#
# The debootstrap download is kept as a tarball under the cache dir
# ($ORCH_IMAGE_CACHE, default images/.cache): once it exists, rebuilding the base
# needs no mirror at all.
#
# Usage: images/base/build.sh [TAG]      (root; needs debootstrap, docker, tar)
# Env:   ORCH_IMAGE_CACHE   cache dir for the debootstrap tarball
#        ORCH_DEBIAN_MIRROR mirror URL (default: the one in apt's sources)
# The suite and package list are fixed here on purpose: the image label
# orch.image.context-hash is the sha256 of this file, so changing them marks the
# base (and anything built on it) stale.
set -eu

TAG=${1:-orch/debian:bookworm}
SUITE=bookworm
# tini: PID 1 that forwards signals and reaps zombies; procps: `ps` for debugging
# and for tools that look at processes; ca-certificates: TLS to model providers.
INCLUDE=ca-certificates,tini,procps
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${ORCH_IMAGE_CACHE:-$(dirname "$HERE")/.cache}
TARBALL=$CACHE/debootstrap-$SUITE-minbase-$(printf %s "$INCLUDE" | sha256sum | cut -c1-12).tgz
HASH=$(sha256sum "$HERE/build.sh" | cut -c1-16)

say() { printf 'base: %s\n' "$*" >&2; }
die() { printf 'base: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap needs it)"
command -v debootstrap >/dev/null || PATH=$PATH:/usr/sbin:/sbin
command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install -y debootstrap"
command -v docker >/dev/null || die "docker CLI missing"

# The mirror apt already uses for $SUITE (one-line .list and deb822 .sources).
apt_mirror() {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk -v s="$SUITE" '$1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) == s) { print $i; exit }
        }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" } {
            uris = ""; suites = ""; types = ""; enabled = "yes"
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^#/ || $i !~ /:/) continue
                key = tolower(substr($i, 1, index($i, ":") - 1))
                val = substr($i, index($i, ":") + 1)
                if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "types") types = val
                else if (key == "enabled") enabled = tolower(val)
            }
            if (enabled ~ /no/ || (" " types " ") !~ / deb /) next
            n = split(suites, ss, " ")
            for (j = 1; j <= n; j++) if (ss[j] == s) { split(uris, us, " "); print us[1]; exit }
        }' "$f"
    done
}
MIRROR=${ORCH_DEBIAN_MIRROR:-$(apt_mirror | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/orch-base.XXXXXX")
cleanup() {
    # debootstrap unmounts what it mounted, but be sure before deleting the tree.
    for m in proc sys dev/pts; do umount "$WORK/root/$m" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
mkdir -p "$CACHE" "$WORK/root"

if [ ! -s "$TARBALL" ]; then
    say "downloading $SUITE ($INCLUDE) from $MIRROR into $TARBALL"
    debootstrap --variant=minbase --include="$INCLUDE" --make-tarball="$WORK/dl.tgz" \
        "$SUITE" "$WORK/dl" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap download failed"; }
    mv "$WORK/dl.tgz" "$TARBALL"
else
    say "using cached $TARBALL (no mirror needed)"
fi

say "unpacking root"
debootstrap --variant=minbase --include="$INCLUDE" --unpack-tarball="$TARBALL" \
    "$SUITE" "$WORK/root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

say "slimming"
R=$WORK/root
# Same trims as debian:bookworm-slim: no docs, man pages, locales; and keep it so
# for packages installed later in derived images.
cat >"$R/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CFG
cat >"$R/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
printf 'Acquire::Languages "none";\n' >"$R/etc/apt/apt.conf.d/docker-no-languages"
printf 'APT::AutoRemove::SuggestsImportant "false";\n' >"$R/etc/apt/apt.conf.d/docker-autoremove-suggests"
find "$R/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$R/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$R"/usr/share/man/* "$R"/usr/share/info/* "$R"/usr/share/groff/* \
    "$R"/usr/share/lintian/* "$R"/usr/share/locale/* \
    "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb \
    "$R"/var/lib/apt/lists/* "$R"/var/cache/debconf/*-old "$R"/var/lib/dpkg/*-old \
    "$R"/tmp/* "$R"/var/tmp/* "$R"/root/.bash_history
find "$R/var/log" -type f -exec truncate -s 0 {} +
# Docker provides these at run time.
rm -rf "${R:?}"/dev/* "${R:?}"/proc/* "${R:?}"/sys/*
: >"$R/etc/machine-id"
: >"$R/etc/resolv.conf"
rm -f "$R/etc/hostname"
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$R/etc/apt/sources.list"

say "importing as $TAG"
VERSION=$(cat "$R/etc/debian_version")
tar --numeric-owner --one-file-system -C "$R" -cf - . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL org.opencontainers.image.version=$VERSION" \
    --change "LABEL orch.image.context-hash=$HASH" \
    --change "LABEL org.opencontainers.image.description=\"debootstrap minbase $SUITE, $INCLUDE\"" \
    -m "orch base: debootstrap --variant=minbase $SUITE" - "$TAG" >/dev/null
say "done: $TAG ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)"
