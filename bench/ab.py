#!/usr/bin/python3
"""Two seedpart builds against each other, interleaved in one run (wall-time medians):

    bench/ab.py BIN_A BIN_B [--reps N]

The whole job on the 4 GiB disk (image on tmpfs, and on the host's disk), the no-op boot after
it, and the 1,000-file ISO 9660 drive read into a directory: bench.py's fixtures and method
(fresh disk per run, A and B alternating so that the machine's load falls on both). For a
before/after of a change to seedpart; bench/profile.py gives the load-independent counts.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixtures as fx  # noqa: E402
from bench import Rig, timed  # noqa: E402

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--reps", type=int, default=9)
    a = ap.parse_args()
    bins = [Path(a.a).resolve(), Path(a.b).resolve()]
    work = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="seedpart-ab-"))
    disk_work = Path(tempfile.mkdtemp(dir=HERE.parent / "target", prefix="seedpart-ab-"))
    try:
        drive = fx.iso(fx.nova_tree(work / "nova"), work / "nova.iso")
        tmpl = fx.disk_template(work / "t4g.img", 4 * fx.GIB, drive, work / "tm")
        shutil.copy(tmpl, disk_work / "t4g.img")
        many = fx.iso(fx.many_files_tree(work / "many"), work / "many.iso")
        cases = {"job 4G (tmpfs)": (tmpl, work), "job 4G (host disk)": (disk_work / "t4g.img", disk_work)}
        res = {(c, b): [] for c in [*cases, "no-op", "read iso9660"] for b in bins}
        for rep in range(a.reps):
            order = bins if rep % 2 else bins[::-1]
            for case, (t, w) in cases.items():
                for b in order:
                    with Rig(t, w, "ab") as rig:
                        if w == disk_work:
                            os.sync()
                        res[case, b].append(timed([b, "run", "--root", rig.mnt])[0])
            with Rig(tmpl, work, "ab") as rig:
                timed([bins[0], "run", "--root", rig.mnt])
                for _ in range(4):
                    for b in order:
                        res["no-op", b].append(timed([b, "run", "--root", rig.mnt])[0])
            for b in order:
                d = Path(tempfile.mkdtemp(dir=work))
                res["read iso9660", b].append(timed([b, "run", "--root", d, "--device", many])[0])
                shutil.rmtree(d)
        print(f"{'':22}{bins[0].name:>16}{bins[1].name:>16}   B/A   (ms, medians of {a.reps} runs; "
              f"no-op {4 * a.reps})")
        for case in dict.fromkeys(c for c, _ in res):
            x, y = (statistics.median(res[case, b]) for b in bins)
            print(f"{case:22}{x:16.2f}{y:16.2f}  {y / x:5.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(disk_work, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("ab.py: needs root (loop devices, mount)")
    main()
