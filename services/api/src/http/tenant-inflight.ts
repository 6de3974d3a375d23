// How many requests of one kind a tenant may have in flight at once in this API process (/predict, dataset
// ingest, event streams): one tenant's burst of heavy requests waits its turn instead of taking every decode thread and all the
// memory from the others. Past the limit a request waits for a slot, in arrival order, where the kind has a queue and
// it has room (/predict: a few dozen clients of one tenant are served in turn instead of being refused); otherwise it
// is refused with 429 and Retry-After. Either way its body is not read until it has a slot: a waiting request holds
// its socket and the little the socket has buffered, not its body.
import type { FastifyReply, FastifyRequest, onRequestAbortHookHandler, onRequestHookHandler, onResponseHookHandler } from 'fastify';
import { ApiError } from '../errors';

/** Seconds a refused client is told to wait before it retries. */
const RETRY_AFTER_SECONDS = 1;

interface Waiter {
  req: FastifyRequest;
  admit(): void;
  abandon(err: Error): void;
}

export class TenantInflight {
  private readonly counts = new Map<string, number>();
  private readonly holding = new WeakSet<FastifyRequest>();
  /** Requests waiting for a slot, per tenant, in arrival order. */
  private readonly waiting = new Map<string, Waiter[]>();

  constructor(
    readonly limit: number,
    /** What is counted and the variable that sets the limit, for the error message. */
    private readonly what: string,
    private readonly variable: string,
    /** Requests of one tenant that may wait for a slot (0: none, the limit refuses at once); and its variable. */
    readonly queue: { size: number; variable: string } = { size: 0, variable: '' },
  ) {}

  inFlight(tenant: string): number {
    return this.counts.get(tenant) ?? 0;
  }

  /** Counts the request, waits for a slot where the queue has room, or throws 429. */
  async enter(req: FastifyRequest): Promise<void> {
    const n = this.inFlight(req.tenant);
    if (n < this.limit) {
      this.counts.set(req.tenant, n + 1);
      this.holding.add(req);
      return;
    }
    const queue = this.waiting.get(req.tenant) ?? [];
    if (queue.length >= this.queue.size) {
      const waits = this.queue.size > 0 ? ` and ${this.queue.size} more waiting (${this.queue.variable})` : '';
      throw new ApiError('RATE_LIMITED', `at most ${this.limit} ${this.what} of one tenant at a time (${this.variable})${waits}; retry when one has finished`, {
        limit: this.limit,
        ...(this.queue.size > 0 ? { queue: this.queue.size } : {}),
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      });
    }
    await new Promise<void>((admit, abandon) => {
      queue.push({ req, admit, abandon });
      this.waiting.set(req.tenant, queue);
    });
  }

  /** Stops counting the request (its slot goes to the tenant's first waiting request), or drops it from the queue; any later call does nothing. */
  leave(req: FastifyRequest): void {
    if (this.holding.delete(req)) {
      const next = this.dequeue(req.tenant);
      if (next) {
        // The slot passes on: the count stays.
        this.holding.add(next.req);
        next.admit();
        return;
      }
      const n = this.inFlight(req.tenant) - 1;
      if (n > 0) this.counts.set(req.tenant, n);
      else this.counts.delete(req.tenant);
      return;
    }
    const queue = this.waiting.get(req.tenant);
    const i = queue?.findIndex((w) => w.req === req) ?? -1;
    if (i < 0) return;
    const [gone] = queue!.splice(i, 1);
    if (queue!.length === 0) this.waiting.delete(req.tenant);
    gone!.abandon(new ApiError('ABORTED', `the client went away while its request waited for one of the ${this.what} slots`));
  }

  private dequeue(tenant: string): Waiter | undefined {
    const queue = this.waiting.get(tenant);
    const next = queue?.shift();
    if (queue && queue.length === 0) this.waiting.delete(tenant);
    return next;
  }

  /** Route hooks: counted from the request's arrival (after authentication) until its answer or abort. */
  hooks(): { onRequest: onRequestHookHandler; onResponse: onResponseHookHandler; onRequestAbort: onRequestAbortHookHandler } {
    return {
      onRequest: async (req: FastifyRequest) => this.enter(req),
      onResponse: async (req: FastifyRequest, _reply: FastifyReply) => this.leave(req),
      onRequestAbort: async (req: FastifyRequest) => this.leave(req),
    };
  }
}
