// Portfolio: balances (available and held), open orders with cancel, trade history and the
// orders that ended. Balances, open orders and trades are live; the ended orders are read
// again when an order ends.
//
// Orders and trades show in the account's preferred currency: the HTTP answers carry each
// record's `converted` values (at the rate of its time) beside its own ones, which the live
// channels send alone. A record the channels bring is shown in its own currency until the
// next read of the history (shortly after) adds its converted values.

import { type Fill, type Order, type OrderConverted, type TradeConverted, api, describe } from '../api';
import type { Ctx, Screen } from '../app';
import { add, format, money, rounded } from '../dec';
import { dualValue, productCurrencies } from '../fx';
import { followOpenOrders, followTrades, openOrderHeaders, openOrderRow, priceShown } from '../orders';
import { capitalise, fill, h, notify, table, when } from '../ui';
import { signInPrompt } from './prompt';

export function portfolioScreen(ctx: Ctx): Screen {
  const el = h('section', { class: 'portfolio-screen' });
  const stops: (() => void)[] = [];
  let refreshTimer: number | undefined;

  function build(): void {
    for (const stop of stops.splice(0)) stop();
    fill(el, h('div', { class: 'screen-head' }, h('h1', {}, 'Portfolio')));
    if (!ctx.session.signedIn) {
      el.append(signInPrompt('Your balances, orders and trades appear here once you have an account.'));
      return;
    }
    const balances = h('div', { 'data-testid': 'balances' });
    const total = h('p', { class: 'wallet-total', 'data-testid': 'wallet-total' });
    const open = h('div', { 'data-testid': 'open-orders' });
    const trades = h('div', { 'data-testid': 'trades' });
    const ended = h('div', { 'data-testid': 'closed-orders' });
    el.append(
      h(
        'div',
        { class: 'portfolio-grid' },
        h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Balances'), h('a', { href: '/funds', 'data-link': true, class: 'small' }, 'Deposit or withdraw')), total, balances),
        h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Open orders')), open),
        h('div', { class: 'panel span-2' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Trade history')), trades),
        h('div', { class: 'panel span-2' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Ended orders')), ended),
      ),
    );

    const showBalances = () => {
      const rows = ctx.session.balances.map((b) =>
        h(
          'tr',
          { 'data-currency': b.currency, 'data-testid': 'balance-row' },
          h('td', {}, h('strong', {}, b.currency)),
          h('td', { class: 'num', 'data-testid': 'balance-available' }, format(b.available)),
          h('td', { class: 'num' }, format(b.held)),
          h('td', { class: 'num muted hide-phone' }, format(add(b.available, b.held))),
        ),
      );
      fill(
        balances,
        table('grid', ['Currency', ['Available', 'num'], ['Held', 'num'], ['Total', 'num hide-phone']], rows, 'Nothing yet: deposit on the Funds screen.'),
      );
    };
    showBalances();
    stops.push(ctx.session.onChange(showBalances));

    // The wallet's total in the preferred currency (GET /funds values it at the newest prices
    // and rates): read again when the balances or the preference change, at most every 2 s.
    let totalTimer: number | undefined;
    let totalKey = '';
    const showTotal = () => {
      api
        .wallet()
        .then((wallet) => {
          if (wallet.amount === null || wallet.amount === undefined) {
            fill(total, h('span', { class: 'muted' }, `Total in ${wallet.currency}: not available (no price for ${wallet.unvalued.join(', ')} yet)`));
          } else {
            fill(total, h('span', { class: 'muted' }, 'Total value '), h('strong', { 'data-testid': 'wallet-amount', title: `${wallet.amount} ${wallet.currency}` }, `${money(rounded(wallet.amount, 2))} ${wallet.currency}`));
          }
          total.dataset.currency = wallet.currency;
        })
        .catch(() => undefined);
    };
    const scheduleTotal = () => {
      const key = `${ctx.session.account?.currencyPreference}|${ctx.session.balances.map((b) => `${b.currency}:${b.available}:${b.held}`).join()}`;
      if (key === totalKey) return;
      totalKey = key;
      if (totalTimer === undefined) {
        showTotal();
        totalTimer = window.setTimeout(() => {
          totalTimer = undefined;
        }, 2000);
      }
    };
    scheduleTotal();
    stops.push(ctx.session.onChange(scheduleTotal));
    stops.push(() => window.clearTimeout(totalTimer));

    // The converted values of the records the live channels show, from the HTTP history:
    // by id, `null` when a record needs none (it is in the preference already).
    let currencies = new Map<string, string>();
    let tradeConverted = new Map<number, TradeConverted | null>();
    let orderConverted = new Map<number, OrderConverted | null>();
    let convertedFor: string | null = null;
    let openOrders: Order[] = [];
    let tradeList: Fill[] = [];
    let convertTimer: number | undefined;
    let convertGeneration = 0;
    /** Ids already asked for, so a record the history does not return is not asked again. */
    const askedTrades = new Set<number>();
    const askedOrders = new Set<number>();

    const showOpen = () => {
      fill(
        open,
        table(
          'grid compact',
          openOrderHeaders(true),
          openOrders.map((o) => openOrderRow(o, true, currencies.get(o.symbol) ?? '', orderConverted.get(o.orderId))),
          'No open orders.',
        ),
      );
    };
    const showTrades = () => {
      const rows = tradeList.map((t) => {
        const own = currencies.get(t.symbol) ?? '';
        const c = tradeConverted.get(t.tradeId);
        const as = (value: string | null | undefined) => c && { currency: c.currency, value: value ?? null, rate: c.rate };
        return h(
          'tr',
          {
            'data-testid': 'trade-row',
            'data-trade-id': t.tradeId,
            'data-order-id': t.orderId,
            'data-symbol': t.symbol,
            'data-currency': c && c.rate ? c.currency : own,
          },
          h('td', { class: 'muted' }, when(t.timestamp)),
          h('td', {}, h('a', { href: `/product/${t.symbol}`, 'data-link': true }, t.symbol)),
          h('td', { class: t.side === 'buy' ? 'up' : 'down' }, capitalise(t.side)),
          h('td', { class: 'num' }, dualValue(t.price, own, as(c?.price), priceShown, 'trade-price')),
          h('td', { class: 'num' }, format(t.quantity)),
          h('td', { class: 'num hide-phone' }, dualValue(t.notional, own, as(c?.notional), undefined, 'trade-notional')),
          h('td', { class: 'num' }, dualValue(t.fee, t.feeCurrency, as(c?.fee), undefined, 'trade-fee')),
          h('td', { class: 'muted hide-phone' }, t.liquidity),
        );
      });
      fill(
        trades,
        table(
          'grid compact',
          ['Time', 'Product', 'Side', ['Price', 'num'], ['Qty', 'num'], ['Notional', 'num hide-phone'], ['Fee', 'num'], ['Role', 'hide-phone']],
          rows,
          'No trades yet.',
        ),
      );
    };

    /** Reads the history's converted values when a record shown has none yet. */
    const scheduleConverted = () => {
      const preference = ctx.session.preference;
      if (preference !== convertedFor) {
        convertedFor = preference;
        tradeConverted = new Map();
        orderConverted = new Map();
        askedTrades.clear();
        askedOrders.clear();
      }
      const wanted =
        tradeList.some((t) => !tradeConverted.has(t.tradeId) && !askedTrades.has(t.tradeId)) ||
        openOrders.some((o) => !orderConverted.has(o.orderId) && !askedOrders.has(o.orderId));
      if (!preference || !wanted) return;
      window.clearTimeout(convertTimer);
      convertTimer = window.setTimeout(() => void loadConverted(preference), 300);
    };
    async function loadConverted(preference: string): Promise<void> {
      const mine = ++convertGeneration;
      const tradeIds = tradeList.map((t) => t.tradeId);
      const orderIds = openOrders.map((o) => o.orderId);
      try {
        const [history, orders, known] = await Promise.all([
          api.trades(50, preference),
          api.orders('open', 50, preference),
          productCurrencies(),
        ]);
        if (mine !== convertGeneration || preference !== convertedFor) return;
        currencies = known;
        for (const id of tradeIds) askedTrades.add(id);
        for (const id of orderIds) askedOrders.add(id);
        for (const t of history) tradeConverted.set(t.tradeId, t.converted ?? null);
        for (const o of orders) orderConverted.set(o.orderId, o.converted ?? null);
        showTrades();
        showOpen();
      } catch (error) {
        if (mine === convertGeneration) notify.error(describe(error));
      }
    }
    stops.push(() => {
      convertGeneration += 1;
      window.clearTimeout(convertTimer);
    });
    stops.push(
      ctx.session.onPreferenceChange(() => {
        scheduleConverted();
        scheduleEnded();
      }),
    );
    productCurrencies()
      .then((known) => {
        currencies = known;
        showTrades();
        showOpen();
      })
      .catch(() => undefined);

    stops.push(
      followOpenOrders(ctx, (orders: Order[]) => {
        openOrders = orders;
        showOpen();
        scheduleConverted();
        scheduleEnded();
      }),
    );

    stops.push(
      followTrades(ctx, (list: Fill[]) => {
        tradeList = list;
        showTrades();
        scheduleConverted();
      }),
    );

    let generation = 0;
    async function loadEnded(): Promise<void> {
      const mine = ++generation;
      try {
        const [orders, known] = await Promise.all([
          api.orders('closed', 20, ctx.session.preference ?? undefined),
          productCurrencies().catch(() => currencies),
        ]);
        if (mine !== generation) return;
        const rows = orders.map((o) =>
          h(
            'tr',
            { 'data-testid': 'closed-order', 'data-order-id': o.orderId, 'data-status': o.status },
            h('td', { class: 'muted' }, when(o.updatedAt)),
            h('td', {}, o.symbol),
            h('td', { class: o.side === 'buy' ? 'up' : 'down' }, capitalise(o.side)),
            h('td', { class: 'hide-phone' }, o.type),
            h('td', { class: 'num' }, `${format(o.filledQuantity)} / ${format(o.quantity)}`),
            h('td', { class: 'num' }, endedPrice(o, known.get(o.symbol) ?? '')),
            h('td', {}, h('span', { class: `badge badge-${o.status}` }, o.status)),
          ),
        );
        fill(
          ended,
          table('grid compact', ['Ended', 'Product', 'Side', ['Type', 'hide-phone'], ['Filled', 'num'], ['Price', 'num'], 'Status'], rows, 'No order has ended yet.'),
        );
      } catch (error) {
        if (mine === generation) notify.error(describe(error));
      }
    }
    /** An ended order's average price (or its limit), converted when the answer has it. */
    function endedPrice(o: Order, own: string): HTMLElement | string {
      const c = o.converted;
      if (o.averagePrice) {
        return dualValue(o.averagePrice, own, c && { currency: c.currency, value: c.averagePrice, rate: c.rate }, priceShown, 'order-price');
      }
      if (o.price) return dualValue(o.price, own, c && { currency: c.currency, value: c.price, rate: c.rate }, priceShown, 'order-price');
      return '—';
    }

    function scheduleEnded(): void {
      window.clearTimeout(refreshTimer);
      refreshTimer = window.setTimeout(() => void loadEnded(), 300);
    }
    scheduleEnded();
    stops.push(() => {
      generation += 1;
      window.clearTimeout(refreshTimer);
    });
  }

  const stopSession = ctx.session.onSignInChange(build);
  build();

  return {
    el,
    dispose() {
      stopSession();
      for (const stop of stops.splice(0)) stop();
    },
  };
}
