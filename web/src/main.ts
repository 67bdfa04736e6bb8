// The Bourse web terminal: a client of the public HTTP and WebSocket API (docs/api.md),
// served by `bourse serve` at /. See web/README.md.

import './style.css';
import { setUnauthorizedHandler } from './api';
import { App } from './app';
import { Session } from './session';
import { Live } from './ws';

const live = new Live();
const session = new Session(live);
setUnauthorizedHandler(() => session.refused());
const app = new App(session, live);
const root = document.getElementById('app');
if (root) app.mount(root);
void session.restore();
