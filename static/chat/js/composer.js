// The message composer: Enter sends, Shift+Enter is a newline, one send in flight at a time.

import { setNote } from './render.js';
import { ConnState } from './socket.js';
import { ALL } from './state.js';

const TYPING_EVERY_MS = 2000;

/** A fresh client_id; randomUUID needs a secure context, so plain-http hosts get the fallback. */
export function newClientId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Why a send was refused, in words; `pending` is what was sent. The text stays in the composer. */
function refusalText(frame, { recipient, text }) {
  const detail = typeof frame.detail === 'string' ? frame.detail : '';
  switch (frame.code) {
    case 404:
      return `User ${recipient} was not found; the message was not sent.`;
    case 413: {
      const max = frame.max_length ?? frame.limit ?? limitFromDetail(detail);
      const length = [...text].length;
      if (Number.isInteger(max)) {
        return `Message is too long: at most ${max} characters, this one has ${length}. Shorten it and send again.`;
      }
      return `Message is too long (${detail || `${length} characters`}). Shorten it and send again.`;
    }
    case 429: {
      const wait = Math.max(1, Math.ceil(Number(frame.retry_after) || 1));
      return `Sending too fast: wait ${wait} s and retry.`;
    }
    case 400:
      return detail ? `Message not sent: ${detail}` : 'Message not sent: the server refused it.';
    default:
      return `Message not sent (error ${frame.code})${detail ? `: ${detail}` : ''}.`;
  }
}

// The contract leaves the 413 detail's wording free; take the number after "max"/"limit" if any.
function limitFromDetail(detail) {
  const match = /(?:max(?:imum)?|limit|at most|up to)\D{0,20}(\d+)/i.exec(detail);
  return match ? Number(match[1]) : null;
}

export class Composer {
  #pending = null; // {clientId, recipient, text}: sent or waiting for the connection
  #editedSincePending = false;
  #lastTyping = { recipient: null, at: 0 };

  /** getRecipient() -> the open conversation's peer; socket: a ChatSocket. */
  constructor({ form, textarea, note, socket, getRecipient, me }) {
    this.form = form;
    this.textarea = textarea;
    this.note = note;
    this.socket = socket;
    this.getRecipient = getRecipient;
    this.me = me;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    textarea.addEventListener('keydown', (event) => this.#onKeydown(event));
    textarea.addEventListener('input', () => this.#onInput());
  }

  #onKeydown(event) {
    // isComposing: Enter that confirms an IME candidate (Korean, Japanese…) must not send.
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    this.submit();
  }

  #onInput() {
    this.#editedSincePending = true;
    const recipient = this.getRecipient();
    if (recipient === ALL || recipient === this.me || !this.textarea.value) return;
    const now = Date.now();
    if (this.#lastTyping.recipient === recipient && now - this.#lastTyping.at < TYPING_EVERY_MS) return;
    if (this.socket.send({ type: 'typing', recipient })) this.#lastTyping = { recipient, at: now };
  }

  submit() {
    const text = this.textarea.value;
    if (!text.trim()) return;
    const recipient = this.getRecipient();
    const pending = this.#pending;
    // Send pressed again with nothing typed in between (a double Enter, or a retry while
    // offline) reuses the client_id, so the server stores it once.
    const same = pending && !this.#editedSincePending && pending.text === text && pending.recipient === recipient;
    if (!same) this.#pending = { clientId: newClientId(), recipient, text };
    this.#editedSincePending = false;
    this.#transmit();
  }

  #transmit() {
    const { clientId, recipient, text } = this.#pending;
    const frame = { type: 'message', recipient, text, client_id: clientId };
    if (this.socket.send(frame)) {
      setNote(this.note, '');
    } else if (this.socket.state === ConnState.CLOSED) {
      setNote(this.note, 'Not connected — reload the page to send');
    } else {
      setNote(this.note, 'Not connected — will retry when reconnected');
    }
  }

  /** After a (re)connect: resend what is waiting; the server deduplicates by client_id. */
  resendPending() {
    if (this.#pending) this.#transmit();
  }

  /** A {"type": "response", "command": "message"} frame. */
  onResponse(frame) {
    const pending = this.#pending;
    if (!pending || frame.client_id !== pending.clientId) return;
    this.#pending = null;
    if (frame.code === 200 || frame.code === 202) {
      // Only clear what was sent; text typed meanwhile stays.
      if (this.textarea.value === pending.text) this.textarea.value = '';
      setNote(this.note, '');
      return;
    }
    setNote(this.note, refusalText(frame, pending));
  }

  /** The open conversation changed: typing notices start afresh. */
  resetTyping() {
    this.#lastTyping = { recipient: null, at: 0 };
  }
}
