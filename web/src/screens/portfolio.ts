// Portfolio: balances (available and held), open orders with cancel, trade history and the
// orders that ended. Balances, open orders and trades are live; the ended orders are read
// again when an order ends.

import { type Fill, type Order, api, describe } from '../api';
import type { Ctx, Screen } from '../app';
import { add, format, money, rounded } from '../dec';
import { followOpenOrders, followTrades, openOrderHeaders, openOrderRow } from '../orders';
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

    stops.push(
      followOpenOrders(ctx, (orders: Order[]) => {
        fill(open, table('grid compact', openOrderHeaders(true), orders.map((o) => openOrderRow(o, true)), 'No open orders.'));
        scheduleEnded();
      }),
    );

    stops.push(
      followTrades(ctx, (list: Fill[]) => {
        const rows = list.map((t) =>
          h(
            'tr',
            { 'data-testid': 'trade-row', 'data-trade-id': t.tradeId, 'data-order-id': t.orderId, 'data-symbol': t.symbol },
            h('td', { class: 'muted' }, when(t.timestamp)),
            h('td', {}, h('a', { href: `/product/${t.symbol}`, 'data-link': true }, t.symbol)),
            h('td', { class: t.side === 'buy' ? 'up' : 'down' }, capitalise(t.side)),
            h('td', { class: 'num' }, money(t.price)),
            h('td', { class: 'num' }, format(t.quantity)),
            h('td', { class: 'num hide-phone' }, money(t.notional)),
            h('td', { class: 'num' }, money(t.fee), h('span', { class: 'muted hide-phone' }, ` ${t.feeCurrency}`)),
            h('td', { class: 'muted hide-phone' }, t.liquidity),
          ),
        );
        fill(
          trades,
          table(
            'grid compact',
            ['Time', 'Product', 'Side', ['Price', 'num'], ['Qty', 'num'], ['Notional', 'num hide-phone'], ['Fee', 'num'], ['Role', 'hide-phone']],
            rows,
            'No trades yet.',
          ),
        );
      }),
    );

    let generation = 0;
    async function loadEnded(): Promise<void> {
      const mine = ++generation;
      try {
        const orders = await api.orders('closed', 20);
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
            h('td', { class: 'num' }, o.averagePrice ? money(o.averagePrice) : o.price ? money(o.price) : '—'),
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
