//! a9s-repmgr-reset (being written).
