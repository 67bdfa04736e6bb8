// End-to-end test of the web terminal in headless Chromium (Debian's, driven by
// playwright-core, which downloads no browser), against a running `bourse serve` with the
// embedded simulator and liquidity provider (its defaults).
//
// Twice, at a desktop size (1280x800) and a phone size (390x844), each in a fresh browser
// context (so a fresh account): create an account, deposit by card, open AAPL and wait for
// drawn candles, buy at market, see the fill and the balance change in the portfolio, place
// a limit order far from the market and cancel it, change the currency preference to EUR
// and see the wallet's total, the trade history, the markets list and AAPL's chart, price
// and rate in euros, switch AAPL to its own USD and back in one click, bookmark a product
// and see it first in the markets list. A screenshot of each main screen goes to --out as
// <size>-<screen>.png (and -product-eur, -markets-eur). Any console error or uncaught
// exception in the page fails the run.
// Nothing here sleeps: every wait is for something on the page.
//
// By hand, from the repository's root (apt-get install chromium; npm --prefix web ci):
//   npm --prefix web run build
//   cargo run --release -p bourse -- serve --data-dir /tmp/e2e &
//   node web/e2e/terminal.mjs --base http://127.0.0.1:8080 --out /tmp/shots [--only phone]
// `cargo test --release -p bourse-tests --test web` does all of it (tests/tests/web.rs).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .reduce((pairs, arg, i, all) => (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
const base = (args.base ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const out = args.out ?? 'e2e-screenshots';
const executablePath = args.chromium ?? process.env.BOURSE_CHROMIUM ?? '/usr/bin/chromium';
/** The whole run's bound: a hung browser must not hang the test suite. */
const RUN_TIMEOUT_MS = Number(process.env.BOURSE_E2E_TIMEOUT_MS ?? 300_000);
const STEP_TIMEOUT_MS = 30_000;

const SIZES = [
  { name: 'desktop', options: { viewport: { width: 1280, height: 800 } } },
  { name: 'phone', options: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true } },
].filter((size) => !args.only || args.only === size.name);

const started = Date.now();
function log(text) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${text}`);
}

const watchdog = setTimeout(() => {
  console.error(`the end-to-end run took more than ${RUN_TIMEOUT_MS} ms: giving up`);
  process.exit(2);
}, RUN_TIMEOUT_MS);
watchdog.unref();

/** A decimal string (or a displayed number with thousands separators) in hundredths. */
function cents(text) {
  const clean = String(text).replace(/,/g, '').trim();
  const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(clean);
  if (!m) throw new Error(`not an amount with at most 2 decimals: ${JSON.stringify(text)}`);
  const value = BigInt(m[2]) * 100n + BigInt((m[3] ?? '').padEnd(2, '0'));
  return m[1] ? -value : value;
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function tab(page, name) {
  await page.locator(`nav.tabs a[data-tab="${name}"]`).click();
  await page.waitForFunction((screen) => document.body.dataset.screen === screen, name === 'trade' ? 'trade' : name);
}

async function shot(page, size, screen) {
  // Dismiss the messages of earlier steps (which also checks that they can be), show the
  // screen from its top, and let the last layout and the chart's canvas paint.
  await page.evaluate(() => {
    for (const close of document.querySelectorAll('.toast-close')) close.click();
    window.scrollTo(0, 0);
  });
  await page.locator('.toast').first().waitFor({ state: 'detached' });
  await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  const path = join(out, `${size}-${screen}.png`);
  await page.screenshot({ path });
  log(`screenshot ${path}`);
}

async function pass(browser, size) {
  const context = await browser.newContext({ ...size.options, locale: 'en-GB', timezoneId: 'UTC' });
  const page = await context.newPage();
  try {
    await flow(page, size);
  } catch (error) {
    await page.screenshot({ path: join(out, `${size.name}-failure.png`) }).catch(() => undefined);
    throw error;
  } finally {
    await context.close();
  }
}

async function flow(page, size) {
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  // Any console error (a refused request included) or uncaught exception fails the run.
  const problems = [];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    problems.push(`console error: ${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught exception: ${error.message}`));
  const step = async (text) => {
    if (problems.length) throw new Error(`${size.name}: ${problems.join('\n')}`);
    log(`${size.name}: ${text}`);
  };

  await step('open the terminal');
  await page.goto(`${base}/`);
  await page.locator('[data-testid="market-row"]').first().waitFor();
  await page.waitForSelector('[data-testid="link-state"][data-state="live"]');

  await step('create an account');
  await tab(page, 'account');
  await page.getByTestId('account-name').fill(`Ada ${size.name}`);
  await page.getByTestId('account-proof').fill(`passport:E2E-${size.name}`);
  await page.getByTestId('account-create').click();
  const token = await page.getByTestId('new-token').textContent();
  check(/^\d+\.[0-9a-f]{64}$/.test(token ?? ''), `the new token looks wrong: ${token}`);
  await page.waitForSelector('[data-testid="profile-status"]:text-is("verified")');
  check((await page.evaluate(() => localStorage.getItem('bourse.token'))) === token, 'the token is not kept in localStorage');
  await shot(page, size.name, 'account');
  await page.getByTestId('token-saved').click();
  await page.getByTestId('new-token').waitFor({ state: 'detached' });

  await step('deposit 10,000 USD by card');
  await tab(page, 'funds');
  await page.getByTestId('deposit-amount').fill('10000.00');
  await page.getByTestId('method-card').click();
  await page.getByTestId('card-number').fill('4111 1111 1111 1111');
  await page.getByTestId('card-cvv').fill('123');
  // An expired card is refused in the form, before anything is sent.
  await page.getByTestId('card-expiry').fill('01/20');
  await page.getByTestId('deposit-submit').click();
  await page.waitForFunction(() => [...document.querySelectorAll('[role="alert"]')].some((p) => p.textContent?.includes('expired')));
  await page.getByTestId('card-expiry').fill('12/39');
  await page.getByTestId('deposit-submit').click();
  await page.waitForSelector('[data-testid="funds-row"][data-kind="deposit"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="funds-history"]')?.textContent?.includes('card ending 1111'));
  check((await page.getByTestId('card-number').inputValue()) === '', 'the card number stays in the form after the deposit');
  check((await page.getByTestId('card-expiry').inputValue()) === '', 'the card expiry stays in the form after the deposit');

  await shot(page, size.name, 'funds');

  await step('open AAPL and wait for the candles');
  await tab(page, 'markets');
  const candlesLoaded = page.waitForResponse((r) => r.url().includes('/api/v1/products/AAPL/candles') && r.ok());
  await page.locator('[data-testid="market-row"][data-symbol="AAPL"] a.product-link').click();
  await candlesLoaded;
  await page.waitForFunction(() => {
    const chart = document.querySelector('[data-testid="chart"]');
    return chart && chart.querySelector('canvas') && Number(chart.dataset.candles) > 0;
  });
  const drawn = await page.getByTestId('chart').getAttribute('data-candles');
  await step(`${drawn} one-minute candles drawn; switch to one-second candles`);
  const secondsLoaded = page.waitForResponse(
    (r) => r.url().includes('/api/v1/products/AAPL/candles') && r.url().includes('interval=1s') && r.ok(),
  );
  await page.locator('[data-interval="1s"]').click();
  await secondsLoaded;
  await page.waitForFunction(() => {
    const chart = document.querySelector('[data-testid="chart"]');
    return chart?.dataset.interval === '1s' && Number(chart.dataset.candles) > 0;
  });
  await step(`${await page.getByTestId('chart').getAttribute('data-candles')} one-second candles drawn`);
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="book"]')?.dataset.levels ?? 0) > 0);

  await step('buy 2 AAPL at market');
  await page.getByTestId('side-buy').click();
  await page.getByTestId('type-market').click();
  await page.getByTestId('ticket-quantity').fill('2');
  await page.waitForSelector('[data-testid="fee-quote"][data-state="ready"]');
  const fee = await page.getByTestId('quote-fee').textContent();
  check(/USD$/.test(fee ?? ''), `the fee quote shows no fee: ${fee}`);
  const bought = page.waitForResponse((r) => r.url().endsWith('/api/v1/product/buy') && r.request().method() === 'POST');
  await page.getByTestId('ticket-submit').click();
  const response = await bought;
  const order = await response.json();
  check(response.status() === 201, `the market buy was refused: ${JSON.stringify(order)}`);
  // The liquidity provider keeps 50 lots a level, so 2 shares fill whole.
  check(order.status === 'filled' && cents(order.filledQuantity) === cents('2'), `the market buy did not fill whole: ${JSON.stringify(order)}`);
  await page.waitForSelector(`[data-testid="ticket-result"][data-order-id="${order.orderId}"]`);
  await page.waitForSelector(`[data-testid="recent-trades"] .badge`);
  await shot(page, size.name, 'product');

  await step('see the fill and the balance change in the portfolio');
  await tab(page, 'portfolio');
  await page.waitForSelector(`[data-testid="trade-row"][data-order-id="${order.orderId}"][data-symbol="AAPL"]`);
  const expectedUsd = cents('10000.00') - cents(order.notional) - cents(order.fees);
  await page.waitForFunction(
    (text) => document.querySelector('tr[data-currency="USD"] [data-testid="balance-available"]')?.textContent === text,
    formatCents(expectedUsd),
  );
  await page.waitForFunction(
    (quantity) => document.querySelector('tr[data-currency="AAPL"] [data-testid="balance-available"]')?.textContent === quantity,
    order.filledQuantity,
  );

  await step('place a limit buy far below the market, then cancel it');
  await tab(page, 'trade');
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="book"]')?.dataset.levels ?? 0) > 0);
  const bestBid = await page.locator('[data-testid="book-bids"] .level').first().getAttribute('data-price');
  const farPrice = (cents(Number(bestBid).toFixed(2)) / 2n).toString();
  const limitPrice = `${farPrice.slice(0, -2) || '0'}.${farPrice.slice(-2).padStart(2, '0')}`;
  await page.getByTestId('side-buy').click();
  await page.getByTestId('type-limit').click();
  await page.getByTestId('ticket-price').fill(limitPrice);
  await page.getByTestId('ticket-quantity').fill('1');
  await page.getByTestId('ticket-tif').selectOption('GTC');
  await page.waitForFunction(
    (price) => {
      const quote = document.querySelector('[data-testid="fee-quote"]');
      const text = quote?.textContent?.replace(/,/g, '') ?? '';
      return quote?.dataset.state === 'ready' && text.includes('maker') && text.includes(price);
    },
    limitPrice,
  );
  const placed = page.waitForResponse((r) => r.url().endsWith('/api/v1/product/buy') && r.request().method() === 'POST');
  await page.getByTestId('ticket-submit').click();
  const limit = await (await placed).json();
  check(limit.status === 'open', `the limit order is not open: ${JSON.stringify(limit)}`);
  await page.waitForSelector(`[data-testid="open-order"][data-order-id="${limit.orderId}"]`);
  await tab(page, 'portfolio');
  await page.locator(`[data-testid="open-order"][data-order-id="${limit.orderId}"] [data-testid="cancel-order"]`).click();
  await page.waitForSelector(`[data-testid="open-order"][data-order-id="${limit.orderId}"]`, { state: 'detached' });
  await page.waitForSelector(`[data-testid="closed-order"][data-order-id="${limit.orderId}"][data-status="cancelled"]`);
  await page.waitForFunction(() => /^0(\.0+)?$/.test(document.querySelector('tr[data-currency="USD"] td:nth-child(3)')?.textContent ?? ''));

  await step('show values in euros: the preference on the account screen, the total in the portfolio');
  await tab(page, 'account');
  await page.waitForSelector('[data-testid="preference-select"] option[value="EUR"]', { state: 'attached' });
  await page.getByTestId('preference-select').selectOption('EUR');
  const changed = page.waitForResponse((r) => r.url().endsWith('/api/v1/account') && r.request().method() === 'PATCH');
  await page.getByTestId('preference-save').click();
  const preference = await changed;
  check(preference.status() === 200, `the preference change was refused: ${await preference.text()}`);
  await shot(page, size.name, 'account-preference');
  await tab(page, 'portfolio');
  await page.waitForFunction(
    () => document.querySelector('[data-testid="wallet-total"]')?.dataset.currency === 'EUR' && /\d EUR$/.test(document.querySelector('[data-testid="wallet-amount"]')?.textContent ?? ''),
  );
  await step('the trade history in euros, the own dollars under them');
  const tradePrice = `[data-testid="trade-row"][data-order-id="${order.orderId}"] [data-testid="trade-price"]`;
  await page.waitForSelector(`${tradePrice}[data-currency="EUR"][data-converted="true"]`);
  const tradeText = (await page.locator(tradePrice).textContent()) ?? '';
  const both = /^([\d,.]+) EUR([\d,.]+) USD$/.exec(tradeText);
  check(both, `the trade's price is not in EUR with its USD: ${JSON.stringify(tradeText)}`);
  const [, eurText, usdText] = both;
  const eurusd = await rate('EURUSD');
  near(amount(eurText) * eurusd, amount(usdText), 0.02, `the trade's EUR price ${eurText} at EURUSD ${eurusd} is not its ${usdText}`);
  await page.waitForSelector(`[data-testid="trade-row"][data-order-id="${order.orderId}"] [data-testid="trade-fee"][data-currency="EUR"]`);
  await shot(page, size.name, 'portfolio');

  await step('the markets list in euros');
  await tab(page, 'markets');
  const aaplPrice = '[data-testid="market-row"][data-symbol="AAPL"] [data-testid="market-price"]';
  await page.waitForSelector(`${aaplPrice}[data-currency="EUR"]`);
  check(
    (await page.locator('[data-testid="market-row"][data-symbol="AAPL"] [data-testid="market-currency"]').textContent()) === 'EUR',
    'the AAPL row does not say EUR',
  );
  const usdPrice = Number((await (await fetch(`${base}/api/v1/products/AAPL?currency=own`)).json()).currentPrice);
  near(amount(await page.locator(aaplPrice).textContent()) * (await rate('EURUSD')), usdPrice, 0.02, `AAPL's EUR price is not its USD price ${usdPrice} converted`);
  await shot(page, size.name, 'markets-eur');

  await step('AAPL in euros: the chart, the last price and the rate used');
  await page.locator('[data-testid="market-row"][data-symbol="AAPL"] a.product-link').click();
  const shownIn = (currency) =>
    page.waitForFunction((c) => {
      const chart = document.querySelector('[data-testid="chart"]');
      const rateShown = document.querySelector('[data-testid="fx-rate"]');
      return (
        document.querySelector('.product-screen')?.dataset.currency === c &&
        chart?.dataset.currency === c &&
        Number(chart.dataset.candles) > 0 &&
        document.querySelector('[data-testid="last-price"]')?.dataset.currency === c &&
        document.querySelector('[data-testid="price-currency"]')?.textContent === c &&
        document.querySelector('[data-testid="book"]')?.dataset.currency === c &&
        document.querySelector('[data-testid="currency-toggle"]')?.dataset.showing === c &&
        (c === 'USD' ? rateShown?.hidden === true : /^at EURUSD \d+\.\d+$/.test(rateShown?.textContent ?? ''))
      );
    }, currency);
  await shownIn('EUR');
  const note = (await page.getByTestId('ticket-currency-note').textContent()) ?? '';
  check(note.includes('placed in USD') && note.includes('EUR'), `the ticket does not say orders are in USD: ${JSON.stringify(note)}`);
  const shownRate = Number((await page.getByTestId('fx-rate').textContent()).replace('at EURUSD ', ''));
  const lastEur = amount(await page.getByTestId('last-price').textContent());
  near(lastEur * shownRate, usdPrice, 0.02, `AAPL's last price ${lastEur} EUR at ${shownRate} is not near ${usdPrice} USD`);
  await step(`${await page.getByTestId('chart').getAttribute('data-candles')} candles in EUR at EURUSD ${shownRate}; one click to USD`);
  await page.getByTestId('currency-toggle').click();
  await shownIn('USD');
  check(await page.getByTestId('ticket-currency-note').isHidden(), 'the ticket still has its currency note in USD');
  await step('and one click back to EUR');
  await page.getByTestId('currency-toggle').click();
  await shownIn('EUR');
  await page.getByTestId('ticket-currency-note').waitFor();
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="book"]')?.dataset.levels ?? 0) > 0);
  await shot(page, size.name, 'product-eur');

  await step('bookmark the last product and see it first');
  await tab(page, 'markets');
  await page.locator('[data-testid="market-row"]').first().waitFor();
  const symbol = await page.locator('[data-testid="market-row"]').last().getAttribute('data-symbol');
  check(symbol && symbol !== 'AAPL', `an unexpected last product: ${symbol}`);
  await page.locator(`[data-testid="star"][data-symbol="${symbol}"]`).click();
  const firstIs = async (expected) =>
    page.waitForFunction((s) => {
      const first = document.querySelector('[data-testid="market-row"]');
      return first?.getAttribute('data-symbol') === s && first.querySelector('[data-testid="star"]')?.getAttribute('aria-pressed') === 'true';
    }, expected);
  await firstIs(symbol);
  await step(`${symbol} is first; still first after a reload (the bookmark is the account's)`);
  await page.reload();
  await page.locator('[data-testid="market-row"]').first().waitFor();
  await firstIs(symbol);
  await page.waitForSelector('[data-testid="link-state"][data-state="live"]');
  await shot(page, size.name, 'markets');

  await step('done');
}

/** A displayed amount ("1,234.56") as a number, for comparisons within a tolerance. */
function amount(text) {
  const n = Number(String(text).replace(/,/g, '').trim());
  if (!Number.isFinite(n) || n <= 0) throw new Error(`not a positive amount: ${JSON.stringify(text)}`);
  return n;
}

/** Whether `a` is within `tolerance` (a fraction) of `b`: a price converted at a rate read a
 * moment apart from it. */
function near(a, b, tolerance, message) {
  check(Math.abs(a - b) <= tolerance * Math.abs(b), `${message} (${a} against ${b})`);
}

/** The newest price of an exchange rate (GET /fx). */
async function rate(symbol) {
  const rates = await (await fetch(`${base}/api/v1/fx`)).json();
  const found = rates.find((r) => r.symbol === symbol);
  check(found?.rate, `no ${symbol} rate in GET /fx: ${JSON.stringify(rates)}`);
  return Number(found.rate);
}

function formatCents(value) {
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = (abs % 100n).toString().padStart(2, '0');
  return `${negative ? '-' : ''}${whole}.${frac}`;
}

mkdirSync(out, { recursive: true });
const browser = await chromium.launch({
  executablePath,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-quic',
    '--no-first-run',
    '--disable-component-update',
    '--disable-sync',
  ],
});
let failed = false;
try {
  for (const size of SIZES) await pass(browser, size);
} catch (error) {
  failed = true;
  console.error(`FAILED: ${error instanceof Error ? error.stack ?? error.message : error}`);
} finally {
  await browser.close();
}
log(failed ? 'the web terminal failed its end-to-end run' : `${SIZES.length} passed, 0 failed`);
process.exit(failed ? 1 : 0);
