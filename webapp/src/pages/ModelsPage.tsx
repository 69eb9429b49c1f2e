// Models in the store: channels and their history, versions, a version's metrics,
// lineage and records; promote and roll back, each after a confirmation dialog.
import { ErrorAlert, StatusLine } from "../components/Messages";
import { useCallback, useEffect, useState } from "react";
import { ApiFailure, get, message, post, type ModelDetail, type VersionDetail } from "../api";
import ConfirmDialog, { type Ask } from "../components/ConfirmDialog";

const PRODUCTION = "production";
const CHANNELS = ["canary", PRODUCTION];

interface ModelList {
  source: string;
  location: string;
  models: { name: string; serving: string | null }[];
}

/** Numbers worth a glance from a manifest's metrics (nested dicts flattened a level). */
function headline(metrics: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = [];
  const walk = (prefix: string, v: unknown, depth: number) => {
    if (typeof v === "number") out.push([prefix, Number.isInteger(v) ? String(v) : v.toFixed(4)]);
    else if (typeof v === "string" || typeof v === "boolean") out.push([prefix, String(v)]);
    else if (v && typeof v === "object" && depth < 2)
      for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x, depth + 1);
  };
  walk("", metrics, 0);
  return out.slice(0, 40);
}

export default function ModelsPage({ canPromote }: { canPromote: boolean }) {
  const [list, setList] = useState<ModelList | null>(null);
  const [name, setName] = useState<string | null>(null);
  const [detail, setDetail] = useState<ModelDetail | null>(null);
  const [version, setVersion] = useState<VersionDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState("");
  const [ask, setAsk] = useState<Ask | null>(null);
  const [target, setTarget] = useState({ version: "", channel: "canary" });

  useEffect(() => {
    get<ModelList>("/v1/models")
      .then((l) => {
        setList(l);
        if (l.models.length) setName(l.models[0].name);
      })
      .catch((exc) => setError(message(exc)));
  }, []);

  const load = useCallback(async (model: string) => {
    try {
      const d = await get<ModelDetail>(`/v1/models/${encodeURIComponent(model)}`);
      setDetail(d);
      const latest = d.versions[d.versions.length - 1]?.version ?? "";
      setTarget((t) => ({ ...t, version: t.version && d.versions.some((v) => v.version === t.version) ? t.version : latest }));
    } catch (exc) {
      setError(message(exc));
    }
  }, []);

  useEffect(() => {
    if (name) void load(name);
  }, [name, load]);

  async function show(v: string) {
    if (!name) return;
    try {
      setVersion(await get<VersionDetail>(`/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(v)}`));
    } catch (exc) {
      setError(message(exc));
    }
  }

  async function askPromote() {
    if (!name || !detail) return;
    const { version: v, channel } = target;
    const from = detail.channels[channel]?.version ?? "nothing";
    const path = `/v1/models/${encodeURIComponent(name)}/promote`;
    let evidence: string[] | undefined;
    if (channel === PRODUCTION) {
      // The server's own account of the version (gates, drift, agreement): it answers a
      // production move without confirm=true with 409 and that evidence.
      try {
        await post(path, { version: v, channel, reason: "asking for the evidence", confirm: false });
      } catch (exc) {
        if (!(exc instanceof ApiFailure && exc.status === 409 && Array.isArray(exc.body.evidence))) {
          setError(message(exc));
          return;
        }
        evidence = exc.body.evidence as string[];
      }
    }
    setAsk({
      title: `Promote ${name} ${v} to ${channel}?`,
      body: (
        <p>
          Channel <strong>{channel}</strong> serves <strong>{from}</strong> now; nodes and servers that follow it will
          swap to <strong>{v}</strong> at their next poll.
        </p>
      ),
      evidence,
      needsConfirm: channel === PRODUCTION,
      action: "Promote",
      run: async (reason) => {
        try {
          const r = await post<{ version: string; previous: string | null }>(path, {
            version: v,
            channel,
            reason,
            confirm: channel === PRODUCTION,
          });
          setStatus(`${channel} now serves ${r.version} (was ${r.previous ?? "unset"}).`);
          await load(name);
        } catch (exc) {
          throw new Error(message(exc));
        }
      },
    });
  }

  function askRollback(channel: string) {
    if (!name || !detail) return;
    const p = detail.channels[channel];
    setAsk({
      title: `Roll back ${name} ${channel}?`,
      body: (
        <p>
          Channel <strong>{channel}</strong> serves <strong>{p.version}</strong>; a rollback returns it to the version it
          served before (<strong>{p.previous ?? "none"}</strong>).
        </p>
      ),
      needsConfirm: channel === PRODUCTION,
      action: "Roll back",
      run: async (reason) => {
        try {
          const r = await post<{ version: string }>(`/v1/models/${encodeURIComponent(name)}/rollback`, {
            channel,
            version: p.version,
            reason,
            confirm: channel === PRODUCTION,
          });
          setStatus(`${channel} rolled back to ${r.version}.`);
          await load(name);
        } catch (exc) {
          throw new Error(message(exc));
        }
      },
    });
  }

  return (
    <>
      <ErrorAlert error={error} />
      <StatusLine status={status} />
      {list && (
        <p>
          Source: {list.source} <code>{list.location}</code>
          {list.models.length > 1 && (
            <>
              {" "}
              <label htmlFor="model-name">Model</label>{" "}
              <select id="model-name" value={name ?? ""} onChange={(e) => setName(e.target.value)}>
                {list.models.map((m) => (
                  <option key={m.name}>{m.name}</option>
                ))}
              </select>
            </>
          )}
        </p>
      )}
      {detail && (
        <>
          <h2>
            {detail.name}
            {detail.serving && <small> · this server serves {detail.serving}</small>}
            {detail.followed_channel && <small> (following {detail.followed_channel})</small>}
          </h2>
          <h3>Channels</h3>
          {Object.keys(detail.channels).length === 0 ? (
            <p>No channel is set{list?.source === "bundle" ? ": this server serves a bundle folder, not a store" : ""}.</p>
          ) : (
            <table data-testid="channels">
              <thead>
                <tr>
                  <th scope="col">channel</th>
                  <th scope="col">version</th>
                  <th scope="col">history (newest first)</th>
                  {canPromote && <th scope="col">action</th>}
                </tr>
              </thead>
              <tbody>
                {Object.entries(detail.channels).map(([ch, p]) => (
                  <tr key={ch}>
                    <th scope="row">{ch}</th>
                    <td>{p.version}</td>
                    <td>
                      <ol className="history">
                        {[p, ...p.history].map((m, i) => (
                          <li key={i}>
                            {m.action} {m.version} by {m.by} at {m.at}: {m.reason}
                          </li>
                        ))}
                      </ol>
                    </td>
                    {canPromote && (
                      <td>
                        <button type="button" onClick={() => askRollback(ch)} disabled={!p.previous}>
                          Roll back {ch}…
                        </button>
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h3>Versions</h3>
          <table data-testid="versions">
            <thead>
              <tr>
                <th scope="col">version</th>
                <th scope="col">created</th>
                <th scope="col">channels</th>
                <th scope="col">details</th>
              </tr>
            </thead>
            <tbody>
              {[...detail.versions].reverse().map((v) => (
                <tr key={v.version}>
                  <th scope="row">{v.version}</th>
                  <td>{v.created_at}</td>
                  <td>{v.channels.join(", ") || "–"}</td>
                  <td>
                    <button type="button" onClick={() => show(v.version)}>
                      Show {v.version}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {canPromote && list?.source === "store" && (
            <form
              className="promote"
              onSubmit={(e) => {
                e.preventDefault();
                void askPromote();
              }}
            >
              <h3>Promote</h3>
              <label htmlFor="promote-version">Version</label>
              <select
                id="promote-version"
                value={target.version}
                onChange={(e) => setTarget({ ...target, version: e.target.value })}
              >
                {detail.versions.map((v) => (
                  <option key={v.version}>{v.version}</option>
                ))}
              </select>
              <label htmlFor="promote-channel">Channel</label>
              <select
                id="promote-channel"
                value={target.channel}
                onChange={(e) => setTarget({ ...target, channel: e.target.value })}
              >
                {[...new Set([...CHANNELS, ...Object.keys(detail.channels)])].map((c) => (
                  <option key={c}>{c}</option>
                ))}
              </select>
              <button type="submit">Promote…</button>
            </form>
          )}
        </>
      )}
      {version && (
        <section aria-labelledby="version-title">
          <h3 id="version-title">
            {version.name} {version.version}
          </h3>
          <p>
            Created {version.created_at}; {version.signed ? "signed" : "not signed"}; classes {version.classes.join(", ")};
            on {version.channels.join(", ") || "no channel"}
            {version.serving ? "; served here" : ""}.
          </p>
          <h4>Metrics</h4>
          <table className="compact" data-testid="metrics">
            <tbody>
              {headline(version.metrics).map(([k, v]) => (
                <tr key={k}>
                  <th scope="row">{k}</th>
                  <td>{v}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <details>
            <summary>Lineage and records</summary>
            <pre>{JSON.stringify({ lineage: version.lineage, records: version.records }, null, 1)}</pre>
          </details>
        </section>
      )}
      <ConfirmDialog ask={ask} onClose={() => setAsk(null)} />
    </>
  );
}
