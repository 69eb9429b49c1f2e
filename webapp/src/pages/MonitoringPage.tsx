// Drift of the frames this server predicted with the served version: the window judged
// now (each signal's KS statistic against its threshold) and over time; and the drift
// reports of finished `hades-train monitor` jobs.
import { ErrorAlert } from "../components/Messages";
import { useCallback, useState } from "react";
import { get } from "../api";
import { usePoll } from "../usePoll";
import DriftChart, { type DriftPoint } from "../components/DriftChart";

interface Signal {
  name: string;
  value: number;
  threshold: number;
  shift: number;
  effect: number;
  drifted: boolean;
  level: string;
}

interface Summary {
  model: Record<string, string>;
  level: string;
  message: string;
  frames: number;
  window: number;
  min_frames: number;
  signals: Signal[];
}

interface History {
  every: number;
  points: DriftPoint[];
}

interface Reports {
  reports: { job: string; finished_at: string | null; by: string; report: { drift_detected: boolean; frames: number } }[];
}

const REFRESH_MS = 10000;

export default function MonitoringPage() {
  const [summary, setSummary] = useState<Summary | null>(null);
  const [history, setHistory] = useState<History | null>(null);
  const [reports, setReports] = useState<Reports | null>(null);
  const load = useCallback(async () => {
    const [s, h, r] = await Promise.all([
      get<Summary>("/v1/monitoring/drift"),
      get<History>("/v1/monitoring/drift/history"),
      get<Reports>("/v1/monitoring/reports"),
    ]);
    setSummary(s);
    setHistory(h);
    setReports(r);
  }, []);
  const error = usePoll(load, REFRESH_MS);

  return (
    <>
      <ErrorAlert error={error} />
      {summary && (
        <section aria-labelledby="now-title">
          <h2 id="now-title">
            Now: <span className={`level ${summary.level}`}>{summary.level}</span>
          </h2>
          <p data-testid="drift-message">
            {summary.model.name} {summary.model.version}: {summary.message} ({summary.frames} of {summary.window} frames
            in the window; judged from {summary.min_frames}).
          </p>
          {summary.signals.length > 0 && (
            <table data-testid="signals">
              <thead>
                <tr>
                  <th scope="col">signal</th>
                  <th scope="col">KS statistic</th>
                  <th scope="col">threshold</th>
                  <th scope="col">median shift</th>
                  <th scope="col">effect (spreads)</th>
                  <th scope="col">level</th>
                </tr>
              </thead>
              <tbody>
                {summary.signals.map((s) => (
                  <tr key={s.name} className={s.drifted ? "flagged" : undefined}>
                    <th scope="row">{s.name}</th>
                    <td>{s.value.toFixed(3)}</td>
                    <td>{s.threshold.toFixed(3)}</td>
                    <td>{s.shift.toPrecision(3)}</td>
                    <td>{s.effect.toFixed(2)}</td>
                    <td>{s.level}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      )}
      {history && (
        <section aria-labelledby="history-title">
          <h2 id="history-title">Over time</h2>
          {history.points.length === 0 ? (
            <p>No point yet: the window is judged every {history.every} predicted frames.</p>
          ) : (
            <DriftChart points={history.points} />
          )}
        </section>
      )}
      {reports && (
        <section aria-labelledby="reports-title">
          <h2 id="reports-title">Reports of monitor jobs</h2>
          {reports.reports.length === 0 ? (
            <p>
              None yet. Start one with <code>hades-train monitor</code> as a job (POST /v1/jobs, kind monitor).
            </p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">job</th>
                  <th scope="col">finished</th>
                  <th scope="col">by</th>
                  <th scope="col">frames</th>
                  <th scope="col">drift</th>
                </tr>
              </thead>
              <tbody>
                {reports.reports.map((r) => (
                  <tr key={r.job}>
                    <th scope="row">{r.job}</th>
                    <td>{r.finished_at}</td>
                    <td>{r.by}</td>
                    <td>{r.report.frames}</td>
                    <td>{r.report.drift_detected ? "detected" : "none"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      )}
    </>
  );
}
