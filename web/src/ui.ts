// Small DOM helpers, the toasts that carry messages to the user, and display formatting.
// Text from the API always goes in through textContent (never as HTML).

import { describe } from './api';

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** `h('button', {class: 'x', onclick: f}, 'Buy')`: an element. Attributes that are functions
 * become listeners (`onclick` → `click`); `false`/null/undefined attributes are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === 'function') {
      el.addEventListener(key.replace(/^on/, ''), value);
    } else if (key === 'value' && 'value' in el) {
      (el as HTMLInputElement).value = String(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** The page's own preferences in localStorage (the last product, the chart interval); a
 * browser that refuses storage just forgets them. */
export const prefs = {
  get(key: string): string | null {
    try {
      return localStorage.getItem(`bourse.${key}`);
    } catch {
      return null;
    }
  },
  set(key: string, value: string): void {
    try {
      localStorage.setItem(`bourse.${key}`, value);
    } catch {
      // Not kept.
    }
  },
};

export function time(ms: number | null | undefined): string {
  if (!ms) return '—';
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function dateTime(ms: number | null | undefined): string {
  if (!ms) return '—';
  const d = new Date(ms);
  return `${d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' })} ${time(ms)}`;
}

/** The time alone for today, with the date before that. */
export function when(ms: number | null | undefined): string {
  if (!ms) return '—';
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.getFullYear() === today.getFullYear() && d.getMonth() === today.getMonth() && d.getDate() === today.getDate();
  return sameDay ? time(ms) : dateTime(ms);
}

export function percent(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return '—';
  const sign = value > 0 ? '+' : '';
  return `${sign}${value.toFixed(2)}%`;
}

/** A rate as the API gives it ("0.002") as a percentage ("0.20%"). */
export function rate(text: string): string {
  const n = Number(text);
  return Number.isFinite(n) ? `${(n * 100).toFixed(2)}%` : text;
}

export function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// Toasts ------------------------------------------------------------------------------------

type ToastKind = 'error' | 'success' | 'info';

let toastHost: HTMLElement | null = null;
const TOASTS_MAX = 3;
/** Errors stay longer: they ask the user to do something. */
const ERROR_TOAST_MS = 12_000;
const TOAST_MS = 4_000;

function host(): HTMLElement {
  if (!toastHost) {
    toastHost = h('div', { class: 'toasts', 'aria-live': 'polite' });
    document.body.append(toastHost);
  }
  return toastHost;
}

/** Shows a message; errors stay until dismissed or replaced, others go after a while. */
export function toast(kind: ToastKind, text: string): void {
  const box = host();
  // The same error twice in a row (a retried quote, a flapping link): show it once.
  const last = box.lastElementChild as HTMLElement | null;
  if (last && last.dataset.kind === kind && last.dataset.text === text) return;
  const close = h('button', { class: 'toast-close', type: 'button', 'aria-label': 'Dismiss' }, '×');
  const item = h(
    'div',
    { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-kind': kind, 'data-text': text },
    h('span', { class: 'toast-text' }, text),
    close,
  );
  close.addEventListener('click', () => item.remove());
  box.append(item);
  while (box.children.length > TOASTS_MAX) box.firstElementChild?.remove();
  window.setTimeout(() => item.remove(), kind === 'error' ? ERROR_TOAST_MS : TOAST_MS);
}

export const notify = {
  error: (text: string) => toast('error', text),
  success: (text: string) => toast('success', text),
  info: (text: string) => toast('info', text),
};

/** Copies `text`; works without the Clipboard API (plain http on a LAN address). */
export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // Fall through to the selection.
  }
  const area = h('textarea', { class: 'offscreen', readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  area.remove();
  return copied;
}

/** A table with a header row; `rows` are the body's rows. */
export function table(className: string, headers: (string | [string, string])[], rows: HTMLTableRowElement[], empty: string): HTMLElement {
  const head = h(
    'tr',
    {},
    ...headers.map((header) =>
      Array.isArray(header) ? h('th', { class: header[1] }, header[0]) : h('th', {}, header),
    ),
  );
  const body = h('tbody', {});
  if (rows.length === 0) {
    body.append(h('tr', { class: 'empty' }, h('td', { colspan: headers.length }, empty)));
  } else {
    body.append(...rows);
  }
  return h('div', { class: 'table-wrap' }, h('table', { class: className }, h('thead', {}, head), body));
}

/** A form's submit: `handle` checks the input and returns what is wrong (shown in `problem`),
 * or starts the work, during which `submit` is disabled; a failure of the work is shown to
 * the user in plain words. */
export function onSubmit(
  form: HTMLFormElement,
  submit: HTMLButtonElement,
  problem: HTMLElement,
  handle: () => string | Promise<void>,
): void {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    problem.textContent = '';
    const outcome = handle();
    if (typeof outcome === 'string') {
      problem.textContent = outcome;
      return;
    }
    submit.disabled = true;
    outcome
      .catch((error: unknown) => notify.error(describe(error)))
      .finally(() => {
        submit.disabled = false;
      });
  });
}
