// Loads something from the API for a component: the value, the error, and a way to load it again.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { apiKey } from './api';
import { useSignal } from './signal';

export interface Resource<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => Promise<void>;
  /** Replaces the value in place, for live updates that arrive by other means. */
  mutate: (f: (prev: T | undefined) => T | undefined) => void;
}

export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Resource<T> {
  const key = useSignal(apiKey);
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const controller = useRef<AbortController | null>(null);

  const reload = useCallback(async () => {
    controller.current?.abort();
    const c = new AbortController();
    controller.current = c;
    setLoading(true);
    try {
      const v = await load(c.signal);
      if (c.signal.aborted) return;
      setData(v);
      setError(undefined);
    } catch (err) {
      if (c.signal.aborted) return;
      setError(err as Error);
    } finally {
      if (!c.signal.aborted) setLoading(false);
    }
    // The key is a dependency so that entering a key loads again.
  }, [...deps, key]);

  useEffect(() => {
    void reload();
    return () => controller.current?.abort();
  }, [reload]);

  return { data, error, loading, reload, mutate: (f) => setData((prev) => f(prev)) };
}
