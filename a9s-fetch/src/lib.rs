//! a9s-fetch (being written).
