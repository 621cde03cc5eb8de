// Desktop notifications for new direct messages while the tab is hidden, once the user allows them.

import { setNote } from './render.js';

const BODY_CHARS = 140;

function supported() {
  return typeof window.Notification === 'function';
}

function shorten(text) {
  const flat = text.replace(/\s+/g, ' ').trim();
  const chars = [...flat];
  return chars.length > BODY_CHARS ? `${chars.slice(0, BODY_CHARS).join('')}…` : flat;
}

export class Notifier {
  /**
   * offer: the element holding the "Enable notifications" button; note: where a refusal is
   * explained; onOpen(peer) when a notification is clicked; focusAfter: where focus goes once
   * the offer has gone.
   */
  constructor({ offer, button, note, onOpen, focusAfter }) {
    this.offer = offer;
    this.button = button;
    this.note = note;
    this.onOpen = onOpen;
    this.focusAfter = focusAfter;
    // Browsers only ask for permission from a user gesture, so only this button asks.
    button.addEventListener('click', () => this.enable());
    this.render();
  }

  render() {
    this.offer.hidden = !(supported() && Notification.permission === 'default');
  }

  async enable() {
    let result;
    try {
      result = await Notification.requestPermission();
    } catch {
      result = Notification.permission;
    }
    this.render();
    if (result === 'denied') {
      setNote(this.note, "Notifications are blocked: allow them in the browser's site settings.");
    }
    if (this.offer.hidden) this.focusAfter.focus();
  }

  /** A new direct message to me arrived; tell the desktop if nobody is looking at the tab. */
  directMessage(message) {
    if (!supported() || Notification.permission !== 'granted') return;
    if (document.visibilityState === 'visible') return;
    let notification;
    try {
      notification = new Notification(message.sender, {
        body: shorten(message.text),
        tag: `chat-dm-${message.sender}`, // one per sender: a newer message replaces the older
      });
    } catch {
      return; // e.g. Android Chrome allows them only from a service worker
    }
    notification.addEventListener('click', () => {
      window.focus();
      this.onOpen(message.sender);
      notification.close();
    });
  }
}
