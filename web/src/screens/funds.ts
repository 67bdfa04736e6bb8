// Funds: deposit (card, UPI or bank transfer) and withdraw, and the history of funds
// movements (deposits, withdrawals and trading fees). Card numbers and CVVs go to the server
// in the deposit request only; the page clears them once sent.

import { type DepositMethod, type FundsRecord, api, describe } from '../api';
import type { Ctx, Screen } from '../app';
import { format, isPositive, money } from '../dec';
import { cents, dualValue } from '../fx';
import { capitalise, fill, h, notify, onSubmit, table, when } from '../ui';
import { signInPrompt } from './prompt';

type Method = DepositMethod['type'];

/** The Luhn check a card number must pass (the server checks it too). */
export function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits.length >= 12 && sum % 10 === 0;
}

function field(label: string, input: HTMLElement, hintText = ''): HTMLElement {
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, h('div', { class: 'field-hint' }, hintText));
}

function input(id: string, attrs: Record<string, string> = {}): HTMLInputElement {
  return h('input', { id, type: 'text', autocomplete: 'off', ...attrs });
}

export function fundsScreen(ctx: Ctx): Screen {
  const el = h('section', { class: 'funds-screen' });
  const stops: (() => void)[] = [];
  let moneyCodes: string[] = [];
  let shareCodes: string[] = [];

  const selects: HTMLSelectElement[] = [];

  /** Fills a currency choice: the account's money first, then shares (deposited and
   * withdrawn like money); keeps what was chosen. */
  function fillCurrencies(select: HTMLSelectElement): void {
    const chosen = select.value;
    // The preference first when wallets hold it (a preference like EUR only values them).
    const preferred = ctx.session.account?.currencyPreference ?? 'USD';
    const codes = moneyCodes.length ? moneyCodes : ['USD'];
    const money = codes.includes(preferred) ? [...new Set([preferred, ...codes])] : codes;
    const shares = shareCodes.filter((c) => !money.includes(c));
    fill(
      select,
      h('optgroup', { label: 'Money' }, ...money.map((c) => h('option', { value: c }, c))),
      shares.length ? h('optgroup', { label: 'Shares' }, ...shares.map((c) => h('option', { value: c }, c))) : null,
    );
    if (chosen && [...money, ...shares].includes(chosen)) select.value = chosen;
  }

  function currencySelect(id: string): HTMLSelectElement {
    const select = h('select', { id, 'data-testid': id });
    fillCurrencies(select);
    selects.push(select);
    return select;
  }

  function depositForm(onDone: () => void): HTMLElement {
    let method: Method = 'card';
    const currency = currencySelect('deposit-currency');
    const amount = input('deposit-amount', { inputmode: 'decimal', placeholder: '1000.00', 'data-testid': 'deposit-amount' });
    const cardNumber = input('card-number', { inputmode: 'numeric', placeholder: '4111 1111 1111 1111', 'data-testid': 'card-number', autocomplete: 'cc-number' });
    const expiry = input('card-expiry', { inputmode: 'numeric', placeholder: 'MM/YY', maxlength: '7', 'data-testid': 'card-expiry', autocomplete: 'cc-exp' });
    const cvv = input('card-cvv', { inputmode: 'numeric', placeholder: '123', maxlength: '4', 'data-testid': 'card-cvv', autocomplete: 'cc-csc' });
    const vpa = input('upi-vpa', { placeholder: 'name@bank', 'data-testid': 'upi-vpa' });
    const bankAccount = input('bank-account', { inputmode: 'numeric', placeholder: 'account number', 'data-testid': 'bank-account' });
    const cardFields = h('div', { class: 'card-fields' }, field('Card number', cardNumber), h('div', { class: 'field-row card-row' }, field('Expiry', expiry), field('CVV', cvv)));
    const upiFields = field('UPI address (VPA)', vpa);
    const bankFields = field('Your bank account', bankAccount);
    const methods = (['card', 'upi', 'bank'] as Method[]).map((m) =>
      h('button', { type: 'button', class: 'seg', 'data-method': m, 'data-testid': `method-${m}` }, m === 'card' ? 'Card' : m === 'upi' ? 'UPI' : 'Bank'),
    );
    const submit = h('button', { type: 'submit', class: 'btn btn-block', 'data-testid': 'deposit-submit' }, 'Deposit');
    const problem = h('p', { class: 'field-error small', role: 'alert' });
    const showMethod = () => {
      for (const b of methods) b.setAttribute('aria-pressed', String(b.dataset.method === method));
      cardFields.hidden = method !== 'card';
      upiFields.hidden = method !== 'upi';
      bankFields.hidden = method !== 'bank';
    };
    for (const b of methods) {
      b.addEventListener('click', () => {
        method = b.dataset.method as Method;
        showMethod();
      });
    }
    showMethod();
    const form = h(
      'form',
      { class: 'funds-form', novalidate: true, 'data-testid': 'deposit-form' },
      h('div', { class: 'field-row' }, field('Currency', currency), field('Amount', amount)),
      h('div', { class: 'segments', role: 'group', 'aria-label': 'Payment method' }, ...methods),
      cardFields,
      upiFields,
      bankFields,
      problem,
      submit,
      h('p', { class: 'muted small' }, 'Payments are simulated: no card is charged. Only the last four digits of a card are kept.'),
    );
    onSubmit(form, submit, problem, () => {
      const value = amount.value.trim();
      let details: DepositMethod;
      if (!isPositive(value)) {
        return 'Enter a positive amount, like 1000 or 250.50.';
      }
      if (method === 'card') {
        const digits = cardNumber.value.replace(/[\s-]/g, '');
        if (!/^\d{12,19}$/.test(digits) || !luhn(digits)) {
          return 'That card number is not valid: check the digits.';
        }
        const until = expiry.value.trim();
        const parts = /^(\d{2})\/(\d{2}|\d{4})$/.exec(until);
        if (!parts || Number(parts[1]) < 1 || Number(parts[1]) > 12) {
          return 'The expiry is the month and year on the card, like 08/29.';
        }
        const now = new Date();
        const yearText = parts[2] ?? '';
        const year = yearText.length === 2 ? 2000 + Number(yearText) : Number(yearText);
        if (year * 12 + Number(parts[1]) < now.getUTCFullYear() * 12 + now.getUTCMonth() + 1) {
          return 'That card has expired.';
        }
        if (!/^\d{3,4}$/.test(cvv.value.trim())) {
          return 'The CVV is the 3 or 4 digits on the back of the card.';
        }
        details = { type: 'card', additionalInformation: { cc: digits, expiry: until, cvv: cvv.value.trim() } };
      } else if (method === 'upi') {
        if (!/^[^@\s]+@[^@\s]+$/.test(vpa.value.trim())) {
          return 'A UPI address looks like name@bank.';
        }
        details = { type: 'upi', additionalInformation: { vpa: vpa.value.trim() } };
      } else {
        if (!bankAccount.value.trim()) {
          return 'Enter the bank account the transfer comes from.';
        }
        details = { type: 'bank', additionalInformation: { accountNumber: bankAccount.value.trim() } };
      }
      return (async () => {
        const done = await api.deposit(currency.value, value, details);
        const how = done.details?.cardLast4 ? ` by card ending ${done.details.cardLast4}` : method === 'upi' ? ' by UPI' : method === 'bank' ? ' by bank transfer' : '';
        notify.success(`Deposited ${format(done.amount, moneyCodes.includes(done.currency) ? 2 : 0)} ${done.currency}${how}.`);
        amount.value = '';
        cardNumber.value = '';
        expiry.value = '';
        cvv.value = '';
        onDone();
      })();
    });
    return form;
  }

  function withdrawForm(onDone: () => void): HTMLElement {
    const currency = currencySelect('withdraw-currency');
    const amount = input('withdraw-amount', { inputmode: 'decimal', placeholder: '100.00', 'data-testid': 'withdraw-amount' });
    const destination = input('withdraw-destination', { placeholder: 'bank account number', 'data-testid': 'withdraw-destination' });
    const available = h('div', { class: 'field-hint' });
    const showAvailable = () => {
      available.textContent = `Available ${format(ctx.session.balance(currency.value).available)} ${currency.value}`;
    };
    currency.addEventListener('change', showAvailable);
    stops.push(ctx.session.onChange(showAvailable));
    showAvailable();
    const submit = h('button', { type: 'submit', class: 'btn btn-block btn-ghost', 'data-testid': 'withdraw-submit' }, 'Withdraw');
    const problem = h('p', { class: 'field-error small', role: 'alert' });
    const form = h(
      'form',
      { class: 'funds-form', novalidate: true, 'data-testid': 'withdraw-form' },
      h('div', { class: 'field-row' }, field('Currency', currency), h('div', { class: 'field' }, h('label', { for: amount.id }, 'Amount'), amount, available)),
      field('To bank account', destination),
      problem,
      submit,
    );
    onSubmit(form, submit, problem, () => {
      const value = amount.value.trim();
      if (!isPositive(value)) {
        return 'Enter a positive amount.';
      }
      if (!destination.value.trim()) {
        return 'Enter the bank account the money goes to.';
      }
      return (async () => {
        const done = await api.withdraw(currency.value, value, destination.value.trim());
        notify.success(`Withdrew ${format(done.amount, moneyCodes.includes(done.currency) ? 2 : 0)} ${done.currency}.`);
        amount.value = '';
        onDone();
      })();
    });
    return form;
  }

  function method(record: FundsRecord): string {
    if (record.kind === 'fee') return `trading fee${record.symbol ? `, ${record.symbol}` : ''}${record.orderId ? ` order #${record.orderId}` : ''}`;
    if (record.type === 'card') return `card ending ${record.details?.cardLast4 ?? '????'}`;
    if (record.type === 'upi') return 'UPI';
    if (record.type === 'bank') return 'bank transfer';
    return record.kind === 'withdrawal' ? 'to your bank' : 'internal';
  }

  /** A movement's amount, signed: in the preference when converted, its own under it. */
  function amountCell(r: FundsRecord): HTMLElement {
    const sign = r.kind === 'deposit' ? '+' : '−';
    // Money to the cent; shares (a deposit of AAPL) as they are.
    const shares = Boolean(r.currency && moneyCodes.length && !moneyCodes.includes(r.currency));
    const c = r.converted;
    return dualValue(
      r.amount,
      r.currency,
      c && { currency: c.currency, value: c.amount, rate: c.rate },
      (text) => `${sign}${cents(text)}`,
      'funds-amount',
      (text) => `${sign}${shares ? format(text) : money(text)}`,
    );
  }

  function build(): void {
    for (const stop of stops.splice(0)) stop();
    fill(el, h('div', { class: 'screen-head' }, h('h1', {}, 'Funds')));
    if (!ctx.session.signedIn) {
      el.append(signInPrompt('Deposits and withdrawals need an account. Creating one takes a few seconds.'));
      return;
    }
    const history = h('div', { 'data-testid': 'funds-history' });
    const forms = h('div', { class: 'funds-forms' });
    el.append(
      h(
        'div',
        { class: 'funds-grid' },
        h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Deposit')), forms),
        h('div', { class: 'panel', id: 'withdraw-panel' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Withdraw'))),
        h('div', { class: 'panel span-2' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Funds history')), history),
      ),
    );

    let generation = 0;
    let timer: number | undefined;
    const loadHistory = async () => {
      const mine = ++generation;
      try {
        // In the preference (each movement at the rate of its time), its own amount beside.
        const records = await api.fundsHistory(50, ctx.session.preference ?? undefined);
        if (mine !== generation) return;
        const rows = records.map((r) =>
          h(
            'tr',
            { 'data-testid': 'funds-row', 'data-kind': r.kind },
            h('td', { class: 'muted' }, when(r.timestamp)),
            h('td', {}, capitalise(r.kind)),
            h('td', { class: `num ${r.kind === 'deposit' ? 'up' : 'down'}` }, amountCell(r)),
            h('td', { class: 'muted' }, method(r)),
            h('td', { class: 'muted hide-phone mono' }, r.requestId ?? ''),
          ),
        );
        fill(history, table('grid compact', ['Time', 'What', ['Amount', 'num'], 'How', ['Request', 'hide-phone']], rows, 'No deposits or withdrawals yet.'));
      } catch (error) {
        if (mine === generation) notify.error(describe(error));
      }
    };
    const later = () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => void loadHistory(), 400);
    };
    stops.push(() => {
      generation += 1;
      window.clearTimeout(timer);
    });
    // Fees of trades change balances too: the history follows the balances.
    stops.push(ctx.session.onChange(later));

    selects.length = 0;
    fill(forms, depositForm(later));
    el.querySelector('#withdraw-panel')?.append(withdrawForm(later));
    void loadHistory();
    api
      .products()
      .then((products) => {
        moneyCodes = [...new Set(products.map((p) => p.currency))];
        shareCodes = products.map((p) => p.symbol);
        for (const select of selects) fillCurrencies(select);
      })
      .catch((error: unknown) => notify.error(describe(error)));
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
