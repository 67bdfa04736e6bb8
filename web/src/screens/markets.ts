// Markets: every product with its current price and change, a search, and a bookmark star;
// bookmarked products come first. Prices move live (the `ticks:` channel of each product
// shown, up to a limit). Prices are in the account's preferred currency where a rate
// converts them (`?currency=` and the converted `ticks:SYMBOL:CUR` channels), each labelled
// with its currency; signed out, each product's own.

import { OWN, type Product, type Rate, type Tick, api, describe } from '../api';
import type { Ctx, Screen } from '../app';
import { money, percentChange, priceText, shownPlaces } from '../dec';
import { rateTitle } from '../fx';
import { fill, h, notify, percent, time } from '../ui';

/** Products followed live at once (the server allows 64 channels per connection). */
const LIVE_PRODUCTS_MAX = 40;

interface Row {
  product: Product;
  tr: HTMLTableRowElement;
  price: HTMLElement;
  change: HTMLElement;
  updated: HTMLElement;
  star: HTMLButtonElement;
}

export function marketsScreen(ctx: Ctx): Screen {
  const search = h('input', {
    type: 'search',
    class: 'search',
    placeholder: 'Search: symbol or name (app, tesla…)',
    'aria-label': 'Search products',
    'data-testid': 'market-search',
    autocomplete: 'off',
  });
  const status = h('p', { class: 'muted small', 'data-testid': 'market-status' }, 'Loading products…');
  const body = h('tbody', {});
  const list = h(
    'table',
    { class: 'grid markets', 'data-testid': 'markets' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { class: 'star-col' }, h('span', { class: 'sr-only' }, 'Bookmark')),
        h('th', {}, 'Product'),
        h('th', { class: 'num' }, 'Price'),
        h('th', { class: 'num' }, 'Change (10 min)'),
        h('th', { class: 'num hide-phone' }, 'Last tick'),
        h('th', { class: 'num hide-phone' }, h('span', { class: 'sr-only' }, 'Trade')),
      ),
    ),
    body,
  );
  const el = h(
    'section',
    { class: 'markets-screen' },
    h(
      'div',
      { class: 'screen-head' },
      h('h1', {}, 'Markets'),
      h('p', { class: 'muted' }, 'Every product listed on Bourse. Star one to keep it at the top; select a row to trade it.'),
    ),
    h('div', { class: 'panel' }, search, status, h('div', { class: 'table-wrap' }, list)),
  );

  let rows: Row[] = [];
  let stops: (() => void)[] = [];
  let generation = 0;
  let searchTimer: number | undefined;

  function order(): void {
    // Bookmarked first (in listing order), then the rest in listing order.
    const marked = rows.filter((r) => ctx.session.isBookmarked(r.product.symbol));
    const rest = rows.filter((r) => !ctx.session.isBookmarked(r.product.symbol));
    for (const row of [...marked, ...rest]) {
      const on = ctx.session.isBookmarked(row.product.symbol);
      row.star.setAttribute('aria-pressed', String(on));
      row.star.textContent = on ? '★' : '☆';
      row.star.title = on ? 'Remove the bookmark' : 'Bookmark: keep it at the top';
      row.tr.classList.toggle('bookmarked', on);
      body.append(row.tr);
    }
  }

  /** Whether the row's prices are converted (into `product.currency`, from `ownCurrency`). */
  function converted(product: Product): boolean {
    return Boolean(product.ownCurrency && product.ownCurrency !== product.currency);
  }

  function showPrice(row: Row, price: string | null, at: number | null, flash: boolean, rate?: Rate | null): void {
    const before = row.product.currentPrice;
    row.product.currentPrice = price;
    row.product.timestamp = at;
    if (rate !== undefined) row.product.rate = rate;
    const { product } = row;
    // An own price as the feed gives it; a converted one (8 decimals) rounded for reading.
    row.price.textContent = !price ? '—' : converted(product) ? priceText(price, shownPlaces(price)) : money(price);
    row.price.dataset.currency = product.currency;
    row.price.title =
      converted(product) && product.rate && product.ownCurrency
        ? rateTitle(product.rate, `The price in ${product.ownCurrency}`, `${price ?? ''} ${product.currency}`)
        : `In ${product.currency}, the product's own currency`;
    const base = row.product.histories[0]?.price ?? null;
    const change = percentChange(base, price);
    row.change.textContent = percent(change);
    row.change.className = `num ${change === null ? '' : change > 0 ? 'up' : change < 0 ? 'down' : ''}`;
    row.updated.textContent = time(at);
    if (flash && before && price && before !== price) {
      row.price.classList.remove('flash-up', 'flash-down');
      void row.price.offsetWidth; // Restart the animation.
      row.price.classList.add(Number(price) > Number(before) ? 'flash-up' : 'flash-down');
    }
  }

  function makeRow(product: Product): Row {
    const star = h('button', {
      type: 'button',
      class: 'star',
      'data-testid': 'star',
      'data-symbol': product.symbol,
      'aria-label': `Bookmark ${product.symbol}`,
    });
    const price = h('span', { class: 'price', 'data-testid': 'market-price' });
    const currency = h('span', { class: 'ccy', 'data-testid': 'market-currency' }, product.currency);
    const change = h('td', { class: 'num' });
    const updated = h('td', { class: 'num muted hide-phone' });
    const href = `/product/${encodeURIComponent(product.symbol)}`;
    const tr = h(
      'tr',
      { 'data-symbol': product.symbol, class: 'clickable', 'data-testid': 'market-row' },
      h('td', { class: 'star-col' }, star),
      h(
        'td',
        {},
        h(
          'a',
          { href, 'data-link': true, class: 'product-link' },
          h('span', { class: 'symbol' }, product.symbol),
          h('span', { class: 'name' }, product.productName),
        ),
      ),
      h('td', { class: 'num' }, price, currency),
      change,
      updated,
      h('td', { class: 'num hide-phone' }, h('a', { class: 'btn btn-small btn-ghost', href, 'data-link': true }, 'Trade')),
    );
    tr.addEventListener('click', (event) => {
      const target = event.target as Element;
      if (target.closest('button, a')) return;
      ctx.navigate(href);
    });
    star.addEventListener('click', () => void ctx.session.toggleBookmark(product.symbol));
    const row = { product, tr, price, change, updated, star };
    showPrice(row, product.currentPrice, product.timestamp, false);
    return row;
  }

  function follow(): void {
    for (const stop of stops) stop();
    stops = [];
    for (const row of rows.slice(0, LIVE_PRODUCTS_MAX)) {
      // Converted rows follow the same channel converted into their currency.
      const { symbol } = row.product;
      const channel = converted(row.product) ? `ticks:${symbol}:${row.product.currency}` : `ticks:${symbol}`;
      stops.push(
        ctx.live.subscribe<Tick[] | Tick>(channel, (message) => {
          const ticks = Array.isArray(message.data) ? message.data : [message.data];
          const newest = ticks[ticks.length - 1];
          if (newest && (row.product.timestamp === null || newest.timestamp >= row.product.timestamp)) {
            showPrice(row, newest.price, newest.timestamp, message.type === 'update', newest.rate ?? null);
          }
        }),
      );
    }
  }

  async function load(query: string): Promise<void> {
    const mine = ++generation;
    try {
      // Exchange rates are market data of their own kind (GET /fx): they convert values into
      // the account's currency and are not listed here among the products.
      // In the preference (a product no rate converts stays in its own currency, and says so).
      const currency = ctx.session.preference ?? OWN;
      const [listed, rates] = await Promise.all([api.products(query, 500, currency), api.fx().catch(() => [])]);
      const rateSymbols = new Set(rates.map((r) => r.symbol));
      const products = listed.filter((p) => !rateSymbols.has(p.symbol));
      if (mine !== generation) return;
      rows = products.map(makeRow);
      body.replaceChildren();
      order();
      follow();
      fill(
        status,
        products.length === 0
          ? `No product matches “${query}”. Search matches the start of a word of the symbol or the name.`
          : `${products.length} product${products.length === 1 ? '' : 's'}${query ? ` matching “${query}”` : ''}.`,
      );
      el.dataset.loaded = 'true';
      el.dataset.currency = currency;
    } catch (error) {
      if (mine !== generation) return;
      fill(status, 'The products could not be loaded.');
      notify.error(describe(error));
    }
  }

  search.addEventListener('input', () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => void load(search.value.trim()), 200);
  });
  const stopSession = ctx.session.onChange(order);
  const stopPreference = ctx.session.onPreferenceChange(() => void load(search.value.trim()));
  void load('');

  return {
    el,
    dispose() {
      generation += 1;
      window.clearTimeout(searchTimer);
      stopSession();
      stopPreference();
      for (const stop of stops) stop();
    },
  };
}
