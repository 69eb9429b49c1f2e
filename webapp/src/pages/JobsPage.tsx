// Jobs (batch predictions and hades-train runs): status, who started them, their MLflow
// run and the end of their log, refreshed while any is queued or running; cancel one.
import { ErrorAlert, StatusLine } from "../components/Messages";
import { useCallback, useEffect, useState } from "react";
import { get, message, request, type Job } from "../api";

const ACTIVE = ["queued", "running"];
const REFRESH_MS = 3000;

export default function JobsPage() {
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [detail, setDetail] = useState<Job | null>(null);
  const [log, setLog] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState("");

  const load = useCallback(async () => {
    try {
      const list = await get<{ jobs: Job[] }>("/v1/jobs");
      setJobs(list.jobs);
      if (open) {
        setDetail(await get<Job>(`/v1/jobs/${open}`));
        setLog((await get<{ lines: string[] }>(`/v1/jobs/${open}/log?tail=200`)).lines);
      }
      setError(null);
      return list.jobs.some((j) => ACTIVE.includes(j.status));
    } catch (exc) {
      setError(message(exc));
      return false;
    }
  }, [open]);

  useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const tick = async () => {
      const busy = await load();
      if (alive && busy) timer = window.setTimeout(tick, REFRESH_MS);
    };
    void tick();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, [load]);

  async function cancel(id: string) {
    try {
      const j = await request<Job>("DELETE", `/v1/jobs/${id}`);
      setStatus(`Job ${id} is ${j.status}.`);
      await load();
    } catch (exc) {
      setError(message(exc));
    }
  }

  return (
    <>
      <ErrorAlert error={error} />
      <StatusLine status={status} />
      <p>
        <button type="button" onClick={() => void load()}>
          Refresh
        </button>
      </p>
      {jobs && jobs.length === 0 && <p>No jobs yet. Start one with POST /v1/jobs or POST /v1/predict/batch.</p>}
      {jobs && jobs.length > 0 && (
        <table data-testid="jobs">
          <thead>
            <tr>
              <th scope="col">job</th>
              <th scope="col">kind</th>
              <th scope="col">status</th>
              <th scope="col">by</th>
              <th scope="col">created</th>
              <th scope="col">MLflow run</th>
              <th scope="col">actions</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((j) => (
              <tr key={j.job} className={j.status === "failed" ? "flagged" : undefined}>
                <th scope="row">{j.job}</th>
                <td>{j.kind}</td>
                <td>{j.status}</td>
                <td>{j.by}</td>
                <td>{j.created_at}</td>
                <td>{j.mlflow_run_id ?? "–"}</td>
                <td>
                  <button type="button" onClick={() => setOpen(j.job)} aria-pressed={open === j.job}>
                    Show {j.job}
                  </button>
                  {ACTIVE.includes(j.status) && (
                    <button type="button" onClick={() => void cancel(j.job)}>
                      Cancel {j.job}
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {detail && (
        <section aria-labelledby="job-title">
          <h2 id="job-title">
            Job {detail.job} ({detail.kind}): {detail.status}
          </h2>
          <p>
            Started {detail.started_at ?? "not yet"}, finished {detail.finished_at ?? "not yet"}
            {detail.exit_code !== null && `, exit code ${detail.exit_code}`}
            {detail.error && `: ${detail.error}`}.
          </p>
          {detail.counts && (
            <p>
              {Object.entries(detail.counts)
                .map(([k, v]) => `${k} ${v}`)
                .join(", ")}
            </p>
          )}
          <h3>Arguments</h3>
          <pre>{JSON.stringify(detail.args, null, 1)}</pre>
          {detail.outputs && detail.outputs.length > 0 && (
            <>
              <h3>Outputs</h3>
              <ul>
                {detail.outputs.map((o) => (
                  <li key={o}>{o}</li>
                ))}
              </ul>
            </>
          )}
          <h3>Log (last 200 lines)</h3>
          <pre className="log" data-testid="job-log" tabIndex={0}>
            {log.join("\n") || "(empty)"}
          </pre>
        </section>
      )}
    </>
  );
}
