// Decimal strings, as the API sends money, prices and quantities ("1000.25"). Arithmetic that
// reaches a figure the user reads as money (a total of available and held) is exact, on
// BigInt; floats are used only for what is drawn (depth bars) and for percentages.

/** A decimal: `units / 10^scale`. */
export interface Dec {
  units: bigint;
  scale: number;
}

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/** The decimal of `text`, or null if it is not a plain decimal. */
export function parse(text: string): Dec | null {
  const m = DECIMAL.exec(text.trim());
  if (!m) return null;
  const frac = m[3] ?? '';
  const units = BigInt((m[2] ?? '0') + frac);
  return { units: m[1] === '-' ? -units : units, scale: frac.length };
}

function rescale(d: Dec, scale: number): bigint {
  return d.units * 10n ** BigInt(scale - d.scale);
}

export function toText(d: Dec): string {
  const negative = d.units < 0n;
  let digits = (negative ? -d.units : d.units).toString();
  if (d.scale > 0) {
    digits = digits.padStart(d.scale + 1, '0');
    digits = `${digits.slice(0, -d.scale)}.${digits.slice(-d.scale)}`;
  }
  return negative ? `-${digits}` : digits;
}

export function add(a: string, b: string): string {
  const x = parse(a);
  const y = parse(b);
  if (!x || !y) return a;
  const scale = Math.max(x.scale, y.scale);
  return toText({ units: rescale(x, scale) + rescale(y, scale), scale });
}

export function sub(a: string, b: string): string {
  const y = parse(b);
  if (!y) return a;
  return add(a, toText({ units: -y.units, scale: y.scale }));
}

/** -1, 0 or 1; null if either is not a decimal. */
export function compare(a: string, b: string): number | null {
  const x = parse(a);
  const y = parse(b);
  if (!x || !y) return null;
  const scale = Math.max(x.scale, y.scale);
  const d = rescale(x, scale) - rescale(y, scale);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

export function isPositive(text: string): boolean {
  const d = parse(text);
  return d !== null && d.units > 0n;
}

export function isZero(text: string): boolean {
  const d = parse(text);
  return d !== null && d.units === 0n;
}

/** Whether `text` is a positive multiple of `step` (a tick or lot size), with no more
 * decimals than `step` has. */
export function onGrid(text: string, step: string): boolean {
  const x = parse(text);
  const s = parse(step);
  if (!x || !s || x.units <= 0n || s.units <= 0n) return false;
  const scale = Math.max(x.scale, s.scale);
  return rescale(x, scale) % rescale(s, scale) === 0n;
}

/** Decimal places of a step ("0.01" → 2, "1" → 0). */
export function places(step: string): number {
  const d = parse(step);
  if (!d) return 2;
  let units = d.units;
  let scale = d.scale;
  while (scale > 0 && units % 10n === 0n) {
    units /= 10n;
    scale -= 1;
  }
  return scale;
}

/** For display: thousands separators, and at least `minFraction` decimals. */
export function format(text: string | null | undefined, minFraction = 0): string {
  if (text === null || text === undefined || text === '') return '—';
  const m = DECIMAL.exec(text);
  if (!m) return text;
  const sign = m[1] ?? '';
  const whole = (m[2] ?? '0').replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = (m[3] ?? '').padEnd(minFraction, '0');
  return frac ? `${sign}${whole}.${frac}` : `${sign}${whole}`;
}

/** `text` rounded half to even to `places` decimals ("9245.935899" → "9245.94" at 2), exact. */
export function rounded(text: string, places: number): string {
  const d = parse(text);
  if (!d || d.scale <= places) return text;
  const divisor = 10n ** BigInt(d.scale - places);
  const negative = d.units < 0n;
  const magnitude = negative ? -d.units : d.units;
  let quotient = magnitude / divisor;
  const twice = 2n * (magnitude % divisor);
  if (twice > divisor || (twice === divisor && quotient % 2n === 1n)) quotient += 1n;
  return toText({ units: negative ? -quotient : quotient, scale: places });
}

/** A price or an amount of money for display: at least two decimals ("96.6" → "96.60"). */
export function money(text: string | null | undefined): string {
  return format(text, 2);
}

/** For drawing only (bar widths, percentages): never for money. */
export function approx(text: string | null | undefined): number {
  if (!text) return 0;
  const n = Number(text);
  return Number.isFinite(n) ? n : 0;
}

/** The change from `from` to `to` in percent, for display ("+1.25%"); null without both. */
export function percentChange(from: string | null | undefined, to: string | null | undefined): number | null {
  const a = approx(from);
  const b = approx(to);
  if (!from || !to || a === 0) return null;
  return ((b - a) / a) * 100;
}

/** Converted values' precision (market data's): 8 decimals. */
const CONVERTED_PLACES = 8;

/** `value` converted at a rate as the API names it (`{price, operation}`): divided by the
 * pair's price, or multiplied by it, rounded half to even to 8 decimals, exact: the server's
 * rule (docs/api.md, "Currencies"). Null if either is not a decimal. */
export function convert(value: string, rate: { price: string; operation: string }): string | null {
  const v = parse(value);
  const p = parse(rate.price);
  if (!v || !p || p.units === 0n) return null;
  if (rate.operation !== 'divide') {
    return rounded(toText({ units: v.units * p.units, scale: v.scale + p.scale }), CONVERTED_PLACES);
  }
  // v / p in units of 10^-8: v.units * 10^(p.scale + 8) / (p.units * 10^v.scale), half to even.
  let numerator = v.units * 10n ** BigInt(p.scale + CONVERTED_PLACES);
  let denominator = p.units * 10n ** BigInt(v.scale);
  if (denominator < 0n) {
    numerator = -numerator;
    denominator = -denominator;
  }
  const negative = numerator < 0n;
  const magnitude = negative ? -numerator : numerator;
  let quotient = magnitude / denominator;
  const twice = 2n * (magnitude % denominator);
  if (twice > denominator || (twice === denominator && quotient % 2n === 1n)) quotient += 1n;
  return toText({ units: negative ? -quotient : quotient, scale: CONVERTED_PLACES });
}

/** Decimals to show of a converted price: the own grid's, at least 2, and 6 below 1 (a
 * converted value has 8; a cent of one currency is not a cent of another). */
export function shownPlaces(text: string | null | undefined, gridPlaces = 2): number {
  const atLeast = Math.max(gridPlaces, 2);
  return Math.abs(approx(text)) < 1 && text ? Math.max(atLeast, 6) : atLeast;
}

/** A price for display at `places` decimals, rounded half to even (a converted one has more). */
export function priceText(text: string | null | undefined, places: number): string {
  if (text === null || text === undefined || text === '') return '—';
  return format(rounded(text, places), places);
}
