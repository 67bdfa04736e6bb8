// The public HTTP API (docs/api.md): every call the terminal makes goes through `request`,
// which adds the bearer token, parses the contract's error shape and turns it into an
// `ApiError` whose `friendly` text is what the user reads.

import type { components } from './api-schema';

// The API's shapes are the OpenAPI document's (`/api/v1/openapi.json`), generated into
// `api-schema.ts` by `npm run gen:api` (web/README.md): a change in the document that the
// terminal does not follow breaks its build.
type Schemas = components['schemas'];

/** The rate a converted value used (docs/api.md, "Currencies"). */
export type Rate = Schemas['RateView'];
/** Market data converted in place: `currency` is the one its prices are in; `ownCurrency`
 * and `rate` appear when they were converted. */
export type Product = Schemas['Listing'];
export type FeeTier = Schemas['FeeTier'];
export type ProductDetail = Schemas['ProductDetail'];
export type Candle = Schemas['Candle'];
export type Level = Schemas['BookLevel'];
export type Book = Schemas['Book'];
export type Tick = Schemas['Tick'];
export type Side = Schemas['Side'];
export type OrderType = Schemas['OrderTypeName'];
export type TimeInForce = Schemas['TimeInForce'];
/** An account record's values in the requested currency, beside its own ones; `null`
 * values and `rate` when no rate existed at the record's time. */
export type TradeConverted = Schemas['ConvertedTrade'];
export type OrderConverted = Schemas['ConvertedOrder'];
export type FundsConverted = Schemas['ConvertedAmount'];
export type Fill = Schemas['Trade'];
export type Order = Schemas['Order'];
/** A balance as the `balances` channel sends it (GET /funds adds its value). */
export type Balance = Pick<Schemas['BalanceView'], 'currency' | 'available' | 'held'>;
export type Wallet = Schemas['WalletView'];
export type FxRate = Schemas['FxView'];
export type FundsRecord = Schemas['FundsMovement'];
export type FeeQuote = Schemas['FeeQuote'];
export type Account = Schemas['AccountView'];
export type NewAccount = Schemas['AccountCreated'];
export type Bookmarks = Schemas['Bookmarks'];
export type Deposited = Schemas['Deposited'];
export type Withdrawn = Schemas['Withdrawn'];
export type OrderRequest = Schemas['OrderBody'];

/** A deposit's method and the details it needs (the document has one body for all three). */
export type DepositMethod =
  | { type: 'card'; additionalInformation: { cc: string; expiry: string; cvv: string } }
  | { type: 'upi'; additionalInformation: { vpa: string } }
  | { type: 'bank'; additionalInformation: { accountNumber: string } };

/** A refusal of the API (or no answer at all), with a sentence for the user. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly friendly: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.friendly = plainWords(status, code, message);
  }
}

function sentence(text: string): string {
  const t = text.trim();
  if (!t) return '';
  const capital = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** What a refusal means to the person at the screen. The server's own message says what was
 * wrong with the values; the code says what kind of problem it is. */
export function plainWords(status: number, code: string, message: string): string {
  const detail = sentence(message);
  switch (code) {
    case 'network':
      return 'Cannot reach the Bourse server. Check that it is running; the terminal retries by itself.';
    case 'unauthorized':
      return 'Your sign-in was not accepted (the token is wrong or belongs to another server). Sign in again on the Account screen.';
    case 'account_not_verified':
      return 'Your account is not verified yet, so it cannot trade. You can deposit meanwhile.';
    case 'insufficient_funds':
      return `Not enough funds. ${detail} Deposit on the Funds screen, or lower the quantity.`;
    case 'no_liquidity':
      return `Nobody is quoting on the other side right now, so a market order cannot fill. ${detail}`;
    case 'would_take_liquidity':
      return `A post-only order must not trade at once, and this one would. ${detail}`;
    case 'would_not_fill':
      return `A fill-or-kill order must fill in full at once, and this one cannot. ${detail}`;
    case 'product_halted':
      return 'Trading in this product is halted for now.';
    case 'too_many_open_orders':
      return `You have too many open orders. Cancel some first. ${detail}`;
    case 'limit_reached':
      return `A limit was reached. ${detail}`;
    case 'rate_limited':
      return 'Too many requests in a short time. Wait a moment and try again.';
    case 'busy':
      return 'The exchange is busy right now. Try again in a moment.';
    case 'engine_stopped':
    case 'unavailable':
      return 'The exchange is not accepting orders right now (the server stopped its engine).';
    case 'history_unavailable':
      return 'Order and trade history is catching up on the server. Try again shortly.';
    case 'order_closed':
      return 'That order is no longer open (it filled or was cancelled already).';
    case 'unknown_order':
      return 'No such order on your account.';
    case 'unknown_symbol':
      return `No such product. ${detail}`;
    case 'duplicate_request':
      return `That request was already made with other values. ${detail}`;
    case 'duplicate_client_order_id':
      return `That client order id is an open order's, or was used in the last 10 minutes for another order. ${detail}`;
    case 'invalid_request':
      return `Please check the form: ${detail}`;
    default:
      if (status >= 500) return `The server had a problem (${code}). ${detail}`;
      return detail || `The request was refused (${code}).`;
  }
}

const TOKEN_KEY = 'bourse.token';

/** The signed-in token, kept in this browser's localStorage. */
export const tokenStore = {
  get(): string | null {
    try {
      return localStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set(token: string | null): void {
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      // Storage disabled (private mode): the session lasts as long as the page.
    }
  },
};

/** A token as the API issues them: `<accountId>.<64 hex>`. */
export function looksLikeToken(text: string): boolean {
  return /^\d+\.[0-9a-f]{64}$/.test(text.trim());
}

type Query = Record<string, string | number | undefined>;

interface Call {
  body?: unknown;
  query?: Query;
  /** Send the stored token (or this one). */
  auth?: boolean | string;
}

/** Called when the stored token was refused (401), so the app can sign out. */
let onUnauthorized: (() => void) | null = null;
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

export async function request<T>(method: string, path: string, call: Call = {}): Promise<T> {
  let url = `/api/v1${path}`;
  if (call.query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(call.query)) {
      if (value !== undefined && value !== '') params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = typeof call.auth === 'string' ? call.auth : call.auth ? tokenStore.get() : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (call.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(call.body);
  }
  let response: Response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch {
    throw new ApiError(0, 'network', 'no answer');
  }
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | null)?.error;
    const failure = new ApiError(
      response.status,
      error?.code ?? `http_${response.status}`,
      error?.message ?? (text.slice(0, 200) || response.statusText),
    );
    if (response.status === 401 && call.auth === true && onUnauthorized) onUnauthorized();
    throw failure;
  }
  return json as T;
}

function randomId(prefix: string): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const enc = encodeURIComponent;

/** The `?currency=` that asks for every value in its own currency (no conversion). */
export const OWN = 'own';

// Every market-data call names its currency (`?currency=EUR`, or OWN): the terminal sends no
// token with them, and says what it shows rather than rely on the preference's default.
export const api = {
  products: (query = '', limit = 500, currency = OWN) =>
    request<Product[]>('GET', '/products', { query: { query, limit, currency } }),
  product: (symbol: string, currency = OWN) =>
    request<ProductDetail>('GET', `/products/${enc(symbol)}`, { query: { currency } }),
  candles: (symbol: string, interval: string, limit = 500, currency = OWN, from?: number) =>
    request<Candle[]>('GET', `/products/${enc(symbol)}/candles`, { query: { interval, limit, currency, from } }),
  book: (symbol: string, depth = 20, currency = OWN) =>
    request<Book>('GET', `/products/${enc(symbol)}/book`, { query: { depth, currency } }),
  ticks: (symbol: string, limit = 50, currency = OWN) =>
    request<Tick[]>('GET', `/products/${enc(symbol)}/ticks`, { query: { limit, currency } }),

  createAccount: (name: string, proof: string, currencyPreference: string) => {
    const body: Schemas['CreateBody'] = { name, proof, currencyPreference };
    return request<NewAccount>('PUT', '/account', { body });
  },
  account: (token?: string) => request<Account>('GET', '/account', { auth: token ?? true }),
  setPreference: (currencyPreference: string) => {
    const body: Schemas['UpdateBody'] = { currencyPreference };
    return request<Account>('PATCH', '/account', { auth: true, body });
  },
  fx: () => request<FxRate[]>('GET', '/fx'),

  bookmarks: () => request<Bookmarks>('GET', '/bookmarks', { auth: true }),
  bookmark: (symbol: string, on: boolean) =>
    request<Bookmarks>(on ? 'PUT' : 'DELETE', `/bookmarks/${enc(symbol)}`, { auth: true }),

  wallet: (currency?: string) => request<Wallet>('GET', '/funds', { auth: true, query: { currency } }),
  deposit: (currency: string, amount: string, method: DepositMethod) => {
    const body: Schemas['DepositBody'] = { amount, currency, requestId: randomId('web-d-'), ...method };
    return request<Deposited>('PUT', '/funds', { auth: true, body });
  },
  withdraw: (currency: string, amount: string, destination: string) => {
    const body: Schemas['WithdrawBody'] = {
      amount,
      currency,
      requestId: randomId('web-w-'),
      destinationDetails: { accountNumber: destination },
    };
    return request<Withdrawn>('POST', '/funds', { auth: true, body });
  },
  /** Account records: `currency` (default: the account's preference) adds `converted`. */
  fundsHistory: (limit = 50, currency?: string) =>
    request<FundsRecord[]>('GET', '/funds/history', { auth: true, query: { limit, currency } }),

  feeQuote: (symbol: string, side: Side, quantity: string, price?: string) =>
    request<FeeQuote>('GET', '/fees', { auth: true, query: { symbol, side, quantity, price } }),
  order: (side: Side, order: OrderRequest) =>
    request<Order>('POST', `/product/${side}`, { auth: true, body: order }),
  orders: (status: 'open' | 'closed', limit = 50, currency?: string) =>
    request<Order[]>('GET', '/orders', { auth: true, query: { status, limit, currency } }),
  cancel: (orderId: number) => request<Order>('DELETE', `/orders/${orderId}`, { auth: true }),
  trades: (limit = 50, currency?: string) => request<Fill[]>('GET', '/trades', { auth: true, query: { limit, currency } }),
};

/** A refusal's sentence, whatever was thrown. */
export function describe(error: unknown): string {
  if (error instanceof ApiError) return error.friendly;
  if (error instanceof Error) return sentence(error.message);
  return 'Something went wrong.';
}
