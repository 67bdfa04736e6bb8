// The live connection: one WebSocket to /api/v1/ws for the whole page (docs/api.md).
//
// - Screens subscribe to channels with a handler; the connection subscribes on the server
//   once per channel, and unsubscribes when the last handler goes.
// - Each channel message carries the channel's sequence number: a snapshot sets it, an update
//   must be the next one. A jump means messages were lost, so the channel is subscribed again
//   and its handlers get a fresh snapshot.
// - A ping goes out every PING_EVERY_MS; with no message at all for STALE_AFTER_MS the link is
//   shown stale, and after DEAD_AFTER_MS the socket is dropped and opened anew (so is one
//   whose handshake takes longer than CONNECT_TIMEOUT_MS).
// - A closed socket is reopened with exponential backoff (with jitter); on reopening it
//   authenticates again and resubscribes every channel, whose snapshots replace what the
//   screens showed.

export type LinkState = 'connecting' | 'live' | 'stale' | 'reconnecting';

export interface ChannelMessage<T = unknown> {
  channel: string;
  type: 'snapshot' | 'update';
  seq: number;
  data: T;
}

type Handler = (message: ChannelMessage) => void;
type Refused = (code: string) => void;

const PING_EVERY_MS = 10_000;
const STALE_AFTER_MS = 15_000;
const DEAD_AFTER_MS = 30_000;
/** A handshake that has not completed by then (a server that accepts but hangs) is dropped. */
const CONNECT_TIMEOUT_MS = 10_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const PRIVATE_CHANNELS = new Set(['orders', 'trades', 'balances']);

export class Live {
  private socket: WebSocket | null = null;
  private readonly handlers = new Map<string, Set<Handler>>();
  /** Told when the server refuses a channel (a converted one no rate converts: `no_rate`). */
  private readonly refusals = new Map<string, Set<Refused>>();
  /** The last sequence number seen per channel; absent until its snapshot arrives. */
  private readonly seqs = new Map<string, number>();
  /** Channels the server has been asked for on this socket. */
  private readonly requested = new Set<string>();
  /** Subscribe requests awaiting their answer, by id. */
  private readonly pending = new Map<number, string>();
  private token: string | null = null;
  private authenticated = false;
  private attempt = 0;
  private lastHeardMs = 0;
  private lastPingMs = 0;
  private openedMs = 0;
  private reconnectTimer: number | undefined;
  private nextId = 1;
  private state: LinkState = 'connecting';
  private readonly stateListeners = new Set<(state: LinkState) => void>();
  /** Told when the server refuses the token (the app signs out). */
  onAuthRefused: (() => void) | null = null;

  constructor() {
    window.setInterval(() => this.heartbeat(), 1_000);
    window.addEventListener('online', () => this.reconnectNow());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.reconnectNow();
    });
  }

  start(token: string | null): void {
    this.token = token;
    this.open();
  }

  /** Signs in or out: the socket is opened anew with the new identity. */
  setToken(token: string | null): void {
    if (token === this.token) return;
    this.token = token;
    this.drop();
  }

  get linkState(): LinkState {
    return this.state;
  }

  onState(listener: (state: LinkState) => void): () => void {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => this.stateListeners.delete(listener);
  }

  /** Calls `handler` with every message of `channel` (first a snapshot) until the returned
   * function is called; `refused`, if given, with the error code when the server refuses the
   * channel. */
  subscribe<T>(channel: string, handler: (message: ChannelMessage<T>) => void, refused?: Refused): () => void {
    const wrapped = handler as Handler;
    if (refused) {
      let told = this.refusals.get(channel);
      if (!told) {
        told = new Set();
        this.refusals.set(channel, told);
      }
      told.add(refused);
    }
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      this.request(channel);
    } else if (this.seqs.has(channel)) {
      // A second screen on a channel already live: it needs a snapshot of its own.
      this.resubscribe(channel);
    }
    set.add(wrapped);
    return () => {
      if (refused) {
        const told = this.refusals.get(channel);
        told?.delete(refused);
        if (told?.size === 0) this.refusals.delete(channel);
      }
      const current = this.handlers.get(channel);
      if (!current) return;
      current.delete(wrapped);
      if (current.size === 0) {
        this.handlers.delete(channel);
        this.seqs.delete(channel);
        if (this.requested.delete(channel)) this.send({ op: 'unsubscribe', channels: [channel] });
      }
    };
  }

  private setState(state: LinkState): void {
    if (state === this.state) return;
    this.state = state;
    for (const listener of this.stateListeners) listener(state);
  }

  private open(): void {
    window.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/ws`);
    this.socket = socket;
    this.openedMs = Date.now();
    this.authenticated = false;
    this.requested.clear();
    this.pending.clear();
    this.seqs.clear();
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this.attempt = 0;
      this.lastHeardMs = Date.now();
      this.lastPingMs = Date.now();
      this.setState('live');
      if (this.token) this.send({ id: 'auth', op: 'auth', token: this.token });
      for (const channel of this.handlers.keys()) this.request(channel);
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      this.lastHeardMs = Date.now();
      if (this.state === 'stale') this.setState('live');
      if (typeof event.data === 'string') this.receive(event.data);
    };
    socket.onclose = () => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.scheduleReconnect();
    };
    // An error is followed by a close, which reconnects.
    socket.onerror = () => undefined;
  }

  private scheduleReconnect(): void {
    this.authenticated = false;
    this.requested.clear();
    this.pending.clear();
    this.seqs.clear();
    this.setState('reconnecting');
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt += 1;
    window.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = window.setTimeout(() => this.open(), delay * (0.75 + Math.random() * 0.5));
  }

  private reconnectNow(): void {
    if (this.socket === null) {
      this.attempt = 0;
      this.open();
    }
  }

  /** Closes the socket and opens a new one at once (a new token, or a dead link). */
  private drop(): void {
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close();
    this.attempt = 0;
    this.setState('connecting');
    this.open();
  }

  private send(message: Record<string, unknown>): boolean {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  /** Asks the server for `channel`, once it can be had on this socket. */
  private request(channel: string): void {
    if (this.requested.has(channel)) return;
    if (PRIVATE_CHANNELS.has(channel) && !this.authenticated) return;
    const id = this.nextId++;
    if (this.send({ id, op: 'subscribe', channels: [channel] })) {
      this.requested.add(channel);
      this.pending.set(id, channel);
    }
  }

  private resubscribe(channel: string): void {
    this.seqs.delete(channel);
    this.requested.delete(channel);
    this.send({ op: 'unsubscribe', channels: [channel] });
    this.request(channel);
  }

  private receive(text: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof message.channel === 'string') {
      this.channelMessage(message as unknown as ChannelMessage);
      return;
    }
    const error = message.error as { code?: string } | undefined;
    if (message.op === 'auth') {
      if (error) {
        this.token = null;
        this.onAuthRefused?.();
        return;
      }
      this.authenticated = true;
      for (const channel of this.handlers.keys()) this.request(channel);
    } else if (message.op === 'subscribe' && typeof message.id === 'number') {
      const channel = this.pending.get(message.id);
      this.pending.delete(message.id);
      // A channel the server refused (say, a book of a product that does not trade): forget
      // the request so a later screen may ask again; its handlers simply get nothing.
      if (error && channel !== undefined) {
        this.requested.delete(channel);
        for (const refused of [...(this.refusals.get(channel) ?? [])]) refused(error.code ?? 'refused');
      }
    }
    // Anything else (a pong, `slow_consumer` before the server closes) only proves the link
    // is alive, which `lastHeardMs` already noted.
  }

  private channelMessage(message: ChannelMessage): void {
    const { channel } = message;
    const handlers = this.handlers.get(channel);
    if (!handlers) return;
    if (message.type === 'snapshot') {
      this.seqs.set(channel, message.seq);
    } else {
      const last = this.seqs.get(channel);
      if (last === undefined) return; // Waiting for the snapshot of a resubscription.
      if (message.seq !== last + 1) {
        this.resubscribe(channel);
        return;
      }
      this.seqs.set(channel, message.seq);
    }
    for (const handler of [...handlers]) handler(message);
  }

  private heartbeat(): void {
    const socket = this.socket;
    const now = Date.now();
    if (socket && socket.readyState === WebSocket.CONNECTING && now - this.openedMs >= CONNECT_TIMEOUT_MS) {
      this.socket = null;
      socket.close();
      this.scheduleReconnect();
      return;
    }
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    if (now - this.lastPingMs >= PING_EVERY_MS) {
      this.lastPingMs = now;
      this.send({ op: 'ping' });
    }
    const silent = now - this.lastHeardMs;
    if (silent >= DEAD_AFTER_MS) {
      this.socket = null;
      socket.close();
      this.scheduleReconnect();
    } else if (silent >= STALE_AFTER_MS) {
      this.setState('stale');
    }
  }
}
