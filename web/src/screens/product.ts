// Product: the candle chart with its interval switcher, the order book, the recent trades
// (the product's ticks: the exchange's and Bourse's own fills), the order ticket and the
// account's open orders in this product. Everything moves live over the WebSocket.
//
// Prices show in the account's preferred currency when it is not the product's own: the
// product, candles and book asked with `?currency=`, live from the converted channels
// (`ticks:SYMBOL:CUR`, `candles:SYMBOL:INTERVAL:CUR`), the rate used under the price. One
// click (the currency toggle) shows the product's own currency instead, and back. The order
// ticket always stays in the product's own currency: orders are placed in it.

import { type Book, type Candle, OWN, type Order, type ProductDetail, type Rate, type Tick, api, describe } from '../api';
import type { Ctx, Screen } from '../app';
import { CandleChart } from '../chart';
import { add, approx, convert, format, percentChange, places, priceText, shownPlaces, sub } from '../dec';
import { rateLabel, rateTitle } from '../fx';
import { followOpenOrders, openOrderHeaders, openOrderRow } from '../orders';
import { fill, h, notify, percent, prefs, table, time } from '../ui';
import { orderTicket } from './ticket';

const INTERVALS = ['1s', '1m', '5m', '15m', '1h', '4h', '1d'] as const;
const INTERVAL_KEY = 'interval';
/** Levels shown a side. */
const BOOK_LEVELS = 12;
const BOOK_DEPTH = 20;
const TRADES_KEPT = 40;
const CANDLES_SHOWN = 500;
/** How far back the pair's candles are read to find where its history starts. */
const PAIR_CANDLES_READ = 1000;

/** The newer of two rates (by the time of the pair's tick). */
function newer(a: Rate | null | undefined, b: Rate | null | undefined): Rate | null {
  if (!a) return b ?? null;
  if (!b) return a;
  return b.time >= a.time ? b : a;
}

export function productScreen(ctx: Ctx, symbol: string): Screen {
  const el = h('section', { class: 'product-screen', 'data-symbol': symbol }, h('p', { class: 'muted' }, `Loading ${symbol}…`));
  const stops: (() => void)[] = [];
  let chart: CandleChart | null = null;
  let disposed = false;

  void (async () => {
    let product: ProductDetail;
    try {
      // In its own currency first: the ticket, the grid and the labels are the product's.
      product = await api.product(symbol, OWN);
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

  function build(own: ProductDetail): void {
    const tickPlaces = places(own.tickSize);
    const tradable = own.tradable;
    const ownCurrency = own.currency;

    // The currency shown --------------------------------------------------------------------
    /** The user clicked to the product's own currency. */
    let wantOwn = false;
    /** A preference no rate converts into (tried and refused), until the user asks again. */
    let unavailable: string | null = null;
    let unavailableWhy = '';
    /** What is on the screen now: the currency, its product detail, the newest rate. */
    let shown = ownCurrency;
    let rate: Rate | null = null;
    let viewGeneration = 0;
    const converted = () => shown !== ownCurrency;
    const target = (): string => {
      const preference = ctx.session.preference;
      return preference && preference !== ownCurrency && !wantOwn && preference !== unavailable ? preference : ownCurrency;
    };
    /** Decimals of a price shown: the product's grid in its own currency, more converted. */
    let pricePlaces = tickPlaces;
    const fixed = (text: string | null | undefined) => priceText(text, pricePlaces);

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

    const lastPrice = h('span', { class: 'last-price', 'data-testid': 'last-price', 'data-currency': ownCurrency });
    const priceCurrency = h('span', { class: 'muted small', 'data-testid': 'price-currency' }, ownCurrency);
    const change = h('span', { class: 'change' });
    const rateLine = h('span', { class: 'fx-rate muted small', 'data-testid': 'fx-rate', hidden: true });
    const toggle = h('button', { type: 'button', class: 'ccy-toggle', 'data-testid': 'currency-toggle', hidden: true });
    let base = own.histories[0]?.price ?? null;
    let last: string | null = own.currentPrice;
    const showLast = (price: string | null, used?: Rate | null) => {
      last = price;
      lastPrice.textContent = price ? fixed(price) : '—';
      lastPrice.dataset.currency = shown;
      const pc = percentChange(base, price);
      change.textContent = `${percent(pc)} 10 min`;
      change.className = `change ${pc === null ? '' : pc > 0 ? 'up' : pc < 0 ? 'down' : ''}`;
      document.title = `${symbol} ${price ? fixed(price) : ''} ${shown} · Bourse`;
      if (used !== undefined) rate = newer(rate, used);
      showRate(used ?? rate);
    };
    /** Under the price, discreetly: the rate the price shown was converted at. */
    function showRate(used: Rate | null): void {
      if (converted() && used) {
        rateLine.hidden = false;
        rateLine.textContent = `at ${rateLabel(used)}`;
        rateLine.title = rateTitle(used, `The price in ${ownCurrency}`, `the price in ${shown}`);
        rateLine.dataset.pair = used.pair;
      } else if (unavailable && unavailable === ctx.session.preference && !converted()) {
        rateLine.hidden = false;
        rateLine.textContent = `not in ${unavailable}: no rate`;
        rateLine.title = unavailableWhy;
        delete rateLine.dataset.pair;
      } else {
        rateLine.hidden = true;
        rateLine.textContent = '';
        delete rateLine.dataset.pair;
      }
    }
    function showToggle(): void {
      const preference = ctx.session.preference;
      // Nothing to switch when the preference is the product's own currency (or none).
      toggle.hidden = !preference || preference === ownCurrency;
      if (!preference || toggle.hidden) return;
      const other = converted() ? ownCurrency : preference;
      fill(
        toggle,
        h('span', { class: `ccy-opt${shown === preference ? ' on' : ''}` }, preference),
        h('span', { class: `ccy-opt${shown === ownCurrency ? ' on' : ''}` }, ownCurrency),
      );
      toggle.dataset.showing = shown;
      toggle.setAttribute('aria-label', `Prices in ${shown}; show them in ${other}`);
      toggle.title = converted()
        ? `Show prices in ${ownCurrency}, ${symbol}'s own currency (orders are placed in it)`
        : `Show prices in ${preference}, your preferred currency`;
    }
    toggle.addEventListener('click', () => {
      if (converted()) {
        wantOwn = true;
      } else {
        wantOwn = false;
        unavailable = null;
      }
      void showIn(target());
    });
    const statusBadge = !tradable
      ? h('span', { class: 'badge' }, 'prices only')
      : own.status === 'trading'
        ? h('span', { class: 'badge badge-ok' }, 'trading')
        : h('span', { class: 'badge badge-warn' }, own.status ?? '');
    const head = h(
      'div',
      { class: 'product-head' },
      star,
      h('div', { class: 'product-title' }, h('h1', {}, own.symbol), h('span', { class: 'muted' }, own.productName)),
      h(
        'div',
        { class: 'product-quote' },
        h('div', { class: 'product-price' }, lastPrice, priceCurrency, change),
        rateLine,
      ),
      toggle,
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
    const chartTitle = h('h2', {}, 'Chart');
    const chartPanel = h(
      'div',
      { class: 'panel chart-panel' },
      h('div', { class: 'panel-head' }, chartTitle, intervalBar),
      h('div', { class: 'chart-wrap' }, chartBox, chartNote),
    );

    // Book -----------------------------------------------------------------------------------
    const asksBody = h('div', { class: 'book-side asks', 'data-testid': 'book-asks' });
    const bidsBody = h('div', { class: 'book-side bids', 'data-testid': 'book-bids' });
    const spread = h('div', { class: 'book-spread' });
    const bookPriceHead = h('span', {}, `Price (${ownCurrency})`);
    const bookPanel = h(
      'div',
      { class: 'panel book-panel', 'data-testid': 'book' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Order book')),
      h('div', { class: 'book-cols muted small' }, bookPriceHead, h('span', { class: 'num' }, 'Quantity'), h('span', { class: 'num' }, 'Total')),
      asksBody,
      spread,
      bidsBody,
    );

    // Trades ---------------------------------------------------------------------------------
    const tradesBody = h('div', { class: 'trades-list', 'data-testid': 'recent-trades' });
    const tradesPriceHead = h('span', { class: 'num' }, 'Price');
    const tradesPanel = h(
      'div',
      { class: 'panel trades-panel' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Recent trades')),
      h('div', { class: 'trade-row trade-cols muted small' }, h('span', {}, 'Time'), tradesPriceHead, h('span', { class: 'num' }, 'Size'), h('span', {}, '')),
      tradesBody,
    );

    // My orders ------------------------------------------------------------------------------
    const myOrders = h('div', { class: 'my-orders' });
    const ordersPanel = h(
      'div',
      { class: 'panel orders-panel' },
      h('div', { class: 'panel-head' }, h('h2', {}, `Your open orders in ${symbol}`), h('span', { class: 'muted small' }, `in ${ownCurrency}`)),
      myOrders,
    );

    // Ticket ---------------------------------------------------------------------------------
    /** The book in the product's own currency: what the ticket and a click on a level use. */
    let book: Book | null = null;
    const ticket = orderTicket(ctx, own, () => book);
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

    chart = new CandleChart(chartBox, own.tickSize);

    /** Switches the whole screen to `currency` (the preference, or the product's own). */
    async function showIn(currency: string): Promise<void> {
      const mine = ++viewGeneration;
      let detail = own;
      let used: Rate | null = null;
      if (currency !== ownCurrency) {
        try {
          const [convertedDetail, convertedBook] = await Promise.all([
            api.product(symbol, currency),
            tradable ? api.book(symbol, BOOK_DEPTH, currency) : Promise.resolve(null),
          ]);
          detail = convertedDetail;
          used = newer(convertedDetail.rate, convertedBook?.rate);
        } catch (error) {
          if (mine !== viewGeneration || disposed) return;
          noRate(currency, describe(error));
          return;
        }
        if (mine !== viewGeneration || disposed) return;
        if (detail.currency !== currency || !used) {
          noRate(currency, `${symbol}'s prices could not be converted into ${currency}.`);
          return;
        }
      }
      shown = currency;
      rate = used;
      el.dataset.currency = shown;
      pricePlaces = converted() ? shownPlaces(detail.currentPrice, tickPlaces) : tickPlaces;
      chart?.setPrecision(pricePlaces);
      base = detail.histories[0]?.price ?? null;
      priceCurrency.textContent = shown;
      priceCurrency.title = converted() ? `Converted from ${ownCurrency}, ${symbol}'s own currency` : `${symbol}'s own currency`;
      bookPriceHead.textContent = `Price (${shown})`;
      tradesPriceHead.textContent = `Price (${shown})`;
      chartTitle.textContent = `Chart (${shown})`;
      showLast(detail.currentPrice, used);
      showToggle();
      ticket.showing(shown);
      followTicks();
      if (book) renderBook(book);
      void showInterval(interval);
    }

    /** No rate converts into `currency`: the own currency, and a word on why. */
    function noRate(currency: string, why: string): void {
      unavailable = currency;
      unavailableWhy = why;
      if (converted()) {
        void showIn(ownCurrency);
      } else {
        showToggle();
        showRate(null);
      }
    }

    // Candles: HTTP first (the history), then the channel (its snapshot merges in, then each
    // update replaces the candle of its start).
    let stopCandles: (() => void) | null = null;
    let candleGeneration = 0;
    /** Where a pair's candles of an interval start: converted candles are asked from there,
     * since the server refuses a series with a candle older than every rate. */
    const pairStarts = new Map<string, number>();
    async function pairStart(pair: string, name: string): Promise<number | undefined> {
      const key = `${pair}:${name}`;
      const known = pairStarts.get(key);
      if (known !== undefined) return known;
      const candles = await api.candles(pair, name, PAIR_CANDLES_READ, OWN);
      const first = candles[0]?.start;
      if (first !== undefined) pairStarts.set(key, first);
      return first;
    }
    async function showInterval(name: string): Promise<void> {
      interval = name;
      prefs.set(INTERVAL_KEY, name);
      for (const button of intervalButtons) button.setAttribute('aria-pressed', String(button.dataset.interval === name));
      stopCandles?.();
      stopCandles = null;
      const mine = ++candleGeneration;
      const currency = shown;
      const inOwn = currency === ownCurrency;
      chartBox.dataset.interval = name;
      chartBox.dataset.candles = '0';
      delete chartBox.dataset.currency;
      let candles: Candle[] = [];
      try {
        if (inOwn) {
          candles = await api.candles(symbol, name, CANDLES_SHOWN, OWN);
        } else {
          const from = rate ? await pairStart(rate.pair, name) : undefined;
          if (mine !== candleGeneration || disposed) return;
          candles = await api.candles(symbol, name, CANDLES_SHOWN, currency, from);
        }
      } catch (error) {
        if (mine === candleGeneration && !disposed) notify.error(describe(error));
      }
      if (mine !== candleGeneration || disposed || !chart) return;
      const fits = (candle: Candle) => (inOwn ? !candle.currency || candle.currency === currency : candle.currency === currency);
      chart.setInterval(name);
      chart.set(candles.filter(fits));
      chartBox.dataset.loaded = 'true';
      chartBox.dataset.currency = currency;
      showChartNote();
      const channel = inOwn ? `candles:${symbol}:${name}` : `candles:${symbol}:${name}:${currency}`;
      stopCandles = ctx.live.subscribe<Candle[] | Candle>(
        channel,
        (message) => {
          if (!chart) return;
          if (message.type === 'snapshot') chart.merge((message.data as Candle[]).filter(fits));
          else if (fits(message.data as Candle)) chart.upsert(message.data as Candle);
          showChartNote();
        },
        (code) => {
          if (mine === candleGeneration && !inOwn) noRate(currency, `The ${currency} candles were refused (${code}).`);
        },
      );
    }
    function showChartNote(): void {
      const empty = (chart?.count ?? 0) === 0;
      chartNote.hidden = !empty;
      chartNote.textContent = empty ? 'No trades in this interval yet: candles appear with the first tick.' : '';
    }
    stops.push(() => stopCandles?.());

    // Book: whole states, the newest eventSeq wins. The book is kept in the product's own
    // currency (the ticket's) and shown converted at the newest rate.
    const showBook = (next: Book) => {
      if (book && next.eventSeq < book.eventSeq) return;
      book = next;
      renderBook(next);
      ticket.bookChanged();
    };
    /** A price of the own book as shown. */
    const inShown = (price: string): string => (converted() && rate ? (convert(price, rate) ?? price) : price);
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
            title: `Use ${level.price} ${ownCurrency} as the limit price`,
            'data-price': level.price,
          },
          h('span', { class: 'depth', style: `width: ${((approx(totals[i]) / max) * 100).toFixed(1)}%` }),
          h('span', { class: 'price' }, fixed(inShown(level.price))),
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
          ? h('span', { class: 'muted small' }, `spread ${fixed(sub(inShown(bestAsk), inShown(bestBid)))}`)
          : null,
      );
      bookPanel.dataset.levels = String(current.asks.length + current.bids.length);
      bookPanel.dataset.currency = converted() && rate ? shown : ownCurrency;
    }
    if (tradable) {
      // HTTP too, so the book shows even before the live link is up.
      api
        .book(symbol, BOOK_DEPTH, OWN)
        .then((first) => {
          if (!disposed) showBook(first);
        })
        .catch((error: unknown) => notify.error(describe(error)));
      stops.push(ctx.live.subscribe<Book>(`book:${symbol}`, (message) => showBook(message.data)));
    }

    // Trades (ticks) ---------------------------------------------------------------------------
    let ticks: Tick[] = [];
    let stopTicks: (() => void) | null = null;
    const renderTicks = (empty = 'No trades yet.') => {
      const rows = ticks.map((tick, i) => {
        const older = ticks[i + 1];
        const dir = older ? Math.sign(approx(tick.price) - approx(older.price)) : 0;
        return h(
          'div',
          { class: 'trade-row' },
          h('span', { class: 'muted' }, time(tick.timestamp)),
          h('span', { class: `num ${dir > 0 ? 'up' : dir < 0 ? 'down' : ''}` }, fixed(tick.price)),
          h('span', { class: 'num' }, format(tick.size)),
          h('span', { class: 'source' }, tick.source === 'bourse' ? h('span', { class: 'badge badge-small', title: 'A trade on Bourse' }, 'Bourse') : ''),
        );
      });
      fill(tradesBody, ...(rows.length ? rows : [h('p', { class: 'muted small pad' }, empty)]));
      tradesBody.dataset.currency = shown;
    };
    /** The ticks of the currency shown: the plain channel, or the one converted into it. */
    function followTicks(): void {
      stopTicks?.();
      const currency = shown;
      const inOwn = currency === ownCurrency;
      // A tick the server could not convert (none is older than every rate but the first
      // few) is left out of a converted list.
      const fits = (tick: Tick) => (inOwn ? !tick.currency || tick.currency === currency : tick.currency === currency);
      ticks = [];
      renderTicks('Loading…');
      const mine = viewGeneration;
      stopTicks = ctx.live.subscribe<Tick[] | Tick>(
        inOwn ? `ticks:${symbol}` : `ticks:${symbol}:${currency}`,
        (message) => {
          if (message.type === 'snapshot') {
            ticks = [...(message.data as Tick[])].filter(fits).reverse();
          } else if (fits(message.data as Tick)) {
            ticks = [message.data as Tick, ...ticks];
          }
          ticks = ticks.slice(0, TRADES_KEPT);
          const newest = ticks[0];
          if (newest) showLast(newest.price, newest.rate ?? null);
          renderTicks();
          if (book) renderBook(book);
        },
        (code) => {
          if (mine === viewGeneration && !inOwn) noRate(currency, `The ${currency} prices were refused (${code}).`);
        },
      );
    }
    stops.push(() => stopTicks?.());

    // My open orders in this product (in its own currency, as they were placed) -------------------
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

    // A new preference (or a sign-in or out) shows the screen in it.
    stops.push(
      ctx.session.onPreferenceChange(() => {
        wantOwn = false;
        unavailable = null;
        void showIn(target());
      }),
    );
    showLast(last);
    void showIn(target());
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
