// Entry point: finds the page's elements and wires state, socket, rendering and composer together.

import { Api, ApiError } from './api.js';
import { Composer } from './composer.js';
import { ConversationView } from './conversation.js';
import { Notifier } from './notify.js';
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
// Below this width the conversation sits under the lists (see site.css).
const NARROW = window.matchMedia('(max-width: 699px)');
// Touch screens: focusing the composer would pop up the keyboard over the conversation.
const COARSE_POINTER = window.matchMedia('(pointer: coarse)');

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
      conversation: byId('conversation'),
      back: byId('conversations-back'),
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
    this.notifier = new Notifier({
      offer: byId('notifications-offer'),
      button: byId('enable-notifications'),
      note: byId('notifications-note'),
      onOpen: (peer) => this.choose(peer),
      focusAfter: textarea,
    });
    this.bindEvents();
  }

  bindEvents() {
    const openFromList = (event) => {
      const button = event.target.closest('button[data-peer]');
      if (button) this.choose(button.dataset.peer);
    };
    for (const list of [this.dom.conversations, this.dom.online]) {
      list.addEventListener('click', openFromList);
      list.addEventListener('keydown', (event) => moveInList(list, event));
    }
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

  /** The user picked a conversation from a list or a notification: open it and go there. */
  choose(peer) {
    const opening = this.open(peer);
    this.reveal({ focus: !COARSE_POINTER.matches });
    return opening;
  }

  /** Scroll the conversation into view where it sits under the lists; focus the composer. */
  reveal({ focus }) {
    if (NARROW.matches) this.dom.conversation.scrollIntoView({ block: 'start' });
    if (focus) this.textarea.focus({ preventScroll: NARROW.matches });
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
    const opening = this.open(name, firstPage);
    this.reveal({ focus: true }); // a keyboard typed the name: it goes on typing the message
    await opening;
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
    if (!mine && message.recipient === this.me) this.notifier.directMessage(message);
    if (conversation.peer === this.state.openPeer) {
      this.view.showNew(message, { mine });
      if (!mine && document.visibilityState !== 'visible') conversation.unread += 1;
      else if (!mine && !this.socket.isSyncing) this.markOpenRead(); // a replay: once, when caught up
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
    // On a phone the list is scrolled away: the way back says what waits there.
    this.dom.back.textContent = unread > 0 ? `All conversations (${unread} unread)` : 'All conversations';
  }

  renderOnline() {
    const names = this.state.onlineSorted();
    syncKeyedList(this.dom.online, names, { key: (name) => name, create: createPersonItem, update: () => {} });
    this.dom.onlineEmpty.hidden = names.length > 0;
  }
}

/** Up and Down arrows, Home and End move between the buttons of a list; Tab still leaves it. */
function moveInList(list, event) {
  if (!['ArrowDown', 'ArrowUp', 'Home', 'End'].includes(event.key)) return;
  const buttons = [...list.querySelectorAll('button[data-peer]')];
  const index = buttons.indexOf(event.target.closest('button[data-peer]'));
  if (index < 0) return;
  const next = {
    ArrowDown: Math.min(index + 1, buttons.length - 1),
    ArrowUp: Math.max(index - 1, 0),
    Home: 0,
    End: buttons.length - 1,
  }[event.key];
  event.preventDefault();
  buttons[next].focus();
}

const root = document.getElementById('chat');
if (root) new ChatApp(root).start();
