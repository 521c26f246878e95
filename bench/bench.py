#!/usr/bin/python3
"""seedpart against the tools users run today, on the same disks in the same run.

    bench/run.sh [--quick]          (installs the tools and builds seedpart first)
    bench/bench.py --bin PATH [--quick] [--reps N] [--work DIR] [--out DIR] [--only A,B]

Benchmarks (BENCHMARKS.md has the method and the figures):
  job    the whole first boot on a loop device with a mounted xfs root: seedpart run vs
         bench/peer-firstboot.sh (cloud-init's reader + sfdisk/sgdisk + growpart + xfs_growfs)
  noop   a later boot with nothing to do: seedpart run vs cloud-init init --local's reading
         step + growpart --dry-run
  read   a 64 MiB drive of 1,000 files, vfat and ISO 9660, into a directory: seedpart vs mcopy,
         bsdtar, xorriso
  scale  the job on sparse disks of 4 GiB to 4 TiB (the kernel's xfs resize reported apart)
  rss    peak RSS (GNU time) and the stripped binary's size
  vm     systemd-analyze blame in the golden Debian VM (tests/vm/golden), when it is there

Every figure is a median over --reps repetitions. The tools alternate within each repetition
(their order rotating), so load from the other users of this machine falls on all alike. The
disk is reset (a fresh sparse copy, loop device, partition scan, mount) between repetitions,
outside the timed region. Timing is wall time from the harness's spawn of the command to its
exit, as a boot pays it: process start-up (python's included) counts.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fixtures as fx

HERE = Path(__file__).resolve().parent
PY = "/usr/bin/python3"
XFS_GROW_IOCTL = re.compile(r"ioctl\(\d+, (XFS_IOC_FSGROWFSDATA|_IOC\(_IOC_WRITE, 0x58, 0x6e, 0x10\))")
SIZES = {"4G": 4 * fx.GIB, "64G": 64 * fx.GIB, "1T": 1 << 40, "4T": 4 << 40}

# Issue 6's targets: the job minus the kernel's resize (ms) and its ratio to the peer, the no-op (ms),
# peak RSS, the stripped binary.
TARGETS_MS = {"job": 50.0, "job_ratio": 20.0, "noop": 5.0}
RSS_KIB = 8 * 1024
BINARY_BYTES = 3 * (1 << 20)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(*cmd, check=True, **kw):
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p


# seedpart -v's line after growing the filesystem (src/run.rs).
GREW = re.compile(r"grew the \S+ filesystem on \S+ from \d+ to \d+ bytes in ([0-9.]+) ms")


def timed(cmd, env=None, ok=(0,)):
    """Runs `cmd` and returns (milliseconds, completed process). stdout and stderr go to pipes
    (read after exit: the commands print little)."""
    t0 = time.perf_counter_ns()
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, text=True)
    ms = (time.perf_counter_ns() - t0) / 1e6
    if p.returncode not in ok:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return ms, p


def med(xs):
    return statistics.median(xs) if xs else float("nan")


class Rig:
    """A fresh copy of a template disk on a loop device, its root partition mounted."""

    def __init__(self, template: Path, work: Path, name: str):
        self.img = work / f"{name}.img"
        self.mnt = work / f"{name}.mnt"
        self.mnt.mkdir(exist_ok=True)
        self.dev = None
        sh("cp", "--sparse=always", template, self.img)
        try:
            self.dev = sh("losetup", "--find", "--show", self.img).stdout.strip()
            # This kernel does not scan partitions on loop devices by itself. A loop device
            # reused at once can still carry its last user's partitions: forget those first.
            sh("partx", "-d", self.dev, check=False)
            sh("partx", "-a", self.dev)
            # nouuid: the no-op benchmark mounts two copies of one image (same xfs UUID) at once.
            sh("mount", "-o", "nouuid", f"{self.dev}p1", self.mnt)
        except BaseException:
            self.close()
            raise

    def layout(self):
        j = json.loads(sh("sfdisk", "--json", self.dev).stdout)
        return [(p["node"], p["start"], p["size"]) for p in j["partitiontable"]["partitions"]]

    def fs_bytes(self):
        st = os.statvfs(self.mnt)
        return st.f_blocks * st.f_frsize

    def close(self):
        if os.path.ismount(self.mnt):
            sh("umount", self.mnt)
        if self.dev:
            sh("partx", "-d", self.dev, check=False)
            sh("losetup", "-d", self.dev, check=False)
            self.dev = None
        self.img.unlink(missing_ok=True)
        # The next repetition starts with nothing of this one still being written back.
        os.sync()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_job(rig: Rig, tool: str, size: int):
    """The job was done, and done alike by both: one partition left, grown to near the disk's
    end, its filesystem grown, the host name, key, network file and copy in place."""
    parts = rig.layout()
    assert len(parts) == 1, f"{tool}: partitions left: {parts}"
    end = (parts[0][1] + parts[0][2]) * 512
    assert end > size - 2 * fx.MIB, f"{tool}: root ends at {end}, disk is {size}"
    assert rig.fs_bytes() > size - 200 * fx.MIB, f"{tool}: filesystem {rig.fs_bytes()} bytes"
    m = rig.mnt
    assert (m / "etc/hostname").read_text().strip() == fx.HOSTNAME, tool
    assert fx.KEY in (m / "root/.ssh/authorized_keys").read_text(), tool
    assert any((m / "etc/systemd/network").iterdir()), f"{tool}: no network file"
    assert (m / "etc/bench/app.conf").exists(), f"{tool}: injected file missing"
    copy = m / ("var/lib/seedpart/config-drive" if tool.startswith("seedpart")
                else "var/lib/cloud/seed/config_drive")
    assert (copy / "openstack/latest/meta_data.json").exists(), f"{tool}: no copy at {copy}"
    return {"root_end": end, "fs_bytes": rig.fs_bytes()}


def strace_split(trace: Path):
    """From an `strace -ttt -T` log: the process's milliseconds from execve to exit_group, those
    inside XFS_IOC_FSGROWFSDATA, and those before it (the rest are after it)."""
    start = end = grow_at = None
    grow = 0.0
    for line in trace.read_text().splitlines():
        f = line.split(None, 2)
        if len(f) < 3:
            continue
        ts, call = float(f[1]), f[2]
        if call.startswith("execve(") and start is None:
            start = ts
        elif call.startswith("exit_group("):
            end = ts
        elif XFS_GROW_IOCTL.match(call):
            grow += float(call.rsplit("<", 1)[1].rstrip(">")) * 1e3
            grow_at = ts if grow_at is None else grow_at
    total = (end - start) * 1e3
    before = (grow_at - start) * 1e3 if grow_at is not None else total
    return total, grow, before


def peer_steps(stderr: str):
    """The peer's step durations (ms) from its `@step NAME EPOCHREALTIME` markers."""
    marks = [(ln.split()[1], float(ln.split()[2])) for ln in stderr.splitlines()
             if ln.startswith("@step ")]
    return {a[0]: (b[1] - a[1]) * 1e3 for a, b in zip(marks, marks[1:])}


class Bench:
    def __init__(self, args):
        self.a = args
        self.bin = Path(args.bin).resolve()
        self.work = Path(args.work)
        self.disk_work = Path(args.disk_work)
        self.out = Path(args.out)
        self.results = {"meta": machine(), "job": {}, "noop": {}, "read": {}, "rss": {},
                        "binary": {}, "vm": {}}
        self.rows = []  # the printed table

    # ---------------------------------------------------------------- fixtures
    def fixtures(self):
        w = self.work
        log(f"bench: building the drives and disks under {w}")
        self.nova_iso = fx.iso(fx.nova_tree(w / "nova"), w / "nova.iso")
        many = fx.many_files_tree(w / "many")
        self.many = {"iso9660": fx.iso(many, w / "many.iso"),
                     "vfat": fx.vfat(many, w / "many.vfat")}
        self.templates = {}
        for name in self.sizes():
            self.templates[name] = fx.disk_template(w / f"template-{name}.img", SIZES[name],
                                                    self.nova_iso, w / "template.mnt")

    def sizes(self):
        return ["4G", "4T"] if self.a.quick else list(SIZES)

    # ---------------------------------------------------------------- 1 + 4: the job
    def run_seedpart(self, rig, traced):
        cmd = [self.bin, "run", "--root", rig.mnt]
        if not traced:
            # -v, as the unit runs it: the log says how long the kernel's resize took.
            ms, p = timed([self.bin, "-v", "run", "--root", rig.mnt])
            m = GREW.search(p.stderr)
            if not m:
                raise RuntimeError(f"seedpart did not report growing the filesystem:\n{p.stderr}")
            grow = float(m.group(1))
            return {"total": ms, "resize": grow, "minus_resize": ms - grow}
        trace = self.work / "seedpart.strace"
        # seccomp-bpf: only the traced calls stop the process, so the log costs a few
        # microseconds per ioctl, not per system call.
        ms, _ = timed(["strace", "-f", "--seccomp-bpf", "-ttt", "-T", "-o", trace,
                       "-e", "trace=execve,ioctl,exit_group", *cmd])
        proc_ms, grow_ms, before_ms = strace_split(trace)
        return {"traced_total": proc_ms, "resize": grow_ms, "minus_resize": proc_ms - grow_ms,
                "before_resize": before_ms, "after_resize": proc_ms - grow_ms - before_ms}

    def run_peer(self, rig, delete):
        env = dict(os.environ, PEER_DELETE=delete, PEER_ISO_EXTRACTOR=self.iso_extractor)
        ms, p = timed([HERE / "peer-firstboot.sh", rig.dev, rig.mnt], env=env)
        steps = peer_steps(p.stderr)
        return {"total": ms, "resize": steps["xfs_growfs"], "minus_resize": ms - steps["xfs_growfs"],
                "steps": steps}

    def job(self, cases, reps, warm_up=True):
        """`cases`: keys of SIZES, or "4G-disk": the 4 GiB disk's image on the host's own disk
        (ext4 on virtio) instead of tmpfs, where every fsync reaches a real (virtual) device."""
        for case in cases:
            size = case.split("-")[0]
            work, template = self.work, self.templates[size]
            if case.endswith("-disk"):
                work = self.disk_work
                template = work / "template-4G.img"
                if not template.exists():
                    sh("cp", "--sparse=always", self.templates[size], template)
            variants = ["seedpart", "seedpart-traced", "peer"]
            if case == "4G":
                variants.append("peer-sgdisk")
            log(f"bench: job on {case}: {reps} reps of {', '.join(variants)}")
            runs = {t: [] for t in variants}
            # Rep 0 warms the caches up (binaries, python's modules) and is dropped; once
            # warm they stay so, and the slow big disks skip it.
            first = 0 if warm_up else 1
            for rep in range(first, reps + 1):
                order = variants[rep % len(variants):] + variants[:rep % len(variants)]
                for tool in order:
                    with Rig(template, work, "job") as rig:
                        if case.endswith("-disk"):
                            # The copy's dirty pages go to the disk before the clock starts.
                            sh("sync", "-f", rig.img)
                        if tool == "seedpart":
                            r = self.run_seedpart(rig, traced=False)
                        elif tool == "seedpart-traced":
                            r = self.run_seedpart(rig, traced=True)
                        else:
                            r = self.run_peer(rig, "sgdisk" if tool == "peer-sgdisk" else "sfdisk")
                        r.update(check_job(rig, tool, SIZES[size]))
                    if rep:
                        runs[tool].append(r)
            self.results["job"][case] = {"runs": runs, "median": summarize_job(runs)}

    # ---------------------------------------------------------------- 2: no-op
    def noop(self, reps):
        log(f"bench: no-op boot: {reps * 4} reps")
        template = self.templates["4G"]
        env = dict(os.environ, PEER_DELETE="sfdisk", PEER_ISO_EXTRACTOR=self.iso_extractor)
        with Rig(template, self.work, "noop-seedpart") as s, Rig(template, self.work, "noop-peer") as p:
            # Both disks after their first boot: nothing left to do on either.
            timed([self.bin, "run", "--root", s.mnt])
            timed([HERE / "peer-firstboot.sh", p.dev, p.mnt], env=env)
            before = (s.mnt / "var/lib/seedpart/state.json").read_bytes()
            runs = {"seedpart": [], "cloud-init-read": [], "growpart": []}
            cmds = {
                "seedpart": ([self.bin, "run", "--root", s.mnt], (0,)),
                "cloud-init-read": ([PY, HERE / "peer_cloudinit.py", "noop", p.mnt], (0,)),
                # growpart's NOCHANGE is exit 1.
                "growpart": (["growpart", "--dry-run", p.dev, "1"], (1,)),
            }
            names = list(cmds)
            for rep in range(reps * 4 + 1):
                for tool in names[rep % 3:] + names[:rep % 3]:
                    cmd, ok = cmds[tool]
                    ms, proc = timed(cmd, ok=ok)
                    if tool == "growpart":
                        assert "NOCHANGE" in proc.stdout, proc.stdout
                    if tool == "seedpart":
                        # A real no-op: silent, nothing written.
                        assert not proc.stderr, proc.stderr
                    if rep:
                        runs[tool].append(ms)
            assert (s.mnt / "var/lib/seedpart/state.json").read_bytes() == before, \
                "the no-op run changed state.json"
            runs["peer"] = [a + b for a, b in zip(runs["cloud-init-read"], runs["growpart"])]
            # The floor: spawning any process from this harness.
            runs["/bin/true"] = [timed(["/bin/true"])[0] for _ in range(reps * 4)]
        self.results["noop"] = {"runs": runs, "median": {k: med(v) for k, v in runs.items()}}

    # ---------------------------------------------------------------- 3: reading
    def read(self, reps):
        log(f"bench: reading 1,000 files: {reps} reps")
        tools = {
            "vfat": {
                "seedpart": lambda img, d: [self.bin, "run", "--root", d, "--device", img],
                "mcopy": lambda img, d: ["mcopy", "-s", "-n", "-i", img, "::/*", d],
            },
            "iso9660": {
                "seedpart": lambda img, d: [self.bin, "run", "--root", d, "--device", img],
                "bsdtar": lambda img, d: ["bsdtar", "-x", "-f", img, "-C", d],
                "xorriso": lambda img, d: ["xorriso", "-osirrox", "on", "-indev", f"stdio:{img}",
                                           "-extract", "/", d],
            },
        }
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        res = {}
        for fs, ts in tools.items():
            img = self.many[fs]
            runs = {t: [] for t in ts}
            names = list(ts)
            for rep in range(reps + 1):
                for tool in names[rep % len(names):] + names[:rep % len(names)]:
                    d = Path(tempfile.mkdtemp(dir=self.work, prefix="read-"))
                    try:
                        ms, _ = timed(ts[tool](img, d), env=env)
                        n = sum(len(f) for _, _, f in os.walk(d))
                        # seedpart's copy adds SHA256SUMS, its state and applied-instance
                        # files; the extractors' trees are the drive's 1,000 files.
                        assert n >= 1000, f"{tool}: {n} files extracted"
                    finally:
                        shutil.rmtree(d)
                    if rep:
                        runs[tool].append(ms)
            res[fs] = {"runs": runs, "median": {k: med(v) for k, v in runs.items()}}
        self.results["read"] = res

    def pick_iso_extractor(self):
        """The peer reads an ISO drive with whichever of bsdtar and xorriso is faster here."""
        img = self.nova_iso
        best = {}
        for tool, cmd in (("bsdtar", lambda d: ["bsdtar", "-x", "-f", img, "-C", d]),
                          ("xorriso", lambda d: ["xorriso", "-osirrox", "on", "-indev", f"stdio:{img}",
                                                 "-extract", "/", d])):
            xs = []
            for _ in range(5):
                d = tempfile.mkdtemp(dir=self.work)
                xs.append(timed(cmd(d))[0])
                shutil.rmtree(d)
            best[tool] = med(xs)
        self.iso_extractor = min(best, key=best.get)
        self.results["meta"]["peer_iso_extractor"] = {"chosen": self.iso_extractor,
                                                      "median_ms": best}
        log(f"bench: the peer extracts ISO 9660 with {self.iso_extractor} ({best})")

    # ---------------------------------------------------------------- rss, size
    def rss(self):
        log("bench: peak RSS")
        out = {}

        def peak(cmd, env=None, ok=(0,)):
            f = self.work / "time.out"
            timed(["/usr/bin/time", "-o", f, "-f", "%M", *cmd], env=env, ok=ok)
            return int(f.read_text().split()[-1])

        env = dict(os.environ, PEER_DELETE="sfdisk", PEER_ISO_EXTRACTOR=self.iso_extractor,
                   MTOOLS_SKIP_CHECK="1")
        for size in ("4G",) if self.a.quick else ("4G", "4T"):
            if size not in self.templates:
                continue
            with Rig(self.templates[size], self.work, "rss") as rig:
                out[f"seedpart job {size}"] = peak([self.bin, "run", "--root", rig.mnt])
                out[f"seedpart no-op {size}"] = peak([self.bin, "run", "--root", rig.mnt])
            with Rig(self.templates[size], self.work, "rss") as rig:
                # GNU time reports the largest process of the pipeline (wait4 folds the
                # children's peak into the shell's).
                out[f"peer job {size}"] = peak([HERE / "peer-firstboot.sh", rig.dev, rig.mnt], env)
        for fs, img in self.many.items():
            d = Path(tempfile.mkdtemp(dir=self.work))
            out[f"seedpart read {fs}"] = peak([self.bin, "run", "--root", d, "--device", img])
            shutil.rmtree(d)
        self.results["rss"] = out
        size = self.bin.stat().st_size
        stripped = not sh("file", self.bin, check=False).stdout.count("not stripped")
        self.results["binary"] = {"path": str(self.bin), "bytes": size, "stripped": stripped}

    # ---------------------------------------------------------------- vm
    def vm(self):
        script = HERE / "vm-blame.sh"
        if not script.exists():
            self.results["vm"] = {"skipped": f"{script} is not there"}
            return
        log("bench: vm: building the golden image and booting it twice (minutes)")
        p = subprocess.run([script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode == 0:
            self.results["vm"] = json.loads(p.stdout)
        else:
            # Not a benchmark failure: the VM part needs the golden image and qemu.
            self.results["vm"] = {"skipped": (p.stderr.strip().splitlines() or ["failed"])[-1],
                                  "exit": p.returncode}
        log(f"bench: vm: {self.results['vm']}")

    # ---------------------------------------------------------------- report
    def report(self):
        r = self.results
        rows = []

        def row(what, ours, peer, target=None, passed=None, note=""):
            ratio = peer / ours if ours and peer else None
            rows.append({"what": what, "seedpart": ours, "peer": peer, "ratio": ratio,
                         "target": target, "pass": passed, "note": note})

        for size, j in r["job"].items():
            m = j["median"]
            s, p = m["seedpart"], m["peer"]
            row(f"job {size}: total (ms)", s["total"], p["total"], note="peer: cloud-init+sfdisk")
            row(f"job {size}: kernel xfs resize (ms)", s["resize"], p["resize"],
                note="seedpart: its grow step, from its -v log; peer: all of xfs_growfs")
            ok = s["minus_resize"] < TARGETS_MS["job"]
            row(f"job {size}: minus resize (ms)", s["minus_resize"], p["minus_resize"],
                f"< {TARGETS_MS['job']:.0f} ms and >= {TARGETS_MS['job_ratio']:.0f}x",
                ok and p["minus_resize"] / s["minus_resize"] >= TARGETS_MS["job_ratio"])
            if "peer-sgdisk" in m:
                q = m["peer-sgdisk"]
                row(f"job {size}: minus resize, peer with sgdisk -d (ms)", s["minus_resize"],
                    q["minus_resize"], note="sgdisk sleeps 1 s after writing")
        if "4G" in r["job"] and "4T" in r["job"]:
            g, t = r["job"]["4G"]["median"]["seedpart"], r["job"]["4T"]["median"]["seedpart"]
            # "Does not grow with disk size": seedpart's work up to the resize ioctl, at 4 TiB
            # within noise (25 %, or 3 ms) of 4 GiB. After the ioctl returns, the kernel is still
            # writing the new allocation groups' headers back (hundreds of MB at 4 TiB) and
            # takes CPU from seedpart's last steps: that part is shown, not judged.
            # Judged on the minimum over the repetitions (the load's noise is one-sided); the
            # medians are in the note, and bench/profile.py counts the same instructions and
            # system calls at both sizes.
            a, b = g["before_resize_min"], t["before_resize_min"]
            row("scale: seedpart up to the resize, 4T vs 4G, min (ms)", b, a,
                "4T <= 4G + max(25%, 3 ms)", b <= a + max(0.25 * a, 3.0),
                note=f"'peer' column: seedpart at 4G; medians {t['before_resize']:.1f} (4T) "
                     f"vs {g['before_resize']:.1f} (4G)")
            row("scale: seedpart after the resize, 4T vs 4G (ms)", t["after_resize"],
                g["after_resize"], note="'peer' column: seedpart at 4G; includes the kernel's "
                "writeback of the new AGs competing for the CPUs")
        if r["noop"]:
            m = r["noop"]["median"]
            row("no-op boot (ms)", m["seedpart"], m["peer"], "< 5 ms", m["seedpart"] < TARGETS_MS["noop"],
                note=f"peer: cloud-init read {m['cloud-init-read']:.1f} + growpart "
                     f"{m['growpart']:.1f}; /bin/true {m['/bin/true']:.2f}")
        for fs, x in r["read"].items():
            m = x["median"]
            for tool, v in m.items():
                if tool != "seedpart":
                    row(f"read 1000 files, {fs}, vs {tool} (ms)", m["seedpart"], v,
                        "at least as fast", m["seedpart"] <= v)
        if r["rss"]:
            worst = max(v for k, v in r["rss"].items() if k.startswith("seedpart"))
            peer = max((v for k, v in r["rss"].items() if k.startswith("peer")), default=None)
            row("peak RSS, worst seedpart run (KiB)", worst, peer, "< 8 MiB", worst < RSS_KIB)
        if r["binary"]:
            b = r["binary"]["bytes"]
            row("stripped release binary (bytes)", b, None, "< 3 MiB",
                b < BINARY_BYTES and r["binary"]["stripped"])
        vm = r["vm"]
        if vm and "skipped" not in vm:
            for boot in ("first_boot", "second_boot"):
                v = vm.get(boot) or {}
                row(f"VM {boot.replace('_', ' ')}: systemd-analyze blame (ms)", v.get("seedpart_ms"),
                    v.get("cloud_init_local_ms"),
                    note="seedpart.service vs cloud-init-local.service, same boot, qemu TCG")
        elif vm:
            row("VM: systemd-analyze blame", None, None, note=f"skipped: {vm['skipped']}")
        self.rows = rows
        return rows


def summarize_job(runs):
    out = {}
    for tool, rs in runs.items():
        if not rs:
            continue
        keys = set().union(*(r.keys() for r in rs)) - {"steps"}
        out[tool] = {k: med([r[k] for r in rs if k in r]) for k in keys}
        # Load from the machine's other users only ever adds time: the minimum is the
        # estimate of a tool's own cost, shown beside the median.
        out[tool].update({f"{k}_min": min(r[k] for r in rs if k in r) for k in keys})
        if rs and "steps" in rs[0]:
            out[tool]["steps"] = {k: med([r["steps"][k] for r in rs]) for k in rs[0]["steps"]}
    # The headline seedpart figures come from the plain runs: each one's wall time less the
    # resize time its own log reports. The traced runs give the split around the ioctl (the
    # scale criterion); their own "minus resize" is kept as traced_minus_resize but not used:
    # under strace every traced call is a round trip to the tracer, and on this shared machine
    # the traced runs swung from 37 to 265 ms while the plain runs beside them took 28 to 66.
    if "seedpart" in out and "seedpart-traced" in out:
        t = out.pop("seedpart-traced")
        out["seedpart"].update({k + m: t[k + m] for k in ("traced_total", "before_resize",
                                                          "after_resize")
                                for m in ("", "_min")})
        out["seedpart"]["traced_resize"] = t["resize"]
        out["seedpart"]["traced_minus_resize"] = t["minus_resize"]
    return out


def machine():
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")
    load = open("/proc/loadavg").read().split()[:3]
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "loadavg_start": load,
            "mem_mib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if v < 100 else f"{v:,.0f}"
    return f"{v:,}"


def print_table(rows, file=sys.stdout):
    head = ["", "seedpart", "peer", "peer/seedpart", "target", ""]
    body = [[r["what"], fmt(r["seedpart"]), fmt(r["peer"]),
             f"{r['ratio']:.1f}x" if r["ratio"] else "-", r["target"] or "",
             {True: "PASS", False: "MISS", None: ""}[r["pass"]]] for r in rows]
    widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
    for line in [head] + body:
        print("  ".join(str(c).ljust(w) if i == 0 or i >= 4 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(line, widths))), file=file)
    notes = [f"  {r['what']}: {r['note']}" for r in rows if r["note"]]
    if notes:
        print("notes:", *notes, sep="\n", file=file)


def write_outputs(b: Bench):
    out = b.out
    out.mkdir(parents=True, exist_ok=True)
    r = b.results
    r["meta"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    r["summary"] = b.rows
    (out / "results.json").write_text(json.dumps(r, indent=1, default=str) + "\n")
    with open(out / "summary.csv", "w") as f:
        f.write("what,seedpart,peer,ratio,target,result\n")
        for x in b.rows:
            f.write(",".join([
                f'"{x["what"]}"', *(f"{x[k]:.3f}" if isinstance(x[k], float) else str(x[k] or "")
                                    for k in ("seedpart", "peer", "ratio")),
                f'"{x["target"] or ""}"', {True: "PASS", False: "MISS", None: ""}[x["pass"]]]) + "\n")
    # The scale plot's data: one line per disk size, milliseconds.
    with open(out / "scale.dat", "w") as f:
        f.write("# bytes seedpart_total seedpart_minus_resize peer_total peer_minus_resize "
                "seedpart_resize peer_resize\n")
        for size, j in sorted(((k, v) for k, v in r["job"].items() if k in SIZES),
                              key=lambda kv: SIZES[kv[0]]):
            s, p = j["median"]["seedpart"], j["median"]["peer"]
            f.write(f"{SIZES[size]} {s['total']:.3f} {s['minus_resize']:.3f} {p['total']:.3f} "
                    f"{p['minus_resize']:.3f} {s['resize']:.3f} {p['resize']:.3f}\n")
    if shutil.which("gnuplot") and r["job"]:
        p = subprocess.run(["gnuplot", "-e", f"dat='{out / 'scale.dat'}'; out='{out / 'scale.svg'}'",
                            HERE / "scale.gp"], capture_output=True, text=True)
        if p.returncode:
            log(f"bench: gnuplot failed: {p.stderr}")
    with open(out / "table.txt", "w") as f:
        print_table(b.rows, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the seedpart binary (stripped release build)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 4G and 4T, few reps")
    ap.add_argument("--reps", type=int, help="repetitions per figure (default 11, quick 2)")
    ap.add_argument("--work", default="/dev/shm/seedpart-bench",
                    help="scratch directory for the images (default on tmpfs, see BENCHMARKS.md)")
    ap.add_argument("--disk-work", default=str(HERE.parent / "target" / "bench-disk"),
                    help="scratch directory on the host's disk, for the 4G-disk job")
    ap.add_argument("--out", help="where the results go (default bench/results, quick: "
                    "bench/results/quick, so that a smoke run leaves the full run's figures alone)")
    ap.add_argument("--only", default="job,noop,read,rss,vm")
    ap.add_argument("--keep-work", action="store_true", help="keep the images afterwards")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (loop devices, mount)")
    reps = a.reps or (2 if a.quick else 11)
    a.out = a.out or str(HERE / "results" / ("quick" if a.quick else ""))
    only = set(a.only.split(","))
    t0 = time.monotonic()
    b = Bench(a)
    b.work.mkdir(parents=True, exist_ok=True)
    b.disk_work.mkdir(parents=True, exist_ok=True)
    try:
        b.fixtures()
        b.pick_iso_extractor()
        if "job" in only:
            # In quick mode the 4 TiB disk runs once: its xfs resize alone takes seconds.
            b.job(["4G", "4G-disk"], reps)
            big = [s for s in b.sizes() if s != "4G"]
            if big:
                b.job(big, 1 if a.quick else max(3, reps // 2), warm_up=False)
        if "noop" in only:
            b.noop(reps)
        if "read" in only:
            b.read(reps)
        if "rss" in only:
            b.rss()
        if "vm" in only and not a.quick:
            b.vm()
    finally:
        if not a.keep_work:
            shutil.rmtree(b.work, ignore_errors=True)
            shutil.rmtree(b.disk_work, ignore_errors=True)
    b.results["meta"]["reps"] = reps
    b.results["meta"]["seconds"] = round(time.monotonic() - t0)
    rows = b.report()
    write_outputs(b)
    print_table(rows)
    print(f"\nresults: {b.out}/results.json, summary.csv, table.txt, scale.svg "
          f"({b.results['meta']['seconds']} s)")
    if a.quick:
        # A smoke run: it proves the benchmark works end to end; its few repetitions judge
        # nothing, so a MISS does not fail it.
        print("quick: a smoke run; PASS/MISS above are indicative only (exit 0)")
        return 0
    return 0 if all(r["pass"] is not False for r in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 - the benchmark itself failed: exit 2, not a MISS
        import traceback
        traceback.print_exc()
        sys.exit(2)
