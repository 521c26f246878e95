//! seedpart: a first-boot agent that finds the OpenStack config-drive partition on the root disk,
//! reads it without mounting, applies it, and reclaims its space for the root filesystem.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod configdrive;
pub mod disk;
pub mod fs;
