//! Parsers and market-data readers: real capture lines, Binance doc samples, malformed input, formats, merging.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flate2::write::GzEncoder;
use flate2::Compression;
use premia::binance::market_wire::{parse_frame, Frame};
use premia::market::detect::venue_from_name;
use premia::market::gen::TickGen;
use premia::market::quote_csv::parse_quote_line;
use premia::market::recording::split_record_line;
use premia::market::{
    generate_ticks, DataError, Format, FrameReader, MarketEvent, MarketKind, MarketReader, Quote,
    RecordWriter,
};
use premia::model::{Decimal, Side, Venue};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read_fixture(rel: &str) -> String {
    std::fs::read_to_string(fixture(rel)).unwrap()
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn write_file(dir: &Path, name: &str, content: &[u8], gzip: bool) -> String {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    if gzip {
        let mut gz = GzEncoder::new(f, Compression::fast());
        gz.write_all(content).unwrap();
        gz.finish().unwrap();
    } else {
        f.write_all(content).unwrap();
    }
    path.to_string_lossy().into_owned()
}

fn collect(inputs: &[String]) -> (Vec<MarketEvent>, Vec<DataError>, MarketReader) {
    let mut reader = MarketReader::open(inputs).unwrap();
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for item in reader.by_ref() {
        match item {
            Ok(ev) => events.push(ev),
            Err(e) => errors.push(e),
        }
    }
    (events, errors, reader)
}

fn quote(ev: &MarketEvent) -> Quote {
    match ev.kind {
        MarketKind::Quote(q) => q,
        other => panic!("not a quote: {other:?}"),
    }
}

#[test]
fn every_real_capture_line_parses() {
    let text = read_fixture("market_data/real_stream_line_examples.jsonl");
    let mut kinds = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let file = v["file"].as_str().unwrap();
        let raw = v["raw_line"].as_str().unwrap();
        let venue = venue_from_name(file).expect("file name tells the market");
        let (ts, frame) = split_record_line(raw.as_bytes()).unwrap();
        let parsed = parse_frame(frame, venue).unwrap_or_else(|e| panic!("{file}: {e}"));
        kinds.push((file.to_string(), ts, parsed));
    }
    assert_eq!(kinds.len(), 13);
    // Spot 2023 trade (µs timestamp, buyer is maker → taker sold).
    let (_, ts, f) = &kinds[0];
    assert_eq!(*ts, 1_680_652_800_004_107_000);
    match f {
        Frame::Market(MarketKind::Trade(t)) => {
            assert_eq!(t.venue, Venue::Spot);
            assert_eq!(t.price, d("28165.47"));
            assert_eq!(t.qty, d("0.00056"));
            assert_eq!(t.taker_side, Side::Sell);
        }
        other => panic!("{other:?}"),
    }
    // Spot bookTicker without `e`.
    assert_eq!(
        kinds[1].2,
        Frame::Market(MarketKind::Quote(Quote {
            venue: Venue::Spot,
            bid: d("28165.47"),
            bid_qty: d("7.9868"),
            ask: d("28165.48"),
            ask_qty: d("3.26888"),
        }))
    );
    // Depth updates carry no event.
    assert_eq!(kinds[2].2, Frame::Ignored);
    // markPrice@1s.
    match kinds[4].2 {
        Frame::Market(MarketKind::Mark(m)) => {
            assert_eq!(m.mark, d("28155.1"));
            assert_eq!(m.index, d("28165.04857143"));
            assert_eq!(m.funding_rate, d("0.0000276"));
        }
        other => panic!("{other:?}"),
    }
    // 2024 futures bookTicker (ns timestamp).
    let (_, ts, f) = &kinds[10];
    assert_eq!(*ts, 1_723_161_255_088_169_167);
    assert!(
        matches!(f, Frame::Market(MarketKind::Quote(q)) if q.venue == Venue::Perp && q.bid == d("61800.20") && q.ask_qty == d("2.510"))
    );
    // 2024 futures trade with m=false → taker bought.
    assert!(
        matches!(kinds[11].2, Frame::Market(MarketKind::Trade(t)) if t.taker_side == Side::Buy && t.qty == d("0.006"))
    );
    let ignored = kinds.iter().filter(|k| k.2 == Frame::Ignored).count();
    assert_eq!(ignored, 4, "the four depth lines");
}

#[test]
fn every_doc_market_sample_parses() {
    let spot_bt = read_fixture("docs/spot/spot_ws_bookTicker.json");
    let fut_bt = read_fixture("docs/futures/ws_market/futures_bookTicker.json");
    for (json, venue) in [(&spot_bt, Venue::Spot), (&fut_bt, Venue::Perp)] {
        let f = parse_frame(json, venue).unwrap();
        assert_eq!(
            f,
            Frame::Market(MarketKind::Quote(Quote {
                venue,
                bid: d("25.35190000"),
                bid_qty: d("31.21000000"),
                ask: d("25.36520000"),
                ask_qty: d("40.66000000"),
            }))
        );
        // The same payload inside a combined-stream wrapper.
        let wrapped = format!("{{\"stream\":\"bnbusdt@bookTicker\",\"data\":{json}}}");
        assert_eq!(parse_frame(&wrapped, venue).unwrap(), f);
    }
    for (rel, venue) in [
        ("docs/spot/spot_ws_trade.json", Venue::Spot),
        ("docs/spot/spot_ws_aggTrade.json", Venue::Spot),
        ("docs/futures/ws_market/futures_aggTrade.json", Venue::Perp),
    ] {
        let f = parse_frame(&read_fixture(rel), venue).unwrap();
        match f {
            Frame::Market(MarketKind::Trade(t)) => {
                assert_eq!(t.venue, venue);
                assert_eq!(t.price, d("0.001"));
                assert_eq!(t.qty, d("100"));
                assert_eq!(t.taker_side, Side::Sell, "{rel}: m=true");
            }
            other => panic!("{rel}: {other:?}"),
        }
    }
    match parse_frame(
        &read_fixture("docs/futures/ws_market/futures_markPrice.json"),
        Venue::Perp,
    )
    .unwrap()
    {
        Frame::Market(MarketKind::Mark(m)) => {
            assert_eq!(m.mark, d("11794.15"));
            assert_eq!(m.index, d("11784.62659091"));
            assert_eq!(m.funding_rate, d("0.00038167"));
        }
        other => panic!("{other:?}"),
    }
    for rel in [
        "docs/futures/ws_market/futures_forceOrder.json",
        "docs/futures/ws_market/futures_forceOrder_arr.json",
    ] {
        match parse_frame(&read_fixture(rel), Venue::Perp).unwrap() {
            Frame::Market(MarketKind::Liquidation(l)) => {
                assert_eq!(l.side, Side::Sell);
                assert_eq!(l.price, d("9910"));
                assert_eq!(l.qty, d("0.014"));
            }
            other => panic!("{rel}: {other:?}"),
        }
    }
    // Array and kline streams carry nothing premia uses.
    for rel in [
        "docs/futures/ws_market/futures_markPrice_arr.json",
        "docs/futures/ws_market/futures_kline.json",
    ] {
        assert_eq!(
            parse_frame(&read_fixture(rel), Venue::Perp).unwrap(),
            Frame::Ignored,
            "{rel}"
        );
    }
    for rel in [
        "docs/spot/spot_ws_serverShutdown_raw.json",
        "docs/spot/spot_ws_serverShutdown_combined_wrapper.json",
    ] {
        assert_eq!(
            parse_frame(&read_fixture(rel), Venue::Spot).unwrap(),
            Frame::ServerShutdown,
            "{rel}"
        );
    }
    assert_eq!(
        parse_frame(r#"{"result":null,"id":1}"#, Venue::Spot).unwrap(),
        Frame::Ignored
    );
    assert_eq!(
        parse_frame(r#"{"result":["btcusdt@aggTrade"],"id":3}"#, Venue::Spot).unwrap(),
        Frame::Ignored
    );
}

#[test]
fn missing_and_bad_fields_are_named() {
    let cases = [
        (
            r#"{"e":"bookTicker","b":"1","B":"1","a":"2"}"#,
            "bookTicker: missing field `A`",
        ),
        (
            r#"{"stream":"btcusdt@trade","data":{"e":"trade","p":"1","m":true}}"#,
            "trade: missing field `q`",
        ),
        (
            r#"{"e":"aggTrade","p":"1","q":"1","m":"yes"}"#,
            "aggTrade: bad field `m`",
        ),
        (
            r#"{"e":"markPriceUpdate","p":"1","r":"0"}"#,
            "markPriceUpdate: missing field `i`",
        ),
        (
            r#"{"e":"markPriceUpdate","p":1.5,"i":"1","r":"0"}"#,
            "markPriceUpdate: bad field `p`",
        ),
        (
            r#"{"e":"forceOrder","E":1}"#,
            "forceOrder: missing field `o`",
        ),
        (
            r#"{"e":"forceOrder","o":{"S":"SIDEWAYS","q":"1","p":"1"}}"#,
            "forceOrder: bad field `o.S`",
        ),
        (r#"{"stream":"btcusdt@bookTicker"}"#, "missing field `data`"),
        (
            r#"{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"61800.2"#,
            "invalid JSON",
        ),
    ];
    for (json, want) in cases {
        let err = parse_frame(json, Venue::Perp).unwrap_err().to_string();
        assert!(err.contains(want), "{json}: got {err:?}, want {want:?}");
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = fastrand::Rng::with_seed(11);
    let samples = [
        read_fixture("docs/futures/ws_market/futures_bookTicker.json"),
        read_fixture("docs/futures/ws_market/futures_forceOrder.json"),
        r#"{"stream":"btcusdt@trade","data":{"e":"trade","p":"1","q":"2","m":true}}"#.to_string(),
    ];
    for _ in 0..20_000 {
        // Random bytes, and real frames truncated or with a byte flipped.
        let mut bytes: Vec<u8> = match rng.u8(0..3) {
            0 => (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
            1 => {
                let s = samples[rng.usize(0..samples.len())].as_bytes();
                s[..rng.usize(0..=s.len())].to_vec()
            }
            _ => {
                let mut s = samples[rng.usize(0..samples.len())].as_bytes().to_vec();
                let i = rng.usize(0..s.len());
                s[i] = rng.u8(..);
                s
            }
        };
        let _ = parse_quote_line(&bytes);
        let _ = split_record_line(&bytes);
        bytes.retain(|b| b.is_ascii());
        let _ = parse_frame(std::str::from_utf8(&bytes).unwrap(), Venue::Perp);
    }
    // Garbage files through the whole reader, plain and gzip, and a truncated gzip stream.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..40 {
        let mut content: Vec<u8> = (0..rng.usize(1..4000)).map(|_| rng.u8(..)).collect();
        if i % 4 == 0 {
            // Start like a recording or a quote CSV so that the line parsers see the garbage.
            let mut head =
                b"1723161255088169167 {\"stream\":\"btcusdt@bookTicker\",\"data\":{}}\n".to_vec();
            if i % 8 == 0 {
                head = b"ts_ns,market,bid,ask,bid_qty,ask_qty\n".to_vec();
            }
            head.extend_from_slice(&content);
            content = head;
        }
        let path = write_file(dir.path(), &format!("g{i}_spot.bin"), &content, i % 2 == 1);
        if let Ok(reader) = MarketReader::open(&[path]) {
            let n = reader.take(100_000).count();
            assert!(n <= 100_000);
        }
    }
    let mut gz = Vec::new();
    let mut enc = GzEncoder::new(&mut gz, Compression::fast());
    for i in 0..2000 {
        writeln!(enc, "{},spot,1.0{},1.1,2,3", 1_000 + i, i % 10).unwrap();
    }
    enc.finish().unwrap();
    gz.truncate(gz.len() / 2);
    let path = write_file(dir.path(), "trunc.csv.gz", &gz, false);
    let (events, errors, _) = collect(&[path]);
    assert!(!events.is_empty());
    assert!(!errors.is_empty(), "a truncated gzip stream is reported");
}

#[test]
fn malformed_lines_name_file_and_line_and_reading_continues() {
    let dir = tempfile::tempdir().unwrap();
    let content = concat!(
        "1723161255088169167 {\"stream\":\"btcusdt@bookTicker\",\"data\":{\"e\":\"bookTicker\",\"b\":\"61800.20\",\"B\":\"2.507\",\"a\":\"61800.30\",\"A\":\"2.510\"}}\n",
        "not-a-timestamp {\"x\":1}\n",
        "1723161255088169168 {\"stream\":\"btcusdt@bookTicker\",\"data\":{\"e\":\"bookTicker\",\"b\":\"61800.20\",\"B\":\"2.507\",\"a\":\"61800.30\"}}\n",
        "\n",
        "1723161255088169169 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"p\":\"61800.30\",\"q\":\"0.006\",\"m\":fal\n",
        "1723161255088169170 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"p\":\"61800.30\",\"q\":\"0.006\",\"m\":false,\"X\":\"MARKET\"}}\n",
    );
    let path = write_file(dir.path(), "capture_usdm.rec", content.as_bytes(), false);
    let mut reader = MarketReader::open(std::slice::from_ref(&path)).unwrap();
    let items: Vec<_> = reader.by_ref().collect();
    assert_eq!(items.len(), 5);
    assert!(items[0].is_ok());
    let msgs: Vec<String> = items[1..4]
        .iter()
        .map(|r| r.as_ref().unwrap_err().to_string())
        .collect();
    assert!(
        msgs[0].starts_with(&format!("{path}:2: bad timestamp")),
        "{}",
        msgs[0]
    );
    assert_eq!(msgs[1], format!("{path}:3: bookTicker: missing field `A`"));
    assert!(
        msgs[2].starts_with(&format!("{path}:5: invalid JSON")),
        "{}",
        msgs[2]
    );
    assert_eq!(items[2].as_ref().unwrap_err().line(), Some(3));
    let last = items[4].as_ref().unwrap();
    assert_eq!(last.ts, 1_723_161_255_088_169_170);
    assert!(
        matches!(last.kind, MarketKind::Trade(t) if t.venue == Venue::Perp && t.taker_side == Side::Buy)
    );

    let csv = "ts_ns,market,bid,ask,bid_qty,ask_qty\n1,spot,1,2,3,4\n2,spot,1,2,3\n3,perp,1,two,3,4\n4,perp,1,2,3,4\n";
    let path = write_file(dir.path(), "q.csv", csv.as_bytes(), false);
    let items: Vec<_> = MarketReader::open(std::slice::from_ref(&path))
        .unwrap()
        .collect();
    assert_eq!(items.len(), 4);
    assert!(items[1]
        .as_ref()
        .unwrap_err()
        .to_string()
        .starts_with(&format!("{path}:3: expected 6 fields")));
    assert_eq!(
        items[2].as_ref().unwrap_err().to_string(),
        format!("{path}:4: field `ask`: expected a decimal, got \"two\"")
    );
    assert_eq!(items[3].as_ref().unwrap().ts, 4);
}

#[test]
fn opening_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gz").to_string_lossy().into_owned();
    let err = MarketReader::open(std::slice::from_ref(&missing))
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with(&missing), "{err}");
    let unknown = write_file(dir.path(), "x.txt", b"hello world\n", false);
    let err = MarketReader::open(std::slice::from_ref(&unknown))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with(&unknown) && err.contains("unknown format"),
        "{err}"
    );
    let empty = write_file(dir.path(), "e.csv", b"\n\n", true);
    let err = MarketReader::open(std::slice::from_ref(&empty))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    let agg = write_file(
        dir.path(),
        "BTCUSDT-aggTrades-2024-08-08.csv",
        b"1,61800.1,0.002,5,5,1723161256322,false\n",
        false,
    );
    let err = MarketReader::open(std::slice::from_ref(&agg))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&format!("spot:{agg} or perp:{agg}")), "{err}");
    // A recording whose market neither the name nor the frames tell.
    let rec = write_file(
        dir.path(),
        "capture.rec",
        b"1723161255088169167 {\"result\":null,\"id\":1}\n",
        false,
    );
    let err = MarketReader::open(std::slice::from_ref(&rec))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("spot or perp"), "{err}");
    let (events, _, reader) = collect(&[format!("perp:{rec}")]);
    assert!(events.is_empty());
    assert_eq!(reader.ignored_frames(), 1);
}

#[test]
fn fixture_slices_merge_in_time_order() {
    let spot = fixture("market_data/spot_btcusdt_20240808_head2000.gz")
        .to_string_lossy()
        .into_owned();
    let usdm = fixture("market_data/usdm_btcusdt_20240808_head2000.gz")
        .to_string_lossy()
        .into_owned();
    let (events, errors, reader) = collect(&[spot, usdm]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(events.len(), 1515 + 297 + 1483 + 347);
    assert_eq!(
        reader.ignored_frames(),
        187 + 1 + 169 + 1,
        "depth lines and the REST snapshots"
    );
    assert!(events.windows(2).all(|w| w[0].ts <= w[1].ts));
    let infos = reader.inputs();
    assert_eq!(infos[0].venue, Some(Venue::Spot));
    assert_eq!(infos[1].venue, Some(Venue::Perp));
    assert!(infos
        .iter()
        .all(|i| i.gzip && i.format == Format::Recording));
    assert_eq!(reader.bytes_read(), reader.total_bytes());
    let spot_quotes = events
        .iter()
        .filter(|e| matches!(e.kind, MarketKind::Quote(q) if q.venue == Venue::Spot))
        .count();
    assert_eq!(spot_quotes, 1515);
    // The first event is the first spot bookTicker (line 2 of the spot file).
    assert_eq!(events[0].ts, 1_723_161_254_087_891_268);
    assert_eq!(quote(&events[0]).bid, d("61837.63"));
}

#[test]
fn micro_and_nano_second_recordings_and_gzip_or_plain_read_alike() {
    let text = read_fixture("market_data/real_stream_line_examples.jsonl");
    let mut micro = String::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["file"]
            .as_str()
            .unwrap()
            .contains("usdm_btcusdt_20230405")
        {
            micro.push_str(v["raw_line"].as_str().unwrap());
            micro.push('\n');
        }
    }
    // The same lines with ns timestamps.
    let nano: String = micro
        .lines()
        .map(|l| {
            let (ts, rest) = l.split_once(' ').unwrap();
            format!("{ts}000 {rest}\n")
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let a = write_file(dir.path(), "a_usdm.rec", micro.as_bytes(), false);
    let b = write_file(dir.path(), "b_usdm.rec", nano.as_bytes(), true);
    let (ea, _, _) = collect(&[a]);
    let (eb, _, rb) = collect(&[b]);
    assert_eq!(ea.len(), 3, "bookTicker, markPrice, trade");
    assert_eq!(ea, eb);
    assert_eq!(ea[0].ts, 1_680_652_800_070_436_000);
    assert!(rb.inputs()[0].gzip);
}

#[test]
fn merge_is_stable_for_ties() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_file(
        dir.path(),
        "a.csv",
        b"ts_ns,market,bid,ask,bid_qty,ask_qty\n10,spot,1,2,1,1\n20,spot,3,4,1,1\n20,spot,5,6,1,1\n30,spot,7,8,1,1\n",
        false,
    );
    let b = write_file(
        dir.path(),
        "b.csv.gz",
        b"5,perp,1,2,1,1\n20,perp,3,4,1,1\n25,perp,5,6,1,1\n",
        true,
    );
    let (events, errors, _) = collect(&[a, b]);
    assert!(errors.is_empty());
    let got: Vec<(i64, Venue, Decimal)> = events
        .iter()
        .map(|e| {
            let q = quote(e);
            (e.ts, q.venue, q.bid)
        })
        .collect();
    let want = vec![
        (5, Venue::Perp, d("1")),
        (10, Venue::Spot, d("1")),
        (20, Venue::Spot, d("3")),
        (20, Venue::Spot, d("5")),
        (20, Venue::Perp, d("3")),
        (25, Venue::Perp, d("5")),
        (30, Venue::Spot, d("7")),
    ];
    assert_eq!(got, want);
}

#[test]
fn binance_public_csvs() {
    let dir = tempfile::tempdir().unwrap();
    let bt = write_file(
        dir.path(),
        "BTCUSDT-bookTicker-2024-08-08.csv",
        b"update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n\
          5123107839020,61800.20,2.507,61800.30,2.510,1723161256313,1723161256314\n",
        false,
    );
    let (ev, errs, _) = collect(&[format!("perp:{bt}")]);
    assert!(errs.is_empty());
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].ts, 1_723_161_256_314_000_000);
    assert_eq!(
        quote(&ev[0]),
        Quote {
            venue: Venue::Perp,
            bid: d("61800.20"),
            bid_qty: d("2.507"),
            ask: d("61800.30"),
            ask_qty: d("2.510")
        }
    );

    let fut_agg = write_file(
        dir.path(),
        "BTCUSDT-aggTrades-2024-08-08.csv",
        b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n\
          2296454418,61800.30,0.006,5266583935,5266583935,1723161256322,false\n",
        false,
    );
    // Spot since 2025: no header, 8 columns, µs timestamps, capitalised booleans; gzip.
    let spot_agg = write_file(
        dir.path(),
        "BTCUSDT-aggTrades-2025-01-02.csv.gz",
        b"3160417830,61837.63000000,0.02000000,3735683259,3735683259,1723161256322500,True,True\n",
        true,
    );
    let (ev, errs, reader) = collect(&[format!("perp:{fut_agg}"), format!("spot:{spot_agg}")]);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(reader.inputs()[1].format, Format::BinanceAggTrades);
    assert_eq!(ev.len(), 4);
    // Perp trade, its trade-derived quote, then the spot ones (0.5 ms later).
    assert!(
        matches!(ev[0].kind, MarketKind::Trade(t) if t.venue == Venue::Perp && t.taker_side == Side::Buy)
    );
    let q = quote(&ev[1]);
    assert_eq!(
        (q.bid, q.ask, q.venue),
        (d("61800.30"), d("61800.30"), Venue::Perp)
    );
    assert_eq!(ev[2].ts, 1_723_161_256_322_500_000);
    assert!(
        matches!(ev[2].kind, MarketKind::Trade(t) if t.venue == Venue::Spot && t.taker_side == Side::Sell)
    );
    assert_eq!(quote(&ev[3]).ask, d("61837.63"));

    let kl = "1723161240000,61800.1,61810,61790,61805.5,12.5,1723161299999,772000.1,420,6.1,377000.2,0\n\
              1723161300000,61805.5,61820,61800,61815.0,10.5,1723161359999,649000.1,400,5.1,315000.2,0\n";
    let with_header = format!(
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n{kl}"
    );
    let k1 = write_file(dir.path(), "k1.csv", kl.as_bytes(), false);
    let k2 = write_file(dir.path(), "k2.csv", with_header.as_bytes(), true);
    let (e1, errs1, _) = collect(&[format!("spot:{k1}")]);
    let (e2, errs2, _) = collect(&[format!("spot:{k2}")]);
    assert!(errs1.is_empty() && errs2.is_empty());
    assert_eq!(e1, e2);
    assert_eq!(e1.len(), 2);
    assert_eq!(e1[1].ts, 1_723_161_359_999_000_000);
    let q = quote(&e1[1]);
    assert_eq!((q.bid, q.ask), (d("61815.0"), d("61815.0")));

    let bad = write_file(
        dir.path(),
        "bad.csv",
        b"1,61800.1,0.002,5,5,1723161256322,false\n1,x,0.002,5,5,1723161256322,false\n",
        false,
    );
    let (ev, errs, _) = collect(&[format!("perp:{bad}")]);
    assert_eq!(ev.len(), 2);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .to_string()
            .contains(":2: Binance aggTrades CSV: field `price`"),
        "{}",
        errs[0]
    );
}

#[test]
fn quote_csv_round_trip_with_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain = Vec::new();
    generate_ticks(20_000, 5, &mut plain).unwrap();
    let p = write_file(dir.path(), "ticks.csv", &plain, false);
    let g = write_file(dir.path(), "ticks.csv.gz", &plain, true);
    let (ep, errs, reader) = collect(std::slice::from_ref(&p));
    assert!(errs.is_empty());
    assert_eq!(reader.inputs()[0].format, Format::QuoteCsv);
    assert_eq!(reader.bytes_read(), plain.len() as u64);
    let (eg, _, _) = collect(&[g]);
    assert_eq!(ep, eg);
    assert_eq!(ep.len(), 20_000);
    for (ev, t) in ep.iter().zip(TickGen::new(5)) {
        let q = quote(ev);
        assert_eq!(ev.ts, t.ts);
        assert_eq!(q.venue, t.venue);
        let unit = match t.venue {
            Venue::Spot => Decimal::new(1, 2),
            Venue::Perp => Decimal::new(1, 1),
        };
        assert_eq!(q.bid, Decimal::from(t.bid_ticks) * unit);
        assert_eq!(q.ask, Decimal::from(t.ask_ticks) * unit);
    }
}

#[test]
fn record_writer_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let frames = [
        (1_723_161_255_088_169_167i64, "{\"stream\":\"btcusdt@bookTicker\",\"data\":{\"e\":\"bookTicker\",\"b\":\"61800.20\",\"B\":\"2.507\",\"a\":\"61800.30\",\"A\":\"2.510\"}}"),
        (1_723_161_255_088_169_200, "{\"result\":null,\n \"id\":1}"),
        (1_723_161_255_088_170_000, "{\"e\":\"trade\",\"p\":\"61800.30\",\"q\":\"0.006\",\"m\":false}"),
    ];
    for gzip in [false, true] {
        let path = dir.path().join(format!("rec_usdm_{gzip}.rec"));
        let mut w = RecordWriter::create(&path, gzip).unwrap();
        for (ts, f) in frames {
            w.write_frame(ts, f).unwrap();
        }
        assert_eq!(w.frames(), 3);
        w.finish().unwrap();
        let path = path.to_string_lossy().into_owned();
        let mut raw = FrameReader::open(&path).unwrap();
        let mut n = 0;
        while let Some(item) = raw.next_frame() {
            let (ts, frame) = item.unwrap();
            assert_eq!(ts, frames[n].0);
            assert_eq!(frame, frames[n].1.replace('\n', " "));
            n += 1;
        }
        assert_eq!(n, 3);
        let (events, errors, reader) = collect(&[path]);
        assert!(errors.is_empty());
        assert_eq!(events.len(), 2);
        assert_eq!(reader.ignored_frames(), 1);
        assert_eq!(reader.inputs()[0].gzip, gzip);
    }
}

#[test]
fn recording_market_is_sniffed_when_the_name_does_not_tell() {
    let dir = tempfile::tempdir().unwrap();
    let spot = "1 {\"result\":null,\"id\":1}\n1723161254087891268 {\"stream\":\"btcusdt@bookTicker\",\"data\":{\"u\":1,\"b\":\"1\",\"B\":\"1\",\"a\":\"2\",\"A\":\"1\"}}\n";
    let perp = "1723161254087891268 {\"stream\":\"btcusdt@markPrice@1s\",\"data\":{\"e\":\"markPriceUpdate\",\"p\":\"1\",\"i\":\"1\",\"r\":\"0\"}}\n";
    let s = write_file(dir.path(), "capture1.rec", spot.as_bytes(), true);
    let p = write_file(dir.path(), "capture2.rec", perp.as_bytes(), false);
    let reader = MarketReader::open(&[s.clone(), p]).unwrap();
    let venues: Vec<_> = reader.inputs().iter().map(|i| i.venue).collect();
    assert_eq!(venues, vec![Some(Venue::Spot), Some(Venue::Perp)]);
    // An explicit prefix wins over the frames.
    let reader = MarketReader::open(&[format!("perp:{s}")]).unwrap();
    assert_eq!(reader.inputs()[0].venue, Some(Venue::Perp));
}

/// Throughput of the quote-CSV reader alone: `cargo test --release --test it quote_csv_reader_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn quote_csv_reader_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ticks.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    generate_ticks(5_000_000, 1, &mut f).unwrap();
    drop(f);
    let path = path.to_string_lossy().into_owned();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = std::time::Instant::now();
        let mut n = 0u64;
        let mut sum = 0i64;
        for ev in MarketReader::open(std::slice::from_ref(&path)).unwrap() {
            let ev = ev.unwrap();
            sum = sum.wrapping_add(ev.ts);
            n += 1;
        }
        let s = start.elapsed().as_secs_f64();
        best = best.min(s);
        assert_eq!(n, 5_000_000);
        assert_ne!(sum, 0);
    }
    let mut lines = Vec::new();
    let mut plain = Vec::new();
    generate_ticks(1_000_000, 1, &mut plain).unwrap();
    lines.extend(
        plain
            .split(|&c| c == b'\n')
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec),
    );
    let start = std::time::Instant::now();
    let mut ok = 0;
    for l in &lines {
        ok += usize::from(parse_quote_line(std::hint::black_box(l)).is_ok());
    }
    let parse_only = start.elapsed().as_secs_f64();
    assert_eq!(ok, 1_000_000);
    eprintln!(
        "quote CSV reader: {:.1} M lines/s (file, 5M lines); parse_quote_line alone: {:.1} M lines/s",
        5.0 / best,
        1.0 / parse_only
    );
}
