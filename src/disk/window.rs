//! A window onto part of a disk (a partition), seen as a stream of its own.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// A byte range `[start, start + len)` of an inner device, presented as a stream starting at 0.
///
/// Readers of filesystems get a window rather than the disk so that a corrupt filesystem can
/// never make them read (or, for a writable window, write) outside its partition: every access
/// beyond `len` is cut short exactly like the end of a file.
pub struct Window<D> {
    inner: D,
    start: u64,
    len: u64,
    pos: u64,
    writable: bool,
}

impl<D> Window<D> {
    /// A read-only window: `write` fails with `PermissionDenied`. `fatfs` wants `Write` even to
    /// read, and must never get to change a drive we only read.
    pub fn read_only(inner: D, start: u64, len: u64) -> Self {
        Window {
            inner,
            start,
            len,
            pos: 0,
            writable: false,
        }
    }

    /// A window that accepts writes inside its range (used by `build` to format a partition).
    pub fn writable(inner: D, start: u64, len: u64) -> Self {
        Window {
            inner,
            start,
            len,
            pos: 0,
            writable: true,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn into_inner(self) -> D {
        self.inner
    }

    pub fn get_mut(&mut self) -> &mut D {
        &mut self.inner
    }
}

impl<D: Read + Seek> Read for Window<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let room = (self.len - self.pos).min(buf.len() as u64) as usize;
        self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.inner.read(&mut buf[..room])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D: Write + Seek> Write for Window<D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "refusing to write through a read-only partition window",
            ));
        }
        if self.pos >= self.len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        let room = (self.len - self.pos).min(buf.len() as u64) as usize;
        self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
        let n = self.inner.write(&buf[..room])?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.writable {
            self.inner.flush()
        } else {
            Ok(())
        }
    }
}

impl<D> Seek for Window<D> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the partition",
            )),
        }
    }
}

/// A device opened for reading only, made to look writable to APIs (such as `fatfs`) that ask
/// for `Write` even to read: every write fails.
pub struct NoWrite<D>(pub D);

impl<D: Read> Read for NoWrite<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<D: Seek> Seek for NoWrite<D> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
    }
}

impl<D> Write for NoWrite<D> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the device is open for reading only",
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_stop_at_the_window_end() {
        let disk: Vec<u8> = (0..100u8).collect();
        let mut w = Window::read_only(Cursor::new(disk), 10, 20);
        let mut all = Vec::new();
        w.read_to_end(&mut all).unwrap();
        assert_eq!(all, (10..30u8).collect::<Vec<_>>());
        w.seek(SeekFrom::End(-5)).unwrap();
        let mut b = [0u8; 10];
        assert_eq!(w.read(&mut b).unwrap(), 5);
        assert_eq!(&b[..5], &[25, 26, 27, 28, 29]);
        assert!(w.seek(SeekFrom::Current(-100)).is_err());
    }

    #[test]
    fn read_only_window_refuses_writes_and_writable_stays_inside() {
        let mut w = Window::read_only(Cursor::new(vec![0u8; 64]), 8, 8);
        assert_eq!(
            w.write(&[1]).unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
        let mut w = Window::writable(Cursor::new(vec![0u8; 64]), 8, 8);
        w.seek(SeekFrom::Start(6)).unwrap();
        assert_eq!(w.write(&[7; 4]).unwrap(), 2);
        assert!(w.write(&[7]).is_err());
        let disk = w.into_inner().into_inner();
        assert_eq!(&disk[12..18], &[0, 0, 7, 7, 0, 0]);
    }
}
