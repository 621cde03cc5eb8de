// Same-origin JSON API calls (the session cookie authenticates them).

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }

  get signedOut() {
    return this.status === 401 || this.status === 403;
  }
}

async function getJson(url) {
  const response = await fetch(url, {
    headers: { Accept: 'application/json' },
    credentials: 'same-origin',
    redirect: 'manual', // the API never redirects; a redirect means a login page
  });
  if (response.type === 'opaqueredirect') throw new ApiError(401, 'Signed out');
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body?.detail ?? body?.error ?? '');
  return body;
}

export class Api {
  constructor({ messagesUrl, conversationsUrl }) {
    this.messagesUrl = messagesUrl;
    this.conversationsUrl = conversationsUrl;
  }

  /** {messages: [MESSAGE ascending], has_more}; `before` is an exclusive id. */
  history(peer, { before = null, limit = 50 } = {}) {
    const params = new URLSearchParams({ peer, limit: String(limit) });
    if (before !== null) params.set('before', String(before));
    return getJson(`${this.messagesUrl}?${params}`);
  }

  /** {conversations: [{peer, last_message, unread}]}, newest first. */
  conversations() {
    return getJson(this.conversationsUrl);
  }

  /** true / false when the session is known to be signed in or out; null when the server is unreachable. */
  async signedIn() {
    try {
      await this.conversations();
      return true;
    } catch (error) {
      if (error instanceof ApiError) return error.signedOut ? false : null;
      return null; // network error: the server is down, not the session
    }
  }
}
