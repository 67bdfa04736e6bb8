// What a screen that needs an account shows to someone not signed in.

import { h } from '../ui';

export function signInPrompt(why: string): HTMLElement {
  return h(
    'div',
    { class: 'panel narrow prompt', 'data-testid': 'sign-in-prompt' },
    h('h2', {}, 'You are not signed in'),
    h('p', { class: 'muted' }, why),
    h('a', { class: 'btn', href: '/account', 'data-link': true }, 'Create an account or sign in'),
  );
}
