#!/usr/bin/env bash
# packaging/crate-licenses.sh FORMAT: the crates statically linked into the release binary
# (Cargo.lock's normal dependencies for this host, without proc-macros and build-only crates,
# which never reach the binary), for the packages' license records:
#   dep5  Files paragraphs for debian/copyright, one per crate (vendor/NAME-VERSION/ as
#         `cargo vendor --versioned-dirs` would lay them out), holders taken from the crate's
#         own license files (the notices MIT and BSD-style licenses require to be reproduced),
#         else its Cargo.toml authors
#   spdx  one SPDX expression for the whole binary (the RPM License: tag)
#   list  "NAME VERSION: LICENSE" lines (the RPM's LICENSE.dependencies)
#   names the license short names used, one a line
# Reads only Cargo.lock and cargo's registry cache: no network.
set -euo pipefail
cd "$(dirname "$0")/.."
format="${1:?usage: crate-licenses.sh dep5|spdx|list|names}"

# "NAME VERSION LICENSE-EXPRESSION", the root package excluded.
crates="$(
    cargo tree --locked --offline --edges normal,no-proc-macro --prefix none \
        --format '{p}|{l}' |
        sed -e 's/ (\*)$//' -e '/ (\//d' -e 's/^\([^ ]*\) v\([^ ]*\)|/\1 \2 /' | sort -u
)"
[ -n "$crates" ] || { echo "crate-licenses.sh: cargo tree listed no crates" >&2; exit 1; }
if grep -q -E '^[^ ]+ [^ ]+ *$' <<<"$crates"; then
    echo "crate-licenses.sh: crates without a license field:" >&2
    grep -E '^[^ ]+ [^ ]+ *$' <<<"$crates" >&2
    exit 1
fi

# DEP-5 spells the SPDX operators in lower case.
dep5_license() { sed -e 's/ OR / or /g' -e 's/ AND / and /g' -e 's/ WITH / with /g' <<<"$1"; }

case "$format" in
list)
    while read -r name version license; do
        echo "$name $version: $license"
    done <<<"$crates"
    ;;
names)
    cut -d' ' -f3- <<<"$crates" | tr -d '()' | sed -e 's/ OR /\n/g' -e 's/ AND /\n/g' |
        sed -e 's/ WITH .*//' | sort -u
    ;;
spdx)
    # The project's own license first, then every distinct expression of its crates.
    {
        echo "Apache-2.0"
        cut -d' ' -f3- <<<"$crates" | sort -u | grep -v -x 'Apache-2.0' | while read -r expr; do
            case "$expr" in
            *" OR "* | *" AND "*) echo "($expr)" ;;
            *) echo "$expr" ;;
            esac
        done
    } | paste -s -d'\n' | sed ':a;N;$!ba;s/\n/ AND /g'
    ;;
dep5)
    metadata="$(cargo metadata --locked --offline --format-version 1)"
    while read -r name version license; do
        manifest="$(jq -r --arg n "$name" --arg v "$version" \
            '.packages[] | select(.name == $n and .version == $v) | .manifest_path' <<<"$metadata")"
        dir="$(dirname "$manifest")"
        holders="$(
            find "$dir" -maxdepth 1 -type f \( -iname 'licen[cs]e*' -o -iname 'copying*' \) \
                ! -iname '*apache*' -print0 |
                xargs -0 -r grep -h -i -E '^[[:space:]]*copyright[[:space:]]+(\(c\)|©|[0-9]|[A-Z])' |
                grep -v -i -E '\[|notice|owner|holder|licen[cs]e|permission' |
                sed -E -e 's/^[[:space:]]*[Cc]opyright[[:space:]]+//' -e 's/^(\([cC]\)|©)[[:space:]]*//' \
                    -e 's/[[:space:]]+$//' |
                sort -u || true
        )"
        if [ -z "$holders" ]; then
            holders="$(jq -r --arg n "$name" --arg v "$version" \
                '.packages[] | select(.name == $n and .version == $v) | .authors[]' <<<"$metadata")"
        fi
        [ -n "$holders" ] || holders="The $name developers"
        echo "Files: vendor/$name-$version/*"
        # Continuation lines of a DEP-5 field start with a space.
        echo "Copyright: $(sed '2,$s/^/ /' <<<"$holders")"
        echo "License: $(dep5_license "$license")"
        echo "Comment: Statically linked into /usr/bin/seedpart; https://crates.io/crates/$name/$version"
        echo
    done <<<"$crates"
    ;;
*)
    echo "crate-licenses.sh: unknown format $format (dep5, spdx, list or names)" >&2
    exit 2
    ;;
esac
