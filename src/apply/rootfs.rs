//! The one safe way seedpart reads and writes inside a target root (`--root`, `/sysroot` in the
//! initramfs, `/` on the live system).
//!
//! Every path is resolved as if the target root were `/`: an absolute symlink already in the
//! root (`<root>/etc -> /etc`) or one climbing with `..` (`<root>/var/tmp/x -> ../../../../tmp`)
//! leads to a place *inside* the root, never outside it, exactly as it would for the booted
//! system. The kernel does it with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`; where
//! `openat2` does not exist (Linux before 5.6), the same resolution is done by hand, one
//! component at a time with `openat(O_NOFOLLOW)` and `readlinkat`, with `..` clamped at the root.
//!
//! Files are written atomically: a temporary file in the same directory, created `O_EXCL`
//! `O_NOFOLLOW` with its final mode, owner set, fsync, `renameat` over the target, fsync of the
//! directory. A symlink at the target's name is resolved inside the root like any other, and
//! the file it names is replaced (the image's `/etc/hosts -> ...` keeps its link); the rename
//! itself never follows a link. Between [`Root::stage`] and [`Root::commit`] (how `apply` writes
//! an instance's files), the fsyncs and renames are held back and done once for all the files,
//! with the same guarantee.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fs::RelPath;

/// How many symlinks one resolution may follow (the kernel's limit).
const MAX_LINKS: usize = 40;
/// `RESOLVE_IN_ROOT`: `/` and `..` stop at the directory descriptor given.
const RESOLVE_IN_ROOT: u64 = 0x10;
/// `RESOLVE_NO_MAGICLINKS`: no `/proc/<pid>/fd/*`-style jumps.
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;

/// How paths are resolved inside the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: the kernel does it.
    Openat2,
    /// A component-by-component `openat(O_NOFOLLOW)` walk (kernels without `openat2`).
    Walk,
}

/// An error inside the target root, naming the host path and what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}{}", path.display(), hint(source))]
pub struct RootError {
    pub action: String,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ELOOP) => {
            " (a symlink loop: note that symlinks in the target root are resolved inside it, so `etc -> /etc` points at itself)"
        }
        Some(libc::ENOTDIR) => " (a path component is not a directory)",
        _ => "",
    }
}

/// Mode and owner of a file written by [`Root::write_file`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOpts {
    pub mode: u32,
    /// `(uid, gid)`; `None` leaves the creator's (root's).
    pub owner: Option<(u32, u32)>,
}

impl FileOpts {
    pub const fn mode(mode: u32) -> FileOpts {
        FileOpts { mode, owner: None }
    }
}

/// A target root, held open: every path below is resolved inside it.
#[derive(Debug)]
pub struct Root {
    path: PathBuf,
    fd: OwnedFd,
    resolver: Resolver,
    /// Between [`Root::stage`] and [`Root::commit`]: what is written and removed.
    staged: RefCell<Option<Staged>>,
}

/// Writes and removals held back until [`Root::commit`].
#[derive(Debug, Default)]
struct Staged {
    /// One directory of each filesystem touched, for syncfs.
    filesystems: Vec<(u64, OwnedFd)>,
    /// Per real path below the root (every symlink resolved; for a removal, the name itself):
    /// what the commit does there, in the order first asked.
    ops: Vec<(RelPath, Pending)>,
}

/// A name in `dir` that the commit replaces with the temporary `tmp` (written in full, not
/// yet renamed), or, with no `tmp`, removes.
#[derive(Debug)]
struct Pending {
    dir: OwnedFd,
    name: CString,
    tmp: Option<CString>,
}

impl Drop for Root {
    /// Staged temporaries never committed (an error on the way) are removed: the targets are
    /// untouched, and nothing is left lying beside them.
    fn drop(&mut self) {
        if let Some(st) = self.staged.get_mut().take() {
            for (_, p) in st.ops {
                if let Some(tmp) = p.tmp {
                    let _ = sys_unlinkat(p.dir.as_fd(), &tmp, 0);
                }
            }
        }
    }
}

/// The result of a walk: the directory holding the last component, and that component (`None`
/// when the path resolved to a directory itself, e.g. the root or through `..`).
struct Walked {
    dir: OwnedFd,
    names: Vec<Vec<u8>>,
    last: Option<Vec<u8>>,
}

impl Root {
    /// Opens `path` (which may itself be reached through a symlink: the caller named it) and
    /// picks the resolver: `openat2` when the kernel has it, else the walk.
    pub fn open(path: &Path) -> Result<Root, RootError> {
        let fd = open_host_dir(path)?;
        let resolver = match sys_openat2(fd.as_fd(), c".", libc::O_PATH | libc::O_DIRECTORY) {
            Ok(_) => Resolver::Openat2,
            // ENOSYS: a kernel before 5.6. EPERM: a seccomp filter (older container runtimes)
            // that refuses syscalls it does not know.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                log::debug!("openat2 is not available ({e}): resolving paths by hand");
                Resolver::Walk
            }
            Err(e) => {
                return Err(RootError {
                    action: "opening the target root".into(),
                    path: path.to_path_buf(),
                    source: e,
                });
            }
        };
        Ok(Root {
            path: path.to_path_buf(),
            fd,
            resolver,
            staged: RefCell::new(None),
        })
    }

    /// As [`Root::open`], with the resolver chosen by the caller (tests of the fallback).
    pub fn open_with(path: &Path, resolver: Resolver) -> Result<Root, RootError> {
        let mut r = Root::open(path)?;
        r.resolver = resolver;
        Ok(r)
    }

    /// From now until [`Root::commit`], files are written to their temporaries but not put in
    /// place, removals are held back, and nothing is flushed; reads through this `Root` see
    /// what was staged (a staged file's temporary, a removed file as absent), so the writers
    /// need not know. `commit` then makes every temporary and new directory durable with one
    /// `syncfs` per filesystem touched, renames (and removes) in the order asked, and syncs once
    /// more: two flushes for the lot instead of two per file, with the same guarantee (after a
    /// crash every name holds the old file or the whole new one). Until `commit` has returned,
    /// any mix of old and new may survive a crash: the caller records nothing as done before
    /// it, and the next run does it all again. A `Root` dropped before `commit` removes its
    /// temporaries.
    pub fn stage(&self) {
        self.staged.replace(Some(Staged::default()));
    }

    /// Puts everything staged since [`Root::stage`] in place, durably, and ends the staging.
    pub fn commit(&self) -> Result<(), RootError> {
        let Some(st) = self.staged.take() else {
            return Ok(());
        };
        let root = RelPath::root();
        let sync = |st: &Staged| -> Result<(), RootError> {
            for (_, fd) in &st.filesystems {
                sys_syncfs(fd).map_err(self.err("syncfs", &root))?;
            }
            Ok(())
        };
        sync(&st)?;
        for (i, (key, p)) in st.ops.iter().enumerate() {
            let done = match &p.tmp {
                Some(tmp) => sys_renameat(p.dir.as_fd(), tmp, &p.name),
                None => match sys_unlinkat(p.dir.as_fd(), &p.name, 0) {
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
                    r => r,
                },
            };
            if let Err(e) = done {
                for (_, rest) in &st.ops[i..] {
                    if let Some(tmp) = &rest.tmp {
                        let _ = sys_unlinkat(rest.dir.as_fd(), tmp, 0);
                    }
                }
                return Err(self.err("putting in place", key)(e));
            }
        }
        sync(&st)
    }

    /// After a change to `dir`'s entries: fsync it, or while staging, note its filesystem.
    fn dir_changed(&self, dir: &OwnedFd, rel: &RelPath, what: &str) -> Result<(), RootError> {
        let mut staged = self.staged.borrow_mut();
        let Some(st) = staged.as_mut() else {
            return sys_fsync(dir).map_err(self.err(what, rel));
        };
        let dev = sys_fstatat(dir.as_fd(), c".")
            .map_err(self.err(what, rel))?
            .st_dev;
        if !st.filesystems.iter().any(|(d, _)| *d == dev) {
            st.filesystems
                .push((dev, dir.try_clone().map_err(self.err(what, rel))?));
        }
        Ok(())
    }

    /// While staging: what `rel` (as `open_in` resolves it) is, if a staged write or removal
    /// covers it. Directories are never staged, so opening one never looks.
    fn staged_open(
        &self,
        rel: &RelPath,
        flags: libc::c_int,
        follow_last: bool,
    ) -> io::Result<Option<OwnedFd>> {
        if flags & libc::O_DIRECTORY != 0 {
            return Ok(None);
        }
        let staged = self.staged.borrow();
        let Some(st) = staged.as_ref().filter(|st| !st.ops.is_empty()) else {
            return Ok(None);
        };
        let key = self.key(rel, follow_last)?;
        match st.ops.iter().find(|(k, _)| *k == key) {
            None => Ok(None),
            Some((_, Pending { tmp: None, .. })) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
            Some((
                _,
                Pending {
                    dir,
                    tmp: Some(tmp),
                    ..
                },
            )) => sys_openat(dir.as_fd(), tmp, flags | libc::O_NOFOLLOW, 0).map(Some),
        }
    }

    /// The real path below the root of what `rel` names: every symlink resolved, the last one
    /// too when `follow_last`.
    fn key(&self, rel: &RelPath, follow_last: bool) -> io::Result<RelPath> {
        let w = self.walk(rel, follow_last)?;
        let mut out = RelPath::root();
        for n in w.names.iter().chain(w.last.iter()) {
            let s =
                std::str::from_utf8(n).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
            out = out
                .join(s)
                .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why))?;
        }
        Ok(out)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// `rel` as a host path, for messages (the real resolution may differ through symlinks).
    pub fn host_path(&self, rel: &RelPath) -> PathBuf {
        let mut p = self.path.clone();
        p.extend(rel.components());
        p
    }

    /// Whether the running kernel is this root's: `path` is `/`, or `/sysroot` seen from an
    /// initramfs (which has `/etc/initrd-release`, as systemd and dracut mark one), the root
    /// it is about to switch to. Only then are the live hostname and the kernel's entropy pool
    /// touched: the initramfs hook does it as well as the unit would on the live root.
    pub fn is_running_system(&self) -> bool {
        let Ok(p) = std::fs::canonicalize(&self.path) else {
            return false;
        };
        p == Path::new("/")
            || (p == Path::new("/sysroot") && Path::new("/etc/initrd-release").exists())
    }

    fn err(&self, action: impl Into<String>, rel: &RelPath) -> impl FnOnce(io::Error) -> RootError {
        let action = action.into();
        let path = self.host_path(rel);
        move |source| RootError {
            action,
            path,
            source,
        }
    }

    /// Opens `rel` with `flags` (no `O_CREAT`), resolving every component inside the root, the
    /// last one too unless `follow_last` is false (then a symlink there fails with `ELOOP`).
    fn open_in(&self, rel: &RelPath, flags: libc::c_int, follow_last: bool) -> io::Result<OwnedFd> {
        if let Some(fd) = self.staged_open(rel, flags, follow_last)? {
            return Ok(fd);
        }
        let flags = flags | if follow_last { 0 } else { libc::O_NOFOLLOW };
        if rel.is_root() {
            return sys_openat(self.fd.as_fd(), c".", flags & !libc::O_NOFOLLOW, 0);
        }
        match self.resolver {
            Resolver::Openat2 => sys_openat2(self.fd.as_fd(), &cstring(rel.as_str())?, flags),
            Resolver::Walk => {
                let w = self.walk(rel, follow_last)?;
                match w.last {
                    None => sys_openat(w.dir.as_fd(), c".", flags & !libc::O_NOFOLLOW, 0),
                    // O_NOFOLLOW: a symlink put there since the walk looked is refused.
                    Some(name) => sys_openat(
                        w.dir.as_fd(),
                        &cstring_bytes(&name)?,
                        flags | libc::O_NOFOLLOW,
                        0,
                    ),
                }
            }
        }
    }

    /// Resolves `rel` by hand: each component looked at with `fstatat(AT_SYMLINK_NOFOLLOW)`,
    /// directories entered with `openat(O_NOFOLLOW)`, symlinks read and their targets queued
    /// (an absolute one restarting at the root), `..` popping back towards the root and never
    /// past it. The last component is returned unopened, whether or not it exists.
    fn walk(&self, rel: &RelPath, follow_last: bool) -> io::Result<Walked> {
        let mut stack: Vec<(OwnedFd, Vec<u8>)> = Vec::new();
        let mut todo: VecDeque<Vec<u8>> = rel.components().map(|c| c.as_bytes().to_vec()).collect();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                stack.pop();
                continue;
            }
            let is_last = todo.is_empty();
            let cname = cstring_bytes(&c)?;
            let st = match sys_fstatat(top(&self.fd, &stack), &cname) {
                Ok(st) => st,
                Err(e) if is_last && e.raw_os_error() == Some(libc::ENOENT) => {
                    return self.finish(stack, Some(c));
                }
                Err(e) => return Err(e),
            };
            let kind = st.st_mode & libc::S_IFMT;
            if kind == libc::S_IFLNK && (!is_last || follow_last) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = sys_readlinkat(top(&self.fd, &stack), &cname)?;
                if target.first() == Some(&b'/') {
                    stack.clear();
                }
                for part in target.split(|b| *b == b'/').rev() {
                    todo.push_front(part.to_vec());
                }
                continue;
            }
            if is_last {
                return self.finish(stack, Some(c));
            }
            if kind != libc::S_IFDIR {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            let fd = sys_openat(
                top(&self.fd, &stack),
                &cname,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            stack.push((fd, c));
        }
        self.finish(stack, None)
    }

    fn finish(
        &self,
        mut stack: Vec<(OwnedFd, Vec<u8>)>,
        last: Option<Vec<u8>>,
    ) -> io::Result<Walked> {
        let dir = match stack.pop() {
            Some((fd, name)) => {
                let names = stack.into_iter().map(|(_, n)| n).chain([name]).collect();
                return Ok(Walked {
                    dir: fd,
                    names,
                    last,
                });
            }
            None => sys_openat(self.fd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?,
        };
        Ok(Walked {
            dir,
            names: Vec::new(),
            last,
        })
    }

    /// `rel` with every symlink resolved inside the root: the real path below the root, so
    /// `root.path().join(canonical)` reaches it with no symlink (for code that takes plain
    /// paths, such as the copy of the drive). The last component need not exist.
    pub fn canonical(&self, rel: &RelPath) -> Result<RelPath, RootError> {
        let w = self.walk(rel, true).map_err(self.err("resolving", rel))?;
        let mut out = RelPath::root();
        for n in w.names.iter().chain(w.last.iter()) {
            let s = std::str::from_utf8(n).map_err(|_| {
                self.err("resolving", rel)(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a symlink on the way leads to a name that is not UTF-8",
                ))
            })?;
            out = out.join(s).map_err(|why| {
                self.err("resolving", rel)(io::Error::new(io::ErrorKind::InvalidData, why))
            })?;
        }
        Ok(out)
    }

    /// Metadata of `rel` (following symlinks inside the root); `None` when it does not exist.
    pub fn metadata(&self, rel: &RelPath) -> Result<Option<Metadata>, RootError> {
        match self.open_in(rel, libc::O_PATH, true) {
            Ok(fd) => File::from(fd)
                .metadata()
                .map(Some)
                .map_err(self.err("checking", rel)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(self.err("checking", rel)(e)),
        }
    }

    /// Whether `rel` exists (following symlinks inside the root).
    pub fn exists(&self, rel: &RelPath) -> Result<bool, RootError> {
        Ok(self.metadata(rel)?.is_some())
    }

    /// Reads a regular file of at most `limit` bytes; `None` when it does not exist. A FIFO or
    /// device in its place is refused rather than read (it could block or never end).
    pub fn read(&self, rel: &RelPath, limit: u64) -> Result<Option<Vec<u8>>, RootError> {
        let fd = match self.open_in(
            rel,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
            true,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(self.err("reading", rel)(e)),
        };
        let f = File::from(fd);
        let meta = f.metadata().map_err(self.err("reading", rel))?;
        if !meta.is_file() {
            return Err(self.err("reading", rel)(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a regular file",
            )));
        }
        let mut buf = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(self.err("reading", rel))?;
        if buf.len() as u64 > limit {
            return Err(self.err("reading", rel)(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("larger than the {limit}-byte limit for this file"),
            )));
        }
        Ok(Some(buf))
    }

    /// `mkdir -p` inside the root: every missing directory of `rel` is created with exactly
    /// `mode` and, when given, `owner`, and made durable in its parent. Existing directories
    /// (reached through symlinks inside the root as needed) are left as they are.
    pub fn create_dir_all(
        &self,
        rel: &RelPath,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<(), RootError> {
        let dir_flags = libc::O_RDONLY | libc::O_DIRECTORY;
        if self.open_in(rel, dir_flags, true).is_ok() {
            return Ok(());
        }
        let mut prefix = RelPath::root();
        let mut parent = self
            .open_in(&prefix, dir_flags, true)
            .map_err(self.err("opening", &prefix))?;
        for name in rel.components() {
            let here = prefix.join(name).map_err(|why| {
                self.err("creating directory", rel)(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    why,
                ))
            })?;
            let fd = match self.open_in(&here, dir_flags, true) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    self.make_dir(&parent, name, &here, mode, owner)?
                }
                Err(e) => return Err(self.err("opening directory", &here)(e)),
            };
            parent = fd;
            prefix = here;
        }
        Ok(())
    }

    fn make_dir(
        &self,
        parent: &OwnedFd,
        name: &str,
        here: &RelPath,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<OwnedFd, RootError> {
        let cname = cstring(name).map_err(self.err("creating directory", here))?;
        // SAFETY: `parent` is an open descriptor and `cname` a NUL-terminated string, both
        // alive for the call; mkdirat reads nothing else.
        let rc = unsafe { libc::mkdirat(parent.as_raw_fd(), cname.as_ptr(), mode as libc::mode_t) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(self.err("creating directory", here)(e));
            }
            // Something is there that did not resolve: a symlink to nowhere, or a race.
            return match self.open_in(here, libc::O_RDONLY | libc::O_DIRECTORY, true) {
                Ok(fd) => Ok(fd),
                Err(_) => Err(self.err("creating directory", here)(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a symlink to a missing directory, or a non-directory, is in the way",
                ))),
            };
        }
        let fd = sys_openat(
            parent.as_fd(),
            &cname,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(self.err("opening directory", here))?;
        let f = File::from(fd);
        set_owner_mode(&f, mode, owner).map_err(self.err("setting the mode of", here))?;
        self.dir_changed(parent, here, "fsync the parent of")?;
        Ok(OwnedFd::from(f))
    }

    /// Sets an existing directory's mode and owner (e.g. `~/.ssh` for sshd's StrictModes).
    pub fn set_dir_perms(
        &self,
        rel: &RelPath,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<(), RootError> {
        let fd = self
            .open_in(rel, libc::O_RDONLY | libc::O_DIRECTORY, true)
            .map_err(self.err("opening directory", rel))?;
        let f = File::from(fd);
        let meta = f.metadata().map_err(self.err("checking", rel))?;
        let same_owner = owner.is_none_or(|(u, g)| meta.uid() == u && meta.gid() == g);
        if meta.mode() & 0o7777 == mode && same_owner {
            return Ok(());
        }
        set_owner_mode(&f, mode, owner).map_err(self.err("setting the mode of", rel))
    }

    /// Writes `data` to `rel` atomically (see the module documentation). The parent directory
    /// must exist. Every symlink on the way, the last component's included, is resolved inside
    /// the root.
    pub fn write_file(&self, rel: &RelPath, data: &[u8], opts: FileOpts) -> Result<(), RootError> {
        let real = self.canonical(rel)?;
        let name = real.file_name();
        if name.is_empty() {
            return Err(self.err("writing", rel)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "names the root directory, not a file",
            )));
        }
        let dir = self
            .open_in(&real.parent(), libc::O_RDONLY | libc::O_DIRECTORY, true)
            .map_err(self.err("opening the directory of", rel))?;
        let target = cstring(name).map_err(self.err("writing", rel))?;
        let tmp = tmp_name(name);
        let tmp_c = cstring(&tmp).map_err(self.err("writing", rel))?;
        // A temporary left by a crash is ours to remove.
        let _ = sys_unlinkat(dir.as_fd(), &tmp_c, 0);
        let fd = sys_openat(
            dir.as_fd(),
            &tmp_c,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            opts.mode & 0o777,
        )
        .map_err(self.err("creating a temporary file for", rel))?;
        let mut f = File::from(fd);
        let staging = self.staged.borrow().is_some();
        let result = (|| {
            set_owner_mode(&f, opts.mode, opts.owner)?;
            f.write_all(data)?;
            if staging {
                return Ok(());
            }
            f.sync_all()?;
            sys_renameat(dir.as_fd(), &tmp_c, &target)
        })();
        drop(f);
        if let Err(e) = result {
            let _ = sys_unlinkat(dir.as_fd(), &tmp_c, 0);
            return Err(self.err("writing", rel)(e));
        }
        self.dir_changed(&dir, rel, "fsync the directory of")?;
        if staging {
            self.hold(
                real,
                Pending {
                    dir,
                    name: target,
                    tmp: Some(tmp_c),
                },
            );
        }
        Ok(())
    }

    /// Stages `p` for the real path `key`, in place of what was staged there before.
    fn hold(&self, key: RelPath, p: Pending) {
        if let Some(st) = self.staged.borrow_mut().as_mut() {
            match st.ops.iter_mut().find(|(k, _)| *k == key) {
                Some((_, old)) => *old = p,
                None => st.ops.push((key, p)),
            }
        }
    }

    /// As [`Root::write_file`], unless `rel` already holds exactly `data` with that mode (and
    /// owner): then nothing is written (its mtime stays). Returns whether it wrote.
    pub fn write_file_if_changed(
        &self,
        rel: &RelPath,
        data: &[u8],
        opts: FileOpts,
    ) -> Result<bool, RootError> {
        if let Ok(fd) = self.open_in(
            rel,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
            true,
        ) {
            let mut f = File::from(fd);
            if let Ok(meta) = f.metadata()
                && meta.is_file()
                && meta.len() == data.len() as u64
                && meta.mode() & 0o7777 == opts.mode
                && opts
                    .owner
                    .is_none_or(|(u, g)| meta.uid() == u && meta.gid() == g)
            {
                let mut old = Vec::with_capacity(data.len());
                if f.read_to_end(&mut old).is_ok() && old == data {
                    return Ok(false);
                }
            }
        }
        self.write_file(rel, data, opts)?;
        Ok(true)
    }

    /// Removes a file (a symlink itself, never its target); `false` when it was not there.
    pub fn remove_file(&self, rel: &RelPath) -> Result<bool, RootError> {
        let dir = match self.open_in(&rel.parent(), libc::O_RDONLY | libc::O_DIRECTORY, true) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) => return Err(self.err("removing", rel)(e)),
        };
        let name = cstring(rel.file_name()).map_err(self.err("removing", rel))?;
        if self.staged.borrow().is_some() {
            let key = self
                .key(&rel.parent(), true)
                .and_then(|p| {
                    p.join(rel.file_name())
                        .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))
                })
                .map_err(self.err("removing", rel))?;
            let was = {
                let staged = self.staged.borrow();
                let st = staged.as_ref().expect("staging, checked above");
                match st.ops.iter().find(|(k, _)| *k == key) {
                    // Staged: the temporary goes now; the name, which may have existed before
                    // staging, at the commit.
                    Some((_, p)) => match &p.tmp {
                        Some(tmp) => {
                            let _ = sys_unlinkat(p.dir.as_fd(), tmp, 0);
                            true
                        }
                        None => false,
                    },
                    None => match sys_fstatat(dir.as_fd(), &name) {
                        Ok(_) => true,
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
                        Err(e) => return Err(self.err("removing", rel)(e)),
                    },
                }
            };
            self.dir_changed(&dir, rel, "fsync the directory of")?;
            self.hold(
                key,
                Pending {
                    dir,
                    name,
                    tmp: None,
                },
            );
            return Ok(was);
        }
        match sys_unlinkat(dir.as_fd(), &name, 0) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) => return Err(self.err("removing", rel)(e)),
        }
        self.dir_changed(&dir, rel, "fsync the directory of")?;
        Ok(true)
    }
}

/// A path written by seedpart itself (`"etc/hostname"`): always valid.
pub fn rel(s: &str) -> RelPath {
    match RelPath::parse(s) {
        Ok(p) => p,
        Err(why) => panic!("internal path {s:?} is invalid: {why}"),
    }
}

/// The temporary file beside `name`: hidden, and short enough for NAME_MAX.
fn tmp_name(name: &str) -> String {
    let mut cut = name.len().min(200);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}.seedpart-new", &name[..cut])
}

/// fchown (when asked), then fchmod: chown clears set-id bits, so the mode goes last. The mode
/// is set explicitly because the umask may have narrowed it at creation.
fn set_owner_mode(f: &File, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(f, Some(uid), Some(gid))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

fn open_host_dir(path: &Path) -> Result<OwnedFd, RootError> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| RootError {
        action: "opening the target root".into(),
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"),
    })?;
    // SAFETY: `c` is a NUL-terminated string alive for the call; open reads nothing else.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(RootError {
            action: "opening the target root".into(),
            path: path.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` was just returned by open and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The directory a walk is in: the last one entered, else the root.
fn top<'a>(root: &'a OwnedFd, stack: &'a [(OwnedFd, Vec<u8>)]) -> BorrowedFd<'a> {
    stack.last().map_or(root.as_fd(), |(fd, _)| fd.as_fd())
}

fn cstring(s: &str) -> io::Result<CString> {
    cstring_bytes(s.as_bytes())
}

fn cstring_bytes(b: &[u8]) -> io::Result<CString> {
    CString::new(b)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name holds a NUL byte"))
}

/// `struct open_how` of `linux/openat2.h` (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dir, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`.
fn sys_openat2(dir: BorrowedFd<'_>, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    let mut tries = 0;
    loop {
        // SAFETY: openat2 reads the NUL-terminated `path` and `size_of::<OpenHow>()` bytes of
        // `how`, both alive for the call, and takes `dir`, an open descriptor, by number. It
        // returns a new descriptor or -1 and writes no memory of ours.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if rc >= 0 {
            // SAFETY: a descriptor just returned by the kernel, owned by nothing else.
            return Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) });
        }
        let e = io::Error::last_os_error();
        tries += 1;
        // EAGAIN: a rename raced with a `..` lookup; the kernel asks for a retry.
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) if tries < 16 => continue,
            _ => return Err(e),
        }
    }
}

fn sys_openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and alive for the call; `dir` is an open descriptor.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned by openat, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sys_fstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated and alive; `st` points to writable memory the size of a
    // `struct stat`, which fstatat fills on success.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatat returned 0, so it initialised `st`.
    Ok(unsafe { st.assume_init() })
}

fn sys_readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `name` is NUL-terminated and alive; readlinkat writes at most `buf.len()` bytes
    // into `buf`, which is that long.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(buf)
}

fn sys_renameat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated and alive; `dir` is an open descriptor.
    let rc =
        unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sys_unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and alive; `dir` is an open descriptor.
    let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sys_syncfs(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: syncfs takes an open descriptor by number and touches no memory of ours.
    if unsafe { libc::syncfs(fd.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sys_fsync(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fsync takes an open descriptor by number and touches no memory of ours.
    if unsafe { libc::fsync(fd.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn roots(dir: &Path) -> Vec<Root> {
        let mut v = vec![Root::open_with(dir, Resolver::Walk).unwrap()];
        let r = Root::open(dir).unwrap();
        if r.resolver() == Resolver::Openat2 {
            v.push(r);
        } else {
            eprintln!("openat2 unavailable here: only the walk is tested");
        }
        v
    }

    /// Absolute and climbing symlinks resolve inside the root, for both resolvers.
    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("real/dir")).unwrap();
        std::fs::create_dir_all(root.join("var/tmp")).unwrap();
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("../../../../../../tmp", root.join("var/tmp/up")).unwrap();
        symlink(outside.path(), root.join("out")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        // Absolute, from below the top: restarts at the root, not at its own directory.
        symlink("/tmp", root.join("real/dir/abs2")).unwrap();
        for (i, r) in roots(&root).iter().enumerate() {
            let name = format!("f{i}");
            r.write_file(
                &rel(&format!("abs/dir/{name}")),
                b"a",
                FileOpts::mode(0o644),
            )
            .unwrap();
            assert_eq!(
                std::fs::read(root.join("real/dir").join(&name)).unwrap(),
                b"a"
            );
            r.write_file(
                &rel(&format!("var/tmp/up/{name}")),
                b"b",
                FileOpts::mode(0o600),
            )
            .unwrap();
            assert_eq!(std::fs::read(root.join("tmp").join(&name)).unwrap(), b"b");
            // `out` names a host directory: inside the root that path does not exist.
            let e = r
                .write_file(&rel(&format!("out/{name}")), b"c", FileOpts::mode(0o600))
                .unwrap_err();
            assert_eq!(e.source.raw_os_error(), Some(libc::ENOENT), "{e}");
            assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
            let e = r.read(&rel("loop"), 10).unwrap_err().to_string();
            assert!(e.contains("symlink loop"), "{e}");
            assert_eq!(r.canonical(&rel("var/tmp/up/x")).unwrap().as_str(), "tmp/x");
            assert_eq!(r.canonical(&rel("abs/dir")).unwrap().as_str(), "real/dir");
            assert_eq!(
                r.canonical(&rel("abs/dir/abs2/y")).unwrap().as_str(),
                "tmp/y"
            );
            r.write_file(
                &rel(&format!("abs/dir/abs2/d{name}")),
                b"d",
                FileOpts::mode(0o600),
            )
            .unwrap();
            assert_eq!(
                std::fs::read(root.join("tmp").join(format!("d{name}"))).unwrap(),
                b"d"
            );
        }
    }

    /// Staged writes and removals: invisible on disk until the commit, visible through the
    /// `Root` at once (reads, metadata, the unchanged-file check, a removal), put in place by
    /// the commit with no temporary left; a `Root` dropped before its commit leaves the targets
    /// as they were and no temporary.
    #[test]
    fn staged_writes_are_seen_through_the_root_and_land_at_commit() {
        let t = tempfile::tempdir().unwrap();
        for (i, r) in roots(t.path()).iter().enumerate() {
            let d = rel(&format!("d{i}"));
            let host = t.path().join(d.as_str());
            std::fs::create_dir(&host).unwrap();
            std::fs::write(host.join("old"), b"old").unwrap();
            std::fs::write(host.join("gone"), b"gone").unwrap();
            // A symlink to a staged file reads as the staged file.
            symlink("new", host.join("link")).unwrap();
            r.stage();
            let f = |n: &str| rel(&format!("{}/{n}", d.as_str()));
            r.create_dir_all(&f("sub/deeper"), 0o755, None).unwrap();
            r.write_file(&f("new"), b"one", FileOpts::mode(0o600))
                .unwrap();
            r.write_file(&f("new"), b"two", FileOpts::mode(0o640))
                .unwrap();
            assert!(
                !r.write_file_if_changed(&f("new"), b"two", FileOpts::mode(0o640))
                    .unwrap()
            );
            r.write_file(&f("old"), b"new", FileOpts::mode(0o600))
                .unwrap();
            assert!(r.remove_file(&f("gone")).unwrap());
            assert!(!r.remove_file(&f("gone")).unwrap());
            r.write_file(&f("sub/deeper/x"), b"x", FileOpts::mode(0o600))
                .unwrap();
            assert!(r.remove_file(&f("sub/deeper/x")).unwrap());
            // Through the root: the staged state.
            assert_eq!(r.read(&f("new"), 100).unwrap().unwrap(), b"two");
            assert_eq!(r.read(&f("link"), 100).unwrap().unwrap(), b"two");
            assert_eq!(
                r.metadata(&f("new")).unwrap().unwrap().mode() & 0o7777,
                0o640
            );
            assert_eq!(r.read(&f("old"), 100).unwrap().unwrap(), b"new");
            assert!(!r.exists(&f("gone")).unwrap());
            assert!(!r.exists(&f("sub/deeper/x")).unwrap());
            // On disk: nothing yet, but the new directories.
            assert!(!host.join("new").exists());
            assert_eq!(std::fs::read(host.join("old")).unwrap(), b"old");
            assert!(host.join("gone").exists());
            assert!(host.join("sub/deeper").is_dir());
            r.commit().unwrap();
            assert_eq!(std::fs::read(host.join("new")).unwrap(), b"two");
            assert_eq!(std::fs::read(host.join("old")).unwrap(), b"new");
            assert!(!host.join("gone").exists());
            assert!(!host.join("sub/deeper/x").exists());
            let mut names: Vec<_> = std::fs::read_dir(&host)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            assert_eq!(names, ["link", "new", "old", "sub"]);
            // Not staging any more: a write lands at once.
            r.write_file(&f("now"), b"now", FileOpts::mode(0o600))
                .unwrap();
            assert!(host.join("now").exists());
        }
        for resolver in [Resolver::Openat2, Resolver::Walk] {
            let r = Root::open_with(t.path(), resolver).unwrap();
            r.stage();
            r.write_file(&rel("d0/old"), b"never", FileOpts::mode(0o600))
                .unwrap();
            r.write_file(&rel("d0/fresh"), b"never", FileOpts::mode(0o600))
                .unwrap();
            drop(r);
            assert_eq!(std::fs::read(t.path().join("d0/old")).unwrap(), b"new");
            let mut names: Vec<_> = std::fs::read_dir(t.path().join("d0"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            assert_eq!(names, ["link", "new", "now", "old", "sub"]);
        }
    }

    #[test]
    fn mkdir_p_write_replace_and_modes() {
        let t = tempfile::tempdir().unwrap();
        for (i, r) in roots(t.path()).iter().enumerate() {
            let d = rel(&format!("a{i}/b/c"));
            r.create_dir_all(&d, 0o700, None).unwrap();
            let m = std::fs::metadata(t.path().join(d.as_str())).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o700);
            let f = d.join("file").unwrap();
            // A symlink at the target's name is followed inside the root: the link stays, and
            // the file it names (in the root, not the host's /etc) is written.
            let etc = format!("etc{i}");
            std::fs::create_dir(t.path().join(&etc)).unwrap();
            symlink(format!("/{etc}/passwd"), t.path().join(f.as_str())).unwrap();
            assert!(
                r.write_file_if_changed(&f, b"x\n", FileOpts::mode(0o640))
                    .unwrap()
            );
            let m = std::fs::symlink_metadata(t.path().join(f.as_str())).unwrap();
            assert!(m.file_type().is_symlink());
            let real = t.path().join(&etc).join("passwd");
            assert_eq!(std::fs::read(&real).unwrap(), b"x\n");
            assert_eq!(std::fs::metadata(&real).unwrap().mode() & 0o7777, 0o640);
            assert!(
                !r.write_file_if_changed(&f, b"x\n", FileOpts::mode(0o640))
                    .unwrap()
            );
            std::fs::remove_file(t.path().join(f.as_str())).unwrap();
            assert!(
                r.write_file_if_changed(&f, b"x\n", FileOpts::mode(0o640))
                    .unwrap()
            );
            assert!(
                std::fs::symlink_metadata(t.path().join(f.as_str()))
                    .unwrap()
                    .is_file()
            );
            assert!(
                !r.write_file_if_changed(&f, b"x\n", FileOpts::mode(0o640))
                    .unwrap()
            );
            assert!(
                r.write_file_if_changed(&f, b"x\n", FileOpts::mode(0o600))
                    .unwrap()
            );
            assert_eq!(r.read(&f, 100).unwrap().unwrap(), b"x\n");
            assert!(r.read(&f, 1).is_err());
            assert!(r.remove_file(&f).unwrap());
            assert!(!r.remove_file(&f).unwrap());
            assert_eq!(r.read(&f, 100).unwrap(), None);
            let leftovers: Vec<_> = std::fs::read_dir(t.path().join(d.as_str()))
                .unwrap()
                .collect();
            assert!(leftovers.is_empty());
        }
    }
}
