// Drift over time as a small SVG chart (the most extreme signal's KS statistic over its
// threshold; above 1 a signal drifted) with the same points as a table for screen readers.
export interface DriftPoint {
  at: string;
  frames_seen: number;
  window_frames: number;
  level: string;
  worst_signal: string;
  worst_ratio: number | null;
}

const W = 640;
const H = 160;
const PAD = 28;
const LEVEL_COLOUR: Record<string, string> = { OK: "#1a7f37", WARN: "#9a6700", ERROR: "#cf222e" };

export default function DriftChart({ points }: { points: DriftPoint[] }) {
  const top = Math.max(1.5, ...points.map((p) => p.worst_ratio ?? 0));
  const x = (i: number) => PAD + (points.length === 1 ? 0 : (i * (W - 2 * PAD)) / (points.length - 1));
  const y = (v: number) => H - PAD - (v / top) * (H - 2 * PAD);
  const line = points.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p.worst_ratio ?? 0).toFixed(1)}`).join(" ");
  return (
    <figure>
      <svg viewBox={`0 0 ${W} ${H}`} className="chart" role="img" aria-labelledby="drift-caption">
        <line x1={PAD} x2={W - PAD} y1={y(1)} y2={y(1)} className="threshold" />
        <text x={W - PAD} y={y(1) - 4} textAnchor="end" className="axis">
          threshold
        </text>
        <path d={line} className="series" />
        {points.map((p, i) => (
          <circle key={i} cx={x(i)} cy={y(p.worst_ratio ?? 0)} r={3.5} fill={LEVEL_COLOUR[p.level] ?? "#57606a"}>
            <title>{`${p.at}: ${p.level}${p.worst_signal ? `, ${p.worst_signal}` : ""}`}</title>
          </circle>
        ))}
        <text x={PAD} y={H - 8} className="axis">
          frame {points[0].frames_seen}
        </text>
        <text x={W - PAD} y={H - 8} textAnchor="end" className="axis">
          frame {points[points.length - 1].frames_seen}
        </text>
      </svg>
      <figcaption id="drift-caption">
        Most extreme signal's KS statistic over its threshold, judged every few frames (above the line: drifted).
      </figcaption>
      <details>
        <summary>Points as a table</summary>
        <table data-testid="drift-points">
          <thead>
            <tr>
              <th scope="col">time (UTC)</th>
              <th scope="col">frames</th>
              <th scope="col">level</th>
              <th scope="col">worst signal</th>
              <th scope="col">statistic / threshold</th>
            </tr>
          </thead>
          <tbody>
            {points.map((p, i) => (
              <tr key={i}>
                <td>{p.at}</td>
                <td>{p.frames_seen}</td>
                <td>{p.level}</td>
                <td>{p.worst_signal || "–"}</td>
                <td>{p.worst_ratio ?? "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
