// The WebSocket connection: an explicit state machine, reconnect with back-off, and the sync cursor.

export const ConnState = Object.freeze({
  IDLE: 'idle', // not started
  CONNECTING: 'connecting', // socket opening, or open and waiting for hello
  OPEN: 'open', // hello received
  WAITING: 'waiting', // down; a reconnect is scheduled
  CLOSED: 'closed', // down for good (signed out, too many sockets)
});

const TRANSITIONS = Object.freeze({
  [ConnState.IDLE]: [ConnState.CONNECTING, ConnState.CLOSED],
  [ConnState.CONNECTING]: [ConnState.OPEN, ConnState.WAITING, ConnState.CLOSED],
  [ConnState.OPEN]: [ConnState.WAITING, ConnState.CLOSED],
  [ConnState.WAITING]: [ConnState.CONNECTING, ConnState.CLOSED],
  [ConnState.CLOSED]: [],
});

export const CloseReason = Object.freeze({
  SIGNED_OUT: 'signed-out',
  TOO_MANY: 'too-many',
  OTHER_USER: 'other-user',
});

const BACKOFF_MIN_MS = 500;
// After 1012 (the process is stopping) wait 1-2 s: the stopping process still accepts sockets
// for a moment and then drops them, and the wait spreads its clients' reconnects over time.
const RESTART_WAIT_MS = 1000;
const BACKOFF_MAX_MS = 15000;
const PING_EVERY_MS = 25000;
const PONG_TIMEOUT_MS = 10000;
// Deliveries from different server processes can arrive slightly out of id order, so a
// reconnect replays from the cursor as it was this long before the drop; dedupe hides the overlap.
const REWIND_MS = 5000;

export class ChatSocket {
  #url;
  #handlers;
  #ws = null;
  #state = ConnState.IDLE;
  #attempt = 0;
  #everOpen = false;
  #timers = { reconnect: 0, ping: 0, pong: 0 };
  #cursor = null; // last message id known to be seen with nothing missing before it
  #initialCursor = null;
  #samples = []; // [{t, cursor}], enough history to answer "cursor 5 s ago"
  #resumeFrom = null;
  #syncing = false;

  /**
   * handlers: onFrame(frame), onState(state, {reason, reconnecting}), onCaughtUp(),
   * checkSignedIn() -> Promise<boolean|null> (asked when a handshake fails before hello).
   */
  constructor(url, handlers) {
    this.#url = url;
    this.#handlers = handlers;
  }

  get state() {
    return this.#state;
  }

  get isOpen() {
    return this.#state === ConnState.OPEN;
  }

  /** True while a sync's replay is arriving. */
  get isSyncing() {
    return this.#syncing;
  }

  /** Start connecting; `initialCursor` is the newest id the page already loaded over HTTP. */
  start(initialCursor = null) {
    this.#initialCursor = initialCursor;
    this.#connect();
  }

  /** Send a frame if the connection is open; false otherwise. */
  send(frame) {
    if (!this.isOpen || this.#ws.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  /** Skip the remaining back-off (e.g. the browser came back online). */
  reconnectNow() {
    if (this.#state !== ConnState.WAITING) return;
    clearTimeout(this.#timers.reconnect);
    this.#connect();
  }

  #transition(next, detail = {}) {
    if (!TRANSITIONS[this.#state].includes(next)) {
      console.warn(`chat socket: ignored transition ${this.#state} -> ${next}`);
      return false;
    }
    this.#state = next;
    this.#handlers.onState(next, { ...detail, reconnecting: this.#everOpen || this.#attempt > 0 });
    return true;
  }

  #connect() {
    if (!this.#transition(ConnState.CONNECTING)) return;
    let ws;
    try {
      ws = new WebSocket(this.#url);
    } catch (error) {
      console.error('chat socket:', error);
      this.#onClose(1006);
      return;
    }
    this.#ws = ws;
    ws.addEventListener('message', (event) => {
      if (ws === this.#ws) this.#onMessage(event.data);
    });
    ws.addEventListener('close', (event) => {
      if (ws === this.#ws) this.#onClose(event.code);
    });
  }

  #onMessage(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
    switch (frame.type) {
      case 'hello':
        this.#onHello(frame);
        return; // onHello forwards it itself, after the state change
      case 'synced':
        this.#onSynced(frame);
        return;
      case 'message':
        // Live frames can overtake a sync's replay: only frames after `synced` move the cursor.
        if (!this.#syncing && this.#cursor !== null && Number.isInteger(frame.id)) {
          this.#setCursor(Math.max(this.#cursor, frame.id));
        }
        break;
      case 'pong':
        clearTimeout(this.#timers.pong);
        if (Number.isInteger(frame.last_id) && frame.last_id > this.#cursor) this.#sync(this.#cursor);
        return;
      default:
        break;
    }
    this.#handlers.onFrame(frame);
  }

  #onHello(frame) {
    if (this.#state !== ConnState.CONNECTING) return;
    this.#attempt = 0;
    this.#everOpen = true;
    let after;
    if (this.#cursor === null) {
      // First connection: replay whatever arrived between the HTTP load and this hello.
      const seed = this.#initialCursor ?? frame.last_id;
      this.#setCursor(Math.min(seed, frame.last_id));
      after = this.#cursor;
    } else {
      after = this.#resumeFrom ?? this.#cursor;
    }
    this.#resumeFrom = null;
    this.#syncing = false;
    if (!this.#transition(ConnState.OPEN)) return;
    this.#handlers.onFrame(frame);
    if (this.#state !== ConnState.OPEN) return; // the handler may have closed it
    this.#sync(after);
    this.#schedulePing();
  }

  #sync(after) {
    if (this.#syncing || !this.isOpen) return;
    this.#syncing = true;
    this.send({ type: 'sync', after });
  }

  #onSynced(frame) {
    if (!this.#syncing) return;
    this.#syncing = false;
    if (Number.isInteger(frame.last_id)) this.#setCursor(frame.last_id);
    if (frame.has_more) {
      this.#sync(this.#cursor);
    } else {
      this.#handlers.onCaughtUp();
    }
  }

  #setCursor(value) {
    const now = Date.now();
    this.#cursor = value;
    this.#samples.push({ t: now, cursor: value });
    // Keep the newest sample that is already older than REWIND_MS, and everything after it.
    while (this.#samples.length > 1 && this.#samples[1].t <= now - REWIND_MS) this.#samples.shift();
  }

  #cursorAt(time) {
    let value = this.#samples.length ? this.#samples[0].cursor : this.#cursor;
    for (const sample of this.#samples) {
      if (sample.t > time) break;
      value = sample.cursor;
    }
    return Math.min(value, this.#cursor);
  }

  #schedulePing() {
    clearInterval(this.#timers.ping);
    this.#timers.ping = setInterval(() => {
      if (!this.send({ type: 'ping' })) return;
      clearTimeout(this.#timers.pong);
      // A half-open TCP connection can look alive for minutes; no pong means start over.
      this.#timers.pong = setTimeout(() => this.#abandon(), PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  #stopTimers() {
    clearInterval(this.#timers.ping);
    clearTimeout(this.#timers.pong);
    clearTimeout(this.#timers.reconnect);
  }

  #abandon() {
    const ws = this.#ws;
    this.#ws = null;
    try {
      ws?.close();
    } catch {
      // already closing
    }
    this.#onClose(1006);
  }

  #onClose(code) {
    this.#stopTimers();
    this.#syncing = false;
    const wasOpen = this.#state === ConnState.OPEN;
    if (code === 4401 || code === 4403) {
      this.#transition(ConnState.CLOSED, { reason: CloseReason.SIGNED_OUT });
      return;
    }
    if (code === 4429) {
      this.#transition(ConnState.CLOSED, { reason: CloseReason.TOO_MANY });
      return;
    }
    if (wasOpen && this.#cursor !== null) this.#resumeFrom = this.#cursorAt(Date.now() - REWIND_MS);
    if (!this.#transition(ConnState.WAITING)) return;
    if (!wasOpen) this.#checkStillSignedIn();
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.#attempt);
    let delay = ceiling / 2 + Math.random() * (ceiling / 2); // jitter spreads a mass reconnect
    if (code === 1012) delay = RESTART_WAIT_MS + Math.random() * RESTART_WAIT_MS;
    this.#attempt += 1;
    this.#timers.reconnect = setTimeout(() => this.#connect(), delay);
  }

  // A refused handshake (anonymous session) reaches the browser as a bare 1006, so ask over HTTP.
  async #checkStillSignedIn() {
    const signedIn = await this.#handlers.checkSignedIn().catch(() => null);
    if (signedIn === false && this.#state === ConnState.WAITING) {
      clearTimeout(this.#timers.reconnect);
      this.#transition(ConnState.CLOSED, { reason: CloseReason.SIGNED_OUT });
    }
  }

  /** Close for good (e.g. hello for a different user); no reconnect. */
  shutdown(reason) {
    this.#stopTimers();
    const ws = this.#ws;
    this.#ws = null;
    ws?.close(1000);
    this.#transition(ConnState.CLOSED, { reason });
  }
}
