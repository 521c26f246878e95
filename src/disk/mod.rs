//! Partition tables and the byte windows onto partitions.

pub mod window;

pub use window::Window;
