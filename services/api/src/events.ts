// One Redis subscriber per API process, shared by every SSE stream: channels are reference-counted.
import type { Redis } from 'ioredis';

type Listener = (message: string) => void;

export class EventHub {
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(private readonly subscriber: Redis) {
    subscriber.on('message', (channel: string, message: string) => {
      for (const l of this.listeners.get(channel) ?? []) l(message);
    });
  }

  /** Subscribes; resolves once Redis confirms, and returns the function that unsubscribes. */
  async subscribe(channel: string, listener: Listener): Promise<() => void> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    set.add(listener);
    await this.subscriber.subscribe(channel);
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      set!.delete(listener);
      if (set!.size === 0) {
        this.listeners.delete(channel);
        void this.subscriber.unsubscribe(channel).catch(() => {});
      }
    };
  }
}
