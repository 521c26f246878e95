#!/usr/bin/env bash
# packaging/copyright.sh: the package's copyright file, in Debian's machine-readable format
# (copyright-format 1.0), on stdout: seedpart's own paragraph (copyright.in), one paragraph per
# crate statically linked into the binary (crate-licenses.sh dep5), and the text of each
# license named, from license-texts. The deb ships it as /usr/share/doc/seedpart/copyright,
# the rpm as a %license file. No network: Cargo.lock and cargo's registry cache only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

crates="$("$here/crate-licenses.sh" dep5)"
# A License paragraph for each short name used, and no other (lintian flags both a missing and
# an unused one).
used="$(
    {
        echo Apache-2.0
        "$here/crate-licenses.sh" names
    } | sort -u
)"
texts=""
for name in $used; do
    paragraph="$(awk -v RS= -v n="$name" '$0 ~ "^License: " n "\n" { print; exit }' "$here/license-texts")"
    if [ -z "$paragraph" ]; then
        echo "copyright.sh: no License: $name paragraph in packaging/license-texts: add its text" >&2
        exit 1
    fi
    texts+="$paragraph"$'\n\n'
done
printf '%s\n\n%s\n\n%s' "$(cat "$here/copyright.in")" "$crates" "${texts%$'\n'}"
