// One row per plant the dish should hold (the plant count comes from the model), with
// its traits, its tip's confidence and why it is flagged when it is.
import type { Plant } from "../api";

const fmt = (v: number | null | undefined, digits = 0) => (v === null || v === undefined ? "–" : v.toFixed(digits));

export default function PlantsTable({ plants, threshold }: { plants: Plant[]; threshold?: number }) {
  return (
    <table data-testid="plants">
      <caption className="visually-hidden">
        Plants, left to right; flagged when the plant or its tip was not found or its confidence is low
        {threshold !== undefined && ` (below ${threshold})`}
      </caption>
      <thead>
        <tr>
          <th scope="col">plant</th>
          <th scope="col">primary tip (x, y px)</th>
          <th scope="col">primary root</th>
          <th scope="col">all roots (px)</th>
          <th scope="col">laterals</th>
          <th scope="col">shoot area (px²)</th>
          <th scope="col">confidence</th>
          <th scope="col">flag</th>
        </tr>
      </thead>
      <tbody>
        {plants.map((p) => (
          <tr key={p.plant} className={p.low_confidence ? "flagged" : undefined}>
            <th scope="row">{p.plant}</th>
            <td>{p.primary_root_tip ? `${fmt(p.primary_root_tip[0])}, ${fmt(p.primary_root_tip[1])}` : "not found"}</td>
            <td>
              {p.primary_root_length_mm !== null
                ? `${fmt(p.primary_root_length_mm, 2)} mm`
                : `${fmt(p.primary_root_length_px)} px`}
            </td>
            <td>{fmt(p.total_root_length_px)}</td>
            <td>{p.lateral_root_count}</td>
            <td>{fmt(p.shoot_area_px)}</td>
            <td>{fmt(p.confidence, 3)}</td>
            <td>{p.low_confidence ? `low confidence: ${p.reason}` : "ok"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
