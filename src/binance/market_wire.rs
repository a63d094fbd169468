//! (to be written) Combined-stream market frames (bookTicker, trade, aggTrade, markPrice, forceOrder) → domain events.
