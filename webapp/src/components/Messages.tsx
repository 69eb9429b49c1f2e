// The two kinds of message every page shows: an error (announced at once) and a status
// line (announced politely, and kept in place so the layout does not jump).
export function ErrorAlert({ error }: { error: string | null }) {
  return error ? (
    <p role="alert" className="error">
      {error}
    </p>
  ) : null;
}

export function StatusLine({ status }: { status: string }) {
  return (
    <p role="status" aria-live="polite" className="status">
      {status}
    </p>
  );
}
