// Values in the account's preferred currency (docs/api.md, "Currencies"): how the screens
// name a rate, show an account record's value converted beside its own, and learn each
// product's own currency.

import { OWN, type Rate, api } from './api';
import { money, rounded } from './dec';
import { h } from './ui';

/** "EURUSD 1.08123": the pair and the price a value was converted at. */
export function rateLabel(rate: Rate): string {
  return `${rate.pair} ${rate.price}`;
}

/** A sentence for a tooltip: how `from` became `to`. */
export function rateTitle(rate: Rate, from: string, to: string): string {
  const how = rate.operation === 'divide' ? 'divided by' : 'multiplied by';
  return `${from} ${how} ${rate.pair} ${rate.price} (its price at ${new Date(rate.time).toLocaleString()}) gives ${to}`;
}

/** Money in a record (a notional, a fee, an amount), rounded to cents for display. */
export function cents(text: string): string {
  return money(rounded(text, 2));
}

export interface ConvertedValue {
  currency: string;
  /** Null when no rate existed at the record's time. */
  value: string | null;
  rate: Rate | null;
}

/** An account record's value: in the converted currency when there is one, with its own
 * value (the ledger's) on a second line; else its own value, marked when a conversion was
 * asked but no rate made it. `data-currency` is the currency of the first line. */
export function dualValue(
  own: string | null,
  ownCurrency: string | null,
  converted: ConvertedValue | null | undefined,
  show: (text: string) => string = cents,
  testid?: string,
  /** Own values are the ledger's: shown as they are, never rounded. */
  showOwn: (text: string) => string = money,
): HTMLElement {
  const ownText = own === null ? '—' : `${showOwn(own)}${ownCurrency ? ` ${ownCurrency}` : ''}`;
  const ownMain = () => (own === null ? ['—'] : [showOwn(own), ownCurrency ? h('span', { class: 'dual-ccy' }, ` ${ownCurrency}`) : null]);
  if (converted && converted.value !== null && converted.rate) {
    return h(
      'span',
      {
        class: 'dual',
        'data-testid': testid,
        'data-currency': converted.currency,
        'data-converted': 'true',
        title: rateTitle(converted.rate, ownText, `${converted.value} ${converted.currency}`),
      },
      h('span', { class: 'dual-main' }, show(converted.value), h('span', { class: 'dual-ccy' }, ` ${converted.currency}`)),
      h('span', { class: 'dual-own' }, ownText),
    );
  }
  if (converted) {
    return h(
      'span',
      {
        class: 'dual',
        'data-testid': testid,
        'data-currency': ownCurrency ?? '',
        'data-converted': 'false',
        title: `Not converted into ${converted.currency}: no rate at that time`,
      },
      h('span', { class: 'dual-main' }, ...ownMain()),
      h('span', { class: 'dual-own unconverted' }, `not in ${converted.currency}`),
    );
  }
  return h('span', { class: 'dual', 'data-testid': testid, 'data-currency': ownCurrency ?? '' }, h('span', { class: 'dual-main' }, ...ownMain()));
}

let currencies: Promise<Map<string, string>> | null = null;

/** Each product's own (quote) currency, by symbol; asked once per page. */
export function productCurrencies(): Promise<Map<string, string>> {
  if (!currencies) {
    currencies = api.products('', 500, OWN).then(
      (products) => new Map(products.map((p) => [p.symbol, p.currency])),
      (error: unknown) => {
        currencies = null;
        throw error;
      },
    );
  }
  return currencies;
}
