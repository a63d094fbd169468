//! Versioned record encoding for the store: one version byte followed by the record's JSON.
//!
//! Decoding ignores fields it does not know (written by a newer premia) and fills missing optional ones from serde
//! defaults (written by an older premia). An unknown version byte or bytes that do not parse give a
//! [`StoreError`] naming the tree and the key, never a panic.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// The encoding version written today.
pub const VERSION: u8 = 1;

/// The trees of a state dir, with how their keys read in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TreeId {
    Orders,
    OrderIndex,
    Fills,
    FillIds,
    Positions,
    Journal,
    Meta,
}

impl TreeId {
    pub(crate) fn name(self) -> &'static str {
        match self {
            TreeId::Orders => "orders",
            TreeId::OrderIndex => "order_index",
            TreeId::Fills => "fills",
            TreeId::FillIds => "fill_ids",
            TreeId::Positions => "positions",
            TreeId::Journal => "journal",
            TreeId::Meta => "meta",
        }
    }

    /// Keys of these trees are big-endian `u64` sequence numbers.
    fn has_seq_keys(self) -> bool {
        matches!(self, TreeId::OrderIndex | TreeId::Fills | TreeId::Journal)
    }

    /// A key as a person reads it: the sequence number, or the text of a string key.
    pub(crate) fn key_label(self, key: &[u8]) -> String {
        if self.has_seq_keys() {
            if let Some(seq) = seq_from_key(key) {
                return format!("#{seq}");
            }
        }
        format!("{:?}", String::from_utf8_lossy(key))
    }
}

/// Sequence number → key bytes that sort in numeric order.
pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(crate) fn seq_from_key(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Encodes a record as `VERSION` + JSON.
pub(crate) fn encode<T: Serialize>(
    tree: TreeId,
    key: &[u8],
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(128);
    encode_into(tree, key, value, &mut out)?;
    Ok(out)
}

/// [`encode`] into `out` (cleared first), so that a caller can reuse one buffer.
pub(crate) fn encode_into<T: Serialize>(
    tree: TreeId,
    key: &[u8],
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    out.clear();
    out.push(VERSION);
    serde_json::to_writer(&mut *out, value).map_err(|e| StoreError::Encode {
        tree: tree.name(),
        key: tree.key_label(key),
        reason: e.to_string(),
    })
}

/// Decodes a record written by [`encode`] (by this or another version of premia).
pub(crate) fn decode<T: DeserializeOwned>(
    tree: TreeId,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(StoreError::Corrupt {
            tree: tree.name(),
            key: tree.key_label(key),
            reason: "empty record".to_string(),
        });
    };
    if version != VERSION {
        return Err(StoreError::UnknownVersion {
            tree: tree.name(),
            key: tree.key_label(key),
            version,
        });
    }
    serde_json::from_slice(body).map_err(|e| StoreError::Corrupt {
        tree: tree.name(),
        key: tree.key_label(key),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Decimal, Fill, OrderRecord, OrderState, OrderType, Side};
    use serde::Deserialize;
    use std::str::FromStr;

    /// `OrderRecord` as an earlier premia might have written it: fewer fields.
    #[derive(Serialize)]
    struct OldOrderRequest {
        client_id: String,
        symbol: String,
        side: Side,
        order_type: OrderType,
        qty: Decimal,
        price: Option<Decimal>,
        reduce_only: bool,
        rule: String,
        decided_ts: i64,
    }
    #[derive(Serialize)]
    struct OldOrderRecord {
        request: OldOrderRequest,
        state: OrderState,
    }

    #[test]
    fn record_from_an_older_struct_decodes_with_defaults() {
        let old = OldOrderRecord {
            request: OldOrderRequest {
                client_id: "pm-1".into(),
                symbol: "BTCUSDT".into(),
                side: Side::Buy,
                order_type: OrderType::Market,
                qty: Decimal::from_str("0.010").unwrap(),
                price: None,
                reduce_only: false,
                rule: "r".into(),
                decided_ts: 7,
            },
            state: OrderState::Sent,
        };
        let bytes = encode(TreeId::Orders, b"pm-1", &old).unwrap();
        let rec: OrderRecord = decode(TreeId::Orders, b"pm-1", &bytes).unwrap();
        assert_eq!(rec.request.client_id, "pm-1");
        assert_eq!(rec.state, OrderState::Sent);
        assert_eq!(rec.exchange_id, None);
        assert_eq!(rec.filled_qty, Decimal::ZERO);
        assert_eq!(rec.avg_price, None);
        assert_eq!(rec.note, None);
    }

    #[test]
    fn record_from_a_newer_struct_with_extra_fields_decodes() {
        let mut json = serde_json::json!({
            "ts": 5, "client_id": "c", "symbol": "BTCUSDT", "side": "SELL", "qty": "1", "price": "2",
            "fee": "0.1", "rule": "x", "venue_of_the_future": {"a": 1}
        });
        let mut bytes = vec![VERSION];
        bytes.extend(serde_json::to_vec(&json).unwrap());
        let fill: Fill = decode(TreeId::Fills, &seq_key(3), &bytes).unwrap();
        assert_eq!(fill.side, Side::Sell);
        assert_eq!(fill.trade_id, None);
        // And a field we need missing is an error, not a default.
        json.as_object_mut().unwrap().remove("price");
        let mut bytes = vec![VERSION];
        bytes.extend(serde_json::to_vec(&json).unwrap());
        let err = decode::<Fill>(TreeId::Fills, &seq_key(3), &bytes).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("fills") && msg.contains("#3") && msg.contains("price"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_version_and_garbage_are_errors_naming_tree_and_key() {
        #[derive(Debug, Deserialize)]
        struct Any {}
        let err = decode::<Any>(TreeId::Orders, b"pm-9", &[9, b'{', b'}']).unwrap_err();
        assert!(matches!(err, StoreError::UnknownVersion { version: 9, .. }));
        let msg = err.to_string();
        assert!(msg.contains("orders") && msg.contains("pm-9"), "{msg}");

        let err = decode::<Any>(TreeId::Journal, &seq_key(12), &[VERSION, 0xff, 0x00]).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        assert!(err.to_string().contains("journal") && err.to_string().contains("#12"));

        let err = decode::<Any>(TreeId::Positions, b"ETHUSDT", &[]).unwrap_err();
        assert!(err.to_string().contains("empty record"));
    }
}
