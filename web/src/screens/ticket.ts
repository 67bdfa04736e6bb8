// The order ticket: buy or sell, market or limit, time in force, and a live fee quote from
// GET /fees (what a fill of that size would pay now, and what the order would hold).

import { type Book, type FeeQuote, type ProductDetail, type Side, type TimeInForce, api, describe } from '../api';
import type { Ctx } from '../app';
import { format, isPositive, money, onGrid, places } from '../dec';
import { outcome } from '../orders';
import { capitalise, fill, h, notify, rate } from '../ui';

export interface Ticket {
  el: HTMLElement;
  dispose(): void;
  /** The book moved: a market order's quote may have changed. */
  bookChanged(): void;
  /** A price picked in the book: a limit order at that price. */
  usePrice(price: string): void;
  /** The screen shows prices in `currency`: when it is not the product's own, the ticket
   * says that orders are placed in the own one. */
  showing(currency: string): void;
}

const TIF_LABELS: Record<TimeInForce, string> = {
  GTC: 'Good till cancelled (GTC)',
  IOC: 'Immediate or cancel (IOC)',
  FOK: 'Fill or kill (FOK)',
  POST_ONLY: 'Post only: maker or nothing',
};

const QUOTE_DELAY_MS = 250;
/** A market order's quote follows the book at most this often. */
const REQUOTE_EVERY_MS = 2_000;

export function orderTicket(ctx: Ctx, product: ProductDetail, book: () => Book | null): Ticket {
  const el = h('div', { class: 'ticket', 'data-testid': 'ticket' });
  const symbol = product.symbol;
  const quote = product.currency;
  const base = product.baseCurrency ?? symbol;
  const lot = product.lotSize ?? '1';
  const tick = product.tickSize;

  let side: Side = 'buy';
  let type: 'market' | 'limit' = 'market';
  let quoteTimer: number | undefined;
  let quoteGeneration = 0;
  let lastQuoteMs = 0;
  let busy = false;

  const sideButtons = (['buy', 'sell'] as Side[]).map((s) =>
    h('button', { type: 'button', class: `seg seg-${s}`, 'data-testid': `side-${s}`, 'data-side': s }, capitalise(s)),
  );
  const typeButtons = (['market', 'limit'] as const).map((t) =>
    h('button', { type: 'button', class: 'seg', 'data-testid': `type-${t}`, 'data-type': t }, capitalise(t)),
  );
  const price = h('input', {
    type: 'text',
    inputmode: 'decimal',
    autocomplete: 'off',
    id: `price-${symbol}`,
    'data-testid': 'ticket-price',
    placeholder: `in steps of ${tick}`,
  });
  const quantity = h('input', {
    type: 'text',
    inputmode: 'decimal',
    autocomplete: 'off',
    id: `quantity-${symbol}`,
    'data-testid': 'ticket-quantity',
    placeholder: `in lots of ${lot}`,
  });
  const tif = h('select', { id: `tif-${symbol}`, 'data-testid': 'ticket-tif' });
  const priceField = h(
    'div',
    { class: 'field' },
    h('label', { for: price.id }, `Limit price (${quote})`),
    price,
    h('div', { class: 'field-hint' }),
  );
  const quantityField = h('div', { class: 'field' }, h('label', { for: quantity.id }, `Quantity (${base})`), quantity, h('div', { class: 'field-hint' }));
  const tifField = h('div', { class: 'field' }, h('label', { for: tif.id }, 'Time in force'), tif);
  // Orders are placed in the product's own currency, whatever the screen shows.
  const currencyNote = h('p', { class: 'ticket-currency small', 'data-testid': 'ticket-currency-note', hidden: true });
  let shownCurrency = quote;
  const available = h('div', { class: 'available small', 'data-testid': 'ticket-available' });
  const quoteBox = h('div', { class: 'quote', 'data-testid': 'fee-quote', 'data-state': 'idle' });
  const submit = h('button', { type: 'submit', class: 'btn btn-block', 'data-testid': 'ticket-submit' });
  const result = h('p', { class: 'ticket-result small', 'data-testid': 'ticket-result', role: 'status' });
  const form = h(
    'form',
    { class: 'ticket-form', novalidate: true },
    h('div', { class: 'segments sides', role: 'group', 'aria-label': 'Side' }, ...sideButtons),
    h('div', { class: 'segments', role: 'group', 'aria-label': 'Order type' }, ...typeButtons),
    currencyNote,
    priceField,
    quantityField,
    tifField,
    available,
    quoteBox,
    submit,
    result,
  );

  for (const button of sideButtons) {
    button.addEventListener('click', () => {
      side = button.dataset.side as Side;
      refresh();
    });
  }
  for (const button of typeButtons) {
    button.addEventListener('click', () => {
      type = button.dataset.type as 'market' | 'limit';
      if (type === 'limit' && !price.value) {
        const best = bestPrice(side === 'buy' ? 'bid' : 'ask');
        if (best) price.value = best;
      }
      refresh();
    });
  }
  price.addEventListener('input', () => refresh());
  quantity.addEventListener('input', () => refresh());
  tif.addEventListener('change', () => refresh());
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void place();
  });

  function bestPrice(of: 'bid' | 'ask'): string | null {
    const current = book();
    const level = of === 'bid' ? current?.bids[0] : current?.asks[0];
    return level ? level.price : null;
  }

  function hint(field: HTMLElement, text: string, error: boolean): void {
    const box = field.querySelector('.field-hint');
    if (!box) return;
    box.textContent = text;
    box.classList.toggle('field-error', error);
  }

  /** What is wrong with the form, field by field; null when it can be sent. */
  function problems(): { quantity?: string; price?: string } | null {
    const found: { quantity?: string; price?: string } = {};
    const q = quantity.value.trim();
    if (q && !onGrid(q, lot)) found.quantity = `A whole number of lots of ${lot} ${base}.`;
    if (!q) found.quantity = '';
    if (type === 'limit') {
      const p = price.value.trim();
      if (p && !onGrid(p, tick)) found.price = `A positive price in steps of ${tick} ${quote}.`;
      if (!p) found.price = '';
    }
    return found.quantity === undefined && found.price === undefined ? null : found;
  }

  function refresh(): void {
    for (const button of sideButtons) button.setAttribute('aria-pressed', String(button.dataset.side === side));
    for (const button of typeButtons) button.setAttribute('aria-pressed', String(button.dataset.type === type));
    form.dataset.side = side;
    priceField.hidden = type === 'market';
    const options: TimeInForce[] = type === 'market' ? ['IOC'] : ['GTC', 'IOC', 'FOK', 'POST_ONLY'];
    const chosen = options.includes(tif.value as TimeInForce) ? tif.value : options[0];
    fill(tif, ...options.map((o) => h('option', { value: o }, TIF_LABELS[o])));
    tif.value = chosen ?? 'GTC';
    tif.disabled = type === 'market';
    const wrong = problems();
    hint(quantityField, wrong?.quantity || `Lots of ${lot}`, Boolean(wrong?.quantity));
    hint(
      priceField,
      wrong?.price || (bestPrice('bid') || bestPrice('ask') ? bestText() : `Steps of ${tick}`),
      Boolean(wrong?.price),
    );
    showAvailable();
    showCurrencyNote();
    submit.textContent = `${capitalise(side)} ${symbol}${type === 'market' ? ' at market' : ''}`;
    submit.className = `btn btn-block btn-${side}`;
    submit.disabled = busy;
    if (problems() !== null) {
      // Nothing to quote: say so at once rather than keep a quote of other values.
      window.clearTimeout(quoteTimer);
      quoteTimer = undefined;
      void fetchQuote();
    } else {
      scheduleQuote();
    }
  }

  function showCurrencyNote(): void {
    currencyNote.hidden = shownCurrency === quote;
    currencyNote.textContent =
      shownCurrency === quote
        ? ''
        : `Orders are placed in ${quote}, ${symbol}'s own currency: ${type === 'limit' ? 'the limit price is' : 'market orders fill'} in ${quote}, while the screen shows ${shownCurrency}.`;
    currencyNote.dataset.currency = quote;
  }

  /** The best prices of the book (in the product's own currency, like the ticket). */
  function bestText(): string {
    const unit = shownCurrency === quote ? '' : ` ${quote}`;
    return `Best bid ${money(bestPrice('bid'))} · best ask ${money(bestPrice('ask'))}${unit}`;
  }

  function showAvailable(): void {
    const currency = side === 'buy' ? quote : base;
    const balance = ctx.session.balance(currency);
    fill(
      available,
      h('span', { class: 'muted' }, 'Available '),
      h(
        'span',
        {},
        isPositive(balance.available) ? null : h('a', { href: '/funds', 'data-link': true, class: 'small' }, 'Deposit '),
        h('span', { 'data-testid': 'ticket-available-amount' }, `${format(balance.available, currency === quote ? 2 : 0)} ${currency}`),
      ),
    );
  }

  /** Quotes once the user stops typing for a moment. */
  function scheduleQuote(): void {
    window.clearTimeout(quoteTimer);
    quoteTimer = window.setTimeout(() => {
      quoteTimer = undefined;
      void fetchQuote();
    }, QUOTE_DELAY_MS);
  }

  function showQuote(state: string, ...rows: (HTMLElement | string)[]): void {
    quoteBox.dataset.state = state;
    fill(quoteBox, ...rows);
  }

  function line(label: string, value: string, testid?: string): HTMLElement {
    return h('div', { class: 'quote-line' }, h('span', { class: 'muted' }, label), h('span', { class: 'num', 'data-testid': testid }, value));
  }

  async function fetchQuote(): Promise<void> {
    const mine = ++quoteGeneration;
    if (problems() !== null) {
      showQuote('idle', h('p', { class: 'muted small' }, 'Enter a quantity to see the fee and what the order costs.'));
      return;
    }
    const q = quantity.value.trim();
    const p = type === 'limit' ? price.value.trim() : undefined;
    if (type === 'market' && !bestPrice(side === 'buy' ? 'ask' : 'bid')) {
      showQuote('empty', h('p', { class: 'muted small' }, `Nobody is ${side === 'buy' ? 'selling' : 'buying'} right now, so a market order cannot fill.`));
      return;
    }
    lastQuoteMs = Date.now();
    quoteBox.dataset.state = 'loading';
    let fee: FeeQuote;
    try {
      fee = await api.feeQuote(symbol, side, q, p);
    } catch (error) {
      if (mine === quoteGeneration) showQuote('error', h('p', { class: 'field-error small' }, describe(error)));
      return;
    }
    if (mine !== quoteGeneration) return;
    const quotePlaces = 2;
    showQuote(
      'ready',
      line(type === 'market' ? `Price now (best ${side === 'buy' ? 'ask' : 'bid'})` : 'Price', format(fee.price, places(tick))),
      line('Notional', `${format(fee.notional, quotePlaces)} ${fee.feeCurrency}`, 'quote-notional'),
      line(`Fee (${fee.liquidity} ${rate(fee.rate)})`, `${format(fee.fee, quotePlaces)} ${fee.feeCurrency}`, 'quote-fee'),
      line(
        type === 'market' && side === 'buy' ? 'Paid from available' : 'Held while open',
        `${fee.holdCurrency === quote ? money(fee.hold) : format(fee.hold)} ${fee.holdCurrency}`,
        'quote-hold',
      ),
    );
  }

  async function place(): Promise<void> {
    const wrong = problems();
    if (wrong) {
      refresh();
      notify.error(wrong.quantity || wrong.price || 'Enter a quantity' + (type === 'limit' ? ' and a price.' : '.'));
      return;
    }
    busy = true;
    submit.disabled = true;
    result.textContent = 'Sending…';
    try {
      const order = await api.order(side, {
        symbol,
        quantity: quantity.value.trim(),
        type,
        ...(type === 'limit' ? { price: price.value.trim(), timeInForce: tif.value as TimeInForce } : {}),
      });
      const text = outcome(order);
      result.textContent = text;
      result.dataset.status = order.status;
      result.dataset.orderId = String(order.orderId);
      notify.success(text);
    } catch (error) {
      result.textContent = '';
      delete result.dataset.status;
      notify.error(describe(error));
    } finally {
      busy = false;
      submit.disabled = false;
    }
  }

  function render(): void {
    if (!product.tradable) {
      fill(el, h('h2', {}, 'Trade'), h('p', { class: 'muted' }, `${symbol} is shown for its prices; it does not trade on Bourse.`));
      return;
    }
    if (!ctx.session.signedIn) {
      fill(
        el,
        h('h2', {}, `Trade ${symbol}`),
        h('p', { class: 'muted' }, 'Create an account (it takes a few seconds) or sign in with your token to buy and sell.'),
        h('a', { class: 'btn btn-block', href: '/account', 'data-link': true, 'data-testid': 'ticket-sign-in' }, 'Create an account or sign in'),
      );
      return;
    }
    const status = ctx.session.account?.profileStatus;
    fill(
      el,
      h('h2', {}, `Trade ${symbol}`),
      status && status !== 'verified'
        ? h('p', { class: 'note-warn small' }, `Your profile is ${status}: only verified accounts trade. You can deposit meanwhile.`)
        : null,
      form,
    );
    refresh();
  }

  let signedIn = ctx.session.signedIn;
  let status = ctx.session.account?.profileStatus;
  const stopSession = ctx.session.onChange(() => {
    if (signedIn !== ctx.session.signedIn || status !== ctx.session.account?.profileStatus) {
      signedIn = ctx.session.signedIn;
      status = ctx.session.account?.profileStatus;
      render();
    } else {
      showAvailable();
    }
  });
  render();

  return {
    el,
    dispose() {
      window.clearTimeout(quoteTimer);
      quoteGeneration += 1;
      stopSession();
    },
    bookChanged() {
      if (!el.contains(form)) return;
      // Never pushes back a quote the user's typing asked for.
      const due = quoteTimer === undefined && Date.now() - lastQuoteMs >= REQUOTE_EVERY_MS;
      if (type === 'market' && due) scheduleQuote();
      if (type === 'limit' && document.activeElement !== price) {
        const wrong = problems();
        if (!wrong?.price) hint(priceField, bestText(), false);
      }
    },
    showing(currency: string) {
      shownCurrency = currency;
      showCurrencyNote();
    },
    usePrice(level: string) {
      type = 'limit';
      price.value = level;
      refresh();
      price.focus();
    },
  };
}
