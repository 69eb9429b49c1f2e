// A running node's latest plants and its drift verdict, as the server's live feed holds
// them (GET /v1/live), refreshed every two seconds; or plainly why there is nothing.
import { ErrorAlert } from "../components/Messages";
import { useCallback, useState } from "react";
import { get, type Plant } from "../api";
import { usePoll } from "../usePoll";
import PlantsTable from "../components/PlantsTable";

interface Live {
  available: boolean;
  namespace: string;
  message: string;
  frames: number;
  plants: { stamp: number; frame_id: string; model_version: string; received_at: string; plants: Plant[] } | null;
  monitoring: { model: Record<string, string>; drift_level: string; drift_message: string } | null;
  agreement: {
    serving_version: string;
    candidate_version: string;
    frames: number;
    mean_class_iou: Record<string, number>;
    mean_primary_tip_distance_px: number;
  } | null;
}

const REFRESH_MS = 2000;

export default function LivePage() {
  const [live, setLive] = useState<Live | null>(null);
  const load = useCallback(async () => setLive(await get<Live>("/v1/live")), []);
  const error = usePoll(load, REFRESH_MS);

  return (
    <>
      <ErrorAlert error={error} />
      {live && (
        <>
          <p data-testid="live-message" className={live.available ? undefined : "notice"}>
            {live.message}
          </p>
          {live.plants && (
            <>
              <p>
                Frame stamped {live.plants.stamp.toFixed(3)} s ({live.plants.frame_id || "no frame id"}), model{" "}
                {live.plants.model_version}, received {live.plants.received_at}.
              </p>
              {live.monitoring && (
                <p>
                  Drift: <span className={`level ${live.monitoring.drift_level}`}>{live.monitoring.drift_level}</span>{" "}
                  {live.monitoring.drift_message}
                </p>
              )}
              <PlantsTable plants={live.plants.plants} />
            </>
          )}
          {live.agreement && (
            <section aria-labelledby="agreement-title" data-testid="agreement">
              <h2 id="agreement-title">Shadow agreement</h2>
              <p>
                {live.agreement.candidate_version} in shadow against {live.agreement.serving_version}, over{" "}
                {live.agreement.frames} frames: primary tips {live.agreement.mean_primary_tip_distance_px.toFixed(1)} px
                apart on average; mean IoU per class{" "}
                {Object.entries(live.agreement.mean_class_iou)
                  .map(([c, v]) => `${c}: ${v.toFixed(3)}`)
                  .join(", ")}
                .
              </p>
            </section>
          )}
        </>
      )}
    </>
  );
}
