//! The KMS layer: key policies (more to come: key store states, keys, aliases, operations).

pub mod policy;
