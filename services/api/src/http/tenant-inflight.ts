// How many requests of one kind a tenant may have in flight at once in this API process (/predict, dataset
// ingest, event streams): one tenant's burst of heavy requests waits its turn instead of taking every decode thread and all the
// memory from the others. Past the limit the request is refused with 429 before its body is read.
import type { FastifyReply, FastifyRequest, onRequestAbortHookHandler, onRequestHookHandler, onResponseHookHandler } from 'fastify';
import { ApiError } from '../errors';

export class TenantInflight {
  private readonly counts = new Map<string, number>();
  private readonly holding = new WeakSet<FastifyRequest>();

  constructor(
    readonly limit: number,
    /** What is counted and the variable that sets the limit, for the error message. */
    private readonly what: string,
    private readonly variable: string,
  ) {}

  inFlight(tenant: string): number {
    return this.counts.get(tenant) ?? 0;
  }

  /** Counts the request, or throws 429 where the tenant is at the limit. */
  enter(req: FastifyRequest): void {
    const n = this.inFlight(req.tenant);
    if (n >= this.limit) {
      throw new ApiError('RATE_LIMITED', `at most ${this.limit} ${this.what} of one tenant at a time (${this.variable}); retry when one has finished`, {
        limit: this.limit,
      });
    }
    this.counts.set(req.tenant, n + 1);
    this.holding.add(req);
  }

  /** Stops counting the request; any later call does nothing. */
  leave(req: FastifyRequest): void {
    if (!this.holding.delete(req)) return;
    const n = this.inFlight(req.tenant) - 1;
    if (n > 0) this.counts.set(req.tenant, n);
    else this.counts.delete(req.tenant);
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
