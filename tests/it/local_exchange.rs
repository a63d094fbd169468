//! Integration tests: local_exchange.
