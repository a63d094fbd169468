//! USD-M websocket routing (Binance's 2026 upgrade): which entry point (`/public`, `/market`, `/private`) serves a
//! stream, the routing setting (`routed`, `legacy`, `auto`) and the URLs built from a configured root.
//!
//! On a routed deployment, connections without a route only receive public (book) data; market streams push only on
//! `/market` and user data only on `/private`. Both access forms stay: `/<route>/ws/<stream>` and
//! `/<route>/stream?streams=a/b`.

use std::fmt;
use std::str::FromStr;

/// The entry point that serves a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// High-frequency data: `bookTicker`, `depth*` and the raw `trade` stream.
    Public,
    /// Regular market data: `aggTrade`, `markPrice`, `kline_*`, `ticker`, `miniTicker`, `forceOrder`, …
    Market,
    /// User data (a listen key).
    Private,
}

impl Route {
    /// The path prefix, e.g. `/public`.
    pub fn path(self) -> &'static str {
        match self {
            Route::Public => "/public",
            Route::Market => "/market",
            Route::Private => "/private",
        }
    }

    pub fn as_str(self) -> &'static str {
        &self.path()[1..]
    }

    /// The route of a stream name (`btcusdt@bookTicker`, `!markPrice@arr`, …); a name without `@` or `!` is a
    /// listen key.
    pub fn of(stream: &str) -> Route {
        let kind = match stream.strip_prefix('!') {
            Some(all) => all.split('@').next().unwrap_or(all),
            None => match stream.split_once('@') {
                Some((_, rest)) => rest.split('@').next().unwrap_or(rest),
                None => return Route::Private,
            },
        };
        // `trade` (each trade, unaggregated) is served with the book data, as ccxt and other clients subscribe it.
        if kind == "bookTicker" || kind == "trade" || kind.starts_with("depth") {
            Route::Public
        } else {
            Route::Market
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

/// How premia connects to USD-M websockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Routing {
    /// One connection per route, on `/public`, `/market`, `/private` (Binance mainnet since 2026).
    #[default]
    Routed,
    /// The pre-2026 paths: every stream on `/stream?streams=…`, user data on `/ws/<listenKey>`.
    Legacy,
    /// Routed; a connection whose routed handshake is refused with an HTTP 4xx falls back to the legacy path.
    Auto,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::Routed => "routed",
            Routing::Legacy => "legacy",
            Routing::Auto => "auto",
        }
    }
}

impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A routing setting that is not `routed`, `legacy` or `auto`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a routing; use \"routed\", \"legacy\" or \"auto\"")]
pub struct UnknownRouting(pub String);

impl FromStr for Routing {
    type Err = UnknownRouting;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "routed" => Ok(Routing::Routed),
            "legacy" => Ok(Routing::Legacy),
            "auto" => Ok(Routing::Auto),
            _ => Err(UnknownRouting(s.to_string())),
        }
    }
}

/// The root of a websocket URL: whitespace and trailing `/` trimmed, then a trailing `/stream` or `/ws`, then a
/// trailing route (`wss://fstream.binance.com/market/ws` → `wss://fstream.binance.com`).
pub fn ws_root(url: &str) -> &str {
    let base = url.trim().trim_end_matches('/');
    let base = base.strip_suffix("/stream").unwrap_or(base);
    let base = base.strip_suffix("/ws").unwrap_or(base);
    [Route::Public, Route::Market, Route::Private]
        .iter()
        .find_map(|r| base.strip_suffix(r.path()))
        .unwrap_or(base)
}

/// `{root}{route}/stream?streams=a/b` (`route` `None` = the unrouted legacy path).
pub fn combined_url(root: &str, route: Option<Route>, streams: &[String]) -> String {
    format!(
        "{}{}/stream?streams={}",
        ws_root(root),
        route.map_or("", Route::path),
        streams.join("/")
    )
}

/// The user-data URL of a listen key: `{root}/private/ws/<key>` routed, `{root}/ws/<key>` unrouted.
pub fn user_url(root: &str, route: Option<Route>, listen_key: &str) -> String {
    format!(
        "{}{}/ws/{listen_key}",
        ws_root(root),
        route.map_or("", Route::path)
    )
}

/// Streams grouped by route, in order of first appearance (one connection per group).
pub fn group_by_route(streams: &[String]) -> Vec<(Route, Vec<String>)> {
    let mut groups: Vec<(Route, Vec<String>)> = Vec::new();
    for s in streams {
        let r = Route::of(s);
        match groups.iter_mut().find(|(g, _)| *g == r) {
            Some((_, v)) => v.push(s.clone()),
            None => groups.push((r, vec![s.clone()])),
        }
    }
    groups
}

/// True for a handshake refused with an HTTP client error (the server does not know the path): the signal on which
/// `auto` falls back to the legacy paths.
pub fn is_refused_route(e: &tokio_tungstenite::tungstenite::Error) -> bool {
    matches!(e, tokio_tungstenite::tungstenite::Error::Http(resp) if resp.status().is_client_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_of_streams() {
        for (s, r) in [
            ("btcusdt@bookTicker", Route::Public),
            ("btcusdt@depth", Route::Public),
            ("btcusdt@depth5@100ms", Route::Public),
            ("btcusdt@depth@0ms", Route::Public),
            ("!bookTicker", Route::Public),
            ("btcusdt@markPrice@1s", Route::Market),
            ("btcusdt@forceOrder", Route::Market),
            ("btcusdt@aggTrade", Route::Market),
            ("btcusdt@trade", Route::Public),
            ("btcusdt@kline_1m", Route::Market),
            ("!markPrice@arr@1s", Route::Market),
            ("!forceOrder@arr", Route::Market),
            ("Xq3fLk0abc", Route::Private),
        ] {
            assert_eq!(Route::of(s), r, "{s}");
        }
    }

    #[test]
    fn roots_and_urls() {
        for u in [
            "wss://fstream.binance.com",
            "wss://fstream.binance.com/",
            " wss://fstream.binance.com/ws ",
            "wss://fstream.binance.com/stream",
            "wss://fstream.binance.com/market",
            "wss://fstream.binance.com/private/ws/",
        ] {
            assert_eq!(ws_root(u), "wss://fstream.binance.com", "{u}");
        }
        let s = vec![
            "btcusdt@markPrice@1s".to_string(),
            "btcusdt@forceOrder".into(),
        ];
        assert_eq!(
            combined_url("wss://x", Some(Route::Market), &s),
            "wss://x/market/stream?streams=btcusdt@markPrice@1s/btcusdt@forceOrder"
        );
        assert_eq!(
            combined_url("wss://x/", None, &s),
            "wss://x/stream?streams=btcusdt@markPrice@1s/btcusdt@forceOrder"
        );
        assert_eq!(
            user_url("wss://x", Some(Route::Private), "K"),
            "wss://x/private/ws/K"
        );
        assert_eq!(user_url("wss://x/ws", None, "K"), "wss://x/ws/K");
    }

    #[test]
    fn routing_names() {
        assert_eq!("Routed".parse::<Routing>(), Ok(Routing::Routed));
        assert_eq!("legacy".parse::<Routing>(), Ok(Routing::Legacy));
        assert_eq!("auto".parse::<Routing>(), Ok(Routing::Auto));
        assert!("mixed".parse::<Routing>().is_err());
    }

    #[test]
    fn groups_keep_order_and_never_mix_routes() {
        let s: Vec<String> = ["a@bookTicker", "a@markPrice@1s", "a@depth5", "a@forceOrder"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        let g = group_by_route(&s);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0], (Route::Public, vec![s[0].clone(), s[2].clone()]));
        assert_eq!(g[1], (Route::Market, vec![s[1].clone(), s[3].clone()]));
    }
}
