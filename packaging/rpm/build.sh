#!/usr/bin/env bash
# packaging/rpm/build.sh [OUTDIR]: builds seedpart-<version>-1.<arch>.rpm into OUTDIR (default
# $CARGO_TARGET_DIR/packages, else target/packages) and prints its path as the last line of
# stdout; everything else goes to stderr.
#
# `make build man` runs first, outside rpmbuild, so the spec's %install (`make install`) finds
# the binary and pages already built. rpmbuild works in a private _topdir; its
# SOURCE_DATE_EPOCH is the spec's changelog date, so two builds give the same payload.
# Needs rpm (rpmbuild), jq and make.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
say() { echo "rpm/build.sh: $*" >&2; }

# Cargo reads a relative CARGO_TARGET_DIR against its working directory: pin it to the
# caller's before anything changes directory.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"
    export CARGO_TARGET_DIR
fi
target="${CARGO_TARGET_DIR:-$top/target}"
outdir="$(realpath -m "${1:-$target/packages}")"

for tool in rpmbuild jq make; do
    command -v "$tool" >/dev/null 2>&1 || { say "$tool is missing (apt-get install rpm jq make)"; exit 1; }
done

cd "$top"
version="$(cargo metadata --locked --offline --no-deps --format-version 1 |
    jq -r '.packages[] | select(.name == "seedpart") | .version')"
latest="$(sed -n '/^%changelog/,${/^\* /{s/.* - //p;q}}' "$here/seedpart.spec")"
if [ "${latest%-*}" != "$version" ]; then
    say "seedpart.spec's %changelog is at $latest but Cargo.toml at $version: add an entry"
    exit 1
fi

# The license text of seedpart itself: the tree's LICENSE when it has one, else the identical
# Apache-2.0 text every Debian host carries.
license=""
for candidate in "$top/LICENSE" "$top/LICENSE-APACHE" /usr/share/common-licenses/Apache-2.0; do
    if [ -f "$candidate" ]; then
        license="$candidate"
        break
    fi
done
[ -n "$license" ] || { say "no Apache-2.0 license text (LICENSE in the tree)"; exit 1; }

mkdir -p "$target" "$outdir"
work="$(mktemp -d "$target/rpm.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/SOURCES" "$work/BUILD" "$work/RPMS"

make -C "$top" --no-print-directory build man >&2
"$top/packaging/copyright.sh" >"$work/SOURCES/copyright"
cp "$license" "$work/SOURCES/LICENSE"
spdx="$("$top/packaging/crate-licenses.sh" spdx)"

# --nodeps: BuildRequires are checked against the rpm database, empty on a Debian host.
rpmbuild -bb --nodeps "$here/seedpart.spec" \
    --define "_topdir $work" \
    --define "seedpart_version $version" \
    --define "seedpart_srcdir $top" \
    --define "seedpart_license $spdx" \
    --define "source_date_epoch_from_changelog 1" \
    --define "clamp_mtime_to_source_date_epoch 1" \
    --define "use_source_date_epoch_as_buildtime 1" \
    --define "_buildhost reproducible" >&2

mapfile -t rpms < <(find "$work/RPMS" -type f -name 'seedpart-*.rpm')
[ "${#rpms[@]}" -eq 1 ] || { say "rpmbuild made ${#rpms[@]} packages, want 1"; exit 1; }
name="$(basename "${rpms[0]}")"
# A rename, so a concurrent reader never sees half a package.
mv -f "${rpms[0]}" "$work/$name"
cp "$work/$name" "$outdir/.$name.tmp"
mv -f "$outdir/.$name.tmp" "$outdir/$name"
say "built $outdir/$name"
echo "$outdir/$name"
