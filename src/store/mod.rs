//! (to be written) Persistent state in sled: orders, fills, positions, PnL, decision journal.
