// Account: create one (name, ID reference, currency preference), see its profile status,
// and handle the token: shown once after creating the account with a copy button, kept in
// this browser, pasted to sign in elsewhere, removed by signing out.

import { api, describe, looksLikeToken } from '../api';
import type { Ctx, Screen } from '../app';
import { copyText, dateTime, fill, h, notify, onSubmit } from '../ui';

const STATUS_TEXT: Record<string, string> = {
  verified: 'Verified: you can deposit, withdraw and trade.',
  pending: 'Pending verification: you can deposit meanwhile; trading opens once your profile is verified.',
  rejected: 'Rejected: this profile may not trade, deposit or withdraw. Contact support.',
};

function tokenBox(token: string, testid: string): HTMLElement {
  const code = h('code', { class: 'token', 'data-testid': testid }, token);
  const copy = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': `${testid}-copy` }, 'Copy');
  copy.addEventListener('click', () => {
    void copyText(token).then((ok) => {
      if (ok) {
        copy.textContent = 'Copied';
        notify.success('Token copied. Keep it somewhere safe, like a password manager.');
      } else {
        notify.error('Copying is not allowed here: select the token and copy it by hand.');
      }
    });
  });
  return h('div', { class: 'token-box' }, code, copy);
}

export function accountScreen(ctx: Ctx): Screen {
  const el = h('section', { class: 'account-screen' });
  let currencies = ['USD'];

  function createPanel(): HTMLElement {
    const name = h('input', { id: 'account-name', type: 'text', autocomplete: 'name', placeholder: 'Ada Lovelace', 'data-testid': 'account-name' });
    const proof = h('input', { id: 'account-proof', type: 'text', autocomplete: 'off', placeholder: 'passport:X1234567', 'data-testid': 'account-proof' });
    const currency = h('select', { id: 'account-currency', 'data-testid': 'account-currency' }, ...currencies.map((c) => h('option', { value: c }, c)));
    const problem = h('p', { class: 'field-error small', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'btn btn-block', 'data-testid': 'account-create' }, 'Create account');
    const form = h(
      'form',
      { class: 'panel', novalidate: true, 'data-testid': 'create-account' },
      h('h2', {}, 'Create an account'),
      h('p', { class: 'muted small' }, 'One wallet for money and shares. You get a token: it is how you sign in, so keep it.'),
      h('div', { class: 'field' }, h('label', { for: name.id }, 'Your name'), name),
      h(
        'div',
        { class: 'field' },
        h('label', { for: proof.id }, 'ID document reference'),
        proof,
        h('div', { class: 'field-hint' }, 'The kind and number of an ID document, e.g. passport:X1234567.'),
      ),
      h('div', { class: 'field' }, h('label', { for: currency.id }, 'Currency preference'), currency),
      problem,
      submit,
    );
    onSubmit(form, submit, problem, () => {
      if (!name.value.trim()) {
        return 'Enter your name.';
      }
      if (!proof.value.trim()) {
        return 'Enter the reference of an ID document.';
      }
      return (async () => {
        const created = await api.createAccount(name.value.trim(), proof.value.trim(), currency.value);
        await ctx.session.created(created.token);
        notify.success(`Welcome, ${name.value.trim()}. Save your token below before you go on.`);
      })();
    });
    return form;
  }

  function signInPanel(): HTMLElement {
    const token = h('input', {
      id: 'sign-in-token',
      type: 'password',
      autocomplete: 'current-password',
      placeholder: '12.5f0c…',
      'data-testid': 'sign-in-token',
    });
    const problem = h('p', { class: 'field-error small', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'btn btn-block btn-ghost', 'data-testid': 'sign-in' }, 'Sign in');
    const form = h(
      'form',
      { class: 'panel', novalidate: true, 'data-testid': 'sign-in-form' },
      h('h2', {}, 'Sign in with your token'),
      h('p', { class: 'muted small' }, 'Paste the token you were given when the account was created.'),
      h('div', { class: 'field' }, h('label', { for: token.id }, 'Token'), token),
      problem,
      submit,
    );
    onSubmit(form, submit, problem, () => {
      const value = token.value.trim();
      if (!looksLikeToken(value)) {
        return 'A token looks like 12.5f0c… : the account number, a dot and 64 letters and digits.';
      }
      return (async () => {
        const account = await ctx.session.signIn(value);
        notify.success(`Signed in as ${account.name}.`);
      })();
    });
    return form;
  }

  /** The currency preference: a listed currency, changed by the server (PATCH /account). */
  function preferenceForm(current: string): HTMLElement {
    const select = h('select', { id: 'preference-currency', 'data-testid': 'preference-select', 'aria-label': 'Currency preference' }) as HTMLSelectElement;
    const save = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'preference-save' }, 'Save');
    const note = h('div', { class: 'muted small' }, "Prices, charts, your wallet's total and your histories are shown in it where an exchange rate converts them; a product's own currency is one click away on its screen, and orders are always placed in it.");
    const listed = (codes: string[]) => {
      const all = [...new Set([current, ...codes])].sort();
      fill(select, ...all.map((c) => h('option', { value: c }, c)));
      select.value = current;
    };
    listed(currencies);
    Promise.all([api.fx(), api.products()])
      .then(([rates, products]) => {
        const quotes = new Set(products.filter((p) => !rates.some((r) => r.symbol === p.symbol)).map((p) => p.currency));
        // A currency is listed when Bourse quotes in it or a rate converts a quote into it.
        const codes = new Set(quotes);
        for (const r of rates) {
          if (quotes.has(r.quote)) codes.add(r.base);
          if (quotes.has(r.base)) codes.add(r.quote);
        }
        listed([...codes]);
      })
      .catch(() => undefined);
    save.addEventListener('click', () => {
      const chosen = select.value;
      if (chosen === ctx.session.account?.currencyPreference) return;
      save.setAttribute('disabled', '');
      api
        .setPreference(chosen)
        .then((account) => {
          ctx.session.accountChanged(account);
          notify.success(`Values are now shown in ${account.currencyPreference}.`);
        })
        .catch((error) => notify.error(describe(error)))
        .finally(() => save.removeAttribute('disabled'));
    });
    return h('div', { class: 'preference' }, h('div', { class: 'field-row' }, select, save), note);
  }

  function profilePanel(): HTMLElement {
    const account = ctx.session.account;
    const token = ctx.session.token ?? '';
    if (!account) {
      return h('div', { class: 'panel' }, h('p', { class: 'muted' }, 'Loading your profile…'));
    }
    const fresh = ctx.session.freshToken;
    const panels: HTMLElement[] = [];
    if (fresh) {
      const done = h('button', { type: 'button', class: 'btn', 'data-testid': 'token-saved' }, 'I have saved my token');
      done.addEventListener('click', () => {
        ctx.session.freshToken = null;
        render();
      });
      panels.push(
        h(
          'div',
          { class: 'panel panel-highlight', 'data-testid': 'fresh-token' },
          h('h2', {}, 'Your token: save it now'),
          h(
            'p',
            {},
            'This token is your sign-in. It is shown here once; the server keeps only a fingerprint of it, so nobody can show it to you again. ',
            'This browser remembers it until you sign out.',
          ),
          tokenBox(fresh, 'new-token'),
          h('div', { class: 'actions' }, done, h('a', { class: 'btn btn-ghost', href: '/funds', 'data-link': true }, 'Deposit funds')),
        ),
      );
    }
    const statusBadge = h('span', { class: `badge badge-${account.profileStatus}`, 'data-testid': 'profile-status' }, account.profileStatus);
    const reveal = h('button', { type: 'button', class: 'btn btn-small btn-ghost' }, 'Show my token');
    const tokenSlot = h('div', {}, reveal);
    reveal.addEventListener('click', () => fill(tokenSlot, tokenBox(token, 'saved-token')));
    const signOut = h('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'sign-out' }, 'Sign out');
    const confirm = h('div', { class: 'confirm', hidden: true });
    signOut.addEventListener('click', () => {
      confirm.hidden = false;
      const yes = h('button', { type: 'button', class: 'btn btn-sell btn-small', 'data-testid': 'sign-out-confirm' }, 'Sign out');
      const no = h('button', { type: 'button', class: 'btn btn-ghost btn-small' }, 'Stay signed in');
      yes.addEventListener('click', () => {
        ctx.session.signOut();
        notify.info('Signed out. Your token still works: paste it to sign in again.');
      });
      no.addEventListener('click', () => {
        confirm.hidden = true;
      });
      fill(confirm, h('p', { class: 'small' }, 'Without your token you cannot sign back in. Have you saved it?'), h('div', { class: 'actions' }, yes, no));
    });
    panels.push(
      h(
        'div',
        { class: 'panel', 'data-testid': 'profile' },
        h('h2', {}, 'Profile'),
        h(
          'dl',
          { class: 'facts' },
          h('dt', {}, 'Name'),
          h('dd', { 'data-testid': 'profile-name' }, account.name),
          h('dt', {}, 'Account'),
          h('dd', {}, `#${account.accountId}`),
          h('dt', {}, 'Status'),
          h('dd', {}, statusBadge, h('div', { class: 'muted small' }, STATUS_TEXT[account.profileStatus] ?? '')),
          h('dt', {}, 'Currency preference'),
          h('dd', { 'data-testid': 'profile-currency' }, preferenceForm(account.currencyPreference)),
          h('dt', {}, 'Member since'),
          h('dd', {}, dateTime(account.createdAt)),
        ),
      ),
      h(
        'div',
        { class: 'panel' },
        h('h2', {}, 'Token and sign-in'),
        h('p', { class: 'muted small' }, 'This browser keeps your token so you stay signed in. Anyone with the token can trade on your account: share it with no one.'),
        tokenSlot,
        h('div', { class: 'actions' }, signOut),
        confirm,
      ),
    );
    return h('div', { class: 'account-grid' }, ...panels);
  }

  function render(): void {
    fill(el, h('div', { class: 'screen-head' }, h('h1', {}, 'Account')));
    if (ctx.session.signedIn) {
      el.append(profilePanel());
    } else {
      el.append(
        h('p', { class: 'muted lead' }, 'New here? Create an account: it is verified at once on this demo server, and you can deposit and trade straight away.'),
        h('div', { class: 'account-grid' }, createPanel(), signInPanel()),
      );
    }
  }

  const stop = ctx.session.onChange(() => {
    // Balances change often; only a change of who is signed in redraws the forms.
    if (el.dataset.who !== (ctx.session.account?.accountId ?? '')) {
      el.dataset.who = ctx.session.account?.accountId ?? '';
      render();
    }
  });
  el.dataset.who = ctx.session.account?.accountId ?? '';
  render();
  api
    .products()
    .then((products) => {
      const found = [...new Set(products.map((p) => p.currency))];
      if (found.length && found.join() !== currencies.join()) {
        currencies = found;
        const select = el.querySelector<HTMLSelectElement>('#account-currency');
        if (select) {
          const chosen = select.value;
          fill(select, ...currencies.map((c) => h('option', { value: c }, c)));
          if (currencies.includes(chosen)) select.value = chosen;
        }
      }
    })
    .catch(() => undefined);

  return { el, dispose: stop };
}
