//! What the table writers need of a device beyond `Read + Write + Seek`: a way to make the
//! bytes durable between two writes, which is what keeps a valid table on disk at every instant.

use std::io::{self, Cursor, Read, Seek, Write};

pub trait Device: Read + Write + Seek {
    /// Makes every write so far durable (fdatasync on a file or block device).
    fn sync(&mut self) -> io::Result<()>;
}

impl Device for std::fs::File {
    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

impl Device for Cursor<Vec<u8>> {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Device for Cursor<&mut Vec<u8>> {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<T: Device + ?Sized> Device for &mut T {
    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }
}
