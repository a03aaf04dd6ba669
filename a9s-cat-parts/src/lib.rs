//! a9s-cat-parts (being written).
