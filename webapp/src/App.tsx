// The shell: an API key first (checked against the server), then five pages chosen by
// the address's #fragment, so a page can be bookmarked and Back works.
import { useEffect, useState, type FormEvent } from "react";
import { ApiFailure, get, message, saveKey, savedKey, type Me } from "./api";
import PredictPage from "./pages/PredictPage";
import ModelsPage from "./pages/ModelsPage";
import LivePage from "./pages/LivePage";
import MonitoringPage from "./pages/MonitoringPage";
import JobsPage from "./pages/JobsPage";

const PAGES = [
  { id: "predict", title: "Predict", scope: "predict" },
  { id: "models", title: "Models", scope: "read" },
  { id: "live", title: "Live", scope: "read" },
  { id: "monitoring", title: "Monitoring", scope: "read" },
  { id: "jobs", title: "Jobs", scope: null },
] as const;
type PageId = (typeof PAGES)[number]["id"];

function pageFromHash(): PageId {
  const id = window.location.hash.replace(/^#\/?/, "");
  return PAGES.some((p) => p.id === id) ? (id as PageId) : "predict";
}

function KeyForm({ onKey }: { onKey: (me: Me) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    saveKey(key.trim());
    try {
      onKey(await get<Me>("/v1/me"));
    } catch (exc) {
      saveKey(null);
      setError(exc instanceof ApiFailure && exc.status === 401 ? "This key is unknown or revoked." : message(exc));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="signin">
      <h1>Hades Perception</h1>
      <form onSubmit={submit} aria-describedby="key-help">
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          required
          value={key}
          onChange={(e) => setKey(e.target.value)}
        />
        <p id="key-help" className="help">
          Make one with <code>hades-perception keys create NAME --scopes read,predict</code>. It is kept in this
          browser tab only.
        </p>
        <button type="submit" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

export default function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState(savedKey() !== null);
  const [page, setPage] = useState<PageId>(pageFromHash());

  useEffect(() => {
    const onHash = () => setPage(pageFromHash());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    if (!savedKey()) return;
    get<Me>("/v1/me")
      .then(setMe)
      .catch(() => saveKey(null))
      .finally(() => setChecking(false));
  }, []);

  useEffect(() => {
    const title = PAGES.find((p) => p.id === page)?.title;
    document.title = `${title} · Hades Perception`;
  }, [page]);

  if (checking) return <p className="loading">Checking the saved key…</p>;
  if (!me) return <KeyForm onKey={setMe} />;

  const allowed = (scope: string | null) => scope === null || me.scopes.includes(scope);
  const current = PAGES.find((p) => p.id === page)!;
  return (
    <>
      <a className="skip" href="#content">
        Skip to content
      </a>
      <header>
        <span className="brand">Hades Perception</span>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.id}>
                <a href={`#/${p.id}`} aria-current={p.id === page ? "page" : undefined}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span className="who">
          {me.name} ({me.scopes.join(", ")})
          <button
            type="button"
            className="link"
            onClick={() => {
              saveKey(null);
              setMe(null);
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      <main id="content" tabIndex={-1}>
        <h1>{current.title}</h1>
        {!allowed(current.scope) ? (
          <p role="alert" className="error">
            Your key lacks the scope “{current.scope}” this page needs.
          </p>
        ) : page === "predict" ? (
          <PredictPage />
        ) : page === "models" ? (
          <ModelsPage canPromote={me.scopes.includes("promote")} />
        ) : page === "live" ? (
          <LivePage />
        ) : page === "monitoring" ? (
          <MonitoringPage />
        ) : (
          <JobsPage />
        )}
      </main>
    </>
  );
}
