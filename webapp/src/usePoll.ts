// Load now and every `ms` while the page is shown; the error of the last load, or null.
import { useEffect, useState } from "react";
import { message } from "./api";

export function usePoll(load: () => Promise<void>, ms: number): string | null {
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let alive = true;
    const run = () =>
      load()
        .then(() => alive && setError(null))
        .catch((exc) => alive && setError(message(exc)));
    void run();
    const timer = window.setInterval(run, ms);
    return () => {
      alive = false;
      window.clearInterval(timer);
    };
  }, [load, ms]);
  return error;
}
