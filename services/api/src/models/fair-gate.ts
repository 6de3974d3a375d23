// Admits work by its cost (here: pixels to decode) up to a capacity, taking turns between tenants: while the
// capacity is used, waiting requests are queued per tenant and the tenants are served round robin, one request
// each in turn. A tenant with a backlog of heavy requests therefore delays another tenant's request by at most
// about one of its own, not by the whole backlog. One request larger than the capacity still runs, alone.
export class FairGate {
  private inUse = 0;
  /** Waiting requests per tenant; the Map's order is the order of turns. */
  private readonly waiting = new Map<string, { cost: number; go: () => void }[]>();

  constructor(readonly capacity: number) {}

  get used(): number {
    return this.inUse;
  }

  /** Resolves once the work may start, with the function that ends it (call it exactly once). */
  async acquire(tenant: string, cost: number): Promise<() => void> {
    if (this.waiting.size === 0 && this.fits(cost)) {
      this.inUse += cost;
    } else {
      await new Promise<void>((go) => {
        const q = this.waiting.get(tenant);
        if (q) q.push({ cost, go });
        else this.waiting.set(tenant, [{ cost, go }]);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse -= cost;
      this.drain();
    };
  }

  private fits(cost: number): boolean {
    return this.inUse === 0 || this.inUse + cost <= this.capacity;
  }

  private drain(): void {
    while (this.waiting.size > 0) {
      const [tenant, q] = this.waiting.entries().next().value as [string, { cost: number; go: () => void }[]];
      const next = q[0]!;
      if (!this.fits(next.cost)) return;
      q.shift();
      this.inUse += next.cost;
      // The tenant's turn is over: to the back of the line, if it has more waiting.
      this.waiting.delete(tenant);
      if (q.length) this.waiting.set(tenant, q);
      next.go();
    }
  }
}
