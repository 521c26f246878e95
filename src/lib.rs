//! seedpart: a first-boot agent that finds the OpenStack config-drive partition on the root disk,
//! reads it without mounting, applies it, and reclaims its space for the root filesystem.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod apply;
pub mod build;
pub mod cli;
pub mod cmdline;
pub mod commands;
pub mod config;
pub mod configdrive;
pub mod copy;
pub mod discover;
pub mod disk;
pub mod fault;
pub mod fs;
pub mod grow;
pub mod inspect;
pub mod locate;
pub mod logger;
pub mod plan;
pub mod reclaim;
pub mod run;
pub mod state;
pub mod status;
pub mod sys;
pub mod sysfs;
