// Who is signed in on this browser: the token (localStorage), the account, its bookmarks and
// its balances (live from the `balances` channel). Screens read it and listen for changes.

import { type Account, ApiError, type Balance, api, describe, tokenStore } from './api';
import { notify } from './ui';
import type { Live } from './ws';

type Listener = () => void;

export class Session {
  account: Account | null = null;
  bookmarks: string[] = [];
  balances: Balance[] = [];
  /** A token just created, shown once on the Account screen until the user dismisses it. */
  freshToken: string | null = null;
  private readonly listeners = new Set<Listener>();
  private stopBalances: (() => void) | null = null;
  private balancesEventSeq = -1;

  constructor(private readonly live: Live) {
    live.onAuthRefused = () => this.refused();
  }

  get token(): string | null {
    return tokenStore.get();
  }

  get signedIn(): boolean {
    return this.token !== null;
  }

  /** The signed-in account's preferred currency (prices and histories show in it); null
   * when nobody is signed in (every value in its own currency). */
  get preference(): string | null {
    return this.signedIn ? (this.account?.currencyPreference ?? null) : null;
  }

  /** Calls `listener` when the preference changes (a sign-in, a sign-out, a change on the
   * account screen). */
  onPreferenceChange(listener: Listener): () => void {
    let preference = this.preference;
    return this.onChange(() => {
      if (preference !== this.preference) {
        preference = this.preference;
        listener();
      }
    });
  }

  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls `listener` when the user signs in or out (not on every balance change); returns
   * the unsubscribe function. */
  onSignInChange(listener: Listener): () => void {
    let signedIn = this.signedIn;
    return this.onChange(() => {
      if (signedIn !== this.signedIn) {
        signedIn = this.signedIn;
        listener();
      }
    });
  }

  /** The account as the server answered a change of it (its currency preference). */
  accountChanged(account: Account): void {
    this.account = account;
    this.changed();
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /** At start-up: the stored token's account, if it is still good. */
  async restore(): Promise<void> {
    const token = this.token;
    this.live.start(token);
    if (!token) return;
    try {
      this.account = await api.account(token);
    } catch (error) {
      // A refused token (another server, a reset data directory) is forgotten; anything else
      // (the server is down) keeps it for the next try.
      if (error instanceof ApiError && error.code === 'unauthorized') this.refused();
      else notify.error(describe(error));
      return;
    }
    this.follow();
    await this.loadBookmarks();
    this.changed();
  }

  /** Checks `token` with the server and keeps it. */
  async signIn(token: string): Promise<Account> {
    const account = await api.account(token.trim());
    tokenStore.set(token.trim());
    this.account = account;
    this.live.setToken(token.trim());
    this.follow();
    await this.loadBookmarks();
    this.changed();
    return account;
  }

  /** After `PUT /account`: signs in with the new token and keeps it for showing once. */
  async created(token: string): Promise<void> {
    this.freshToken = token;
    await this.signIn(token);
  }

  signOut(): void {
    tokenStore.set(null);
    this.account = null;
    this.bookmarks = [];
    this.balances = [];
    this.freshToken = null;
    this.stopBalances?.();
    this.stopBalances = null;
    this.live.setToken(null);
    this.changed();
  }

  /** The server refused the stored token (another server, or a reset data directory). */
  refused(): void {
    if (!this.token) return;
    this.signOut();
    notify.error('Your saved sign-in is not valid on this server any more. Create an account or sign in with another token.');
  }

  private follow(): void {
    this.stopBalances?.();
    this.balancesEventSeq = -1;
    this.stopBalances = this.live.subscribe<{ eventSeq: number; balances: Balance[] }>('balances', (message) => {
      // Whole states: keep the one with the highest eventSeq.
      if (message.data.eventSeq < this.balancesEventSeq) return;
      this.balancesEventSeq = message.data.eventSeq;
      this.balances = message.data.balances;
      this.changed();
    });
  }

  private async loadBookmarks(): Promise<void> {
    try {
      this.bookmarks = (await api.bookmarks()).symbols;
    } catch (error) {
      notify.error(describe(error));
    }
  }

  isBookmarked(symbol: string): boolean {
    return this.bookmarks.includes(symbol);
  }

  async toggleBookmark(symbol: string): Promise<void> {
    if (!this.signedIn) {
      notify.info('Bookmarks belong to an account: create one or sign in on the Account screen.');
      return;
    }
    try {
      this.bookmarks = (await api.bookmark(symbol, !this.isBookmarked(symbol))).symbols;
      this.changed();
    } catch (error) {
      notify.error(describe(error));
    }
  }

  /** The balance of `currency` ("0" if the wallet has none). */
  balance(currency: string): Balance {
    return this.balances.find((b) => b.currency === currency) ?? { currency, available: '0', held: '0' };
  }
}
