// The benchmark's load generator: one workload per process, driven by bench/run.py.
//
// Usage: node loadgen.mjs CONFIG.json
// It prints "MARK <name>" lines and waits for one line on stdin after each, so the harness
// can sample CPU and memory at exactly that point; then "RESULT <json>" and exits.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const origin = `http://127.0.0.1:${config.port}`;
const wsUrl = `ws://127.0.0.1:${config.port}/ws/chat/`;
const cookieHeader = (user) => `${config.cookie_name}=${user.cookie}`;

const stdinLines = createInterface({ input: process.stdin });
const acks = [];
stdinLines.on('line', () => {
  const resolve = acks.shift();
  if (resolve) resolve();
});

/** Tell the harness where the workload is, and wait until it has sampled. */
function mark(name) {
  return new Promise((resolve) => {
    acks.push(resolve);
    process.stdout.write(`MARK ${name}\n`);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** Open a socket as `user`; resolves after the server's hello (the socket is ready). */
function connect(user, onFrame = () => {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, {
      headers: { Cookie: cookieHeader(user) },
      origin,
      perMessageDeflate: false,
      handshakeTimeout: 30000,
    });
    let ready = false;
    const timer = setTimeout(() => {
      if (!ready) {
        ws.terminate();
        reject(new Error(`no hello for ${user.username} within 30 s`));
      }
    }, 30000);
    ws.on('message', (data) => {
      const frame = JSON.parse(data);
      if (!ready) {
        if (frame.type === 'hello') {
          ready = true;
          clearTimeout(timer);
          resolve(ws);
        }
        return;
      }
      onFrame(frame);
    });
    ws.on('error', (error) => {
      if (!ready) {
        clearTimeout(timer);
        reject(error);
      }
    });
    ws.on('close', (code) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`socket of ${user.username} closed with ${code} before hello`));
      } else if (!ws.benchClosing) {
        unexpectedCloses.push(code);
      }
    });
  });
}

const unexpectedCloses = [];

/** Open sockets for `users` with at most `concurrency` handshakes in flight. */
async function connectAll(users, concurrency, onFrameFor = () => () => {}) {
  const sockets = new Array(users.length);
  let next = 0;
  async function worker() {
    while (next < users.length) {
      const index = next++;
      sockets[index] = await connect(users[index], onFrameFor(index));
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, users.length) }, worker));
  return sockets;
}

async function closeAll(sockets) {
  await Promise.all(
    sockets.filter(Boolean).map(
      (ws) =>
        new Promise((resolve) => {
          ws.benchClosing = true;
          if (ws.readyState === WebSocket.CLOSED) return resolve();
          const timer = setTimeout(() => {
            ws.terminate();
            resolve();
          }, 3000);
          ws.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          ws.close(1000);
        }),
    ),
  );
}

// A DM not received this long after its send counts as lost, and its sender sends the next one,
// so a server that drops messages (RedisChannelLayer over capacity) still has every pair busy.
const LOST_AFTER_MS = 3000;

// W1: pairs of users ping-pong DMs; one DM in flight per pair.
async function dmPingPong() {
  const { pairs, warmup_s: warmup, seconds } = config;
  const users = config.users.slice(0, 2 * pairs);
  const state = Array.from({ length: pairs }, () => ({ text: '', sentAt: 0, seq: 0, from: 0 }));
  let lost = 0;
  let lostInWindow = 0;
  const latencies = [];
  let measuring = false;
  let stopping = false;
  let delivered = 0;
  let badResponses = 0;
  const responseCodes = {};
  let sockets = [];

  function send(pairIndex, fromIndex) {
    const pair = state[pairIndex];
    const to = users[fromIndex ^ 1];
    pair.seq += 1;
    pair.text = `w1 pair ${pairIndex} dm ${pair.seq}`;
    pair.sentAt = performance.now();
    pair.from = fromIndex;
    sockets[fromIndex].send(JSON.stringify({ type: 'message', recipient: to.username, text: pair.text }));
  }

  const onFrameFor = (index) => (frame) => {
    const pairIndex = index >> 1;
    const pair = state[pairIndex];
    if (frame.type === 'response') {
      responseCodes[frame.code] = (responseCodes[frame.code] || 0) + 1;
      if (frame.code !== 200) badResponses += 1;
      return;
    }
    if (frame.type !== 'message' || frame.recipient !== users[index].username) return;
    if (frame.sender !== users[index ^ 1].username || frame.text !== pair.text) return;
    const now = performance.now();
    if (measuring) {
      latencies.push(now - pair.sentAt);
      delivered += 1;
    }
    if (!stopping) send(pairIndex, index);
  };

  sockets = await connectAll(users, 50, onFrameFor);
  await sleep(config.settle_s * 1000); // presence announcements of the new users settle
  for (let i = 0; i < pairs; i++) send(i, 2 * i);
  const watchdog = setInterval(() => {
    if (stopping) return;
    const now = performance.now();
    state.forEach((pair, pairIndex) => {
      if (now - pair.sentAt > LOST_AFTER_MS) {
        lost += 1;
        if (measuring) lostInWindow += 1;
        send(pairIndex, pair.from);
      }
    });
  }, 250);
  await sleep(warmup * 1000);
  await mark('start');
  measuring = true;
  const started = performance.now();
  await sleep(seconds * 1000);
  measuring = false;
  const elapsed = (performance.now() - started) / 1000;
  await mark('end');
  stopping = true;
  clearInterval(watchdog);
  await sleep(300);
  await closeAll(sockets);
  return {
    pairs,
    seconds: elapsed,
    dms: delivered,
    dms_per_s: delivered / elapsed,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
    lost_dms: lost,
    lost_dms_in_window: lostInWindow,
    bad_responses: badResponses,
    response_codes: responseCodes,
  };
}

// W2: one client posts to ALL; every connected client (the sender too) must receive it.
async function broadcast() {
  const { clients, repeats, warmup_posts: warmupPosts } = config;
  const users = config.users.slice(0, clients);
  let current = null;
  const onFrameFor = (index) => (frame) => {
    if (frame.type !== 'message' || current === null || frame.text !== current.text) return;
    if (current.seen[index]) return;
    current.seen[index] = 1;
    current.times.push(performance.now() - current.sentAt);
    if (current.times.length === clients) current.done();
  };
  const sockets = await connectAll(users, 50, onFrameFor);
  await sleep(config.settle_s * 1000); // presence announcements of the new users settle

  async function post(label) {
    const text = `w2 post ${label}`;
    const finished = new Promise((resolve) => {
      current = { text, seen: new Uint8Array(clients), times: [], sentAt: 0, done: resolve };
    });
    current.sentAt = performance.now();
    sockets[0].send(JSON.stringify({ type: 'message', recipient: 'ALL', text }));
    const timedOut = await Promise.race([finished.then(() => false), sleep(15000).then(() => true)]);
    const result = { times: current.times, missing: clients - current.times.length, timedOut };
    current = null;
    return result;
  }

  for (let i = 0; i < warmupPosts; i++) {
    await post(`warmup ${i}`);
    await sleep(100);
  }
  await mark('start');
  const posts = [];
  for (let i = 0; i < repeats; i++) {
    const { times, missing } = await post(i);
    const last = times.length ? Math.max(...times) : null;
    posts.push({
      last_ms: last,
      p50_ms: percentile(times, 50),
      deliveries_per_s: last ? (times.length / last) * 1000 : null,
      missing,
    });
    await sleep(100);
  }
  await mark('end');
  await closeAll(sockets);
  const lasts = posts.map((p) => p.last_ms).filter((v) => v !== null);
  const rates = posts.map((p) => p.deliveries_per_s).filter((v) => v !== null);
  return {
    clients,
    repeats,
    last_ms_p50: percentile(lasts, 50),
    last_ms_max: lasts.length ? Math.max(...lasts) : null,
    deliveries_per_s_p50: percentile(rates, 50),
    delivery_p50_ms: percentile(posts.map((p) => p.p50_ms).filter((v) => v !== null), 50),
    missing: posts.reduce((sum, p) => sum + p.missing, 0),
  };
}

// W3: open many sockets (handshakes/s), then hold them idle while the harness reads RSS.
async function idleSockets() {
  const { sockets: count, concurrency, warmup_sockets: warmupCount, idle_s: idle } = config;
  const users = config.users.slice(0, count);
  const warm = await connectAll(config.users.slice(0, warmupCount), 10);
  await closeAll(warm);
  await sleep(config.settle_s * 1000);
  await mark('start');
  const started = performance.now();
  const sockets = await connectAll(users, concurrency);
  const elapsed = (performance.now() - started) / 1000;
  await mark('end');
  await sleep(idle * 1000);
  await mark('idle');
  const closes = unexpectedCloses.length;
  await closeAll(sockets);
  return { sockets: count, seconds: elapsed, handshakes_per_s: count / elapsed, unexpected_closes: closes };
}

// W4: history at scale, one request at a time: latency, not throughput.
function httpGetJson(agent, user, path) {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port: config.port, path, agent, headers: { Cookie: cookieHeader(user) } },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => {
          if (response.statusCode !== 200) {
            reject(new Error(`GET ${path}: HTTP ${response.statusCode}`));
            return;
          }
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        });
      },
    );
    request.on('error', reject);
    request.setTimeout(30000, () => request.destroy(new Error(`GET ${path}: timeout`)));
  });
}

async function history() {
  const { requests, syncs, warmup: warmupCount, peer, sync_back: syncBack } = config;
  const user = config.users[0];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let waiting = null;
  let lastHello = null;
  const ws = await new Promise((resolve, reject) => {
    // connect() hides hello; this workload needs its last_id.
    const socket = new WebSocket(wsUrl, { headers: { Cookie: cookieHeader(user) }, origin, perMessageDeflate: false });
    socket.on('message', (data) => {
      const frame = JSON.parse(data);
      if (frame.type === 'hello') {
        lastHello = frame;
        resolve(socket);
      } else if (waiting) {
        waiting(frame);
      }
    });
    socket.on('error', reject);
  });
  const after = Math.max(0, lastHello.last_id - syncBack);

  function syncOnce() {
    return new Promise((resolve, reject) => {
      let count = 0;
      const started = performance.now();
      const timer = setTimeout(() => reject(new Error('sync: no synced within 30 s')), 30000);
      waiting = (frame) => {
        if (frame.type === 'message') count += 1;
        else if (frame.type === 'synced') {
          clearTimeout(timer);
          waiting = null;
          resolve({ ms: performance.now() - started, count, hasMore: frame.has_more });
        }
      };
      ws.send(JSON.stringify({ type: 'sync', after }));
    });
  }

  const paths = {
    history_dm: `/api/messages/?peer=${encodeURIComponent(peer)}`,
    history_all: '/api/messages/?peer=ALL',
    conversations: '/api/conversations/',
  };
  const checks = {};
  for (const [name, path] of Object.entries(paths)) {
    for (let i = 0; i < warmupCount; i++) {
      const body = await httpGetJson(agent, user, path);
      checks[name] = name === 'conversations' ? body.conversations.length : body.messages.length;
    }
  }
  for (let i = 0; i < warmupCount; i++) checks.sync = (await syncOnce()).count;

  await mark('start');
  const results = {};
  for (const [name, path] of Object.entries(paths)) {
    const times = [];
    for (let i = 0; i < requests; i++) {
      const started = performance.now();
      await httpGetJson(agent, user, path);
      times.push(performance.now() - started);
    }
    results[name] = { p50_ms: percentile(times, 50), p99_ms: percentile(times, 99), n: times.length };
  }
  const syncTimes = [];
  let syncCount = 0;
  let syncHasMore = null;
  for (let i = 0; i < syncs; i++) {
    const { ms, count, hasMore } = await syncOnce();
    syncTimes.push(ms);
    syncCount = count;
    syncHasMore = hasMore;
  }
  results.sync = { p50_ms: percentile(syncTimes, 50), p99_ms: percentile(syncTimes, 99), n: syncTimes.length };
  await mark('end');
  ws.benchClosing = true;
  ws.close(1000);
  agent.destroy();
  return {
    ...results,
    rows: checks,
    sync_after: after,
    sync_messages: syncCount,
    sync_has_more: syncHasMore,
  };
}

const workloads = { dm: dmPingPong, broadcast, idle: idleSockets, history };

try {
  const result = await workloads[config.workload]();
  result.unexpected_closes = result.unexpected_closes ?? unexpectedCloses.length;
  result.loadgen_cpu_s = (process.cpuUsage().user + process.cpuUsage().system) / 1e6;
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (error) {
  process.stderr.write(`loadgen ${config.workload} failed: ${error.stack || error}\n`);
  process.exit(1);
}
