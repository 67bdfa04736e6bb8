// The shell: the top bar (brand, navigation, link state, account), the navigation that
// becomes a bottom bar on a phone, and the router that swaps screens by the page's path
// (/markets, /product/AAPL, /portfolio, /funds, /account; the server answers index.html for
// each, so a reload or a shared link works).

import { format } from './dec';
import { accountScreen } from './screens/account';
import { fundsScreen } from './screens/funds';
import { marketsScreen } from './screens/markets';
import { portfolioScreen } from './screens/portfolio';
import { productScreen } from './screens/product';
import type { Session } from './session';
import { fill, h, prefs } from './ui';
import type { Live, LinkState } from './ws';

export interface Screen {
  el: HTMLElement;
  /** Stops what the screen listens to (channels, timers). */
  dispose(): void;
}

export interface Ctx {
  session: Session;
  live: Live;
  navigate(path: string): void;
  /** The product last opened (the Trade tab goes there). */
  lastSymbol: string;
}

type Tab = 'markets' | 'trade' | 'portfolio' | 'funds' | 'account';

const ICONS: Record<Tab, string> = {
  markets: 'M4 19h16M6 16V9m4 7V5m4 11v-5m4 5V7',
  trade: 'M4 17l5-5 4 4 7-8M15 8h5v5',
  portfolio: 'M4 8h16v11H4zM9 8V5h6v3',
  funds: 'M12 4v16M8 8h6a2 2 0 010 4h-4a2 2 0 000 4h6',
  account: 'M12 12a4 4 0 100-8 4 4 0 000 8zm-7 8a7 7 0 0114 0',
};

const LABELS: Record<Tab, string> = {
  markets: 'Markets',
  trade: 'Trade',
  portfolio: 'Portfolio',
  funds: 'Funds',
  account: 'Account',
};

const LINK_TEXT: Record<LinkState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  stale: 'Stale',
  reconnecting: 'Reconnecting…',
};

function icon(path: string): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', path);
  svg.append(p);
  return svg;
}

export class App implements Ctx {
  lastSymbol = prefs.get('lastSymbol') ?? 'AAPL';
  private screen: Screen | null = null;
  private readonly main = h('main', { class: 'screen', id: 'screen' });
  private readonly tabs = new Map<Tab, HTMLAnchorElement>();
  private readonly chip = h('a', { class: 'account-chip', href: '/account', 'data-link': true, 'data-testid': 'account-chip' });
  private readonly linkBadge = h('span', { class: 'link-state', 'data-testid': 'link-state', role: 'status' });
  private readonly staleBanner = h('div', { class: 'stale-banner', hidden: true, role: 'alert' });

  constructor(
    readonly session: Session,
    readonly live: Live,
  ) {}

  mount(root: HTMLElement): void {
    const nav = h('nav', { class: 'tabs', 'aria-label': 'Screens' });
    for (const tab of Object.keys(LABELS) as Tab[]) {
      const link = h(
        'a',
        { href: tab === 'trade' ? '/trade' : `/${tab}`, 'data-link': true, 'data-tab': tab, class: 'tab' },
        icon(ICONS[tab]),
        h('span', {}, LABELS[tab]),
      );
      this.tabs.set(tab, link);
      nav.append(link);
    }
    const header = h(
      'header',
      { class: 'topbar' },
      h('a', { class: 'brand', href: '/markets', 'data-link': true }, h('span', { class: 'brand-mark' }, '◆'), 'Bourse'),
      nav,
      h('div', { class: 'topbar-right' }, this.linkBadge, this.chip),
    );
    fill(root, h('div', { class: 'shell' }, header, this.staleBanner, this.main));

    document.addEventListener('click', (event) => {
      const target = event.target as Element | null;
      const link = target?.closest('a[data-link]') as HTMLAnchorElement | null;
      if (!link || event.defaultPrevented || event.button !== 0) return;
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      this.navigate(link.getAttribute('href') ?? '/');
    });
    window.addEventListener('popstate', () => this.route());
    this.live.onState((state) => this.showLink(state));
    this.session.onChange(() => this.showAccount());
    this.showAccount();
    this.route();
  }

  navigate(path: string): void {
    if (path !== location.pathname) history.pushState(null, '', path);
    this.route();
    window.scrollTo(0, 0);
  }

  private showLink(state: LinkState): void {
    this.linkBadge.dataset.state = state;
    this.linkBadge.textContent = LINK_TEXT[state];
    this.linkBadge.title =
      state === 'live'
        ? 'Prices, the book and your orders update live'
        : state === 'stale'
          ? 'No message from the server for a while: what you see may be out of date'
          : 'The live connection is down; the terminal reconnects by itself';
    document.body.dataset.link = state;
    const down = state === 'stale' || state === 'reconnecting';
    this.staleBanner.hidden = !down;
    this.staleBanner.textContent =
      state === 'stale'
        ? 'The live connection is stale: no update for a while. Prices and the book may be out of date.'
        : 'The live connection dropped. Reconnecting… prices and the book may be out of date.';
  }

  private showAccount(): void {
    const { account } = this.session;
    if (!account) {
      fill(this.chip, this.session.signedIn ? 'Account' : 'Sign in');
      this.chip.classList.toggle('chip-cta', !this.session.signedIn);
      return;
    }
    this.chip.classList.remove('chip-cta');
    // The cash the wallet holds: in the preference when the wallet holds that currency, else
    // in USD (a preference like EUR values the wallet; the cash stays in dollars).
    const preferred = this.session.balance(account.currencyPreference || 'USD');
    const held = this.session.balances.some((b) => b.currency === preferred.currency);
    const cash = held ? preferred : this.session.balance('USD');
    fill(
      this.chip,
      h('span', { class: 'chip-name' }, account.name),
      h('span', { class: 'chip-cash', 'data-testid': 'chip-cash' }, `${format(cash.available, 2)} ${cash.currency}`),
    );
  }

  private route(): void {
    const path = location.pathname.replace(/\/+$/, '') || '/';
    const parts = path.split('/').filter(Boolean);
    let tab: Tab | null = null;
    let make: () => Screen;
    const first = parts[0] ?? 'markets';
    if (first === 'markets' && parts.length === 1) {
      tab = 'markets';
      make = () => marketsScreen(this);
    } else if (path === '/') {
      tab = 'markets';
      make = () => marketsScreen(this);
    } else if (first === 'product' && parts.length === 2 && parts[1]) {
      tab = 'trade';
      const symbol = decodeURIComponent(parts[1]).toUpperCase();
      this.lastSymbol = symbol;
      prefs.set('lastSymbol', symbol);
      make = () => productScreen(this, symbol);
    } else if (first === 'trade' && parts.length === 1) {
      history.replaceState(null, '', `/product/${encodeURIComponent(this.lastSymbol)}`);
      this.route();
      return;
    } else if (first === 'portfolio' && parts.length === 1) {
      tab = 'portfolio';
      make = () => portfolioScreen(this);
    } else if (first === 'funds' && parts.length === 1) {
      tab = 'funds';
      make = () => fundsScreen(this);
    } else if (first === 'account' && parts.length === 1) {
      tab = 'account';
      make = () => accountScreen(this);
    } else {
      make = () => notFound(path);
    }
    for (const [name, link] of this.tabs) {
      if (name === tab) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    this.screen?.dispose();
    this.screen = make();
    document.body.dataset.screen = tab ?? 'none';
    document.title = `${tab ? LABELS[tab] : 'Not found'} · Bourse`;
    fill(this.main, this.screen.el);
  }
}

function notFound(path: string): Screen {
  const el = h(
    'section',
    { class: 'panel narrow' },
    h('h1', {}, 'No such page'),
    h('p', {}, `There is nothing at ${path}. `, h('a', { href: '/markets', 'data-link': true }, 'See the markets'), '.'),
  );
  return { el, dispose: () => undefined };
}
