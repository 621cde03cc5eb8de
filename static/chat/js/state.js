// Client-side model: conversations, their messages (deduplicated by id), unread counts, presence.

export const ALL = 'ALL';

/** The conversation a message belongs to, seen from `me`. */
export function peerOf(message, me) {
  if (message.recipient === ALL) return ALL;
  return message.sender === me ? message.recipient : message.sender;
}

export function displayName(peer) {
  return peer === ALL ? 'Everyone' : peer;
}

class Conversation {
  constructor(peer) {
    this.peer = peer;
    this.messages = new Map(); // id -> MESSAGE; a Map makes every insert idempotent
    this.unread = 0;
    this.last = null; // newest MESSAGE known
    this.loaded = false; // newest page of history fetched
    this.hasMore = true; // older history may exist on the server
    this.readSent = 0; // highest up_to already sent in a read frame
  }

  /** Add a message; true when it was not known before. */
  add(message) {
    if (this.messages.has(message.id)) return false;
    this.messages.set(message.id, message);
    if (!this.last || message.id > this.last.id) this.last = message;
    return true;
  }

  newestId() {
    return this.last ? this.last.id : 0;
  }

  oldestId() {
    let oldest = Infinity;
    for (const id of this.messages.keys()) oldest = Math.min(oldest, id);
    return oldest === Infinity ? null : oldest;
  }

  sorted() {
    return [...this.messages.values()].sort((a, b) => a.id - b.id);
  }
}

export class ChatState {
  constructor(me) {
    this.me = me;
    this.conversations = new Map(); // peer -> Conversation
    this.online = new Set();
    this.openPeer = ALL;
    this.ensure(ALL);
  }

  ensure(peer) {
    let conversation = this.conversations.get(peer);
    if (!conversation) {
      conversation = new Conversation(peer);
      this.conversations.set(peer, conversation);
    }
    return conversation;
  }

  get open() {
    return this.ensure(this.openPeer);
  }

  /** Seed from GET /api/conversations/; returns the newest message id it mentions. */
  loadConversations(list) {
    let newest = 0;
    for (const item of list) {
      const conversation = this.ensure(item.peer);
      conversation.unread = item.unread;
      if (item.last_message) {
        conversation.add(item.last_message);
        newest = Math.max(newest, item.last_message.id);
      }
    }
    return newest;
  }

  /** Store a message; returns its conversation and whether it was new. */
  addMessage(message) {
    const conversation = this.ensure(peerOf(message, this.me));
    return { conversation, added: conversation.add(message) };
  }

  /** Conversations with the newest message first; empty ones keep their creation order at the end. */
  ordered() {
    const list = [...this.conversations.values()];
    return list
      .map((conversation, index) => ({ conversation, index }))
      .sort((a, b) => b.conversation.newestId() - a.conversation.newestId() || a.index - b.index)
      .map(({ conversation }) => conversation);
  }

  totalUnread() {
    let total = 0;
    for (const conversation of this.conversations.values()) total += conversation.unread;
    return total;
  }

  /** Another tab of mine read `peer` up to `upTo`. */
  applyOwnRead(peer, upTo) {
    const conversation = this.conversations.get(peer);
    if (!conversation) return;
    let stillUnread = 0;
    for (const message of conversation.messages.values()) {
      if (message.id > upTo && message.sender !== this.me) stillUnread += 1;
    }
    // Messages older than this page's history are not in memory, so only ever lower the count.
    conversation.unread = Math.min(conversation.unread, stillUnread);
    conversation.readSent = Math.max(conversation.readSent, upTo);
  }

  setOnline(names) {
    this.online = new Set(names.filter((name) => name !== this.me));
  }

  updatePresence(online = [], offline = []) {
    for (const name of offline) this.online.delete(name);
    for (const name of online) if (name !== this.me) this.online.add(name);
  }

  onlineSorted() {
    return [...this.online].sort((a, b) => a.localeCompare(b));
  }
}
