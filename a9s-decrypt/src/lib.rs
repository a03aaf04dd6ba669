//! a9s-decrypt (being written).
