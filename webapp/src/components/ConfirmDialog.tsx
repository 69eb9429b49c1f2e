// A modal <dialog> (focus kept inside, Escape cancels) that asks before a channel moves.
// Moving production also needs the "I read the evidence" box ticked: the API refuses
// it without confirm=true, and this is where a person gives it.
import { useEffect, useRef, useState, type FormEvent, type ReactNode } from "react";

export interface Ask {
  title: string;
  body: ReactNode;
  evidence?: string[];
  needsConfirm: boolean;
  action: string;
  run: (reason: string) => Promise<void>;
}

export default function ConfirmDialog({ ask, onClose }: { ask: Ask | null; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState("");
  const [read, setRead] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (ask && !d.open) {
      setReason("");
      setRead(false);
      setError(null);
      d.showModal();
    } else if (!ask && d.open) d.close();
  }, [ask]);

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!ask) return;
    setBusy(true);
    setError(null);
    try {
      await ask.run(reason.trim());
      onClose();
    } catch (exc) {
      setError(String(exc instanceof Error ? exc.message : exc));
    } finally {
      setBusy(false);
    }
  }

  return (
    <dialog ref={ref} onClose={onClose} aria-labelledby="confirm-title">
      {ask && (
        <form onSubmit={submit}>
          <h2 id="confirm-title">{ask.title}</h2>
          <div>{ask.body}</div>
          {ask.evidence && ask.evidence.length > 0 && (
            <>
              <h3>Evidence</h3>
              <ul className="evidence">
                {ask.evidence.map((line, i) => (
                  <li key={i}>{line}</li>
                ))}
              </ul>
            </>
          )}
          <label htmlFor="move-reason">Reason (recorded with your key's name)</label>
          <textarea id="move-reason" required minLength={3} value={reason} onChange={(e) => setReason(e.target.value)} />
          {ask.needsConfirm && (
            <label className="toggle">
              <input type="checkbox" required checked={read} onChange={(e) => setRead(e.target.checked)} />I read the
              evidence; this is my decision
            </label>
          )}
          {error && (
            <p role="alert" className="error">
              {error}
            </p>
          )}
          <div className="buttons">
            <button type="button" onClick={onClose}>
              Cancel
            </button>
            <button type="submit" className="primary" disabled={busy}>
              {busy ? "Working…" : ask.action}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}
