"""Drives premia's local exchange with ccxt's binanceusdm client, the way a bot built on ccxt would.

Usage: python ccxt_check.py --rest http://127.0.0.1:PORT --key KEY --secret SECRET [--ws ws://127.0.0.1:PORT]

Prints one line per check, `PASS <name>` or `FAIL <name>: <reason>`, then `SUMMARY <passed>/<total>`; exits 1
when a check failed. With --ws, also runs ccxt.pro's watch_order_book and watch_trades.
"""

import argparse
import asyncio
import sys
import traceback
from decimal import Decimal

import ccxt
import ccxt.pro

SYMBOL = "BTC/USDT:USDT"
RESULTS = []


def configure(ex, rest, ws=None):
    """Points a binanceusdm instance at the local exchange (the same lines `premia exchange` prints)."""
    for api, path in [
        ("fapiPublic", "/fapi/v1"),
        ("fapiPublicV2", "/fapi/v2"),
        ("fapiPublicV3", "/fapi/v3"),
        ("fapiPrivate", "/fapi/v1"),
        ("fapiPrivateV2", "/fapi/v2"),
        ("fapiPrivateV3", "/fapi/v3"),
        ("fapiData", "/futures/data"),
    ]:
        ex.urls["api"][api] = rest + path
    if ws is not None:
        ex.urls["api"]["ws"]["linear"] = ws + "/ws"
    # ccxt picks its USD-M error table by the host name (fapi.binance.com); use it for this host too.
    ex.exceptions["exact"].update(ex.exceptions["linear"]["exact"])
    return ex


def options():
    return {
        "fetchMarkets": ["linear"],
        "fetchCurrencies": False,
        "defaultType": "swap",
        "adjustForTimeDifference": False,
    }


def check(name):
    def wrap(f):
        def run(*a, **k):
            try:
                detail = f(*a, **k)
                RESULTS.append((name, True, ""))
                print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)
            except Exception as e:  # noqa: BLE001 - every failure is reported, the run goes on
                RESULTS.append((name, False, repr(e)))
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
                traceback.print_exc(file=sys.stderr)

        return run

    return wrap


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def d(x):
    return Decimal(str(x))


def rest_checks(ex, bad, start_balance):
    state = {}

    @check("load_markets")
    def _():
        m = ex.load_markets()
        expect(SYMBOL in m, f"{SYMBOL} not in {list(m)}")
        mk = m[SYMBOL]
        expect(mk["linear"] and mk["swap"], "not a linear swap")
        expect(mk["limits"]["amount"]["min"] is not None, "no min amount")
        state["market"] = mk
        return f"precision {mk['precision']}"

    _()

    @check("fetch_ticker")
    def _():
        t = ex.fetch_ticker(SYMBOL)
        expect(t["last"] and t["last"] > 0, f"last {t['last']}")
        expect(t["high"] >= t["low"], "high < low")
        state["last"] = t["last"]
        return f"last {t['last']}"

    _()

    @check("fetch_order_book")
    def _():
        ob = ex.fetch_order_book(SYMBOL, 5)
        expect(ob["bids"] and ob["asks"], "empty book")
        expect(ob["bids"][0][0] < ob["asks"][0][0], "crossed book")
        state["bid"] = ob["bids"][0][0]
        return f"{ob['bids'][0][0]} / {ob['asks'][0][0]}"

    _()

    @check("fetch_ohlcv")
    def _():
        rows = ex.fetch_ohlcv(SYMBOL, "1m", limit=5)
        expect(rows, "no candles")
        for ts, o, h, l, c, v in rows:
            expect(l <= min(o, c) and h >= max(o, c) and v >= 0, f"bad candle {rows[0]}")
        return f"{len(rows)} candles"

    _()

    @check("fetch_funding_rate")
    def _():
        f = ex.fetch_funding_rate(SYMBOL)
        expect(f["markPrice"] and f["markPrice"] > 0, f"mark {f['markPrice']}")
        expect(f["fundingRate"] is not None, "no funding rate")
        return f"mark {f['markPrice']} rate {f['fundingRate']}"

    _()

    @check("fetch_trades_time_bids_asks_mark")
    def _():
        ts = ex.fetch_trades(SYMBOL, limit=5)
        expect(len(ts) == 5 and all(t["price"] > 0 for t in ts), f"{len(ts)} trades")
        expect(ex.fetch_time() > 0, "time")
        ba = ex.fetch_bids_asks([SYMBOL])[SYMBOL]
        expect(ba["bid"] < ba["ask"], f"{ba['bid']} / {ba['ask']}")
        expect(ex.fetch_mark_price(SYMBOL)["markPrice"] > 0, "mark")

    _()

    @check("fetch_leverage_tiers_and_trading_fee")
    def _():
        tiers = ex.fetch_leverage_tiers([SYMBOL])[SYMBOL]
        expect(tiers and tiers[0]["maxLeverage"] > 0, f"{tiers[:1]}")
        fee = ex.fetch_trading_fee(SYMBOL)
        expect(fee["taker"] > fee["maker"] > 0, f"{fee}")

    _()

    @check("fetch_balance")
    def _():
        b = ex.fetch_balance()
        expect(d(b["USDT"]["total"]) == start_balance, f"total {b['USDT']['total']}")
        return f"USDT {b['USDT']['total']}"

    _()

    @check("set_leverage")
    def _():
        r = ex.set_leverage(5, SYMBOL)
        expect(int(r["leverage"]) == 5, f"{r}")

    _()

    @check("fetch_leverage_and_modes")
    def _():
        lev = ex.fetch_leverage(SYMBOL)
        expect(lev["longLeverage"] == 5 and lev["marginMode"] == "cross", f"{lev}")
        expect(ex.fetch_position_mode(SYMBOL)["hedged"] is False, "hedged")
        try:
            ex.set_margin_mode("cross", SYMBOL)
        except ccxt.MarginModeAlreadySet:
            return "cross margin, one-way"
        raise AssertionError("set_margin_mode('cross') changed something")

    _()

    @check("market_order_with_client_id")
    def _():
        o = ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"newClientOrderId": "ccxt-open-1"})
        state["open_id"] = o["id"]
        q = ex.fetch_order(o["id"], SYMBOL)
        expect(q["clientOrderId"] == "ccxt-open-1", f"client id {q['clientOrderId']}")
        expect(q["status"] == "closed" and q["filled"] == 0.002, f"{q['status']} {q['filled']}")
        by_client = ex.fetch_order(None, SYMBOL, {"origClientOrderId": "ccxt-open-1"})
        expect(by_client["id"] == o["id"], "query by client id")
        return f"order {o['id']} avg {q['average']}"

    _()

    @check("fetch_positions_long")
    def _():
        ps = [p for p in ex.fetch_positions([SYMBOL]) if p["contracts"]]
        expect(len(ps) == 1, f"{len(ps)} positions")
        expect(ps[0]["side"] == "long" and ps[0]["contracts"] == 0.002, f"{ps[0]['side']} {ps[0]['contracts']}")
        return f"entry {ps[0]['entryPrice']}"

    _()

    @check("limit_order_listed_and_cancelled")
    def _():
        mk = state["market"]
        price = float(ex.price_to_precision(SYMBOL, state["bid"] * 0.97))
        o = ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
        expect(o["status"] == "open", o["status"])
        listed = ex.fetch_open_orders(SYMBOL)
        expect([x["id"] for x in listed] == [o["id"]], f"open orders {[x['id'] for x in listed]}")
        c = ex.cancel_order(o["id"], SYMBOL)
        expect(c["status"] == "canceled", c["status"])
        expect(ex.fetch_open_orders(SYMBOL) == [], "still open")
        state["limit_id"] = o["id"]
        return f"at {price} (tick {mk['precision']['price']})"

    _()

    @check("reduce_only_close")
    def _():
        o = ex.create_order(SYMBOL, "market", "sell", 0.002, None, {"reduceOnly": True})
        q = ex.fetch_order(o["id"], SYMBOL)
        expect(q["status"] == "closed" and q["reduceOnly"], f"{q['status']} {q['reduceOnly']}")
        ps = [p for p in ex.fetch_positions([SYMBOL]) if p["contracts"]]
        expect(ps == [], f"still {ps}")

    _()

    @check("fetch_my_trades_with_fees")
    def _():
        ts = ex.fetch_my_trades(SYMBOL)
        expect(len(ts) == 2, f"{len(ts)} trades")
        for t in ts:
            expect(t["fee"]["currency"] == "USDT" and t["fee"]["cost"] > 0, f"fee {t['fee']}")
        state["fees"] = sum(d(t["fee"]["cost"]) for t in ts)
        state["pnl"] = sum(d(t["info"]["realizedPnl"]) for t in ts)
        return f"fees {state['fees']} pnl {state['pnl']}"

    _()

    @check("fetch_ledger_income")
    def _():
        rows = ex.fetch_ledger("USDT")
        paid = sum(d(r["amount"]) for r in rows if r["type"] == "commission" and r["direction"] == "out")
        expect(paid == state["fees"], f"ledger commissions {paid} vs trade fees {state['fees']}")
        return f"{len(rows)} entries"

    _()

    @check("balance_down_by_fees")
    def _():
        b = ex.fetch_balance()
        total = d(b["USDT"]["total"])
        expect(total == start_balance + state["pnl"] - state["fees"], f"total {total}")
        return f"USDT {total}"

    _()

    @check("fetch_orders")
    def _():
        os_ = ex.fetch_orders(SYMBOL)
        st = {o["id"]: o["status"] for o in os_}
        expect(st.get(state["open_id"]) == "closed" and st.get(state["limit_id"]) == "canceled", f"{st}")
        return f"{len(os_)} orders"

    _()

    @check("bad_signature_is_authentication_error")
    def _():
        try:
            bad.fetch_balance()
        except ccxt.AuthenticationError as e:
            return str(e)[:60]
        raise AssertionError("accepted")

    _()

    @check("sub_minimum_notional_is_invalid_order")
    def _():
        try:
            ex.create_order(SYMBOL, "market", "buy", 0.001)
        except ccxt.InvalidOrder as e:
            return str(e)[:80]
        raise AssertionError("accepted")

    _()

    @check("below_lot_step_is_invalid_order")
    def _():
        try:
            ex.create_order(SYMBOL, "market", "buy", 0.0004)
        except ccxt.InvalidOrder as e:
            return str(e)[:80]
        raise AssertionError("accepted")

    _()


async def ws_checks(rest, ws, key, secret):
    ex = configure(ccxt.pro.binanceusdm({"apiKey": key, "secret": secret, "options": options()}), rest, ws)
    try:

        async def book():
            # The first answer is the REST snapshot; later ones are diffs applied on it, which ccxt only accepts
            # when their update ids follow the snapshot's lastUpdateId (else it raises ChecksumError).
            ob = await asyncio.wait_for(ex.watch_order_book(SYMBOL), 20)
            first = ob["nonce"]
            expect(first is not None, "no snapshot id")
            for _ in range(50):
                ob = await asyncio.wait_for(ex.watch_order_book(SYMBOL), 20)
                if ob["nonce"] > first:
                    break
            expect(ob["nonce"] > first, f"no diff applied after snapshot {first}")
            expect(ob["bids"] and ob["asks"], "empty book")
            bid, ask = ob["bids"][0][0], ob["asks"][0][0]
            expect(bid < ask, f"crossed book {bid} / {ask}")
            expect(len(ob["bids"]) == 1 and len(ob["asks"]) == 1, "the touch only, stale levels removed")
            return f"{bid} / {ask}, update id {first} -> {ob['nonce']}"

        async def trades():
            ts = await asyncio.wait_for(ex.watch_trades(SYMBOL), 20)
            expect(ts, "no trades")
            t = ts[-1]
            expect(t["symbol"] == SYMBOL and t["price"] > 0 and t["amount"] > 0, f"bad trade {t}")
            expect(t["side"] in ("buy", "sell") and t["id"], f"bad trade {t}")
            return f"{len(ts)} trades"

        for name, f in [("watch_order_book", book), ("watch_trades", trades)]:
            try:
                detail = await f()
                RESULTS.append((name, True, ""))
                print(f"PASS {name} ({detail})", flush=True)
            except Exception as e:  # noqa: BLE001
                RESULTS.append((name, False, repr(e)))
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
    finally:
        await ex.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rest", required=True)
    ap.add_argument("--ws")
    ap.add_argument("--key", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--balance", default="10000")
    a = ap.parse_args()
    print(f"ccxt {ccxt.__version__}", flush=True)
    ex = configure(ccxt.binanceusdm({"apiKey": a.key, "secret": a.secret, "options": options()}), a.rest)
    bad = configure(
        ccxt.binanceusdm({"apiKey": a.key, "secret": a.secret[::-1], "options": options()}), a.rest
    )
    bad.markets = None
    rest_checks(ex, bad, d(a.balance))
    if a.ws:
        asyncio.run(ws_checks(a.rest, a.ws, a.key, a.secret))
    passed = sum(1 for _, ok, _ in RESULTS if ok)
    print(f"SUMMARY {passed}/{len(RESULTS)}", flush=True)
    sys.exit(0 if passed == len(RESULTS) else 1)


if __name__ == "__main__":
    main()
