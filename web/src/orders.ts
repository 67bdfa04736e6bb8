// Orders and trades as several screens show them: the account's open orders kept live from
// the `orders` channel, its trades from `trades`, a sentence for an order's outcome, and
// the order rows with their cancel button.

import { type Fill, type Order, type OrderConverted, api, describe } from './api';
import type { Ctx } from './app';
import { format, money, priceText, shownPlaces, sub } from './dec';
import { dualValue } from './fx';
import { capitalise, h, notify, time } from './ui';

/** Calls `changed` with the open orders (newest first) now and on every change. */
export function followOpenOrders(ctx: Ctx, changed: (orders: Order[]) => void): () => void {
  const open = new Map<number, Order>();
  const emit = () => changed([...open.values()].sort((a, b) => b.orderId - a.orderId));
  return ctx.live.subscribe<Order[] | Order>('orders', (message) => {
    if (message.type === 'snapshot') {
      open.clear();
      for (const order of message.data as Order[]) open.set(order.orderId, order);
    } else {
      const order = message.data as Order;
      if (order.status === 'open') open.set(order.orderId, order);
      else open.delete(order.orderId);
    }
    emit();
  });
}

/** Calls `changed` with the newest trades (newest first) now and on every new one. */
export function followTrades(ctx: Ctx, changed: (trades: Fill[]) => void, keep = 50): () => void {
  let trades: Fill[] = [];
  return ctx.live.subscribe<Fill[] | Fill>('trades', (message) => {
    if (message.type === 'snapshot') {
      trades = [...(message.data as Fill[])];
    } else {
      const trade = message.data as Fill;
      trades = [trade, ...trades.filter((t) => t.tradeId !== trade.tradeId)];
    }
    trades.sort((a, b) => b.tradeId - a.tradeId);
    trades = trades.slice(0, keep);
    changed(trades);
  });
}

const END_REASONS: Record<string, string> = {
  requested: 'you cancelled it',
  selfTrade: 'it would have traded with your own order',
  expired: 'nothing more could fill at once',
  insufficientFunds: 'not enough funds for the next lot',
};

function reason(order: Order): string {
  if (!order.endReason) return '';
  return END_REASONS[order.endReason] ?? order.endReason.replace(/([A-Z])/g, ' $1').toLowerCase();
}

/** One sentence on what became of an order just placed. */
export function outcome(order: Order): string {
  const verb = order.side === 'buy' ? 'Bought' : 'Sold';
  const filled = order.filledQuantity;
  const some = filled !== '0' && !/^0(\.0+)?$/.test(filled);
  const at = order.averagePrice ? ` at ${money(order.averagePrice)} average` : '';
  const fee = some ? ` (fee ${money(order.fees)} ${order.feeCurrency})` : '';
  switch (order.status) {
    case 'filled':
      return `${verb} ${format(filled)} ${order.symbol}${at}${fee}.`;
    case 'open':
      return some
        ? `${verb} ${format(filled)} of ${format(order.quantity)} ${order.symbol}${at}${fee}; the rest rests in the book (order #${order.orderId}).`
        : `${capitalise(order.side)} ${format(order.quantity)} ${order.symbol} at ${money(order.price)} is open in the book (order #${order.orderId}).`;
    default: {
      const why = reason(order);
      return some
        ? `${verb} ${format(filled)} of ${format(order.quantity)} ${order.symbol}${at}${fee}; the rest was ${order.status}${why ? `: ${why}` : ''}.`
        : `Nothing filled; the order was ${order.status}${why ? `: ${why}` : ''}.`;
    }
  }
}

export async function cancelOrder(order: Order, button?: HTMLButtonElement): Promise<void> {
  if (button) button.disabled = true;
  try {
    const cancelled = await api.cancel(order.orderId);
    notify.success(
      `Cancelled order #${cancelled.orderId}: ${cancelled.side} ${format(sub(cancelled.quantity, cancelled.filledQuantity))} ${cancelled.symbol}${cancelled.price ? ` at ${money(cancelled.price)}` : ''}.`,
    );
  } catch (error) {
    notify.error(describe(error));
    if (button) button.disabled = false;
  }
}

/** A price of an order or a trade for display (a converted one rounded). */
export function priceShown(text: string): string {
  return priceText(text, shownPlaces(text));
}

/** A row of an open order, with its cancel button. With `ownCurrency` (the product's), its
 * price is labelled, and shown converted when `converted` has it (the own one under it). */
export function openOrderRow(
  order: Order,
  withSymbol: boolean,
  ownCurrency?: string,
  converted?: OrderConverted | null,
): HTMLTableRowElement {
  const cancel = h(
    'button',
    { type: 'button', class: 'btn btn-small btn-ghost', 'data-testid': 'cancel-order', 'data-order-id': order.orderId },
    'Cancel',
  );
  cancel.addEventListener('click', () => void cancelOrder(order, cancel));
  return h(
    'tr',
    { 'data-testid': 'open-order', 'data-order-id': order.orderId, 'data-symbol': order.symbol },
    withSymbol ? h('td', {}, h('a', { href: `/product/${order.symbol}`, 'data-link': true }, order.symbol)) : null,
    h('td', { class: order.side === 'buy' ? 'up' : 'down' }, capitalise(order.side)),
    h('td', { class: 'hide-phone' }, `${order.type} · ${order.timeInForce.replace('_', '-')}`),
    h(
      'td',
      { class: 'num' },
      !order.price
        ? 'market'
        : ownCurrency
          ? dualValue(order.price, ownCurrency, converted && { currency: converted.currency, value: converted.price, rate: converted.rate }, priceShown, 'order-price')
          : money(order.price),
    ),
    h('td', { class: 'num' }, `${format(order.filledQuantity)} / ${format(order.quantity)}`),
    h('td', { class: 'num muted hide-phone' }, time(order.createdAt)),
    h('td', { class: 'num' }, cancel),
  );
}

export function openOrderHeaders(withSymbol: boolean): (string | [string, string])[] {
  return [
    ...(withSymbol ? ['Product'] : []),
    'Side',
    ['Type', 'hide-phone'],
    ['Price', 'num'],
    ['Filled', 'num'],
    ['Placed', 'num hide-phone'],
    ['', 'num'],
  ];
}
