//! The order gateway: what the live runner asks of an exchange about orders (place, query by client id, cancel,
//! open orders, position), and the one policy for an order whose outcome is UNKNOWN — ask the exchange by client
//! order id; if it never arrived, send it again with the SAME client id (so it can never be doubled); if that cannot
//! be told yet, it stays UNKNOWN and is settled again later.

use std::future::Future;

use crate::binance::error::BinanceError;
use crate::binance::rest::RestClient;
use crate::model::{ExchangePosition, OrderRecord, OrderRequest, OrderUpdate};

/// The exchange, as far as orders go. [`RestClient`] is the real one; tests script their own.
pub trait OrderGateway {
    fn place(
        &self,
        req: &OrderRequest,
    ) -> impl Future<Output = Result<OrderUpdate, BinanceError>> + Send;
    fn query(
        &self,
        symbol: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<OrderUpdate, BinanceError>> + Send;
    fn cancel(
        &self,
        symbol: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<OrderUpdate, BinanceError>> + Send;
    fn open_orders(
        &self,
        symbol: &str,
    ) -> impl Future<Output = Result<Vec<OrderRecord>, BinanceError>> + Send;
    fn positions(
        &self,
        symbol: &str,
    ) -> impl Future<Output = Result<Vec<ExchangePosition>, BinanceError>> + Send;
}

impl OrderGateway for RestClient {
    fn place(
        &self,
        req: &OrderRequest,
    ) -> impl Future<Output = Result<OrderUpdate, BinanceError>> + Send {
        self.place_order(req)
    }
    fn query(
        &self,
        symbol: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<OrderUpdate, BinanceError>> + Send {
        self.query_order(symbol, client_id)
    }
    fn cancel(
        &self,
        symbol: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<OrderUpdate, BinanceError>> + Send {
        self.cancel_order(symbol, client_id)
    }
    async fn open_orders(&self, symbol: &str) -> Result<Vec<OrderRecord>, BinanceError> {
        RestClient::open_orders(self, Some(symbol)).await
    }
    async fn positions(&self, symbol: &str) -> Result<Vec<ExchangePosition>, BinanceError> {
        self.position_risk(Some(symbol)).await
    }
}

/// Where an order stands after [`settle`].
#[derive(Debug, Clone, PartialEq)]
// Built once per order outcome and matched at once: boxing the update would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Settled {
    /// The exchange told (accepted, filled, rejected by its own rules…).
    Known(OrderUpdate),
    /// The exchange refused it outright (filters, margin, keys…): it does not exist there.
    Refused(BinanceError),
    /// Still cannot be told; settle again later (never send it with a new client id).
    Unknown(BinanceError),
}

/// Settles an order from the outcome of its last send (`first`): the one place of the UNKNOWN → query by client id
/// → resend with the same client id policy. Call it again with `Err(Unknown)` to retry a still-unknown order.
pub async fn settle<G: OrderGateway>(
    g: &G,
    req: &OrderRequest,
    first: Result<OrderUpdate, BinanceError>,
) -> Settled {
    match first {
        Ok(u) => return Settled::Known(u),
        // It may exist: ask.
        Err(e) if e.is_unknown_outcome() || is_duplicate(&e) => {}
        // Refused before it was placed (filters, margin, a rate limit, a refused connection): it does not exist.
        Err(e) => return Settled::Refused(e),
    }
    match g.query(&req.symbol, &req.client_id).await {
        Ok(u) => {
            tracing::info!(client_id = %req.client_id, state = u.state.as_str(), "unknown order resolved: it exists");
            Settled::Known(u)
        }
        Err(BinanceError::UnknownOrder { .. }) => resend(g, req).await,
        Err(e) => Settled::Unknown(e),
    }
}

fn is_duplicate(e: &BinanceError) -> bool {
    matches!(e, BinanceError::DuplicateClientId { .. })
}

/// The order never reached the exchange: it is sent once more, with the same client id.
async fn resend<G: OrderGateway>(g: &G, req: &OrderRequest) -> Settled {
    tracing::warn!(client_id = %req.client_id, "order never reached the exchange; sending it again with the same client id");
    match g.place(req).await {
        Ok(u) => Settled::Known(u),
        Err(e) if e.is_unknown_outcome() || is_duplicate(&e) => {
            match g.query(&req.symbol, &req.client_id).await {
                Ok(u) => Settled::Known(u),
                Err(_) => Settled::Unknown(e),
            }
        }
        Err(e) => Settled::Refused(e),
    }
}

/// Places an order and settles its outcome (for callers outside the live order path: tools, tests).
pub async fn place_settled<G: OrderGateway>(g: &G, req: &OrderRequest) -> Settled {
    let first = g.place(req).await;
    settle(g, req, first).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Decimal, OrderState, OrderType, Side};
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// A gateway answering from a script, recording every call.
    #[derive(Default)]
    struct Scripted {
        places: Mutex<VecDeque<Result<OrderUpdate, BinanceError>>>,
        queries: Mutex<VecDeque<Result<OrderUpdate, BinanceError>>>,
        calls: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(
            places: Vec<Result<OrderUpdate, BinanceError>>,
            queries: Vec<Result<OrderUpdate, BinanceError>>,
        ) -> Self {
            Scripted {
                places: Mutex::new(places.into()),
                queries: Mutex::new(queries.into()),
                calls: Mutex::default(),
            }
        }
        fn next(
            &self,
            call: String,
            q: &Mutex<VecDeque<Result<OrderUpdate, BinanceError>>>,
        ) -> Result<OrderUpdate, BinanceError> {
            self.calls.lock().unwrap().push(call);
            q.lock().unwrap().pop_front().expect("a scripted answer")
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl OrderGateway for Scripted {
        async fn place(&self, req: &OrderRequest) -> Result<OrderUpdate, BinanceError> {
            self.next(format!("place {}", req.client_id), &self.places)
        }
        async fn query(&self, _: &str, id: &str) -> Result<OrderUpdate, BinanceError> {
            self.next(format!("query {id}"), &self.queries)
        }
        async fn cancel(&self, _: &str, id: &str) -> Result<OrderUpdate, BinanceError> {
            self.next(format!("cancel {id}"), &self.queries)
        }
        async fn open_orders(&self, _: &str) -> Result<Vec<OrderRecord>, BinanceError> {
            Ok(Vec::new())
        }
        async fn positions(&self, _: &str) -> Result<Vec<ExchangePosition>, BinanceError> {
            Ok(Vec::new())
        }
    }

    fn req() -> OrderRequest {
        OrderRequest {
            client_id: "pm-1".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            order_type: OrderType::Market,
            qty: Decimal::ONE,
            price: None,
            reduce_only: false,
            rule: "r".into(),
            decided_ts: 0,
        }
    }

    fn filled() -> OrderUpdate {
        OrderUpdate {
            ts: 1,
            client_id: "pm-1".into(),
            symbol: "BTCUSDT".into(),
            exchange_id: Some(7),
            state: OrderState::Filled,
            fill: None,
            cum_qty: Decimal::ONE,
            avg_price: None,
            reason: None,
        }
    }

    fn unknown() -> BinanceError {
        BinanceError::Unknown {
            reason: "timeout".into(),
        }
    }

    fn missing() -> BinanceError {
        BinanceError::UnknownOrder { msg: "no".into() }
    }

    #[tokio::test]
    async fn an_unknown_order_that_exists_is_found_and_not_resent() {
        let g = Scripted::new(vec![], vec![Ok(filled())]);
        assert_eq!(
            settle(&g, &req(), Err(unknown())).await,
            Settled::Known(filled())
        );
        assert_eq!(g.calls(), ["query pm-1"]);
    }

    #[tokio::test]
    async fn an_unknown_order_that_never_arrived_is_resent_with_the_same_id() {
        let g = Scripted::new(vec![Ok(filled())], vec![Err(missing())]);
        assert_eq!(
            settle(&g, &req(), Err(unknown())).await,
            Settled::Known(filled())
        );
        assert_eq!(g.calls(), ["query pm-1", "place pm-1"]);
    }

    #[tokio::test]
    async fn a_resend_whose_outcome_is_unknown_again_is_queried_then_stays_unknown() {
        let g = Scripted::new(vec![Err(unknown())], vec![Err(missing()), Err(unknown())]);
        assert!(matches!(
            settle(&g, &req(), Err(unknown())).await,
            Settled::Unknown(_)
        ));
        assert_eq!(g.calls(), ["query pm-1", "place pm-1", "query pm-1"]);
        // Later, the next settle asks first and finds it.
        let g = Scripted::new(vec![], vec![Ok(filled())]);
        assert_eq!(
            settle(&g, &req(), Err(unknown())).await,
            Settled::Known(filled())
        );
    }

    #[tokio::test]
    async fn a_duplicate_id_is_looked_up_and_a_refusal_is_final() {
        let dup = BinanceError::DuplicateClientId { msg: "dup".into() };
        let g = Scripted::new(vec![], vec![Ok(filled())]);
        assert_eq!(settle(&g, &req(), Err(dup)).await, Settled::Known(filled()));
        let g = Scripted::new(vec![], vec![]);
        let refused = BinanceError::InsufficientMargin { msg: "m".into() };
        assert_eq!(
            settle(&g, &req(), Err(refused.clone())).await,
            Settled::Refused(refused)
        );
        assert!(g.calls().is_empty());
    }

    #[tokio::test]
    async fn a_query_that_fails_leaves_the_order_unknown_without_a_resend() {
        let g = Scripted::new(
            vec![],
            vec![Err(BinanceError::Transport {
                reason: "refused".into(),
            })],
        );
        assert!(matches!(
            settle(&g, &req(), Err(unknown())).await,
            Settled::Unknown(BinanceError::Transport { .. })
        ));
        assert_eq!(g.calls(), ["query pm-1"]);
    }
}
