// HTTP as an abusive client sends it: bodies streamed from a generator (counting what the server let through),
// bytes trickled onto a raw socket, and the peak memory of a server process.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';

export interface StreamedResponse {
  status: number;
  body: string;
  /** Body bytes the client had handed to the socket when the answer came (or the socket closed). */
  sent: number;
}

/**
 * POSTs a body produced chunk by chunk, stopping as soon as the server answers or closes: a server that refuses
 * early is seen to have read little of it.
 */
export function postStream(
  base: string,
  path: string,
  headers: Record<string, string | number>,
  chunks: Iterable<Buffer>,
): Promise<StreamedResponse> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    let sent = 0;
    let answered = false;
    const req = http.request(url, { method: 'POST', headers, agent: false });
    // next() by hand: leaving a for-of loop would close the generator.
    const pump = () => {
      for (let next = iterator.next(); !next.done; next = iterator.next()) {
        if (answered || req.destroyed) return;
        sent += next.value.length;
        if (!req.write(next.value)) return void req.once('drain', pump);
      }
      req.end();
    };
    const iterator = chunks[Symbol.iterator]();
    req.on('response', (res) => {
      answered = true;
      const at = sent;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body, sent: at });
        req.destroy();
      });
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body, sent: at }));
    });
    req.on('error', (err) => (answered ? undefined : reject(new Error(`POST ${path}: ${err.message} after ${sent} bytes sent`, { cause: err }))));
    pump();
  });
}

/** `count` parts of `partBytes` zero bytes each, as multipart/form-data file fields named `field`. */
export function* multipartZeros(boundary: string, field: string, count: number, partBytes: number, chunk = 1 << 20): Generator<Buffer> {
  const zeros = Buffer.alloc(chunk);
  for (let i = 0; i < count; i++) {
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${i}.png"\r\nContent-Type: image/png\r\n\r\n`);
    for (let left = partBytes; left > 0; left -= chunk) yield left >= chunk ? zeros : zeros.subarray(0, left);
    yield Buffer.from('\r\n');
  }
  yield Buffer.from(`--${boundary}--\r\n`);
}

export function multipartLength(boundary: string, field: string, count: number, partBytes: number): number {
  let n = 0;
  for (const c of multipartZeros(boundary, field, count, 0)) n += c.length;
  return n + count * partBytes;
}

export interface RawExchange {
  /** Everything the server wrote. */
  received: string;
  /** Whether the server closed the connection (rather than the test giving up). */
  closedByServer: boolean;
}

/**
 * Writes `head` to a raw socket, then one byte of `trickle` every `everyMs` until the server closes the
 * connection or `giveUpMs` passes.
 */
export function trickle(port: number, head: string, opts: { trickle?: string; everyMs: number; giveUpMs: number }): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    let timer: NodeJS.Timeout | undefined;
    let i = 0;
    const body = opts.trickle ?? 'x'.repeat(1_000_000);
    const done = (closedByServer: boolean) => {
      clearInterval(timer);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ received, closedByServer });
    };
    const giveUp = setTimeout(() => done(false), opts.giveUpMs);
    socket.on('data', (d) => (received += d.toString('latin1')));
    socket.on('end', () => done(true));
    socket.on('close', () => done(true));
    socket.on('error', () => done(true));
    socket.on('connect', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (i < body.length && socket.writable) socket.write(body[i++]!);
      }, opts.everyMs);
    });
  });
}

/** Peak resident memory (VmHWM) of a process, in bytes, from /proc. */
export function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM for process ${pid}`);
  return Number(m[1]) * 1024;
}
