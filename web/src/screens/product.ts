// Product: the candle chart with its interval switcher, the order book, the recent trades
// (the product's ticks: the exchange's and Bourse's own fills), the order ticket and the
// account's open orders in this product. Everything moves live over the WebSocket.

import { type Book, type Candle, type Order, type ProductDetail, type Tick, api, describe } from '../api';
import type { Ctx, Screen } from '../app';
import { CandleChart } from '../chart';
import { add, approx, format, percentChange, places, sub } from '../dec';
import { followOpenOrders, openOrderHeaders, openOrderRow } from '../orders';
import { fill, h, notify, percent, prefs, table, time } from '../ui';
import { orderTicket } from './ticket';

const INTERVALS = ['1s', '1m', '5m', '15m', '1h', '4h', '1d'] as const;
const INTERVAL_KEY = 'interval';
/** Levels shown a side. */
const BOOK_LEVELS = 12;
const TRADES_KEPT = 40;

function fixed(text: string | null | undefined, tickPlaces: number): string {
  return format(text, tickPlaces);
}

export function productScreen(ctx: Ctx, symbol: string): Screen {
  const el = h('section', { class: 'product-screen', 'data-symbol': symbol }, h('p', { class: 'muted' }, `Loading ${symbol}…`));
  const stops: (() => void)[] = [];
  let chart: CandleChart | null = null;
  let disposed = false;

  void (async () => {
    let product: ProductDetail;
    try {
      product = await api.product(symbol);
    } catch (error) {
      if (disposed) return;
      fill(
        el,
        h(
          'div',
          { class: 'panel narrow' },
          h('h1', {}, symbol),
          h('p', {}, describe(error)),
          h('p', {}, h('a', { href: '/markets', 'data-link': true }, 'Back to the markets')),
        ),
      );
      return;
    }
    if (disposed) return;
    document.title = `${product.symbol} ${product.currentPrice ?? ''} · Bourse`;
    build(product);
  })();

  function build(product: ProductDetail): void {
    const tickPlaces = places(product.tickSize);
    const tradable = product.tradable;

    // Header ---------------------------------------------------------------------------------
    const star = h('button', { type: 'button', class: 'star star-big', 'data-testid': 'product-star', 'data-symbol': symbol });
    const showStar = () => {
      const on = ctx.session.isBookmarked(symbol);
      star.textContent = on ? '★' : '☆';
      star.setAttribute('aria-pressed', String(on));
      star.setAttribute('aria-label', on ? `Remove the bookmark of ${symbol}` : `Bookmark ${symbol}`);
    };
    star.addEventListener('click', () => void ctx.session.toggleBookmark(symbol));
    showStar();
    stops.push(ctx.session.onChange(showStar));

    const lastPrice = h('span', { class: 'last-price', 'data-testid': 'last-price' });
    const change = h('span', { class: 'change' });
    const base = product.histories[0]?.price ?? null;
    const showLast = (price: string | null) => {
      lastPrice.textContent = price ? fixed(price, tickPlaces) : '—';
      const pc = percentChange(base, price);
      change.textContent = `${percent(pc)} 10 min`;
      change.className = `change ${pc === null ? '' : pc > 0 ? 'up' : pc < 0 ? 'down' : ''}`;
      document.title = `${symbol} ${price ?? ''} · Bourse`;
    };
    showLast(product.currentPrice);
    const statusBadge = !tradable
      ? h('span', { class: 'badge' }, 'prices only')
      : product.status === 'trading'
        ? h('span', { class: 'badge badge-ok' }, 'trading')
        : h('span', { class: 'badge badge-warn' }, product.status ?? '');
    const head = h(
      'div',
      { class: 'product-head' },
      star,
      h('div', { class: 'product-title' }, h('h1', {}, product.symbol), h('span', { class: 'muted' }, product.productName)),
      h('div', { class: 'product-price' }, lastPrice, h('span', { class: 'muted small' }, product.currency), change),
      statusBadge,
    );

    // Chart ----------------------------------------------------------------------------------
    const chartBox = h('div', { class: 'chart', 'data-testid': 'chart' });
    const chartNote = h('p', { class: 'chart-note muted small', hidden: true });
    const intervalBar = h('div', { class: 'intervals', role: 'group', 'aria-label': 'Candle interval' });
    let interval = prefs.get(INTERVAL_KEY) ?? '1m';
    if (!(INTERVALS as readonly string[]).includes(interval)) interval = '1m';
    const intervalButtons = INTERVALS.map((name) => {
      const button = h('button', { type: 'button', class: 'seg', 'data-interval': name }, name);
      button.addEventListener('click', () => void showInterval(name));
      intervalBar.append(button);
      return button;
    });
    const chartPanel = h(
      'div',
      { class: 'panel chart-panel' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Chart'), intervalBar),
      h('div', { class: 'chart-wrap' }, chartBox, chartNote),
    );

    // Book -----------------------------------------------------------------------------------
    const asksBody = h('div', { class: 'book-side asks', 'data-testid': 'book-asks' });
    const bidsBody = h('div', { class: 'book-side bids', 'data-testid': 'book-bids' });
    const spread = h('div', { class: 'book-spread' });
    const bookPanel = h(
      'div',
      { class: 'panel book-panel', 'data-testid': 'book' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Order book')),
      h(
        'div',
        { class: 'book-cols muted small' },
        h('span', {}, `Price (${product.currency})`),
        h('span', { class: 'num' }, 'Quantity'),
        h('span', { class: 'num' }, 'Total'),
      ),
      asksBody,
      spread,
      bidsBody,
    );

    // Trades ---------------------------------------------------------------------------------
    const tradesBody = h('div', { class: 'trades-list', 'data-testid': 'recent-trades' });
    const tradesPanel = h(
      'div',
      { class: 'panel trades-panel' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Recent trades')),
      h(
        'div',
        { class: 'trade-row trade-cols muted small' },
        h('span', {}, 'Time'),
        h('span', { class: 'num' }, 'Price'),
        h('span', { class: 'num' }, 'Size'),
        h('span', {}, ''),
      ),
      tradesBody,
    );

    // My orders ------------------------------------------------------------------------------
    const myOrders = h('div', { class: 'my-orders' });
    const ordersPanel = h(
      'div',
      { class: 'panel orders-panel' },
      h('div', { class: 'panel-head' }, h('h2', {}, `Your open orders in ${symbol}`)),
      myOrders,
    );

    // Ticket ---------------------------------------------------------------------------------
    let book: Book | null = null;
    const ticket = orderTicket(ctx, product, () => book);
    stops.push(ticket.dispose);

    fill(
      el,
      head,
      h('div', { class: 'trade-grid' }, chartPanel, bookPanel, h('div', { class: 'panel ticket-panel' }, ticket.el), tradesPanel, ordersPanel),
    );
    if (!tradable) {
      bookPanel.hidden = true;
      ordersPanel.hidden = true;
    }

    chart = new CandleChart(chartBox, product.tickSize);

    // Candles: HTTP first (the history), then the channel (its snapshot merges in, then each
    // update replaces the candle of its start).
    let stopCandles: (() => void) | null = null;
    let candleGeneration = 0;
    async function showInterval(name: string): Promise<void> {
      interval = name;
      prefs.set(INTERVAL_KEY, name);
      for (const button of intervalButtons) button.setAttribute('aria-pressed', String(button.dataset.interval === name));
      stopCandles?.();
      stopCandles = null;
      const mine = ++candleGeneration;
      chartBox.dataset.interval = name;
      chartBox.dataset.candles = '0';
      let candles: Candle[] = [];
      try {
        candles = await api.candles(symbol, name);
      } catch (error) {
        if (mine === candleGeneration && !disposed) notify.error(describe(error));
      }
      if (mine !== candleGeneration || disposed || !chart) return;
      chart.setInterval(name);
      chart.set(candles);
      chartBox.dataset.loaded = 'true';
      showChartNote();
      stopCandles = ctx.live.subscribe<Candle[] | Candle>(`candles:${symbol}:${name}`, (message) => {
        if (!chart) return;
        if (message.type === 'snapshot') chart.merge(message.data as Candle[]);
        else chart.upsert(message.data as Candle);
        showChartNote();
      });
    }
    function showChartNote(): void {
      const empty = (chart?.count ?? 0) === 0;
      chartNote.hidden = !empty;
      chartNote.textContent = empty ? 'No trades in this interval yet: candles appear with the first tick.' : '';
    }
    stops.push(() => stopCandles?.());
    void showInterval(interval);

    // Book: whole states, the newest eventSeq wins.
    const showBook = (next: Book) => {
      if (book && next.eventSeq < book.eventSeq) return;
      book = next;
      renderBook(next);
      ticket.bookChanged();
    };
    function levelRows(levels: Book['bids'], side: 'bid' | 'ask'): HTMLElement[] {
      let total = '0';
      const totals = levels.slice(0, BOOK_LEVELS).map((level) => (total = add(total, level.quantity)));
      const max = approx(totals[totals.length - 1]) || 1;
      return levels.slice(0, BOOK_LEVELS).map((level, i) => {
        const row = h(
          'button',
          {
            type: 'button',
            class: `level level-${side}`,
            title: `Use ${level.price} as the limit price`,
            'data-price': level.price,
          },
          h('span', { class: 'depth', style: `width: ${((approx(totals[i]) / max) * 100).toFixed(1)}%` }),
          h('span', { class: 'price' }, fixed(level.price, tickPlaces)),
          h('span', { class: 'num' }, format(level.quantity)),
          h('span', { class: 'num muted' }, format(totals[i])),
        );
        row.addEventListener('click', () => ticket.usePrice(level.price));
        return row;
      });
    }
    function renderBook(current: Book): void {
      fill(asksBody, ...levelRows(current.asks, 'ask').reverse());
      fill(bidsBody, ...levelRows(current.bids, 'bid'));
      if (current.asks.length === 0) asksBody.append(h('p', { class: 'muted small pad' }, 'No sellers'));
      if (current.bids.length === 0) bidsBody.append(h('p', { class: 'muted small pad' }, 'No buyers'));
      const bestAsk = current.asks[0]?.price;
      const bestBid = current.bids[0]?.price;
      fill(
        spread,
        h('span', { class: 'spread-last', 'data-testid': 'book-last' }, lastPrice.textContent ?? ''),
        bestAsk && bestBid
          ? h('span', { class: 'muted small' }, `spread ${fixed(sub(bestAsk, bestBid), tickPlaces)}`)
          : null,
      );
      bookPanel.dataset.levels = String(current.asks.length + current.bids.length);
    }
    if (tradable) {
      // HTTP too, so the book shows even before the live link is up.
      api
        .book(symbol)
        .then((first) => {
          if (!disposed) showBook(first);
        })
        .catch((error: unknown) => notify.error(describe(error)));
      stops.push(ctx.live.subscribe<Book>(`book:${symbol}`, (message) => showBook(message.data)));
    }

    // Trades (ticks) ---------------------------------------------------------------------------
    let ticks: Tick[] = [];
    const renderTicks = () => {
      const rows = ticks.map((tick, i) => {
        const older = ticks[i + 1];
        const dir = older ? Math.sign(approx(tick.price) - approx(older.price)) : 0;
        return h(
          'div',
          { class: 'trade-row' },
          h('span', { class: 'muted' }, time(tick.timestamp)),
          h('span', { class: `num ${dir > 0 ? 'up' : dir < 0 ? 'down' : ''}` }, fixed(tick.price, tickPlaces)),
          h('span', { class: 'num' }, format(tick.size)),
          h('span', { class: 'source' }, tick.source === 'bourse' ? h('span', { class: 'badge badge-small', title: 'A trade on Bourse' }, 'Bourse') : ''),
        );
      });
      fill(tradesBody, ...(rows.length ? rows : [h('p', { class: 'muted small pad' }, 'No trades yet.')]));
    };
    stops.push(
      ctx.live.subscribe<Tick[] | Tick>(`ticks:${symbol}`, (message) => {
        if (message.type === 'snapshot') {
          ticks = [...(message.data as Tick[])].reverse();
        } else {
          ticks = [message.data as Tick, ...ticks].slice(0, TRADES_KEPT);
        }
        ticks = ticks.slice(0, TRADES_KEPT);
        const newest = ticks[0];
        if (newest) showLast(newest.price);
        renderTicks();
        if (book) renderBook(book);
      }),
    );
    renderTicks();

    // My open orders in this product -------------------------------------------------------------
    let stopOrders: (() => void) | null = null;
    const followOrders = () => {
      stopOrders?.();
      stopOrders = null;
      if (!ctx.session.signedIn) {
        fill(myOrders, h('p', { class: 'muted small pad' }, 'Sign in to see your orders.'));
        return;
      }
      stopOrders = followOpenOrders(ctx, (orders: Order[]) => {
        const mine = orders.filter((o) => o.symbol === symbol);
        fill(myOrders, table('grid compact', openOrderHeaders(false), mine.map((o) => openOrderRow(o, false)), 'No open orders.'));
      });
    };
    let signedIn = ctx.session.signedIn;
    followOrders();
    stops.push(
      ctx.session.onChange(() => {
        if (signedIn !== ctx.session.signedIn) {
          signedIn = ctx.session.signedIn;
          followOrders();
        }
      }),
    );
    stops.push(() => stopOrders?.());
  }

  return {
    el,
    dispose() {
      disposed = true;
      for (const stop of stops) stop();
      chart?.dispose();
      chart = null;
    },
  };
}
