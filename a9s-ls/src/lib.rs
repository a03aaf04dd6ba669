//! a9s-ls (being written).
