//! a9s-pgrestore (being written).
