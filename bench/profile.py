#!/usr/bin/python3
"""Load-independent counts for seedpart builds, to compare before and after a change:

    bench/profile.py BIN [BIN...]

For each binary, on the benchmark's own fixtures (the whole job on the 4 GiB and the 4 TiB disk,
the no-op boot after it, and the 1,000-file ISO 9660 drive read into a directory): instructions executed
(valgrind --tool=callgrind; the kernel's work is not in it), system calls (strace -f -c), and
the flushes among them (fsync, fdatasync, syncfs). Wall times on this shared two-core machine
swing by a factor of two with the other users' load; these counts do not. (valgrind hides the
CPU's SHA extensions, so the read's instruction count is that of software SHA-256.)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures as fx  # noqa: E402
from bench import Rig  # noqa: E402

FLUSHES = ("fsync", "fdatasync", "syncfs")


def callgrind(cmd, work):
    out = work / "cg.out"
    p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
                       capture_output=True, text=True)
    m = re.search(r"Collected : (\d+)", p.stderr)
    out.unlink(missing_ok=True)
    return int(m.group(1)) if m else None


def syscalls(cmd, work):
    out = work / "strace.txt"
    subprocess.run(["strace", "-f", "-c", "-o", out, *cmd], capture_output=True)
    total = flushes = 0
    for line in out.read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and f[-1] != "total" and f[3].isdigit():
            total += int(f[3])
            if f[-1] in FLUSHES:
                flushes += int(f[3])
    return total, flushes


def main():
    bins = [Path(b).resolve() for b in sys.argv[1:]]
    if not bins:
        sys.exit(__doc__)
    work = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="seedpart-profile-"))
    try:
        drive = fx.iso(fx.nova_tree(work / "nova"), work / "nova.iso")
        templates = {"job": fx.disk_template(work / "t4g.img", 4 * fx.GIB, drive, work / "tm"),
                     "job-4T": fx.disk_template(work / "t4t.img", 4 << 40, drive, work / "tm")}
        templates["no-op"] = templates["job"]
        many = fx.iso(fx.many_files_tree(work / "many"), work / "many.iso")
        print(f"{'binary':<28}{'scenario':<12}{'instructions':>14}{'syscalls':>10}{'flushes':>9}")
        for b in bins:
            for scenario in ("job", "job-4T", "no-op", "read-iso"):
                row = []
                for measure in (callgrind, syscalls):
                    if scenario == "read-iso":
                        d = Path(tempfile.mkdtemp(dir=work))
                        row.append(measure([b, "run", "--root", d, "--device", many], work))
                        shutil.rmtree(d)
                        continue
                    with Rig(templates[scenario], work, "p") as rig:
                        cmd = [b, "run", "--root", rig.mnt]
                        if scenario == "no-op":
                            subprocess.run(cmd, check=True)
                        row.append(measure(cmd, work))
                ins, (sc, fl) = row
                print(f"{b.name:<28}{scenario:<12}{ins:>14,}{sc:>10,}{fl:>9,}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("profile.py: needs root (loop devices, mount)")
    main()
