// Entry point: finds the page's elements and wires state, socket, rendering and composer together.

import { Api, ApiError } from './api.js';
import { Composer } from './composer.js';
import { ConversationView } from './conversation.js';
import {
  createConversationItem,
  createPersonItem,
  setNote,
  syncKeyedList,
  updateConversationItem,
} from './render.js';
import { ChatSocket, CloseReason, ConnState } from './socket.js';
import { ALL, ChatState } from './state.js';

const TYPING_SHOWN_MS = 4000;

function socketUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}${path}`;
}

function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`chat page: #${id} is missing`);
  return el;
}

/** A MESSAGE from a message frame, without the frame-only fields. */
function toMessage(frame) {
  const { id, sender, recipient, text, sent_at: sentAt } = frame;
  if (!Number.isInteger(id) || typeof sender !== 'string' || typeof recipient !== 'string') return null;
  if (typeof text !== 'string') return null;
  return { id, sender, recipient, text, sent_at: sentAt };
}

class ChatApp {
  constructor(root) {
    this.me = root.dataset.username;
    this.loginUrl = root.dataset.loginUrl;
    this.state = new ChatState(this.me);
    this.api = new Api({
      messagesUrl: root.dataset.messagesUrl,
      conversationsUrl: root.dataset.conversationsUrl,
    });
    this.dom = {
      conversations: byId('conversation-list'),
      newConversation: byId('new-conversation'),
      newConversationNote: byId('new-conversation-note'),
      online: byId('online-list'),
      onlineEmpty: byId('online-empty'),
      status: byId('connection-status'),
      connectionNote: byId('connection-note'),
      typing: byId('typing-indicator'),
    };
    this.typingTimers = new Map(); // sender -> timeout id
    this.socket = new ChatSocket(socketUrl(root.dataset.socketPath), {
      onFrame: (frame) => this.onFrame(frame),
      onState: (state, detail) => this.onConnectionState(state, detail),
      onCaughtUp: () => this.markOpenRead(),
      checkSignedIn: () => this.api.signedIn(),
    });
    this.view = new ConversationView({
      state: this.state,
      api: this.api,
      me: this.me,
      title: byId('conversation-title'),
      log: byId('message-log'),
      note: byId('log-note'),
      loadOlder: byId('load-older'),
      onSignedOut: () => this.socket.shutdown(CloseReason.SIGNED_OUT),
    });
    const textarea = byId('composer-text');
    this.composer = new Composer({
      form: byId('composer'),
      textarea,
      note: byId('composer-note'),
      socket: this.socket,
      getRecipient: () => this.state.openPeer,
      me: this.me,
    });
    this.textarea = textarea;
    this.bindEvents();
  }

  bindEvents() {
    const openFromList = (event) => {
      const button = event.target.closest('button[data-peer]');
      if (button) this.open(button.dataset.peer);
    };
    this.dom.conversations.addEventListener('click', openFromList);
    this.dom.online.addEventListener('click', openFromList);
    this.dom.newConversation.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter' || event.isComposing || event.keyCode === 229) return;
      event.preventDefault();
      this.startConversation(this.dom.newConversation.value.trim());
    });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.markOpenRead();
    });
    window.addEventListener('online', () => this.socket.reconnectNow());
  }

  async start() {
    let newest = null;
    try {
      const data = await this.api.conversations();
      newest = this.state.loadConversations(data.conversations);
    } catch (error) {
      if (error instanceof ApiError && error.signedOut) {
        this.socket.shutdown(CloseReason.SIGNED_OUT);
        return;
      }
      console.error('chat: could not load conversations', error);
    }
    this.renderOnline();
    this.open(ALL);
    this.socket.start(newest);
  }

  async open(peer, firstPage = null) {
    this.state.ensure(peer).unread = 0;
    this.composer.resetTyping();
    this.textarea.placeholder = peer === ALL ? 'Message everyone…' : `Message ${peer}…`;
    const opening = this.view.open(peer, firstPage);
    this.renderTyping();
    this.renderConversations();
    await opening;
    this.markOpenRead();
  }

  async startConversation(name) {
    const note = this.dom.newConversationNote;
    if (!name) return;
    if (name.toUpperCase() === ALL) name = ALL; // reserved in any case: it can only mean Everyone
    let firstPage = null;
    if (name !== ALL && !this.state.conversations.get(name)?.loaded) {
      try {
        firstPage = await this.api.history(name, { limit: 50 });
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          setNote(note, `User ${name} was not found`);
        } else if (error instanceof ApiError && error.signedOut) {
          this.socket.shutdown(CloseReason.SIGNED_OUT);
        } else {
          setNote(note, `Could not open a conversation with ${name}; try again`);
        }
        return;
      }
    }
    setNote(note, '');
    this.dom.newConversation.value = '';
    this.textarea.focus();
    await this.open(name, firstPage);
  }

  onFrame(frame) {
    switch (frame.type) {
      case 'hello':
        this.onHello(frame);
        break;
      case 'message':
        this.onMessage(frame);
        break;
      case 'response':
        if (frame.command === 'message') this.composer.onResponse(frame);
        break;
      case 'read':
        if (frame.reader === this.me) {
          this.state.applyOwnRead(frame.peer, frame.up_to);
          this.renderConversations();
        }
        break;
      case 'presence':
        this.state.updatePresence(frame.online, frame.offline);
        this.renderOnline();
        break;
      case 'typing':
        this.onTyping(frame.sender);
        break;
      case 'error':
        console.warn(`chat server error ${frame.code}: ${frame.detail}`);
        break;
      default:
        break;
    }
  }

  onHello(frame) {
    if (frame.user !== this.me) {
      // Another tab signed in as someone else; this page's account is gone.
      this.socket.shutdown(CloseReason.OTHER_USER);
      return;
    }
    this.state.setOnline(frame.online ?? []);
    this.renderOnline();
    this.composer.resendPending();
  }

  onMessage(frame) {
    const message = toMessage(frame);
    if (!message) return;
    const { conversation, added } = this.state.addMessage(message);
    if (!added) return; // a replay or a second delivery
    const mine = message.sender === this.me;
    if (conversation.peer === this.state.openPeer) {
      this.view.showNew(message, { mine });
      if (!mine && document.visibilityState !== 'visible') conversation.unread += 1;
      else if (!mine) this.markOpenRead();
    } else if (!mine) {
      conversation.unread += 1;
    }
    if (conversation.peer === message.sender) this.clearTyping(message.sender);
    this.renderConversations();
  }

  /** Opening or looking at a conversation reads it up to its newest message. */
  markOpenRead() {
    if (document.visibilityState !== 'visible') return;
    const conversation = this.state.open;
    conversation.unread = 0;
    const upTo = conversation.newestId();
    if (upTo > conversation.readSent) {
      if (this.socket.send({ type: 'read', peer: conversation.peer, up_to: upTo })) {
        conversation.readSent = upTo;
      }
    }
    this.renderConversations();
  }

  onTyping(sender) {
    if (typeof sender !== 'string' || sender === this.me) return;
    clearTimeout(this.typingTimers.get(sender));
    this.typingTimers.set(sender, setTimeout(() => this.clearTyping(sender), TYPING_SHOWN_MS));
    this.renderTyping();
  }

  clearTyping(sender) {
    if (!this.typingTimers.has(sender)) return;
    clearTimeout(this.typingTimers.get(sender));
    this.typingTimers.delete(sender);
    this.renderTyping();
  }

  renderTyping() {
    const peer = this.state.openPeer;
    const typing = peer !== ALL && this.typingTimers.has(peer);
    this.dom.typing.textContent = typing ? `${peer} is typing…` : '';
  }

  onConnectionState(state, { reason, reconnecting }) {
    const status = this.dom.status;
    const note = this.dom.connectionNote;
    status.dataset.state = state;
    if (state === ConnState.OPEN) {
      status.textContent = 'Connected';
      setNote(note, '');
    } else if (state === ConnState.CONNECTING) {
      status.textContent = reconnecting ? 'Reconnecting…' : 'Connecting…';
    } else if (state === ConnState.WAITING) {
      status.textContent = 'Reconnecting…';
    } else if (state === ConnState.CLOSED) {
      this.showClosed(reason);
    }
  }

  showClosed(reason) {
    const note = this.dom.connectionNote;
    const login = { text: 'Log in', href: `${this.loginUrl}?next=${encodeURIComponent(location.pathname)}` };
    if (reason === CloseReason.TOO_MANY) {
      this.dom.status.textContent = 'Disconnected';
      setNote(note, 'Too many chat windows are open. Close some, then reload this page.');
    } else if (reason === CloseReason.OTHER_USER) {
      this.dom.status.textContent = 'Signed out';
      setNote(note, 'This browser is now signed in as a different user.', { text: 'Reload', href: location.pathname });
    } else {
      this.dom.status.textContent = 'Signed out';
      setNote(note, 'You have been signed out.', login);
    }
  }

  renderConversations() {
    const { me, openPeer } = this.state;
    syncKeyedList(this.dom.conversations, this.state.ordered(), {
      key: (conversation) => conversation.peer,
      create: createConversationItem,
      update: (li, conversation) => updateConversationItem(li, conversation, { me, openPeer }),
    });
    const unread = this.state.totalUnread();
    document.title = unread > 0 ? `(${unread}) Chat` : 'Chat';
  }

  renderOnline() {
    const names = this.state.onlineSorted();
    syncKeyedList(this.dom.online, names, { key: (name) => name, create: createPersonItem, update: () => {} });
    this.dom.onlineEmpty.hidden = names.length > 0;
  }
}

const root = document.getElementById('chat');
if (root) new ChatApp(root).start();
