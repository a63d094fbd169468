//! (to be written) Summaries of a state dir: positions, trades, PnL (text and JSON).
