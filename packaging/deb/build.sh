#!/usr/bin/env bash
# packaging/deb/build.sh [OUTDIR]: builds seedpart_<version>_<arch>.deb into OUTDIR (default
# $CARGO_TARGET_DIR/packages, else target/packages) and prints its path as the last line of
# stdout; everything else goes to stderr.
#
# The payload is exactly `make install DESTDIR=... PREFIX=/usr` (so the deb, the rpm and a
# plain `make install` never drift apart) plus /usr/share/doc/seedpart and the lintian
# overrides, with the binary's .comment section stripped as dh_strip does. The control fields come
# from this directory's control and changelog through dpkg's own tools: dpkg-shlibdeps for
# Depends, dpkg-gencontrol for Version and Installed-Size. No debhelper, no dpkg-buildpackage:
# they would want a whole source package and a debian/rules around a cargo build.
# Needs dpkg-dev, binutils and jq (packaging/crate-licenses.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
say() { echo "deb/build.sh: $*" >&2; }

# Cargo reads a relative CARGO_TARGET_DIR against its working directory: pin it to the
# caller's before anything changes directory.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"
    export CARGO_TARGET_DIR
fi
target="${CARGO_TARGET_DIR:-$top/target}"
outdir="$(realpath -m "${1:-$target/packages}")"

for tool in dpkg-deb dpkg-shlibdeps dpkg-gencontrol dpkg-parsechangelog jq make strip; do
    command -v "$tool" >/dev/null 2>&1 || { say "$tool is missing (apt-get install dpkg-dev binutils jq make)"; exit 1; }
done

cd "$top"
cargo_version="$(cargo metadata --locked --offline --no-deps --format-version 1 |
    jq -r '.packages[] | select(.name == "seedpart") | .version')"
version="$(dpkg-parsechangelog -l "$here/changelog" -S Version)"
if [ "${version%-*}" != "$cargo_version" ]; then
    say "packaging/deb/changelog is at $version but Cargo.toml at $cargo_version: add a changelog entry (dch -v $cargo_version-1)"
    exit 1
fi
# Every timestamp in the package is the changelog's, so two builds give the same bytes.
SOURCE_DATE_EPOCH="$(dpkg-parsechangelog -l "$here/changelog" -S Timestamp)"
export SOURCE_DATE_EPOCH

mkdir -p "$target" "$outdir"
work="$(mktemp -d "$target/deb.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The layout dpkg-shlibdeps and dpkg-gencontrol expect: debian/control and debian/changelog,
# and the package's tree in debian/<package>.
mkdir -p "$work/debian"
cp "$here/control" "$here/changelog" "$work/debian/"
stage="$work/debian/seedpart"

make -C "$top" --no-print-directory install DESTDIR="$stage" PREFIX=/usr >&2
# What dh_strip does beyond cargo's strip: the .comment and .note sections are only the
# toolchain's signature. The build-id note stays. (The rpm's brp-strip-comment-note does the
# same, so both packages carry the same binary.)
strip --remove-section=.comment --remove-section=.note "$stage/usr/bin/seedpart"

doc="$stage/usr/share/doc/seedpart"
install -d -m 0755 "$doc"
"$top/packaging/copyright.sh" >"$doc/copyright"
chmod 0644 "$doc/copyright"
gzip -9n <"$here/changelog" >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"
if [ -f "$here/lintian-overrides" ]; then
    install -D -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/seedpart"
fi

install -d -m 0755 "$stage/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$stage/DEBIAN/$script"
done
# Everything under /etc is a conffile, as dh_installdeb would have it.
(cd "$stage" && find etc -type f -printf '/%p\n' | LC_ALL=C sort) >"$stage/DEBIAN/conffiles"
chmod 0644 "$stage/DEBIAN/conffiles"

(
    cd "$work"
    dpkg-shlibdeps -Tdebian/substvars debian/seedpart/usr/bin/seedpart
    # Nothing for ${misc:Depends}: init-system-helpers (deb-systemd-helper) is essential.
    echo 'misc:Depends=' >>debian/substvars
    dpkg-gencontrol -pseedpart -Pdebian/seedpart -Tdebian/substvars -fdebian/files
) >&2
# Conffiles' sums live in the conffiles database, so /etc stays out, as dh_md5sums does.
(cd "$stage" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"

# mktemp made the tree's root 0700; a umask may have narrowed the rest.
chmod 0755 "$stage"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -newermt "@$SOURCE_DATE_EPOCH" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

arch="$(sed -n 's/^Architecture: //p' "$stage/DEBIAN/control")"
deb="seedpart_${version#*:}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$work/$deb" >&2
# A rename, so a concurrent reader never sees half a package.
mv -f "$work/$deb" "$outdir/$deb"
say "built $outdir/$deb"
echo "$outdir/$deb"
