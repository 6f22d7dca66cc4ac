//! placeholder

pub mod ciphers;
