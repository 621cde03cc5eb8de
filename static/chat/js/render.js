// DOM building. Anything a user wrote goes in through textContent, never as HTML.

import { ALL, displayName } from './state.js';

const PREVIEW_CHARS = 80;
let idCounter = 0;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function uniqueId(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A Date from the server's ISO string; some engines reject more than 3 fraction digits. */
export function parseTime(iso) {
  return new Date(String(iso).replace(/(\.\d{3})\d+/, '$1'));
}

/** Time of day for today's messages, date and time for older ones, in the reader's locale. */
export function formatTime(iso) {
  const date = parseTime(iso);
  if (Number.isNaN(date.getTime())) return '';
  const now = new Date();
  if (date.toDateString() === now.toDateString()) {
    return date.toLocaleTimeString(undefined, { hour: 'numeric', minute: '2-digit' });
  }
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function messageElement(message, me) {
  const mine = message.sender === me;
  const item = element('article', mine ? 'msg msg--mine' : 'msg');
  item.dataset.id = String(message.id);

  const meta = element('p', 'msg__meta');
  const sender = element('span', 'msg__sender', message.sender);
  const time = element('time', 'msg__time', formatTime(message.sent_at));
  time.dateTime = message.sent_at;
  const full = parseTime(message.sent_at);
  if (!Number.isNaN(full.getTime())) time.title = full.toLocaleString();
  meta.append(sender, ' ', time);

  const text = element('p', 'msg__text', message.text);
  item.append(meta, text);
  return item;
}

/** The role=log element: keeps message nodes in id order, one per id. */
export class LogView {
  constructor(el, me) {
    this.el = el;
    this.me = me;
    this.nodes = new Map();
  }

  clear() {
    this.el.replaceChildren();
    this.nodes.clear();
  }

  has(id) {
    return this.nodes.has(id);
  }

  /** Insert in id order; new messages nearly always belong at the end, so walk from there. */
  insert(message) {
    if (this.nodes.has(message.id)) return false;
    const node = messageElement(message, this.me);
    let before = null;
    for (let child = this.el.lastElementChild; child; child = child.previousElementSibling) {
      if (Number(child.dataset.id) < message.id) break;
      before = child;
    }
    this.el.insertBefore(node, before);
    this.nodes.set(message.id, node);
    return true;
  }

  /** Insert older messages above without moving what the reader is looking at. */
  prepend(messages) {
    const fromBottom = this.el.scrollHeight - this.el.scrollTop;
    this.el.setAttribute('aria-busy', 'true'); // one announcement, not one per old message
    for (const message of messages) this.insert(message);
    this.el.scrollTop = this.el.scrollHeight - fromBottom;
    this.el.setAttribute('aria-busy', 'false');
  }

  /** Insert a batch (e.g. the newest page); stay at the bottom if the reader was there. */
  insertMany(messages) {
    const stick = this.isNearBottom();
    this.el.setAttribute('aria-busy', 'true');
    for (const message of messages) this.insert(message);
    if (stick) this.scrollToBottom();
    this.el.setAttribute('aria-busy', 'false');
  }

  /** Replace everything, e.g. when another conversation opens. */
  reset(messages) {
    this.clear();
    this.insertMany(messages);
    this.scrollToBottom();
  }

  isNearBottom() {
    return this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 80;
  }

  scrollToBottom() {
    this.el.scrollTop = this.el.scrollHeight;
  }

  isScrollable() {
    return this.el.scrollHeight > this.el.clientHeight + 1;
  }
}

/**
 * Make `list` hold one <li> per key, in order, reusing existing nodes so that a focused
 * button keeps focus when entries are reordered.
 */
export function syncKeyedList(list, entries, { key, create, update }) {
  const focused = document.activeElement;
  const existing = new Map();
  for (const li of list.children) existing.set(li.dataset.key, li);
  const wanted = new Set();
  entries.forEach((entry, index) => {
    const k = key(entry);
    wanted.add(k);
    let li = existing.get(k);
    if (!li) {
      li = create(entry);
      li.dataset.key = k;
    }
    update(li, entry);
    if (list.children[index] !== li) list.insertBefore(li, list.children[index] ?? null);
  });
  for (const [k, li] of existing) if (!wanted.has(k)) li.remove();
  if (focused && focused !== document.activeElement && list.contains(focused)) {
    focused.focus({ preventScroll: true });
  }
}

function previewText(conversation, me) {
  const last = conversation.last;
  if (!last) return 'No messages yet';
  const flat = last.text.replace(/\s+/g, ' ').trim();
  const short = [...flat].length > PREVIEW_CHARS ? `${[...flat].slice(0, PREVIEW_CHARS).join('')}…` : flat;
  if (last.sender === me) return `You: ${short}`;
  return conversation.peer === ALL ? `${last.sender}: ${short}` : short;
}

export function createConversationItem(conversation) {
  const li = element('li', 'conv-list__item');
  const button = element('button', 'conv');
  button.type = 'button';
  button.dataset.peer = conversation.peer;
  // The accessible name is exactly the peer, from the one part not hidden from the tree, so
  // the name is also the visible label (WCAG 2.5.3, no aria-label). Count and preview are
  // the description: hidden themselves so a screen reader does not say them twice.
  const badge = element('span', 'conv__badge');
  badge.id = uniqueId('conv-unread');
  const preview = element('span', 'conv__preview');
  preview.id = uniqueId('conv-preview');
  for (const part of [badge, preview]) part.setAttribute('aria-hidden', 'true');
  button.setAttribute('aria-describedby', `${badge.id} ${preview.id}`);
  button.append(element('span', 'conv__name', displayName(conversation.peer)), badge, preview);
  li.append(button);
  return li;
}

export function updateConversationItem(li, conversation, { me, openPeer }) {
  const button = li.firstElementChild;
  const [, badge, preview] = button.children;
  const unread = conversation.unread;
  badge.hidden = unread === 0;
  if (unread > 0) {
    badge.replaceChildren(String(unread), element('span', 'visually-hidden', ' unread'));
  } else {
    badge.replaceChildren();
  }
  preview.textContent = previewText(conversation, me);
  button.classList.toggle('conv--unread', unread > 0);
  if (conversation.peer === openPeer) button.setAttribute('aria-current', 'true');
  else button.removeAttribute('aria-current');
}

export function createPersonItem(name) {
  const li = element('li', 'people-list__item');
  const button = element('button', 'person', name);
  button.type = 'button';
  button.dataset.peer = name;
  li.append(button);
  return li;
}

/**
 * Put `text` (and an optional link) in a note; '' empties it. Notes stay in the page while
 * empty (CSS collapses them) because screen readers ignore live regions that appear late.
 */
export function setNote(el, text, link = null) {
  el.replaceChildren();
  if (text) el.append(text);
  if (link) {
    const anchor = element('a', null, link.text);
    anchor.href = link.href;
    el.append(' ', anchor);
  }
}
