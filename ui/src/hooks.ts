import { useEffect, useState } from "preact/hooks";
import { ApiError } from "./api";

/** performance.now(), refreshed every `every` ms while `active`. */
export function useNow(active: boolean, every = 100): number {
  const [now, setNow] = useState(performance.now());
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(performance.now()), every);
    return () => clearInterval(t);
  }, [active, every]);
  return now;
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/** Load `fetcher()` now, whenever `deps` change, and every `poll` ms when given. */
export function useLoad<T>(fetcher: (signal: AbortSignal) => Promise<T>, deps: unknown[], poll?: number): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctrl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const value = await fetcher(ctrl.signal);
        setData(value);
        setError(null);
      } catch (err) {
        if (ctrl.signal.aborted) return;
        setError(err instanceof ApiError || err instanceof Error ? err.message : String(err));
      } finally {
        if (!ctrl.signal.aborted) {
          setLoading(false);
          if (poll) timer = setTimeout(run, poll);
        }
      }
    };
    setLoading(true);
    void run();
    return () => {
      ctrl.abort();
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  return { data, error, loading, reload: () => setTick((t) => t + 1) };
}
