// The open conversation: its heading, its log, and loading its history page by page.

import { ApiError } from './api.js';
import { LogView, setNote } from './render.js';
import { displayName } from './state.js';

const PAGE_SIZE = 50;
const LOAD_OLDER_WITHIN_PX = 64; // this close to the top, fetch the previous page

export class ConversationView {
  #generation = 0; // bumps on every open, so a slow response cannot draw into another conversation
  #loadingOlder = false;

  constructor({ state, api, me, title, log, note, loadOlder, onSignedOut }) {
    this.state = state;
    this.api = api;
    this.title = title;
    this.note = note;
    this.loadOlderButton = loadOlder;
    this.onSignedOut = onSignedOut;
    this.log = new LogView(log, me);
    log.addEventListener(
      'scroll',
      () => {
        if (log.scrollTop < LOAD_OLDER_WITHIN_PX) this.loadOlder();
      },
      { passive: true },
    );
    loadOlder.addEventListener('click', () => this.loadOlder());
  }

  /** Show `peer`'s conversation; `firstPage` is a history response already fetched. */
  async open(peer, firstPage = null) {
    const generation = ++this.#generation;
    this.state.openPeer = peer;
    const conversation = this.state.ensure(peer);
    this.title.textContent = displayName(peer);
    setNote(this.note, '');
    this.log.reset(conversation.sorted());
    this.#updateLoadOlder();
    if (!firstPage && !conversation.loaded) {
      try {
        firstPage = await this.api.history(peer, { limit: PAGE_SIZE });
      } catch (error) {
        if (generation === this.#generation) this.#showError(error, peer);
        return;
      }
    }
    if (firstPage) this.#acceptFirstPage(conversation, firstPage);
    if (generation === this.#generation) this.#fill();
  }

  #acceptFirstPage(conversation, page) {
    for (const message of page.messages) conversation.add(message);
    conversation.loaded = true;
    conversation.hasMore = page.has_more;
    if (conversation.peer !== this.state.openPeer) return;
    this.log.insertMany(page.messages);
    this.#updateLoadOlder();
  }

  /** A live message for the open conversation. */
  showNew(message, { mine }) {
    const stick = mine || this.log.isNearBottom();
    this.log.insert(message);
    if (stick) this.log.scrollToBottom();
  }

  async loadOlder() {
    const conversation = this.state.open;
    if (this.#loadingOlder || !conversation.loaded || !conversation.hasMore) return;
    const before = conversation.oldestId();
    if (before === null) {
      conversation.hasMore = false;
      this.#updateLoadOlder();
      return;
    }
    this.#loadingOlder = true;
    let page;
    try {
      page = await this.api.history(conversation.peer, { before, limit: PAGE_SIZE });
    } catch (error) {
      if (conversation.peer === this.state.openPeer) this.#showError(error, conversation.peer);
      return;
    } finally {
      this.#loadingOlder = false;
    }
    const fresh = page.messages.filter((message) => conversation.add(message));
    conversation.hasMore = page.has_more;
    if (conversation.peer !== this.state.openPeer) return;
    this.log.prepend(fresh);
    this.#updateLoadOlder();
    this.#fill();
  }

  // Keep loading until the log can scroll, or scrolling up could never ask for more.
  #fill() {
    if (!this.log.isScrollable()) this.loadOlder();
  }

  #updateLoadOlder() {
    const conversation = this.state.open;
    this.loadOlderButton.hidden = !(conversation.loaded && conversation.hasMore);
  }

  #showError(error, peer) {
    if (error instanceof ApiError && error.signedOut) {
      this.onSignedOut();
    } else if (error instanceof ApiError && error.status === 404) {
      setNote(this.note, `User ${peer} was not found`);
    } else {
      setNote(this.note, 'Could not load messages. Open the conversation again to retry.');
    }
  }
}
